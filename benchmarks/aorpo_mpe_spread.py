"""AORPO against AORDPG, MASAC and MADDPG on MPE cooperative navigation (AORPO paper §6.2, Fig. 3).

Every method runs through the command line with its config (``conf/<method>_mpe_spread.yaml``) for several seeds.
The model-free methods get ``--env_steps``; the model-based ones (AORPO, AORDPG) ``--model_based_env_steps``
(default: half), which tests the paper's claim directly: AORPO should reach MASAC's final return within half of
MASAC's environment steps. Prints:

1. greedy evaluation return (mean ± std over seeds; 20 episodes per evaluation, 100 at the end) at evenly spaced
   environment-step marks (each run at its latest evaluation at or before the mark; "–" past a method's budget);
2. the paper's claim checked: the first mark at which each method's mean curve reaches MASAC's final return;
3. agent interactions (real opponent actions observed plus communications during rollouts) of AORPO against the
   same AORPO whose rollouts query real opponents only (``aorpo.opponent_rollout=real``).

    python benchmarks/aorpo_mpe_spread.py --seeds 0 1 2 --env_steps 24000
"""

from __future__ import annotations

import argparse
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cli_runs import evaluation_curve, finished_run, metric_rows, run_experiment

METHODS = ("aorpo", "aordpg", "masac", "maddpg")
MODEL_BASED = ("aorpo", "aordpg")
REAL_OPPONENTS = ["--model.init_args.aorpo.opponent_rollout=real"]

Curve = list[tuple[float, float]]


def run(method: str, seed: int, env_steps: int, output_dir: Path, extra: list[str], reuse: bool
        ) -> tuple[list[dict[str, str]], float]:
    experiment = f"{method}{'_real_opponents' if extra else ''}_mpe_spread_seed{seed}"
    if reuse:  # read the newest finished run of this experiment instead of training again
        if (run_dir := finished_run(output_dir, experiment)) is None:
            raise FileNotFoundError(f"--reuse: no finished run of {experiment} in {output_dir} (folders with "
                                    f"benchmark_run.json); run without --reuse to train it")
        return metric_rows(run_dir), float("nan")
    run_dir, seconds = run_experiment(f"conf/{method}_mpe_spread.yaml", experiment, output_dir,
                                      f"--seed_everything={seed}",
                                      f"--model.init_args.online.total_env_steps={env_steps}", *extra)
    print(f"  {experiment}: {seconds:.0f} s ({run_dir})", flush=True)
    return metric_rows(run_dir), seconds


def returns_curve(rows: list[dict[str, str]]) -> Curve:
    """(environment steps, greedy eval return) at each evaluation of a run."""
    return [(at, values["eval/return"]) for at, values in evaluation_curve(rows, ("eval/return",))]


def value_at(points: Curve, steps: float) -> float | None:
    """The latest evaluation at or before ``steps`` environment steps (None before the first)."""
    earlier = [value for at, value in points if at <= steps]
    return earlier[-1] if earlier else None


def last(rows: list[dict[str, str]], key: str) -> float:
    return [float(r[key]) for r in rows if r.get(key)][-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--env_steps", type=int, default=24_000, help="environment steps of a model-free run")
    parser.add_argument("--model_based_env_steps", type=int, default=None,
                        help="environment steps of an AORPO / AORDPG run (default: half of --env_steps)")
    parser.add_argument("--mark", type=int, default=2_000, help="environment steps between table rows")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/benchmarks/aorpo_mpe_spread"))
    parser.add_argument("--reuse", action="store_true", help="read the finished runs in --output_dir, train nothing")
    args = parser.parse_args()
    budget = {m: (args.model_based_env_steps or args.env_steps // 2) if m in MODEL_BASED else args.env_steps
              for m in args.methods}

    jobs = [(m, s, []) for m in args.methods for s in args.seeds]
    if "aorpo" in args.methods:
        jobs += [("aorpo", s, REAL_OPPONENTS) for s in args.seeds]
    jobs.sort(key=lambda job: job[0] not in MODEL_BASED)  # the long runs first keep both workers busy
    with ThreadPoolExecutor(args.jobs) as pool:
        outputs = list(pool.map(lambda j: run(j[0], j[1], budget[j[0]], args.output_dir, j[2], args.reuse), jobs))
    results = {(m, s, bool(extra)): out for (m, s, extra), out in zip(jobs, outputs)}

    print("\nMPE cooperative navigation, seeds " + ", ".join(map(str, args.seeds)) + "; environment steps per run: "
          + ", ".join(f"{m} {budget[m]}" for m in args.methods)
          + ". Greedy eval return (20 episodes; 100 at the last evaluation), mean ± std over seeds.\n")
    curves = {m: [returns_curve(results[(m, s, False)][0]) for s in args.seeds] for m in args.methods}
    print("| env steps | " + " | ".join(args.methods) + " |")
    print("|---|" + "---|" * len(args.methods))
    mean_curves: dict[str, Curve] = {m: [] for m in args.methods}
    for steps in range(args.mark, max(budget.values()) + 1, args.mark):
        cells = []
        for m in args.methods:
            values = [value_at(c, steps) for c in curves[m]]
            if steps > budget[m] or any(v is None for v in values):
                cells.append("–")
                continue
            mean_curves[m].append((steps, statistics.mean(values)))
            std = statistics.pstdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):.1f} ± {std:.1f}")
        if any(c != "–" for c in cells):
            print(f"| {steps} | " + " | ".join(cells) + " |")
    finals = {m: [c[-1][1] for c in curves[m]] for m in args.methods}
    print("| final (100 episodes) | " + " | ".join(
        f"{statistics.mean(v):.1f} ± {statistics.pstdev(v):.1f}" for v in finals.values()) + " |")
    if "masac" in args.methods:
        target = statistics.mean(finals["masac"])
        print(f"\nMASAC's final return after {budget['masac']} env steps: {target:.1f}. "
              "First mark where each mean curve reaches it:")
        for m in args.methods:
            reached = next((steps for steps, value in mean_curves[m] if value >= target), None)
            print(f"  {m}: {'not reached' if reached is None else f'{reached} env steps'}")
    if "aorpo" in args.methods:
        print("\nAgent interactions at the end (real opponent actions observed + communications in rollouts), "
              "mean over seeds:")
        for real_only, label in ((False, "adaptive opponent-wise rollouts"), (True, "rollouts with real opponents only")):
            counts = [last(results[("aorpo", s, real_only)][0], "eval/agent_interactions") for s in args.seeds]
            returns = [returns_curve(results[("aorpo", s, real_only)][0])[-1][1] for s in args.seeds]
            print(f"  AORPO, {label}: {statistics.mean(counts):,.0f} interactions, final return "
                  f"{statistics.mean(returns):.1f} ± {statistics.pstdev(returns):.1f}")
    if not args.reuse:
        print("\nwall-clock per run: " + ", ".join(
            f"{m} {statistics.mean(results[(m, s, False)][1] for s in args.seeds):.0f} s" for m in args.methods))


if __name__ == "__main__":
    main()
