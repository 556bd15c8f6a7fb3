"""AORPO on the Climb game over several seeds: does every seed converge to the Nash equilibrium?

Trains ``conf/aorpo_climb.yaml`` through the command line once per seed and prints each run's final
``eval/nash_distance`` (largest distance, over both states, between the greedy joint action and the state's
equilibrium landmark; converged means < 0.1) and greedy return (25 at the equilibrium).

    python benchmarks/aorpo_climb.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cli_runs import metric_rows, run_experiment


def run(seed: int, config: str, output_dir: Path) -> tuple[float, float, float]:
    run_dir, seconds = run_experiment(config, f"{Path(config).stem}_seed{seed}", output_dir, f"--seed_everything={seed}")
    rows = [r for r in metric_rows(run_dir) if r.get("eval/nash_distance")]
    return float(rows[-1]["eval/nash_distance"]), float(rows[-1]["eval/return"]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--config", default="conf/aorpo_climb.yaml")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/benchmarks/aorpo_climb"))
    args = parser.parse_args()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda s: run(s, args.config, args.output_dir), args.seeds))
    for seed, (distance, ret, seconds) in zip(args.seeds, results):
        print(f"seed {seed}: nash_distance {distance:.3f}, return {ret:.2f}, {seconds:.0f} s")
    converged = sum(distance < 0.1 for distance, _, _ in results)
    print(f"{args.config}: {converged} of {len(results)} seeds converged to the Nash equilibrium (nash_distance < 0.1)")


if __name__ == "__main__":
    main()
