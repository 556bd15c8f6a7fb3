"""One grid point of a sweep: an ordinary ``python -m lightning_mbmarl fit --config ...`` run in a folder named
after the point, skipped when it already finished and resumed from its ``last.ckpt`` when it was interrupted.

Layout under ``<sweep.output_dir>/<sweep.name>/<experiment>/`` (``experiment``: the config file's stem)::

    <point>/            the run folder (config.yaml, metrics.csv, checkpoints/last.ckpt, plots)
    <point>.json        the point's attempts (start, seconds, exit status) and, once it finished, ``finished``
    <point>.log         the run's output, every attempt appended

``<point>`` is the point's grid values, e.g. ``rollout_length=15,seed=3``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from lightning_mbmarl.cli import RUN_DIR_ENV
from lightning_mbmarl.slurm import LAST_CHECKPOINT
from lightning_mbmarl.sweeps.code_state import attempts_code, save_code_state
from lightning_mbmarl.sweeps.results import append_row, evaluation_curve, metric_rows

#: how often a running point's record notes the time its attempt has run
HEARTBEAT_SECONDS = 60.0


@dataclass(frozen=True)
class Point:
    """A grid point: its config file, seed, the command-line options it adds, and the grid values that name it
    (results column -> value; ``config`` and ``seed`` are columns of every sweep)."""

    config: str
    seed: int
    options: tuple[str, ...]
    grid: tuple[tuple[str, str], ...]

    @property
    def experiment(self) -> str:
        return Path(self.config).stem

    @property
    def name(self) -> str:
        """The run folder's name: the point's grid values other than the config, then the seed."""
        values = [f"{key.rsplit('.', 1)[-1]}={value}" for key, value in self.grid] + [f"seed={self.seed}"]
        return ",".join(values).replace("/", "_")


def flatten_options(args: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``{"model": {"init_args": {"lr": 0.1}}}`` -> ``["--model.init_args.lr=0.1"]`` (lists and nulls as the
    command line reads them)."""
    options = []
    for key, value in args.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            options += flatten_options(value, dotted + ".")
        else:
            options.append(f"--{dotted}={_option_value(value)}")
    return options


def _option_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return str(value)


def grid_values(variables: Mapping[str, Any], job_overrides: list[str]) -> tuple[tuple[str, str], ...]:
    """The point's grid values, as (name, value): every ``point.vars`` entry (``("method", "moma")``), then every
    ``point.args.*`` key set by the sweep or the command line (``("model.init_args.aorpo.rollout_length", "15")``)."""
    options = []
    for override in job_overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key.startswith("point.args."):
            options.append((key.removeprefix("point.args."), value))
    return tuple(sorted((name, str(value)) for name, value in variables.items()) + sorted(options))


def make_point(point_config: Mapping[str, Any], job_overrides: list[str]) -> Point:
    """The :class:`Point` of a composed sweep config's ``point`` section and the job's Hydra overrides."""
    return Point(
        config=str(point_config["config"]),
        seed=int(point_config["seed"]),
        options=tuple(flatten_options(point_config.get("args") or {})),
        grid=grid_values(point_config.get("vars") or {}, job_overrides),
    )


def fit_command(point: Point, run_dir: Path, resume: bool) -> list[str]:
    """The point's command line: ``fit`` in its own run folder, resuming from ``last.ckpt`` when asked."""
    command = [
        sys.executable,
        "-m",
        "lightning_mbmarl",
        "fit",
        "--config",
        point.config,
        f"--seed_everything={point.seed}",
        f"--trainer.default_root_dir={run_dir}",
        "--trainer.enable_model_summary=false",
        *point.options,
    ]
    if resume:
        command.append(f"--ckpt_path={run_dir / LAST_CHECKPOINT}")
    return command


class PointRun:
    """Runs one point of a sweep and records it: the results row, the curve rows, the attempts."""

    def __init__(
        self,
        point: Point,
        output_dir: str | Path,
        sweep_name: str,
        results: str | Path,
        metrics: list[str],
        threads: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.point, self.metrics, self.threads, self.env = point, list(metrics), threads, dict(env or {})
        self.results = Path(results)
        self.curves = self.results.with_name(self.results.stem + "_curves.csv")
        self.code_dir = self.results.parent / "code"  # <label>.diff for each attempt run from uncommitted code
        experiment_dir = Path(output_dir) / sweep_name / point.experiment
        self.run_dir = experiment_dir / point.name
        self.record_file = experiment_dir / f"{point.name}.json"
        self.log_file = experiment_dir / f"{point.name}.log"

    def record(self) -> dict[str, Any]:
        if self.record_file.exists():
            return json.loads(self.record_file.read_text())
        return {"point": self.point.name, "config": self.point.config, "attempts": [], "finished": False}

    def run(self, rank: int = 0) -> dict[str, Any]:
        """Train the point unless it finished already (then return its results row); raises when the run fails.
        Only ``rank`` 0 (one per multi-task SLURM job) keeps the books; every rank runs the command."""
        record = self.record()
        if record["finished"]:
            return self.results_row(record, self.evaluations())
        resume = (self.run_dir / LAST_CHECKPOINT).exists()
        if rank == 0:
            self.run_dir.parent.mkdir(parents=True, exist_ok=True)
            if not resume and (self.run_dir / "config.yaml").exists():
                # an earlier attempt died before its first checkpoint: start it afresh, keeping its folder aside
                self.run_dir.rename(self.run_dir.with_name(f"{self.point.name}.failed_{len(record['attempts'])}"))
        env = {**os.environ, **self.env}
        env.pop(RUN_DIR_ENV, None)
        if rank != 0:  # the other tasks of a multi-device SLURM job join rank 0's run folder, as DDP workers do
            env[RUN_DIR_ENV] = str(self.run_dir)
        if self.threads is not None:
            env["OMP_NUM_THREADS"] = str(self.threads)
        command = fit_command(self.point, self.run_dir, resume)
        # the code this attempt runs; uncommitted changes go beside the results, to be committed with its row
        start, started, commit = time.perf_counter(), _now(), save_code_state(self.code_dir if rank == 0 else None)
        attempt = {"start": started, "seconds": 0, "exit": None, "resumed": resume, "commit": commit}
        heartbeat = None
        if rank == 0:
            record["command"] = command[1:]
            record["attempts"].append(attempt)

            def heartbeat() -> None:  # an attempt killed with its machine keeps the time it ran (to a minute)
                attempt["seconds"] = round(time.perf_counter() - start)
                self._write(record)

            heartbeat()
        with open(self.log_file, "a") as log:
            log.write(f"\n# {started} {' '.join(command)}\n")
            log.flush()
            status, stop = run_forwarding_stops(command, env, log, heartbeat)
        if rank == 0:
            attempt.update(seconds=round(time.perf_counter() - start), exit=status)
            if status != 0:
                self._write(record)
        if stop is not None:
            stop.pass_on()
        if rank != 0:
            return {}
        if status != 0:
            raise RuntimeError(
                f"sweep point {self.point.experiment}/{self.point.name} failed with exit status "
                f"{status}: see {self.log_file}; run the sweep again to resume it"
            )
        record["finished"] = True
        evaluations = self.evaluations()
        row = self.results_row(record, evaluations)
        append_row(self.results, row)
        for curve_row in self.curve_rows(evaluations):
            append_row(self.curves, curve_row)
        self._write(record)
        return row

    def _write(self, record: dict[str, Any]) -> None:
        temporary = self.record_file.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(record, indent=1))
        temporary.replace(self.record_file)

    def _identity(self) -> dict[str, Any]:
        return {
            "point": self.point.name,
            "experiment": self.point.experiment,
            "config": self.point.config,
            **dict(self.point.grid),
            "seed": self.point.seed,
        }

    def evaluations(self) -> list[tuple[float, dict[str, float]]]:
        """The run's evaluations of ``metrics`` as (environment steps, values), read from its ``metrics.csv``."""
        return evaluation_curve(metric_rows(self.run_dir), self.metrics)

    def results_row(
        self, record: Mapping[str, Any], evaluations: list[tuple[float, dict[str, float]]]
    ) -> dict[str, Any]:
        """The point's results row: identity, grid values, final environment steps and metrics, wall-clock over all
        attempts, commit, time recorded."""
        if not evaluations:
            raise RuntimeError(
                f"{self.run_dir}/metrics.csv logged none of {self.metrics} together: name metrics the "
                "run's evaluation logs in sweep.metrics"
            )
        env_steps, final = evaluations[-1]
        return {
            **self._identity(),
            "env_steps": int(env_steps),
            **final,
            "seconds": sum(a["seconds"] for a in record["attempts"]),
            "commit": attempts_code([a.get("commit", "unknown") for a in record["attempts"]]),
            "recorded": _now(),
        }

    def curve_rows(self, evaluations: list[tuple[float, dict[str, float]]]) -> list[dict[str, Any]]:
        """One row per evaluation: identity, environment steps, metrics (what ``report`` plots)."""
        return [{**self._identity(), "env_steps": int(at), **values} for at, values in evaluations]


#: signals that ask a point to stop early: SLURM's pre-emption / time-limit warnings (submitit asks for SIGUSR2,
#: Lightning for SIGUSR1) and termination
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT)


@dataclass
class ReceivedStop:
    """A stop signal the point's process received while its run was going, and the handler that was there before
    (submitit's checkpoint-and-requeue under a SLURM launcher)."""

    signum: int
    previous: Any

    def pass_on(self) -> None:
        """Hand the signal to the handler that was there before, now that the run has saved and exited: submitit
        requeues the job (which resumes the point); by default the process ends as that signal would end it."""
        if callable(self.previous):
            self.previous(self.signum, None)
        elif self.previous != signal.SIG_IGN:
            raise SystemExit(128 + self.signum)


def _ignore_stop_signals() -> None:
    """In the run's process: the SLURM warnings go to the parent, which forwards them as SIGTERM."""
    for signum in (signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_IGN)


def run_forwarding_stops(
    command: list[str],
    env: dict[str, str],
    log,
    heartbeat: Callable[[], None] | None = None,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
) -> tuple[int, ReceivedStop | None]:
    """Run ``command`` to its end; a stop signal received meanwhile is forwarded to it as SIGTERM, on which the
    package's runs save ``last.ckpt`` at the next step boundary and exit. ``heartbeat`` is called every
    ``heartbeat_seconds`` while it runs. Returns the exit status and the stop received, if any
    (:meth:`ReceivedStop.pass_on` then hands it on)."""
    child = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_ignore_stop_signals)
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, forward) for s in STOP_SIGNALS} if in_main_thread else {}
    try:
        while True:
            try:
                status = child.wait(timeout=heartbeat_seconds if heartbeat is not None else None)
                break
            except subprocess.TimeoutExpired:
                heartbeat()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status, ReceivedStop(received[0], previous[received[0]]) if received else None


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
