"""AORPO against AORDPG, MASAC and MADDPG on MPE cooperative navigation (AORPO paper §6.2, Fig. 3).

Every method runs through the command line with its config for several seeds: ``conf/<method>_mpe_spread.yaml``
(``--configs package``, the default) and/or ``conf/<method>_mpe_spread_released.yaml`` (``--configs released``: the
settings of the released AORPO code, see docs/results/aorpo.md). The model-free methods get ``--env_steps``; the
model-based ones (AORPO, AORDPG) ``--model_based_env_steps`` (default: half), which tests the paper's claim
directly: AORPO should reach MASAC's final return within half of MASAC's environment steps. Prints:

1. greedy evaluation return (mean ± standard error over seeds; 20 episodes per evaluation, 100 at the end) at
   evenly spaced environment-step marks (each run at its latest evaluation at or before the mark; "–" past a
   method's budget);
2. the paper's claim checked: the first mark at which each mean curve reaches MASAC's final return (per config);
3. agent interactions (real opponent actions observed plus communications during rollouts) of AORPO against the
   same AORPO whose rollouts query real opponents only (``aorpo.opponent_rollout=real``); skip with
   ``--no_interaction_check``.

Each run trained (not ``--reuse``d) is appended, as soon as it finishes, to ``--results`` (a CSV: method, config,
seed, env_steps, final_return, the return at every 2k-step mark up to 24k, wall_clock_s, overrides, commit).
``--override KEY=VALUE`` (repeatable) passes ``--KEY=VALUE`` to every run; give such runs a ``--tag`` (an ablation's
name), which goes into their folder names and their ``config`` column (``released+k5``).

    python benchmarks/aorpo_mpe_spread.py --seeds 0 1 2 --env_steps 24000
    python benchmarks/aorpo_mpe_spread.py --methods aorpo masac --configs package released --seeds 0 1 2 3 4 \\
        --env_steps 24000 --jobs 1 --no_interaction_check
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cli_runs import FINISHED_MARKER, evaluation_curve, finished_run, metric_rows, run_experiment

METHODS = ("aorpo", "aordpg", "masac", "maddpg")
MODEL_BASED = ("aorpo", "aordpg")
CONFIGS = ("package", "released")
REAL_OPPONENTS = ["--model.init_args.aorpo.opponent_rollout=real"]
RESULT_MARKS = range(2_000, 24_001, 2_000)  # the results file's return_at_<steps> columns

Curve = list[tuple[float, float]]


def config_name(config: str, tag: str | None) -> str:
    return config + (f"+{tag}" if tag else "")


def experiment_name(method: str, config: str, tag: str | None, real_opponents: bool, seed: int) -> str:
    parts = [method + ("_real_opponents" if real_opponents else ""), "mpe_spread"]
    parts += [config] if config != "package" else []
    parts += [tag] if tag else []
    return "_".join(parts) + f"_seed{seed}"


def run(method: str, config: str, seed: int, env_steps: int, args: argparse.Namespace, real_opponents: bool
        ) -> tuple[list[dict[str, str]], float]:
    experiment = experiment_name(method, config, args.tag, real_opponents, seed)
    if args.reuse:  # read the newest finished run of this experiment instead of training again
        if (run_dir := finished_run(args.output_dir, experiment)) is None:
            raise FileNotFoundError(f"--reuse: no finished run of {experiment} in {args.output_dir} (folders with "
                                    f"benchmark_run.json); run without --reuse to train it")
        return metric_rows(run_dir), float("nan")
    suffix = "" if config == "package" else f"_{config}"
    run_dir, seconds = run_experiment(f"conf/{method}_mpe_spread{suffix}.yaml", experiment, args.output_dir,
                                      f"--seed_everything={seed}",
                                      f"--model.init_args.online.total_env_steps={env_steps}", *args.overrides,
                                      *(REAL_OPPONENTS if real_opponents else []))
    print(f"  {experiment}: {seconds:.0f} s ({run_dir})", flush=True)
    if not real_opponents:
        record(args.results, method, config_name(config, args.tag), seed, env_steps, run_dir, args.overrides)
    return metric_rows(run_dir), seconds


def record(path: Path, method: str, config: str, seed: int, env_steps: int, run_dir: Path, overrides: list[str]
           ) -> None:
    """Append one finished run (its folder, with the marker its command left) to the results file (header written
    with the first row)."""
    curve, marker = returns_curve(metric_rows(run_dir)), json.loads((run_dir / FINISHED_MARKER).read_text())
    row = {"method": method, "config": config, "seed": seed, "env_steps": env_steps,
           "final_return": round(curve[-1][1], 3)}
    for steps in RESULT_MARKS:
        value = value_at(curve, steps) if steps <= env_steps else None
        row[f"return_at_{steps}"] = "" if value is None else round(value, 3)
    row.update(wall_clock_s=round(marker["seconds"]), overrides=" ".join(overrides), commit=marker["commit"])
    new = not path.exists()
    if not new and (header := next(csv.reader(open(path)))) != list(row):
        raise ValueError(f"{path}: its columns are {header}, this row's are {list(row)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def returns_curve(rows: list[dict[str, str]]) -> Curve:
    """(environment steps, greedy eval return) at each evaluation of a run."""
    return [(at, values["eval/return"]) for at, values in evaluation_curve(rows, ("eval/return",))]


def value_at(points: Curve, steps: float) -> float | None:
    """The latest evaluation at or before ``steps`` environment steps (None before the first)."""
    earlier = [value for at, value in points if at <= steps]
    return earlier[-1] if earlier else None


def last(rows: list[dict[str, str]], key: str) -> float:
    return [float(r[key]) for r in rows if r.get(key)][-1]


def mean_se(values: list[float]) -> str:
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {se:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--env_steps", type=int, default=24_000, help="environment steps of a model-free run")
    parser.add_argument("--model_based_env_steps", type=int, default=None,
                        help="environment steps of an AORPO / AORDPG run (default: half of --env_steps)")
    parser.add_argument("--mark", type=int, default=2_000, help="environment steps between table rows")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--configs", nargs="+", default=["package"], choices=CONFIGS,
                        help="package: conf/<method>_mpe_spread.yaml; released: conf/<method>_mpe_spread_released.yaml")
    parser.add_argument("--override", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        type=lambda text: f"--{text}", help="passed as --KEY=VALUE to every run (repeatable)")
    parser.add_argument("--tag", default=None, help="name of the --override set (run folders, config column)")
    parser.add_argument("--no_interaction_check", action="store_true",
                        help="skip AORPO's runs with real opponents only (the agent-interaction comparison)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/benchmarks/aorpo_mpe_spread"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/aorpo_mpe_spread.csv"),
                        help="CSV each trained run is appended to when it finishes")
    parser.add_argument("--reuse", action="store_true", help="read the finished runs in --output_dir, train nothing")
    args = parser.parse_args()
    if args.overrides and not args.tag:
        parser.error("--override needs a --tag naming the variant")
    budget = {m: (args.model_based_env_steps or args.env_steps // 2) if m in MODEL_BASED else args.env_steps
              for m in args.methods}
    variants = [(m, c) for c in args.configs for m in args.methods]
    check_interactions = "aorpo" in args.methods and not args.no_interaction_check

    jobs = [(m, c, s, False) for m, c in variants for s in args.seeds]
    if check_interactions:
        jobs += [("aorpo", c, s, True) for c in args.configs for s in args.seeds]
    jobs.sort(key=lambda job: job[0] not in MODEL_BASED)  # the long runs first keep both workers busy
    with ThreadPoolExecutor(args.jobs) as pool:
        outputs = list(pool.map(lambda j: run(j[0], j[1], j[2], budget[j[0]], args, j[3]), jobs))
    results = {(m, c, s, real): out for (m, c, s, real), out in zip(jobs, outputs)}

    label = {(m, c): m if c == "package" else f"{m} ({config_name(c, args.tag)})" for m, c in variants}
    if args.tag and "package" in args.configs:
        label.update({(m, "package"): f"{m} ({config_name('package', args.tag)})" for m in args.methods})
    print("\nMPE cooperative navigation, seeds " + ", ".join(map(str, args.seeds)) + "; environment steps per run: "
          + ", ".join(f"{m} {budget[m]}" for m in args.methods)
          + ". Greedy eval return (20 episodes; 100 at the last evaluation), mean ± s.e. over seeds.\n")
    curves = {v: [returns_curve(results[(*v, s, False)][0]) for s in args.seeds] for v in variants}
    print("| env steps | " + " | ".join(label[v] for v in variants) + " |")
    print("|---|" + "---|" * len(variants))
    mean_curves: dict[tuple[str, str], Curve] = {v: [] for v in variants}
    for steps in range(args.mark, max(budget.values()) + 1, args.mark):
        cells = []
        for v in variants:
            values = [value_at(c, steps) for c in curves[v]]
            if steps > budget[v[0]] or any(value is None for value in values):
                cells.append("–")
                continue
            mean_curves[v].append((steps, statistics.mean(values)))
            cells.append(mean_se(values))
        if any(c != "–" for c in cells):
            print(f"| {steps} | " + " | ".join(cells) + " |")
    finals = {v: [c[-1][1] for c in curves[v]] for v in variants}
    print("| final (100 episodes) | " + " | ".join(mean_se(finals[v]) for v in variants) + " |")
    for config in args.configs:
        if "masac" in args.methods:
            target = statistics.mean(finals[("masac", config)])
            print(f"\n{label[('masac', config)]}'s final return after {budget['masac']} env steps: {target:.1f}. "
                  "First mark where each mean curve reaches it:")
            for v in variants:
                reached = next((steps for steps, value in mean_curves[v] if value >= target), None)
                print(f"  {label[v]}: {'not reached' if reached is None else f'{reached} env steps'}")
    if check_interactions:
        print("\nAgent interactions at the end (real opponent actions observed + communications in rollouts), "
              "mean over seeds:")
        for config in args.configs:
            for real_only, kind in ((False, "adaptive opponent-wise rollouts"), (True, "real opponents only")):
                runs = [results[("aorpo", config, s, real_only)][0] for s in args.seeds]
                counts = [last(rows, "eval/agent_interactions") for rows in runs]
                returns = [returns_curve(rows)[-1][1] for rows in runs]
                print(f"  {label[('aorpo', config)]}, {kind}: {statistics.mean(counts):,.0f} interactions, "
                      f"final return {mean_se(returns)}")
    if not args.reuse:
        print("\nwall-clock per run: " + ", ".join(
            f"{label[v]} {statistics.mean(results[(*v, s, False)][1] for s in args.seeds):.0f} s" for v in variants))


if __name__ == "__main__":
    main()
