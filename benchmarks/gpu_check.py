"""One check of the package on a GPU: correctness runs to their end, then the speed figures, eager against the fast
path, side by side. Run through ``benchmarks/gpu_check.sh`` (which keeps SMAX's jax on the CPU).

(a) Correctness, each run to its end with its score (run together, as separate processes): MOMA-PPO ICG unfavorable
    in 32-true and in bf16-mixed (``eval/normalized_score``), AORPO Climb (``eval/nash_distance``), MAMBA and MAG
    ICG (``eval/normalized_score``).
(b) Speed, eager (float32, no compilation) against fast (``--fast-compile``, default ``reduce-overhead``: inductor
    with CUDA-graph capture; bf16 where named): the MAMBA iteration on SMAX 2s3z at the config's sizes (batch 40 and
    160) and its world-model update, the MAG iteration and the MAG/MAMBA ratio, the paper-scale MOMA-PPO ensemble
    training step (7 members x 4 x 1024, batch 256) in float32 and bf16, the same step inside a Lightning fit loop,
    and ensemble imagination throughput (5 x 4 x 1024, batch 4096).

A missing core package stops it at once with the package's name; without jaxmarl the SMAX rows are skipped with the
reason. A row that fails prints its error in the table and the check goes on. Every figure is appended to
``--results`` (default ``benchmarks/results/gpu_check.csv``: figure, path, value, unit, device, torch version,
commit, time) the moment it is measured, most wanted first (:func:`speed_tasks`), so a check cut off keeps what it
measured. ``--budget`` (default 480 s on a GPU) ends the check at that time: what it was measuring is recorded as
timed out, what it had not started as skipped, and the table is printed. On a lent GPU machine
``benchmarks/gpu_session.sh`` runs it (benchmarks/README.md, "On the GPU").

``--dry-run`` runs every code path on the CPU at tiny sizes (compile mode ``default``, traced but not code-generated:
see :func:`trace_without_code_generation`; no CUDA graphs), with no budget unless one is given, and records nothing
unless ``--results`` is given: what the test suite runs.

    bash benchmarks/gpu_check.sh                 # on a GPU machine, at most 8 minutes (--budget 480)
    bash benchmarks/gpu_check.sh --dry-run       # anywhere, one to two minutes on a CPU
"""

from __future__ import annotations

import argparse
import csv
import functools
import importlib.util
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

CORE_PACKAGES = ("torch", "lightning", "jsonargparse", "omegaconf", "h5py", "numpy", "gymnasium")
RESULTS = Path(__file__).resolve().parent / "results" / "gpu_check.csv"
GPU_BUDGET = 480.0  # seconds: the "at most 8 minutes on one H200", inside the device's 10-minute command


def require_core_packages() -> None:
    missing = [name for name in CORE_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(
            f"gpu_check: missing core package(s): {', '.join(missing)} (this check uses no network: carry "
            "their wheels, see ../shared/GUIDE.md)"
        )


require_core_packages()

import torch  # noqa: E402

from cli_runs import code_commit, metric_rows, run_experiment  # noqa: E402
from lightning_mbmarl.nn.fast_path import FastPath, FastPathConfig  # noqa: E402
from lightning_mbmarl.world_models.ensemble import EnsembleConfig, GaussianEnsemble, ensemble_loss  # noqa: E402
from lightning_mbmarl.world_models.model_env import EnsembleModelEnv  # noqa: E402
from timing import QUIET_TRAINER, time_calls, timed_fit  # noqa: E402


@dataclass
class Settings:
    """Sizes and steps of one check: the real ones, or tiny ones for ``--dry-run``."""

    device: str  # "cuda" or "cpu"
    compile_mode: str  # the fast path's compile mode
    correctness: dict[str, list[str]]  # config -> extra overrides of each correctness run
    latent: list[str] = field(default_factory=list)  # overrides of the MAMBA/MAG speed runs
    batches: tuple[int, ...] = (40, 160)  # replay windows per batch of the MAMBA speed runs
    ensemble_hidden: tuple[int, ...] = (1024, 1024, 1024, 1024)
    ensemble_calls: int = 50
    fit_steps: int = 200  # ensemble steps timed inside a fit loop
    imagination_batch: int = 4096


CORRECTNESS = {  # name -> (config, metric)
    "MOMA-PPO ICG unfavorable, 32-true": ("conf/moma_icg_unfavorable.yaml", "eval/normalized_score"),
    "MOMA-PPO ICG unfavorable, bf16-mixed": ("conf/moma_icg_unfavorable.yaml", "eval/normalized_score"),
    "AORPO Climb": ("conf/aorpo_climb.yaml", "eval/nash_distance"),
    "MAMBA ICG": ("conf/mamba_icg.yaml", "eval/normalized_score"),
    "MAG ICG": ("conf/mag_icg.yaml", "eval/normalized_score"),
}
TINY_LATENT = [
    "--model.init_args.online.warmup_env_steps=40",
    "--model.init_args.online.env_steps_per_update=20",
    "--model.init_args.mamba.sequence_length=2",
    "--model.init_args.mamba.model_updates=2",
    "--model.init_args.mamba.policy_rounds=1",
    "--model.init_args.mamba.imagination_horizon=3",
    "--model.init_args.world_model.hidden=16",
    "--model.init_args.world_model.embed=16",
    "--model.init_args.world_model.deter=16",
    "--model.init_args.world_model.categoricals=4",
    "--model.init_args.world_model.classes=4",
    "--model.init_args.world_model.attention_layers=1",
    "--model.init_args.world_model.attention_heads=2",
    "--model.init_args.world_model.attention_feedforward=16",
    "--model.init_args.mappo.hidden=[16,16]",
    "--model.init_args.mappo.minibatch_size=64",
    "--model.init_args.mappo.epochs=1",
    "--model.init_args.critic.attention_heads=2",
]


def trace_without_code_generation() -> None:
    """For ``--dry-run``: every ``torch.compile`` of this process traces its function and splits forward and backward
    as the GPU run does (dynamo, AOTAutograd), then runs the traced graphs eagerly (backend ``aot_eager``) instead of
    generating inductor's CPU code. With inductor's cache empty, as on a fresh CI machine, the dry run took 368 s with
    inductor and 83 s without (beside other jobs); the test suite's compiled-loss, look-ahead and checkpoint tests
    cover inductor's code generation.
    """
    torch.compile = functools.partial(torch.compile, backend="aot_eager")


def settings(dry_run: bool, compile_mode: str | None) -> Settings:
    if not dry_run:
        if not torch.cuda.is_available():
            sys.exit("gpu_check: no CUDA device here; run with --dry-run to check the code paths on the CPU")
        return Settings("cuda", compile_mode or "reduce-overhead", {config: [] for config, _ in CORRECTNESS.values()})
    short = {
        "conf/moma_icg_unfavorable.yaml": [
            "--model.init_args.moma.world_model_steps=20",
            "--model.init_args.moma.world_model_log_interval=10",
            "--model.init_args.moma.policy_iterations=1",
            "--model.init_args.moma.rollout_starts=16",
            "--data.init_args.make_if_missing.episodes=20",
        ],
        "conf/aorpo_climb.yaml": [
            "--model.init_args.online.total_env_steps=520",
            "--model.init_args.online.warmup_env_steps=500",
            "--model.init_args.aorpo.model_train_steps=2",
            "--model.init_args.aorpo.opponent_train_steps=2",
        ],
        "conf/mamba_icg.yaml": ["--model.init_args.online.total_env_steps=500", *TINY_LATENT[2:]],
        "conf/mag_icg.yaml": [
            "--model.init_args.online.total_env_steps=500",
            *TINY_LATENT[2:],
            "--model.init_args.planning.horizon=2",
        ],
    }
    return Settings(
        "cpu",
        compile_mode or "default",
        short,
        latent=TINY_LATENT,
        batches=(2,),
        ensemble_hidden=(32, 32),
        ensemble_calls=3,
        fit_steps=5,
        imagination_batch=64,
    )


# ------------------------------------------------------------------------------------------------------ correctness
def correctness_run(name: str, config: str, metric: str, overrides: list[str], s: Settings, work: Path) -> float:
    """Run one correctness check to its end; its final ``metric``."""
    extra = ["--trainer.precision=bf16-mixed"] if "bf16-mixed" in name else []
    if "MOMA" in name:  # each run its own dataset file (the runs go side by side)
        extra.append(f"--data.init_args.dataset_path={work / name.replace(' ', '_').replace(',', '')}.hdf5")
    run_dir, _ = run_experiment(
        config,
        name.replace(" ", "_").replace(",", ""),
        work,
        f"--trainer.accelerator={'gpu' if s.device == 'cuda' else 'cpu'}",
        "--seed_everything=0",
        *overrides,
        *extra,
    )
    values = [float(row[metric]) for row in metric_rows(run_dir) if row.get(metric)]
    if not values:
        raise RuntimeError(f"{metric} was never logged in {run_dir}")
    return values[-1]


# ------------------------------------------------------------------------------------------------------------ speed
def latent_iteration(
    method: str, batch: int, fast: FastPathConfig, s: Settings, work: Path, iterations: int = 1
) -> tuple[float, float]:
    """(seconds of the last of ``iterations`` timed iterations, per world-model update in them) of ``method`` on SMAX
    2s3z. The last, because a compiled run may still compile (a new shape) in its first timed ones."""
    overrides = [
        f"--model.init_args.online.batch_size={batch}",
        "--model.init_args.online.total_env_steps=100000000",
        f"--model.init_args.fast.bf16={fast.bf16}",
        f"--model.init_args.fast.compile={fast.compile}",
        f"--model.init_args.fast.fused_adam={fast.fused_adam}",
        f"--trainer.accelerator={'gpu' if s.device == 'cuda' else 'cpu'}",
        *QUIET_TRAINER,
        f"--output_dir={work}",
        "--seed_everything=0",
        *s.latent,
    ]
    times, phases, model = timed_fit(
        f"conf/{method}_smax_2s3z.yaml", overrides, iterations, lambda model: {"learn_world_model": "world model"}
    )
    return times[-1], phases["world model"] / model.mamba.model_updates


def ensemble_step(fast: FastPathConfig, s: Settings) -> float:
    """Milliseconds of one paper-scale ensemble training step (loss, backward, Adam) on random data."""
    device = torch.device(s.device)
    torch.manual_seed(0)
    model = GaussianEnsemble(27, 8, EnsembleConfig(hidden=s.ensemble_hidden)).to(device)
    path = FastPath(fast)
    optimizer = path.adam(model.parameters(), lr=3e-5)
    batch = {
        "state": torch.randn(256, 27, device=device),
        "action_features": torch.rand(256, 4, 2, device=device),
        "next_state": torch.randn(256, 27, device=device),
        "reward": torch.randn(256, device=device),
        "terminal": torch.zeros(256, device=device),
    }
    loss_fn = path.compile("world_model_loss", ensemble_loss)

    def step() -> None:
        with path.autocast(device):
            loss = loss_fn(model, batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return 1e3 * time_calls(step, s.ensemble_calls, device, warmup=5)


def ensemble_step_in_fit(fast: FastPathConfig, s: Settings, work: Path) -> float:
    """Milliseconds per MOMA-PPO world-model training step inside a Lightning fit loop, paper-scale ensemble."""
    hidden = ",".join(str(h) for h in s.ensemble_hidden)
    overrides = [
        f"--model.init_args.world_model.hidden=[{hidden}]",
        "--model.init_args.world_model.learning_rate=3e-5",
        "--model.init_args.moma.world_model_steps=100000000",
        "--model.init_args.moma.world_model_log_interval=100000",
        f"--model.init_args.fast.bf16={fast.bf16}",
        f"--model.init_args.fast.compile={fast.compile}",
        f"--model.init_args.fast.fused_adam={fast.fused_adam}",
        f"--data.init_args.dataset_path={work / 'icg_speed.hdf5'}",
        "--data.init_args.batch_size=256",
        f"--trainer.accelerator={'gpu' if s.device == 'cuda' else 'cpu'}",
        *QUIET_TRAINER,
        "--trainer.log_every_n_steps=50",
        f"--output_dir={work}",
        "--seed_everything=0",
    ]
    times, _, _ = timed_fit("conf/moma_icg_unfavorable.yaml", overrides, s.fit_steps, lambda model: {})
    return 1e3 * statistics.median(times[5:] or times)


def imagination_throughput(fast: FastPathConfig, s: Settings) -> float:
    """Imagined transitions per second of a 5 x 4 x 1024 ensemble stepped through :class:`EnsembleModelEnv`."""
    device = torch.device(s.device)
    torch.manual_seed(0)
    model = GaussianEnsemble(27, 8, EnsembleConfig(members=5, elites=5, hidden=s.ensemble_hidden)).to(device).eval()
    env = EnsembleModelEnv(model, torch.full((27,), -10.0), torch.full((27,), 10.0), -10.0, 10.0, threshold=2.0).to(
        device
    )
    state = torch.randn(s.imagination_batch, 27, device=device)
    actions = torch.rand(s.imagination_batch, 4, 2, device=device) * 2 - 1
    path = FastPath(fast)
    step = path.compile("model_env_step", env.step)

    def imagine() -> None:
        with torch.no_grad(), path.autocast(device):
            step(state, actions)

    return s.imagination_batch / time_calls(imagine, s.ensemble_calls, device, warmup=5)


# ------------------------------------------------------------------------------------------------------------- plan
class Missing(Exception):
    """A derived figure whose inputs were not measured."""


@dataclass(eq=False)
class Row:
    """One figure on one path (``eager``, or ``compiled``: the fast path), or the reason it has no value."""

    figure: str
    unit: str
    path: str
    value: float | str = ""


@dataclass
class Task:
    """What one measurement gives: ``rows``, filled in order from the tuple ``measure`` returns."""

    rows: list[Row]
    measure: Callable[[], tuple[float, ...]]


def correctness_tasks(s: Settings, work: Path) -> list[Task]:
    return [
        Task(
            [Row(f"{name} ({metric}, run to its end)", "score", "eager")],
            lambda n=name, c=config, m=metric: (correctness_run(n, c, m, s.correctness[c], s, work),),
        )
        for name, (config, metric) in CORRECTNESS.items()
    ]


def speed_tasks(s: Settings, work: Path, results: Results) -> list[Task]:
    """Every speed figure, eager then fast, most wanted first, so that a run the budget cuts off has measured the
    issue's targets: the ensemble step (a small compile), the MAMBA and MAG iterations at the first batch
    size (both eager before either compiles, so the eager ratio stands even when a whole-RSSM compile outlasts the
    budget), then the fit loop, imagination and the larger batches."""
    paths = {
        "eager": FastPathConfig(bf16="off", compile="none", fused_adam=False),
        "compiled": FastPathConfig(bf16="off", compile=s.compile_mode),
    }
    bf16_paths = {label: replace(fast, bf16="on") for label, fast in paths.items()}
    tasks = [
        Task([Row(name, "ms", label)], lambda fast=fast: (ensemble_step(fast, s),))
        for name, configs in (
            ("ensemble training step, 7 x 4x1024, batch 256, float32", paths),
            ("ensemble training step, bf16 autocast", bf16_paths),
        )
        for label, fast in configs.items()
    ]
    first, *larger = s.batches
    if importlib.util.find_spec("jaxmarl") is None:
        reason = "skipped: jaxmarl is not installed (SMAX)"
        results.note([Row(f"MAMBA iteration, SMAX 2s3z, batch {first}", "s", label, reason) for label in paths])
    else:

        def iteration(method: str, batch: int, label: str) -> Task:
            rows = [Row(f"{method.upper()} iteration, SMAX 2s3z, batch {batch}", "s", label)]
            if method == "mamba":
                rows.append(Row(f"MAMBA world-model update, batch {batch}", "s", label))
            timed_iterations = 2 if batch == first else 1
            return Task(rows, lambda: latent_iteration(method, batch, paths[label], s, work, timed_iterations))

        def ratio(label: str) -> tuple[float]:
            mag, mamba = (results.value(f"{m} iteration, SMAX 2s3z, batch {first}", label) for m in ("MAG", "MAMBA"))
            return (mag / mamba,)

        tasks += [iteration(method, first, label) for label in paths for method in ("mamba", "mag")]
        tasks += [Task([Row("MAG/MAMBA iteration ratio", "x", label)], lambda x=label: ratio(x)) for label in paths]
    tasks += [
        Task(
            [Row("same step in a Lightning fit loop (MOMA-PPO), float32", "ms", label)],
            lambda fast=fast: (ensemble_step_in_fit(fast, s, work),),
        )
        for label, fast in paths.items()
    ]
    tasks += [
        Task(
            [Row(f"ensemble imagination, 5 x 4x1024, batch {s.imagination_batch}", "transitions/s", label)],
            lambda fast=fast: (imagination_throughput(fast, s),),
        )
        for label, fast in paths.items()
    ]
    if importlib.util.find_spec("jaxmarl") is not None:
        tasks += [iteration("mamba", batch, label) for batch in larger for label in paths]
    return tasks


# ------------------------------------------------------------------------------------------------------------ results
def checked_code() -> str:
    """The label of the code checked: this checkout's commit, or, in a copy of the tree without git history (the GPU
    machine's), the one ``gpu_wheels.sh`` saved beside the wheels (``GPU_CHECK_CODE_LABEL``, set by gpu_session.sh)."""
    label = code_commit()
    return os.environ.get("GPU_CHECK_CODE_LABEL", label) if label == "unknown" else label


class Results:
    """The check's rows, each appended to the results CSV and printed the moment it is known, so that a check cut
    off (by its budget, or by the machine's own limit on a command) keeps everything it measured."""

    def __init__(self, path: Path | None, device: str, start: float) -> None:
        self.path, self.start, self.rows, self.lock = path, start, [], threading.Lock()
        self.device = torch.cuda.get_device_name() if device == "cuda" else "cpu"
        self.commit, self.now = checked_code(), datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
        self.running: list[Row] = []  # rows being measured now
        self.planned: list[Row] = []  # every row of the plan, in its order (the table's)

    def note(self, rows: list[Row]) -> None:
        """Record ``rows`` (their values known) in the CSV and on the screen."""
        with self.lock:
            self.record_locked(rows)

    def record_locked(self, rows: list[Row]) -> None:
        """:meth:`note` for a caller holding :attr:`lock`."""
        for row in rows:
            if row in self.running:
                self.running.remove(row)
            self.rows.append(row)
            self._write(row)

    def value(self, figure: str, path: str) -> float:
        found = [r.value for r in self.rows if r.figure == figure and r.path == path]
        if not found or not isinstance(found[0], float):
            raise Missing(f"{figure} ({path}) was not measured")
        return found[0]

    def _write(self, row: Row) -> None:
        shown = f"{row.value:.6g}" if isinstance(row.value, float) else row.value
        print(f"gpu_check: [{time.perf_counter() - self.start:.0f} s] {row.figure}, {row.path}: {shown}", flush=True)
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        with open(self.path, "a", newline="") as file:
            writer = csv.writer(file)
            if new:
                writer.writerow(["figure", "path", "value", "unit", "device", "torch", "commit", "recorded"])
            writer.writerow(
                [row.figure, row.path, shown, row.unit, self.device, torch.__version__, self.commit, self.now]
            )

    def table(self) -> str:
        """The rows as a table, one line per figure, eager and compiled side by side, in the plan's order."""
        figures: dict[str, dict[str, Row]] = {}
        planned = {id(row): i for i, row in enumerate(self.planned)}
        for row in sorted(self.rows, key=lambda r: planned.get(id(r), -1)):
            figures.setdefault(row.figure, {})[row.path] = row
        lines = ["| figure | unit | eager | compiled / fast |", "|---|---|---|---|"]
        for name, by_path in figures.items():
            unit = next(iter(by_path.values())).unit
            cells = [by_path[p].value if p in by_path else "" for p in ("eager", "compiled")]
            shown = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in cells]
            lines.append(f"| {name} | {unit} | {shown[0]} | {shown[1]} |")
        return "\n".join(lines)


def run_task(task: Task, results: Results) -> None:
    """Measure ``task`` and record its rows: its values, or why there are none (the check goes on)."""
    with results.lock:
        results.running += task.rows
    try:
        values: tuple[float | str, ...] = tuple(task.measure())
    except Missing as missing:
        values = (f"n/a: {missing}",) * len(task.rows)
    except Exception as error:  # noqa: BLE001 - a failed row is reported, the check goes on
        traceback.print_exc()
        message = str(error).splitlines()[0][:120] if str(error) else ""
        values = (f"failed: {type(error).__name__}: {message}",) * len(task.rows)
    for row, value in zip(task.rows, values):
        row.value = value
    results.note(task.rows)


def finish(results: Results, budget_spent: float | None = None) -> None:
    seconds = time.perf_counter() - results.start
    spent = (
        f" (its budget of {budget_spent:.0f} s spent: what it had not measured is marked so)" if budget_spent else ""
    )
    print(f"\ngpu_check: {seconds:.0f} s in all{spent}; figures appended to {results.path or 'nowhere'}\n")
    print(results.table(), flush=True)


def start_budget(budget: float, results: Results, work: Path) -> threading.Timer:
    """After ``budget`` seconds: mark the rows being measured as timed out and the rest as skipped, record them,
    print the table and end the process (a compile or a run in progress is not waited for)."""

    def expire() -> None:
        results.lock.acquire()  # held to the end: the measurements still running record nothing more
        unstarted = [row for row in results.planned if row not in results.rows and row not in results.running]
        for row in results.running:
            row.value = f"timed out: the check's {budget:.0f} s budget ran out while it was measured"
        for row in unstarted:
            row.value = f"skipped: the check's {budget:.0f} s budget was spent"
        results.record_locked(list(results.running) + unstarted)
        finish(results, budget)
        shutil.rmtree(work, ignore_errors=True)
        os._exit(0)

    timer = threading.Timer(budget, expire)
    timer.daemon = True
    timer.start()
    return timer


# ------------------------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="every code path on the CPU at tiny sizes")
    parser.add_argument(
        "--fast-compile",
        choices=["default", "reduce-overhead", "max-autotune"],
        default=None,
        help="compile mode of the fast path (default: reduce-overhead on a GPU, default on the CPU)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help=f"CSV the figures are appended to as they are measured (default: {RESULTS}; none with --dry-run)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help=f"seconds after which the check stops, recording what it has not measured as skipped (default: "
        f"{GPU_BUDGET:.0f} on a GPU, none with --dry-run; 0: none)",
    )
    parser.add_argument("--skip-correctness", action="store_true", help="only the speed figures")
    args = parser.parse_args()
    sys.argv = sys.argv[:1]
    s = settings(args.dry_run, args.fast_compile)
    if args.dry_run:
        trace_without_code_generation()
    budget = args.budget if args.budget is not None else (None if args.dry_run else GPU_BUDGET)
    print(
        f"gpu_check: torch {torch.__version__}, device {s.device}"
        f"{' (' + torch.cuda.get_device_name() + ')' if s.device == 'cuda' else ''}, fast path compile "
        f"{s.compile_mode}, commit {checked_code()}{', dry run (compile backend aot_eager)' if args.dry_run else ''}"
        f"{f', budget {budget:.0f} s' if budget else ''}",
        flush=True,
    )
    results = Results(
        args.results if args.results is not None else (None if args.dry_run else RESULTS), s.device, time.perf_counter()
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        correctness = [] if args.skip_correctness else correctness_tasks(s, work)
        speed = speed_tasks(s, work, results)
        results.planned = [row for task in correctness + speed for row in task.rows]
        timer = start_budget(budget, results, work) if budget else None
        if correctness:
            with ThreadPoolExecutor(len(correctness)) as pool:  # separate processes, side by side
                list(pool.map(lambda task: run_task(task, results), correctness))
            print(f"gpu_check: correctness runs done after {time.perf_counter() - results.start:.0f} s", flush=True)
        for task in speed:
            run_task(task, results)
        if timer is not None:
            timer.cancel()
    finish(results)


if __name__ == "__main__":
    main()
