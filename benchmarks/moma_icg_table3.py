"""Reproduce the MOMA-PPO paper's Table 3 (offline Iterated Coordination Game) with this package.

For each dataset (favorable, neutral, unfavorable) and each seed, trains MOMA-PPO, IBC and MAIQL through the real
command line (``python -m lightning_mbmarl fit --config conf/<method>_icg_<dataset>.yaml``), each seed with its
own dataset (collected with that seed), and reads the final greedy evaluation (100 episodes) from the run's
``metrics.csv``. Prints a Markdown table of mean ± std over seeds and the mean wall-clock per run.

    python benchmarks/moma_icg_table3.py                 # 5 seeds, 2 runs at a time
    python benchmarks/moma_icg_table3.py --seeds 0 1 2 --jobs 1
"""

from __future__ import annotations

import argparse
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cli_runs import metric_rows, run_experiment

DATASETS = ("favorable", "neutral", "unfavorable")
METHODS = ("moma", "ibc", "maiql")
PAPER = {  # MOMA-PPO paper, Table 3 (10 seeds)
    ("moma", "favorable"): "1.0 ± 0.0", ("moma", "neutral"): "1.0 ± 0.0", ("moma", "unfavorable"): "1.0 ± 0.0",
    ("ibc", "favorable"): "1.0 ± 0.0", ("ibc", "neutral"): "0.55 ± 0.11", ("ibc", "unfavorable"): "0.0 ± 0.0",
    ("maiql", "favorable"): "1.0 ± 0.0", ("maiql", "neutral"): "0.9 ± 0.1", ("maiql", "unfavorable"): "0.0 ± 0.0",
}


def final_score(run_dir: Path) -> float:
    rows = [r for r in metric_rows(run_dir) if r.get("eval/normalized_score")]
    if not rows:
        raise RuntimeError(f"{run_dir}: no eval/normalized_score logged")
    return float(rows[-1]["eval/normalized_score"])


def run_one(method: str, dataset: str, seed: int, output_dir: Path) -> tuple[float, float]:
    run_dir, seconds = run_experiment(
        f"conf/{method}_icg_{dataset}.yaml", f"{method}_icg_{dataset}_seed{seed}", output_dir,
        f"--seed_everything={seed}", f"--data.init_args.dataset_path={output_dir}/datasets/icg_{dataset}_seed{seed}.hdf5",
        f"--data.init_args.make_if_missing.seed={seed}",
    )
    return final_score(run_dir), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (each uses one thread)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/benchmarks/moma_icg_table3"))
    args = parser.parse_args()

    jobs = [(m, d, s) for m in args.methods for d in DATASETS for s in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(jobs, pool.map(lambda job: run_one(*job, args.output_dir), jobs)))

    print(f"seeds: {args.seeds}; final greedy score over 100 episodes, mean ± std over seeds")
    print("| dataset | " + " | ".join(f"{m} (ours) | {m} (paper)" for m in args.methods) + " |")
    print("|---|" + "---|---|" * len(args.methods))
    for d in DATASETS:
        cells = []
        for m in args.methods:
            scores = [results[(m, d, s)][0] for s in args.seeds]
            std = statistics.pstdev(scores) if len(scores) > 1 else 0.0
            cells += [f"{statistics.mean(scores):.2f} ± {std:.2f}", PAPER[(m, d)]]
        print(f"| {d} | " + " | ".join(cells) + " |")
    for m in args.methods:
        times = [results[(m, d, s)][1] for d in DATASETS for s in args.seeds]
        print(f"{m}: wall-clock per run {statistics.mean(times):.0f} s (max {max(times):.0f} s), {args.jobs} runs at a time")
    for (m, d, s), (score, _) in sorted(results.items()):
        print(f"  {m} {d} seed {s}: {score:.3f}")


if __name__ == "__main__":
    main()
