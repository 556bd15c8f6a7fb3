"""Eager against the fast path, side by side in one run: MAMBA, MAG and MABL iterations on SMAX and the
Gaussian-ensemble training step (MOMA-PPO's and AORPO's world models).

"Eager" is the float32 reference path (``--model.init_args.fast.bf16=off``, no compilation, unfused Adam); "fast"
is the fast path with the settings given (default: the package's defaults, ``fast.bf16=auto``, ``fast.compile=none``; see
``lightning_mbmarl/nn/fast_path.py``). Each MAMBA/MAG measurement is a real ``fit`` of ``conf/<method>_smax_<map>.yaml``
(same seed for both paths) with the replay windows per batch set by ``--batch-size``; the first iteration of each run
is not timed, and eager and fast runs alternate, so machine load hits both alike. The ensemble step is
``ensemble_loss`` + backward + Adam on a random batch, exactly as MOMA-PPO's world-model phase calls it, at the
sizes given (default: the CPU MOMA-PPO Ant configs' 7 members x 3 x 200, batch 256).

    OMP_NUM_THREADS=1 python benchmarks/latent_speed.py                       # CPU-sized defaults
    python benchmarks/latent_speed.py --device cuda --batch-size 40 --fast-compile reduce-overhead \\
        --ensemble-hidden 1024 1024 1024 1024                                   # on a GPU, at the configs' sizes

Prints a table per method (seconds per world-model update, per imagination, per policy round, per iteration) and,
last, ``fast/eager speed-up: MAMBA <a>x, MAG <b>x, ensemble <c>x`` (ratios of median iteration / step times; one
figure per method named by ``--methods``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile

import torch

from lightning_mbmarl.nn.fast_path import HOT_LOOPS, FastPath, FastPathConfig
from lightning_mbmarl.world_models.ensemble import EnsembleConfig, GaussianEnsemble, ensemble_loss
from timing import QUIET_TRAINER, time_calls, timed_fit

PATHS = ("eager", "fast")
#: the model methods timed, and the row each is reported in
PHASES = {
    "learn_world_model": "world-model steps",
    "imagine_from": "imagination (MAG: with planning)",
    "learn_policy": "policy rounds (imagination + PPO)",
}
#: Ant 4x2 (MOMA-PPO's CPU Ant configs): global state and joint action sizes of the ensemble's inputs
ANT_STATE, ANT_JOINT_ACTION = 27, 8


def fast_config(path: str, args: argparse.Namespace) -> FastPathConfig:
    if path == "eager":
        return FastPathConfig(bf16="off", compile="none", fused_adam=False)
    return FastPathConfig(bf16=args.fast_bf16, compile=args.fast_compile, compile_loops=args.fast_compile_loops)


def method_run(
    method: str, path: str, args: argparse.Namespace, output_dir: str
) -> tuple[list[float], dict[str, float]]:
    """Timed iterations of ``method`` on the ``path`` path: (iteration seconds, seconds per phase per iteration)."""
    config = fast_config(path, args)
    overrides = [
        f"--model.init_args.online.batch_size={args.batch_size}",
        "--model.init_args.online.total_env_steps=100000000",
        f"--model.init_args.fast.bf16={config.bf16}",
        f"--model.init_args.fast.compile={config.compile}",
        f"--model.init_args.fast.fused_adam={config.fused_adam}",
        f"--trainer.accelerator={args.device}",
        *QUIET_TRAINER,
        f"--output_dir={output_dir}",
        f"--seed_everything={args.seed}",
    ]
    if config.compile_loops is not None:
        overrides.append(f"--model.init_args.fast.compile_loops={json.dumps(config.compile_loops)}")
    times, phases, model = timed_fit(
        f"conf/{method}_smax_{args.map}.yaml", overrides, args.iterations, lambda model: PHASES
    )
    phases["world-model steps"] /= model.mamba.model_updates  # per update
    phases["imagination (MAG: with planning)"] /= model.mamba.policy_rounds  # per round
    phases["policy rounds (imagination + PPO)"] /= model.mamba.policy_rounds
    print(f"{method} {path}: timed iterations {[round(t, 2) for t in times]} s", flush=True)
    return times, phases


def ensemble_step_seconds(path: str, args: argparse.Namespace) -> float:
    """Median seconds of one ensemble training step on the ``path`` path."""
    device = torch.device(args.device if args.device != "gpu" else "cuda")
    torch.manual_seed(args.seed)
    config = EnsembleConfig(
        members=args.ensemble_members, elites=min(5, args.ensemble_members), hidden=tuple(args.ensemble_hidden)
    )
    model = GaussianEnsemble(ANT_STATE, ANT_JOINT_ACTION, config).to(device)
    fast = FastPath(fast_config(path, args))
    optimizer = fast.adam(model.parameters(), lr=config.learning_rate)
    B = args.ensemble_batch
    batch = {
        "state": torch.randn(B, ANT_STATE, device=device),
        "action_features": torch.rand(B, 4, 2, device=device) * 2 - 1,
        "next_state": torch.randn(B, ANT_STATE, device=device),
        "reward": torch.randn(B, device=device),
        "terminal": torch.zeros(B, device=device),
    }
    loss_fn = fast.compile("world_model_loss", ensemble_loss)

    def step() -> None:
        with fast.autocast(device):
            losses = loss_fn(model, batch)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()

    return time_calls(step, args.ensemble_calls, device, warmup=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=["mamba", "mag"], choices=["mamba", "mag", "mabl"])
    parser.add_argument("--map", default="2s3z", help="SMAX map of conf/<method>_smax_<map>.yaml")
    parser.add_argument("--batch-size", type=int, default=8, help="replay windows per batch (configs: 40)")
    parser.add_argument("--iterations", type=int, default=1, help="timed iterations per run")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each method and path, alternating")
    parser.add_argument("--ensemble-hidden", type=int, nargs="+", default=[200, 200, 200])
    parser.add_argument("--ensemble-members", type=int, default=7)
    parser.add_argument("--ensemble-batch", type=int, default=256)
    parser.add_argument("--ensemble-calls", type=int, default=30, help="timed ensemble steps per path")
    parser.add_argument("--fast-bf16", default="auto", choices=["auto", "on", "off"])
    parser.add_argument(
        "--fast-compile", default="none", choices=["none", "default", "reduce-overhead", "max-autotune"]
    )
    parser.add_argument(
        "--fast-compile-loops", nargs="+", default=None, choices=HOT_LOOPS, help="what --fast-compile compiles (all)"
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "gpu"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # the CLI below gets its arguments explicitly
    fast = fast_config("fast", args)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {args.device}; fast path: bf16 "
        f"{fast.bf16} (enabled here: {FastPath(fast).bf16_enabled(args.device if args.device != 'gpu' else 'cuda')})"
        f", compile {fast.compile}; map {args.map}, {args.batch_size} windows per batch",
        flush=True,
    )

    speedups: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as output_dir:
        for method in args.methods:
            times: dict[str, list[float]] = {path: [] for path in PATHS}
            phases: dict[str, list[dict[str, float]]] = {path: [] for path in PATHS}
            for _ in range(args.repeats):
                for path in PATHS:
                    iteration_times, per_phase = method_run(method, path, args, output_dir)
                    times[path] += iteration_times
                    phases[path].append(per_phase)
            print(f"\n| {method.upper()} (s) | eager | fast | fast/eager speed-up |\n|---|---|---|---|")
            units = {
                "world-model steps": "per world-model update",
                "imagination (MAG: with planning)": "per imagination",
                "policy rounds (imagination + PPO)": "per policy round (imagination + PPO)",
            }
            for name, label in units.items():
                eager, fast_value = (statistics.median(p[name] for p in phases[path]) for path in PATHS)
                print(f"| {label} | {eager:.3f} | {fast_value:.3f} | {eager / fast_value:.2f}x |")
            eager, fast_value = (statistics.median(times[path]) for path in PATHS)
            print(f"| whole iteration | {eager:.2f} | {fast_value:.2f} | {eager / fast_value:.2f}x |\n", flush=True)
            speedups[method.upper()] = eager / fast_value

        seconds = {path: [] for path in PATHS}
        for _ in range(max(1, args.repeats)):
            for path in PATHS:
                seconds[path].append(ensemble_step_seconds(path, args))
        eager, fast_value = (statistics.median(seconds[path]) for path in PATHS)
        hidden = "x".join(str(h) for h in args.ensemble_hidden)
        print(
            f"| ensemble step ({args.ensemble_members} members, {hidden}, batch {args.ensemble_batch}) (ms) | eager "
            f"{1e3 * eager:.2f} | fast {1e3 * fast_value:.2f} | {eager / fast_value:.2f}x |\n"
        )
        speedups["ensemble"] = eager / fast_value
    print("fast/eager speed-up: " + ", ".join(f"{name} {value:.2f}x" for name, value in speedups.items()))


if __name__ == "__main__":
    main()
