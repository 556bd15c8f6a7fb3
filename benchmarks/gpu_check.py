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
commit, time). ``--dry-run`` runs every code path on the CPU at tiny sizes (compile mode ``default``, traced but
not code-generated: see :func:`trace_without_code_generation`; no CUDA graphs) and records nothing unless
``--results`` is given: what the test suite runs.

    bash benchmarks/gpu_check.sh                 # on a GPU machine, at most about 8 minutes on one H200
    bash benchmarks/gpu_check.sh --dry-run       # anywhere, one to two minutes on a CPU
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import statistics
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

CORE_PACKAGES = ("torch", "lightning", "jsonargparse", "omegaconf", "h5py", "numpy", "gymnasium")
RESULTS = Path(__file__).resolve().parent / "results" / "gpu_check.csv"


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


# ------------------------------------------------------------------------------------------------------------- main
@dataclass
class Figure:
    name: str
    unit: str
    values: dict[str, float | str]  # path -> value, or the reason it is missing


def measure(fn: Callable[[], float]) -> float | str:
    try:
        return fn()
    except Exception as error:  # noqa: BLE001 - a failed row is reported, the check goes on
        traceback.print_exc()
        return f"failed: {type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}"


def speed_figures(s: Settings, work: Path) -> list[Figure]:
    eager = FastPathConfig(bf16="off", compile="none", fused_adam=False)
    compiled = FastPathConfig(bf16="off", compile=s.compile_mode)
    bf16 = FastPathConfig(bf16="on", compile="none", fused_adam=False)
    bf16_compiled = FastPathConfig(bf16="on", compile=s.compile_mode)
    figures: list[Figure] = []
    if importlib.util.find_spec("jaxmarl") is None:
        reason = "skipped: jaxmarl is not installed (SMAX)"
        figures.append(Figure("MAMBA iteration, SMAX 2s3z", "s", {"eager": reason, "compiled": reason}))
    else:
        for batch in s.batches:
            iteration: dict[str, float | str] = {}
            update: dict[str, float | str] = {}
            timed_iterations = 2 if batch == s.batches[0] else 1
            for label, config in (("eager", eager), ("compiled", compiled)):
                result = measure(
                    lambda: latent_iteration(
                        "mamba",
                        batch,
                        config,
                        s,
                        work,  # noqa: B023
                        timed_iterations,
                    )
                )
                iteration[label] = result[0] if isinstance(result, tuple) else result
                update[label] = result[1] if isinstance(result, tuple) else result
            figures.append(Figure(f"MAMBA iteration, SMAX 2s3z, batch {batch}", "s", iteration))
            figures.append(Figure(f"MAMBA world-model update, batch {batch}", "s", update))
            if batch == s.batches[0]:
                mag: dict[str, float | str] = {}
                for label, config in (("eager", eager), ("compiled", compiled)):
                    result = measure(lambda: latent_iteration("mag", batch, config, s, work, 2))  # noqa: B023
                    mag[label] = result[0] if isinstance(result, tuple) else result
                figures.append(Figure(f"MAG iteration, SMAX 2s3z, batch {batch}", "s", mag))
                figures.append(
                    Figure(
                        "MAG/MAMBA iteration ratio",
                        "x",
                        {
                            label: mag[label] / iteration[label]
                            if isinstance(mag[label], float) and isinstance(iteration[label], float)
                            else "n/a"
                            for label in mag
                        },
                    )
                )
    figures.append(
        Figure(
            "ensemble training step, 7 x 4x1024, batch 256, float32",
            "ms",
            {
                "eager": measure(lambda: ensemble_step(eager, s)),
                "compiled": measure(lambda: ensemble_step(compiled, s)),
            },
        )
    )
    figures.append(
        Figure(
            "ensemble training step, bf16 autocast",
            "ms",
            {
                "eager": measure(lambda: ensemble_step(bf16, s)),
                "compiled": measure(lambda: ensemble_step(bf16_compiled, s)),
            },
        )
    )
    figures.append(
        Figure(
            "same step in a Lightning fit loop (MOMA-PPO), float32",
            "ms",
            {
                "eager": measure(lambda: ensemble_step_in_fit(eager, s, work)),
                "compiled": measure(lambda: ensemble_step_in_fit(compiled, s, work)),
            },
        )
    )
    figures.append(
        Figure(
            f"ensemble imagination, 5 x 4x1024, batch {s.imagination_batch}",
            "transitions/s",
            {
                "eager": measure(lambda: imagination_throughput(eager, s)),
                "compiled": measure(lambda: imagination_throughput(compiled, s)),
            },
        )
    )
    return figures


def record(figures: list[Figure], path: Path | None, device: str) -> None:
    if path is None:
        return
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    commit, now = code_commit(), datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    with open(path, "a", newline="") as file:
        writer = csv.writer(file)
        if new:
            writer.writerow(["figure", "path", "value", "unit", "device", "torch", "commit", "recorded"])
        for figure in figures:
            for label, value in figure.values.items():
                shown = f"{value:.6g}" if isinstance(value, float) else value
                writer.writerow([figure.name, label, shown, figure.unit, name, torch.__version__, commit, now])


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
        help=f"CSV the figures are appended to (default: {RESULTS}; none with --dry-run)",
    )
    parser.add_argument("--skip-correctness", action="store_true", help="only the speed figures")
    args = parser.parse_args()
    sys.argv = sys.argv[:1]
    s = settings(args.dry_run, args.fast_compile)
    if args.dry_run:
        trace_without_code_generation()
    results = args.results if args.results is not None else (None if args.dry_run else RESULTS)
    print(
        f"gpu_check: torch {torch.__version__}, device {s.device}"
        f"{' (' + torch.cuda.get_device_name() + ')' if s.device == 'cuda' else ''}, fast path compile "
        f"{s.compile_mode}, commit {code_commit()}{', dry run (compile backend aot_eager)' if args.dry_run else ''}",
        flush=True,
    )
    start = time.perf_counter()
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_correctness:
            with ThreadPoolExecutor(len(CORRECTNESS)) as pool:
                futures = {
                    name: pool.submit(
                        measure, lambda n=name, c=config, m=metric: correctness_run(n, c, m, s.correctness[c], s, work)
                    )
                    for name, (config, metric) in CORRECTNESS.items()
                }
            for name, (_, metric) in CORRECTNESS.items():
                figures.append(Figure(f"{name} ({metric}, run to its end)", "score", {"eager": futures[name].result()}))
            print(f"gpu_check: correctness runs done after {time.perf_counter() - start:.0f} s", flush=True)
        figures += speed_figures(s, work)
    record(figures, results, s.device)
    print(f"\ngpu_check: {time.perf_counter() - start:.0f} s in all; figures appended to {results or 'nowhere'}\n")
    print("| figure | unit | eager | compiled / fast |\n|---|---|---|---|")
    for figure in figures:
        cells = [figure.values.get(label, "") for label in ("eager", "compiled")]
        shown = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in cells]
        print(f"| {figure.name} | {figure.unit} | {shown[0]} | {shown[1]} |")


if __name__ == "__main__":
    main()
