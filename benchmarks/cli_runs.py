"""Running one experiment of the package through its command line, as the benchmarks here do."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path


def run_experiment(config: str, experiment: str, output_dir: Path, *overrides: str) -> tuple[Path, float]:
    """``python -m lightning_mbmarl fit --config CONFIG`` in a fresh one-thread process, in its own run folder
    ``output_dir/experiment/version_<k>``; returns that folder and the wall-clock seconds. Raises with the end of
    stderr if the run fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("LIGHTNING_MBMARL_RUN_DIR", None)
    command = [sys.executable, "-m", "lightning_mbmarl", "fit", "--config", config, f"--experiment={experiment}",
               f"--output_dir={output_dir}", "--trainer.enable_progress_bar=false",
               "--trainer.enable_model_summary=false", *overrides]
    commit, start = code_commit(), time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    run_dir = latest_run(output_dir, experiment)
    marker = {"command": command[1:], "seconds": seconds, "commit": commit}
    (run_dir / FINISHED_MARKER).write_text(json.dumps(marker, indent=1))
    return run_dir, seconds


#: written into a run folder once its command exited cleanly: benchmarks reuse only runs that have it
FINISHED_MARKER = "benchmark_run.json"


def run_folders(output_dir: Path, experiment: str) -> list[Path]:
    """The ``version_<k>`` folders of ``experiment``, oldest first."""
    return sorted((Path(output_dir) / experiment).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))


def finished_run(output_dir: Path, experiment: str) -> Path | None:
    """The newest run folder of ``experiment`` whose command ran to its end (it has the marker), if any: what a
    benchmark's ``--reuse`` reads; runs interrupted part-way are not."""
    return next((run for run in reversed(run_folders(output_dir, experiment)) if (run / FINISHED_MARKER).exists()),
                None)


def latest_run(output_dir: Path, experiment: str) -> Path:
    """The newest ``version_<k>`` folder of ``experiment``."""
    return run_folders(output_dir, experiment)[-1]


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run's ``metrics.csv``."""
    return list(csv.DictReader(open(run_dir / "metrics.csv")))


def evaluation_curve(rows: list[dict[str, str]], metrics: tuple[str, ...]) -> list[tuple[float, dict[str, float]]]:
    """Each evaluation of a run as (environment steps when it ran, {metric: value}), from its ``metrics.csv`` rows.
    Evaluations log ``eval/env_steps`` in their own row; runs made before that was logged fall back to the latest
    ``env_steps`` of a training row."""
    curve, env_steps = [], 0.0
    for row in sorted(rows, key=lambda r: int(r["step"])):
        if row.get("env_steps"):
            env_steps = max(env_steps, float(row["env_steps"]))
        if all(row.get(m) for m in metrics):
            at = float(row["eval/env_steps"]) if row.get("eval/env_steps") else env_steps
            curve.append((at, {m: float(row[m]) for m in metrics}))
    return curve


def code_commit() -> str:
    """The package's git commit (``+dirty`` when the package or its configs have uncommitted changes), or
    ``unknown``."""
    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "lightning_mbmarl", "conf"], cwd=repo,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def read_results(path: Path) -> list[dict[str, str]]:
    """The rows of a committed results file (empty when it does not exist yet)."""
    return list(csv.DictReader(open(path))) if Path(path).exists() else []


def append_result(path: Path, row: dict[str, object], run_dir: Path) -> None:
    """Append one finished run to a results file (CSV; header written with the first row) with its wall-clock
    seconds and the commit its benchmark ran, both from the run's marker (commit ``unrecorded`` for runs made before
    markers held it), and the time: a record kept in the repository, so results outlive the machine their runs
    were on."""
    marker = json.loads((run_dir / FINISHED_MARKER).read_text())
    row = {**row, "seconds": round(marker["seconds"]), "commit": marker.get("commit", "unrecorded"),
           "recorded": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _RESULTS_LOCK:  # benchmarks run several runs from threads
        _append_row(path, row)


_RESULTS_LOCK = threading.Lock()


def _append_row(path: Path, row: dict[str, object]) -> None:
    new = not path.exists()
    if not new and (header := next(csv.reader(open(path)))) != list(row):
        raise ValueError(f"{path}: its columns are {header}, this row's are {list(row)}")
    with open(path, "a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
