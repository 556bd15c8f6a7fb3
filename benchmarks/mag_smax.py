"""MAMBA vs MAG vs MAPPO on SMAX 2s3z: greedy won rate and return against environment steps, equal budgets.

Every method and seed is trained through the real command line (``python -m lightning_mbmarl fit --config
conf/<method>_smax_2s3z.yaml``) with the same ``--budget`` of environment steps (``online.total_env_steps``; MAMBA
and MAG count warm-up steps too), and evaluated greedily every ~2000 environment steps (10 episodes) and at the end
(100 episodes; 20 with ``--quick``). The learning curves are read from each run's ``metrics.csv`` (each
evaluation is placed at the environment steps taken when it ran) and printed as one Markdown table: mean ± std
over seeds of ``eval/won_rate`` and ``eval/return`` at evenly spaced environment-step marks (the latest evaluation
at or before each mark; the last row is the final evaluation).

At the configs' sizes this wants a GPU (a MAMBA iteration takes minutes on one CPU core). ``--quick`` swaps in
tiny networks and schedules to check the pipeline end to end in minutes:

    python benchmarks/mag_smax.py                           # 3 seeds, 100k environment steps each
    python benchmarks/mag_smax.py --quick --budget 1000 --jobs 2
"""

from __future__ import annotations

import argparse
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cli_runs import evaluation_curve, metric_rows, run_experiment

METHODS = ("mamba", "mag", "mappo")
NAMES = {"mamba": "MAMBA", "mag": "MAG", "mappo": "MAPPO"}
METRICS = ("eval/won_rate", "eval/return")

_TINY_LATENT = [
    "--model.init_args.online.warmup_env_steps=200", "--model.init_args.online.batch_size=8",
    "--model.init_args.mamba.sequence_length=10", "--model.init_args.mamba.model_updates=5",
    "--model.init_args.mamba.policy_rounds=1", "--model.init_args.mamba.imagination_horizon=5",
    "--model.init_args.world_model.hidden=32", "--model.init_args.world_model.embed=32",
    "--model.init_args.world_model.deter=32", "--model.init_args.world_model.categoricals=4",
    "--model.init_args.world_model.classes=4", "--model.init_args.world_model.attention_layers=1",
    "--model.init_args.world_model.attention_heads=2", "--model.init_args.world_model.attention_feedforward=32",
    "--model.init_args.mappo.hidden=[32,32]", "--model.init_args.mappo.minibatch_size=200",
    "--model.init_args.critic.attention_heads=2", "--trainer.val_check_interval=4",
    "--trainer.callbacks.init_args.trajectories=32", "--model.init_args.evaluation.final_episodes=20",
]
QUICK = {  # tiny sizes and frequent evaluations (--quick)
    "mamba": _TINY_LATENT,
    "mag": [*_TINY_LATENT, "--model.init_args.planning.horizon=3", "--model.init_args.model_reward.hidden=32",
            "--model.init_args.model_reward.layers=2"],
    "mappo": ["--model.init_args.online.rollout_steps=25", "--model.init_args.mappo.hidden=[32,32]",
              "--model.init_args.mappo.memory_length=0", "--trainer.val_check_interval=20",
              "--model.init_args.evaluation.final_episodes=20"],
}


def learning_curve(run_dir: Path) -> list[tuple[float, dict[str, float]]]:
    """Each evaluation of a run as (environment steps when it ran, {metric: value})."""
    curve = evaluation_curve(metric_rows(run_dir), METRICS)
    if not curve:
        raise RuntimeError(f"{run_dir}: no evaluation logged")
    return curve


def run_one(method: str, seed: int, args: argparse.Namespace) -> tuple[list[tuple[float, dict[str, float]]], float]:
    run_dir, seconds = run_experiment(
        f"conf/{method}_smax_2s3z.yaml", f"{method}_smax_2s3z_seed{seed}", args.output_dir,
        f"--model.init_args.online.total_env_steps={args.budget}", f"--seed_everything={seed}",
        f"--data.init_args.seed={seed}", *(QUICK[method] if args.quick else []),
    )
    print(f"  {NAMES[method]} seed {seed}: {seconds:.0f} s ({run_dir})", flush=True)
    return learning_curve(run_dir), seconds


def value_at(curve: list[tuple[float, dict[str, float]]], steps: float, metric: str) -> float | None:
    """The latest evaluation at or before ``steps`` environment steps (None before the first)."""
    before = [values[metric] for at, values in curve if at <= steps]
    return before[-1] if before else None


def cell(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "–"
    spread = statistics.stdev(known) if len(known) > 1 else 0.0
    return f"{statistics.mean(known):.2f} ± {spread:.2f}" + ("" if len(known) == len(values) else f" ({len(known)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--budget", type=int, default=100_000, help="environment steps of every run")
    parser.add_argument("--marks", type=int, default=10, help="rows of the table before the final one")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument("--quick", action="store_true", help="tiny networks and schedules (pipeline check)")
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/benchmarks/mag_smax"))
    args = parser.parse_args()

    jobs = [(method, seed) for method in args.methods for seed in args.seeds]
    print(f"SMAX 2s3z: {len(args.seeds)} seed(s) x {args.methods}, {args.budget} environment steps per run"
          f"{' (quick sizes)' if args.quick else ''}", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(jobs, pool.map(lambda job: run_one(*job, args), jobs)))

    print(f"\n## SMAX 2s3z: greedy won rate and return, mean ± std over seeds {args.seeds}, equal budget of "
          f"{args.budget} environment steps per run\n")
    header = [f"{NAMES[m]} won rate" for m in args.methods] + [f"{NAMES[m]} return" for m in args.methods]
    print("| env steps | " + " | ".join(header) + " |")
    print("|---" * (len(header) + 1) + "|")
    marks = [args.budget * (k + 1) // args.marks for k in range(args.marks)]
    for mark in marks:
        cells = [cell([value_at(results[m, s][0], mark, metric) for s in args.seeds])
                 for metric in METRICS for m in args.methods]
        print(f"| {mark} | " + " | ".join(cells) + " |")
    final = [cell([results[m, s][0][-1][1][metric] for s in args.seeds]) for metric in METRICS for m in args.methods]
    print("| final evaluation | " + " | ".join(final) + " |")
    print("\nwall-clock per run: " + ", ".join(
        f"{NAMES[m]} {statistics.mean(results[m, s][1] for s in args.seeds):.0f} s" for m in args.methods))


if __name__ == "__main__":
    main()
