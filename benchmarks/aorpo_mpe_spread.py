"""AORPO against AORDPG, MASAC and MADDPG on MPE cooperative navigation (AORPO paper §6.2, Fig. 3).

Every method runs through the command line with its config (``conf/<method>_mpe_spread.yaml``) for the same
environment-step budget and several seeds. Prints:

1. greedy evaluation return (mean ± std over seeds) at each evaluation point, against environment steps;
2. the paper's claim checked: the first environment step at which each method reaches MASAC's final return;
3. agent interactions (real opponent actions observed plus communications during rollouts) of AORPO against the
   same AORPO whose rollouts query real opponents only (``aorpo.opponent_rollout=real``).

    python benchmarks/aorpo_mpe_spread.py --seeds 0 1 2 --env_steps 30000
"""

from __future__ import annotations

import argparse
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cli_runs import latest_run, metric_rows, run_experiment

METHODS = ("aorpo", "aordpg", "masac", "maddpg")


def run(method: str, seed: int, env_steps: int, output_dir: Path, extra: list[str], reuse: bool
        ) -> tuple[list[dict[str, str]], float]:
    experiment = f"{method}{'_real_opponents' if extra else ''}_mpe_spread_seed{seed}"
    if reuse:  # read the newest finished run of this experiment instead of training again
        return metric_rows(latest_run(output_dir, experiment)), float("nan")
    run_dir, seconds = run_experiment(f"conf/{method}_mpe_spread.yaml", experiment, output_dir,
                                      f"--seed_everything={seed}",
                                      f"--model.init_args.online.total_env_steps={env_steps}", *extra)
    return metric_rows(run_dir), seconds


def curve(rows: list[dict[str, str]]) -> list[tuple[float, float]]:
    """(env_steps, eval/return) at each evaluation; env_steps from the latest logged row before it."""
    points, steps = [], 0.0
    for row in rows:
        if row.get("env_steps"):
            steps = float(row["env_steps"])
        if row.get("eval/return"):
            points.append((steps, float(row["eval/return"])))
    return points


def value_at(points: list[tuple[float, float]], steps: float) -> float | None:
    """The latest evaluation at or before ``steps`` environment steps (None before the first)."""
    earlier = [value for at, value in points if at <= steps]
    return earlier[-1] if earlier else None


def last(rows: list[dict[str, str]], key: str) -> float:
    return [float(r[key]) for r in rows if r.get(key)][-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--env_steps", type=int, default=30_000, help="environment-step budget of every run")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/benchmarks/aorpo_mpe_spread"))
    parser.add_argument("--reuse", action="store_true", help="read the runs already in --output_dir, train nothing")
    args = parser.parse_args()

    jobs = [(m, s, []) for m in args.methods for s in args.seeds]
    if "aorpo" in args.methods:
        jobs += [("aorpo", s, ["--model.init_args.aorpo.opponent_rollout=real"]) for s in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        outputs = list(pool.map(lambda j: run(j[0], j[1], args.env_steps, args.output_dir, j[2], args.reuse), jobs))
    results = {(m, s, bool(extra)): out for (m, s, extra), out in zip(jobs, outputs)}

    print(f"MPE cooperative navigation, {args.env_steps} environment steps, seeds {args.seeds}: greedy eval return "
          "(100 episodes at the end), mean ± std over seeds")
    curves = {m: [curve(results[(m, s, False)][0]) for s in args.seeds] for m in args.methods}
    # Methods evaluate at different environment steps: compare them on a common grid, each at its latest evaluation.
    grid = sorted({round(at) for cs in curves.values() for c in cs for at, _ in c})
    print("| env steps | " + " | ".join(args.methods) + " |")
    print("|---|" + "---|" * len(args.methods))
    mean_curves: dict[str, list[tuple[float, float]]] = {m: [] for m in args.methods}
    for steps in grid:
        cells = []
        for m in args.methods:
            values = [value_at(c, steps) for c in curves[m]]
            if any(v is None for v in values):
                cells.append("–")
                continue
            mean_curves[m].append((steps, statistics.mean(values)))
            std = statistics.pstdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.1f} ± {std:.1f}")
        print(f"| {steps} | " + " | ".join(cells) + " |")
    if "masac" in args.methods:
        target = statistics.mean(c[-1][1] for c in curves["masac"])
        print(f"\nMASAC's final return: {target:.1f}. First environment step where each mean curve reaches it:")
        for m in args.methods:
            reached = next((steps for steps, value in mean_curves[m] if value >= target), None)
            print(f"  {m}: {'not reached' if reached is None else f'{reached} env steps'}")
    if "aorpo" in args.methods:
        print("\nAgent interactions at the end (real opponent actions observed + communications in rollouts):")
        for real_only, label in ((False, "adaptive opponent-wise rollouts"), (True, "rollouts with real opponents only")):
            counts = [last(results[("aorpo", s, real_only)][0], "counters/agent_interactions") for s in args.seeds]
            returns = [curve(results[("aorpo", s, real_only)][0])[-1][1] for s in args.seeds]
            print(f"  AORPO, {label}: {statistics.mean(counts):.0f} interactions, final return "
                  f"{statistics.mean(returns):.1f}")
    if not args.reuse:
        for m in args.methods:
            print(f"{m}: {statistics.mean(results[(m, s, False)][1] for s in args.seeds):.0f} s per run")


if __name__ == "__main__":
    main()
