"""MAMBA vs MAG vs MAPPO on SMAX: greedy won rate against environment steps, equal budgets, from a results file.

Every method, map and seed is trained through the real command line (``python -m lightning_mbmarl fit --config
conf/<method>_smax_<map><suffix>.yaml``) and evaluated greedily during training and at its end (100 episodes). Each
finished run appends one row to ``benchmarks/results/mag_smax_<protocol>.csv`` (method, map, seed, environment
steps, final won rate and return, wall-clock, commit) and its evaluations to ``..._curves.csv`` (one row per
evaluation), so the table can be completed over several sittings: ``--reuse`` trains only what is not recorded,
``--report`` only prints. The report is, per map, mean ± std over seeds of ``eval/won_rate`` at evenly spaced
environment-step marks (each run's latest evaluation at or before the mark) and the final 100-episode value, and a
learning-curve plot per map (``benchmarks/results/mag_smax_<protocol>_<map>.png``).

Protocols (benchmarks/README.md, "SMAX on a CPU"):

* ``cpu``: maps 3m and 2s3z, ``conf/<method>_smax_<map>_cpu.yaml`` as they are (budgets, sizes and evaluations in
  the configs); one run fits in 2 hours on one thread of this 2-core machine with another run beside it.
* ``paper``: 2s3z at the released sizes, ``conf/<method>_smax_2s3z.yaml`` with ``--budget`` steps (a GPU's job).

``--quick`` swaps in tiny networks and schedules to check the pipeline end to end in minutes (recorded under its own
protocol name, ``<protocol>-quick``, in ``--output_dir`` rather than the committed results).

    python benchmarks/mag_smax.py --protocol cpu --jobs 2 --reuse           # the CPU table, over several sittings
    python benchmarks/mag_smax.py --protocol cpu --report
    python benchmarks/mag_smax.py --protocol cpu --quick --maps 3m --seeds 0 --jobs 2
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cli_runs import append_result, evaluation_curve, finished_run, metric_rows, read_results, run_experiment

METHODS = ("mamba", "mag", "mappo")
NAMES = {"mamba": "MAMBA", "mag": "MAG", "mappo": "MAPPO"}
METRICS = ("eval/won_rate", "eval/return")
PROTOCOLS = {"cpu": ("3m", "2s3z"), "paper": ("2s3z",)}
RESULTS = Path(__file__).resolve().parent / "results"

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


def protocol_name(args: argparse.Namespace) -> str:
    return args.protocol + ("-quick" if args.quick else "")


def results_folder(args: argparse.Namespace) -> Path:
    """Where results and plots go: the committed folder, or the output folder for ``--quick`` pipeline checks."""
    return Path(args.output_dir) if args.quick else RESULTS


def results_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    name, folder = protocol_name(args).replace("-", "_"), results_folder(args)
    return folder / f"mag_smax_{name}.csv", folder / f"mag_smax_{name}_curves.csv"


def config_of(method: str, map_name: str, protocol: str) -> str:
    return f"conf/{method}_smax_{map_name}{'_cpu' if protocol == 'cpu' else ''}.yaml"


def experiment_of(method: str, map_name: str, seed: int, args: argparse.Namespace) -> str:
    return f"{method}_smax_{map_name}_{protocol_name(args)}_seed{seed}"


def run_one(method: str, map_name: str, seed: int, args: argparse.Namespace) -> None:
    """Train one run to its end (or reuse a finished run folder) and append it to the results files."""
    experiment = experiment_of(method, map_name, seed, args)
    run_dir = finished_run(args.output_dir, experiment) if args.reuse else None
    if run_dir is None:
        overrides = [f"--seed_everything={seed}", f"--data.init_args.seed={seed}",
                     *(QUICK[method] if args.quick else [])]
        if args.protocol == "paper":
            overrides.append(f"--model.init_args.online.total_env_steps={args.budget}")
        run_dir, seconds = run_experiment(config_of(method, map_name, args.protocol), experiment, args.output_dir,
                                          *overrides)
        print(f"  {NAMES[method]} {map_name} seed {seed}: {seconds:.0f} s ({run_dir})", flush=True)
    curve = evaluation_curve(metric_rows(run_dir), METRICS)
    if not curve:
        raise RuntimeError(f"{run_dir}: no evaluation logged")
    final_steps, final = curve[-1]
    results, curves = results_paths(args)
    for at, values in curve:
        _append_curve_row(curves, {"method": method, "map": map_name, "seed": seed, "env_steps": int(at),
                                   "won_rate": values["eval/won_rate"], "return": round(values["eval/return"], 4)})
    append_result(results, {"method": method, "map": map_name, "seed": seed, "env_steps": int(final_steps),
                            "won_rate": final["eval/won_rate"], "return": round(final["eval/return"], 4)}, run_dir)


def _append_curve_row(path: Path, row: dict[str, object]) -> None:
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def recorded(args: argparse.Namespace) -> set[tuple[str, str, int]]:
    """(method, map, seed) of every run in the results file."""
    return {(r["method"], r["map"], int(r["seed"])) for r in read_results(results_paths(args)[0])}


def cell(values: list[float]) -> str:
    if not values:
        return "–"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {spread:.2f} ({len(values)})"


def report(args: argparse.Namespace) -> None:
    """The tables and plots of everything recorded for this protocol."""
    results_path, curves_path = results_paths(args)
    results, points = read_results(results_path), read_results(curves_path)
    if not results:
        print(f"nothing recorded in {results_path} yet")
        return
    for map_name in PROTOCOLS[args.protocol]:
        runs = [r for r in results if r["map"] == map_name]
        if not runs:
            continue
        methods = [m for m in METHODS if any(r["method"] == m for r in runs)]
        curves = {(r["method"], int(r["seed"])): sorted(
            (int(p["env_steps"]), float(p["won_rate"])) for p in points
            if p["map"] == map_name and p["method"] == r["method"] and int(p["seed"]) == int(r["seed"]))
            for r in runs}
        budget = max(int(r["env_steps"]) for r in runs)
        marks = [budget * (k + 1) // args.marks for k in range(args.marks)]
        print(f"\n### SMAX {map_name} ({protocol_name(args)} protocol): greedy won rate, mean ± std (runs)\n")
        print("| env steps | " + " | ".join(NAMES[m] for m in methods) + " |")
        print("|---" * (len(methods) + 1) + "|")
        for mark in marks:
            cells = []
            for method in methods:
                values = [next((w for at, w in reversed(curve) if at <= mark), None)
                          for (m, _), curve in curves.items() if m == method]
                cells.append(cell([v for v in values if v is not None]))
            print(f"| {mark} | " + " | ".join(cells) + " |")
        finals = [cell([float(r["won_rate"]) for r in runs if r["method"] == m]) for m in methods]
        print("| final (100 episodes) | " + " | ".join(finals) + " |")
        print("\nper run: " + "; ".join(f"{NAMES[r['method']]} seed {r['seed']} {float(r['won_rate']):.2f} in "
                                          f"{int(r['seconds'])} s" for r in runs))
        plot(map_name, methods, curves, marks, args)


def plot(map_name: str, methods: list[str], curves: dict[tuple[str, int], list[tuple[int, float]]],
         marks: list[int], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in methods:
        per_seed = [curve for (m, _), curve in curves.items() if m == method]
        means, spreads = [], []
        for mark in marks:
            values = [next((w for at, w in reversed(c) if at <= mark), 0.0) for c in per_seed]
            means.append(statistics.mean(values))
            spreads.append(statistics.stdev(values) if len(values) > 1 else 0.0)
        ax.plot(marks, means, label=f"{NAMES[method]} ({len(per_seed)} seeds)")
        ax.fill_between(marks, [m - s for m, s in zip(means, spreads)], [m + s for m, s in zip(means, spreads)],
                        alpha=0.2)
    ax.set(xlabel="environment steps", ylabel="greedy won rate", ylim=(-0.02, 1.02),
           title=f"SMAX {map_name}, {protocol_name(args)} protocol")
    ax.legend()
    fig.tight_layout()
    path = results_folder(args) / f"mag_smax_{protocol_name(args).replace('-', '_')}_{map_name}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="cpu")
    parser.add_argument("--maps", nargs="+", default=None, help="default: the protocol's maps")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=int, default=100_000, help="environment steps per run (paper protocol)")
    parser.add_argument("--marks", type=int, default=10, help="rows of the table before the final one")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (one thread each)")
    parser.add_argument("--reuse", action="store_true", help="skip recorded runs; record finished run folders")
    parser.add_argument("--report", action="store_true", help="only print the table and plots from the results")
    parser.add_argument("--quick", action="store_true", help="tiny networks and schedules (pipeline check)")
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/benchmarks/mag_smax"))
    args = parser.parse_args()
    maps = args.maps or list(PROTOCOLS[args.protocol])
    unknown = sorted(set(maps) - set(PROTOCOLS[args.protocol]))
    if unknown:
        parser.error(f"maps {unknown} are not in the {args.protocol} protocol: {PROTOCOLS[args.protocol]}")
    if not args.report:
        done = recorded(args) if args.reuse else set()
        jobs = [(m, map_name, s) for map_name in maps for s in args.seeds for m in args.methods
                if (m, map_name, s) not in done]
        print(f"SMAX {protocol_name(args)} protocol: {len(jobs)} run(s) to train, {args.jobs} at a time", flush=True)
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        with ThreadPoolExecutor(args.jobs) as pool:
            for future in [pool.submit(run_one, *job, args) for job in jobs]:
                future.result()
    report(args)


if __name__ == "__main__":
    main()
