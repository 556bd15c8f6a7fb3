"""Reproduce the shape of the MOMA-PPO paper's Table 4 (offline MaMuJoCo) with this package.

Settings: Reacher 2x1 expert-mix under the three observation functions (Table 4a) and Ant 4x2 under full and
partial observability over the datasets made here (Table 4b). Methods: MOMA-PPO against IBC, ITD3+BC and MAIQL,
each trained through the real command line (``python -m lightning_mbmarl fit --config conf/<method>_<setting>.yaml``)
with the budget its config states, every seed on the same dataset (as the paper's D4RL files). Datasets missing
on disk are made first, one at a time (``conf/data/*.yaml`` name them and their recipes). Prints a Markdown table
of the final greedy normalised score (100 episodes on Reacher, 20 on Ant) as mean ± standard error over seeds, as the paper reports,
and the mean wall-clock per run. Every finished run is recorded in ``benchmarks/results/moma_mamujoco_table4.csv``
(score, seconds, the code's commit), which is committed: ``--reuse`` and ``--report`` read it first, so the table
is built up over sessions on different machines.

    python benchmarks/moma_mamujoco_table4.py                                  # everything, 3 seeds
    python benchmarks/moma_mamujoco_table4.py --settings reacher_independent --methods moma ibc --seeds 0
    python benchmarks/moma_mamujoco_table4.py --settings ant_po --ant-datasets random medium
    python benchmarks/moma_mamujoco_table4.py --settings ant_fo ant_po --reuse    # train only what is not recorded
    python benchmarks/moma_mamujoco_table4.py --settings ant_fo ant_po --report   # the recorded table, no training
    python benchmarks/moma_mamujoco_table4.py --settings ant_po --methods moma_paper --jobs 1   # paper scale, a GPU
"""

from __future__ import annotations

import argparse
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from cli_runs import append_result, finished_run, metric_rows, read_results, run_experiment

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lightning_mbmarl.data.dataset_tool import make_dataset_from_recipe  # noqa: E402
from lightning_mbmarl.data.hdf5_format import read_dataset, write_dataset  # noqa: E402
from lightning_mbmarl.data.mamujoco_datasets import reobserve  # noqa: E402
from lightning_mbmarl.envs import EnvConfig  # noqa: E402

METHODS = ("moma", "ibc", "itd3bc", "maiql")
#: MOMA-PPO at the paper's Appendix A.2 scale (``conf/moma_<ant setting>_paper.yaml``), for a GPU: asked for by name,
#: recorded under its own key so its rows never mix with the CPU-sized ones
PAPER_SCALE = "moma_paper"
METHOD_NAMES = {"moma": "MOMA-PPO", "ibc": "IBC", "itd3bc": "ITD3+BC", "maiql": "MAIQL",
                PAPER_SCALE: "MOMA-PPO (paper scale)"}
REACHER_SETTINGS = ("reacher_all_observant", "reacher_independent", "reacher_leader_only")
ANT_SETTINGS = ("ant_fo", "ant_po")
SETTINGS = (*REACHER_SETTINGS, *ANT_SETTINGS)
ANT_DATASETS = ("random", "medium", "full-replay", "expert")
#: the record of finished runs, kept in the repository (see ``--results``)
RESULTS = REPO / "benchmarks/results/moma_mamujoco_table4.csv"
PAPER = {  # MOMA-PPO paper, Table 4 (3 seeds, mean ± standard error); MAIQL-ft, IQL, ICQL, IOMAR left out
    ("reacher_all_observant", "expert-mix"): {"moma": "1.07 ± 0.01", "ibc": "1.02 ± 0.01", "itd3bc": "0.78 ± 0.00", "maiql": "0.96 ± 0.05"},
    ("reacher_independent", "expert-mix"): {"moma": "0.95 ± 0.06", "ibc": "0.76 ± 0.04", "itd3bc": "0.30 ± 0.11", "maiql": "0.92 ± 0.04"},
    ("reacher_leader_only", "expert-mix"): {"moma": "1.00 ± 0.01", "ibc": "0.84 ± 0.02", "itd3bc": "0.48 ± 0.04", "maiql": "0.80 ± 0.05"},
    ("ant_fo", "random"): {"moma": "0.52 ± 0.07", "ibc": "0.31 ± 0.00", "itd3bc": "0.22 ± 0.02", "maiql": "0.28 ± 0.01"},
    ("ant_fo", "medium"): {"moma": "1.29 ± 0.06", "ibc": "0.84 ± 0.01", "itd3bc": "1.04 ± 0.00", "maiql": "0.85 ± 0.02"},
    ("ant_fo", "full-replay"): {"moma": "1.42 ± 0.07", "ibc": "1.20 ± 0.01", "itd3bc": "1.33 ± 0.01", "maiql": "0.77 ± 0.21"},
    ("ant_fo", "expert"): {"moma": "1.49 ± 0.01", "ibc": "1.24 ± 0.00", "itd3bc": "1.25 ± 0.02", "maiql": "1.24 ± 0.00"},
    ("ant_po", "random"): {"moma": "0.42 ± 0.05", "ibc": "0.31 ± 0.00", "itd3bc": "0.31 ± 0.00", "maiql": "0.31 ± 0.00"},
    ("ant_po", "medium"): {"moma": "0.54 ± 0.19", "ibc": "0.17 ± 0.01", "itd3bc": "0.22 ± 0.05", "maiql": "0.14 ± 0.02"},
    ("ant_po", "full-replay"): {"moma": "0.46 ± 0.10", "ibc": "0.21 ± 0.02", "itd3bc": "0.20 ± 0.01", "maiql": "0.18 ± 0.02"},
    ("ant_po", "expert"): {"moma": "0.18 ± 0.00", "ibc": "0.05 ± 0.04", "itd3bc": "0.16 ± 0.00", "maiql": "-0.16 ± 0.01"},
}


def data_config(setting: str) -> tuple[Path, dict]:
    """The data-module file a setting's configs share and its parsed ``init_args``."""
    path = yaml.safe_load((REPO / f"conf/moma_{setting}.yaml").read_text())["data"]
    path = REPO / "conf" / path
    return path, yaml.safe_load(path.read_text())["init_args"]


def ensure_dataset(setting: str, dataset: str) -> None:
    """Make a setting's named dataset if it is not on disk yet (ignoring ``on_the_spot``: this is the long run).

    Where another setting's file has the same recipe (the same task under another observation function), the
    copy is re-observed from it instead of collected again; the result is the same (see ``reobserve``).
    """
    _, init = data_config(setting)
    entry = init["datasets"][dataset]
    path = REPO / entry["path"]
    if path.exists():
        return
    for other in SETTINGS:
        twin = data_config(other)[1]["datasets"].get(dataset)
        if twin and twin.get("make_if_missing") == entry["make_if_missing"] and (REPO / twin["path"]).exists():
            print(f"making {path}: {REPO / twin['path']} re-observed", flush=True)
            observation = init["env"]["kwargs"]["observation"]
            write_dataset(path, reobserve(read_dataset(REPO / twin["path"]), observation))
            return
    recipe = {k: v for k, v in entry["make_if_missing"].items() if k != "on_the_spot"}
    env = EnvConfig(init["env"]["name"], init["env"].get("kwargs", {}))
    print(f"making {path} ({recipe})", flush=True)
    make_dataset_from_recipe(path, recipe, env)


def config_path(method: str, setting: str) -> Path:
    """The experiment file a method is trained from in a setting."""
    if method == PAPER_SCALE:
        if setting not in ANT_SETTINGS:
            raise SystemExit(f"{PAPER_SCALE} runs only the Ant settings {ANT_SETTINGS}, not {setting!r}: "
                             "drop it from --settings or from --methods")
        return REPO / f"conf/moma_{setting}_paper.yaml"
    return REPO / f"conf/{method}_{setting}.yaml"


def final_score(run_dir: Path) -> float:
    rows = [r for r in metric_rows(run_dir) if r.get("eval/normalized_score")]
    if not rows:
        raise RuntimeError(f"{run_dir}: no eval/normalized_score logged")
    return float(rows[-1]["eval/normalized_score"])


def recorded_score(results: list[dict[str, str]], method: str, setting: str, dataset: str, seed: int) -> float | None:
    """The latest recorded final score of a run in the results file, if it has one."""
    rows = [r for r in results
            if (r["method"], r["setting"], r["dataset"], int(r["seed"])) == (method, setting, dataset, seed)]
    return float(rows[-1]["score"]) if rows else None


def record_run(results_path: Path, record: dict[str, object], run_dir: Path) -> float:
    """Append a finished run folder to the results file; returns its final score."""
    score = final_score(run_dir)
    append_result(results_path, {**record, "score": round(score, 4)}, run_dir)
    return score


def run_one(
    method: str, setting: str, dataset: str, seed: int, output_dir: Path, results_path: Path, reuse: bool,
    train: bool = True,
) -> tuple[float, float]:
    """``(final score, wall-clock seconds)`` of one run. Every trained run is appended to the results file. With
    ``reuse`` (or without ``train``) a run already there is read instead, then a finished run folder of the same
    name in ``output_dir`` (recorded now if it was not), their seconds reported as nan. Without ``train`` a run
    not finished yet gives ``(nan, nan)``."""
    experiment = f"{method}_{setting}_{dataset}_seed{seed}"
    record = {"method": method, "setting": setting, "dataset": dataset, "seed": seed}
    if reuse or not train:
        if (score := recorded_score(read_results(results_path), method, setting, dataset, seed)) is not None:
            return score, float("nan")
        if (run := finished_run(output_dir, experiment)) is not None:
            return record_run(results_path, record, run), float("nan")
    if not train:
        return float("nan"), float("nan")
    run_dir, seconds = run_experiment(
        str(config_path(method, setting)), experiment, output_dir,
        f"--seed_everything={seed}", f"--data.init_args.dataset={dataset}",
    )
    return record_run(results_path, record, run_dir), seconds


def mean_sem(values: list[float], seeds: int) -> str:
    """``mean ± standard error`` of the finished runs' scores (nan: not finished), with how many of ``seeds``
    finished where that is not all of them."""
    values = [v for v in values if v == v]
    if not values:
        return "not run"
    sem = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    partial = "" if len(values) == seeds else f" ({len(values)} of {seeds} seeds)"
    return f"{statistics.mean(values):.2f} ± {sem:.2f}{partial}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (each uses one thread)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=(*METHODS, PAPER_SCALE),
                        help=f"{PAPER_SCALE}: MOMA-PPO at the paper's scale on Ant, for a GPU (not in the default)")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--ant-datasets", nargs="+", default=list(ANT_DATASETS), choices=ANT_DATASETS)
    parser.add_argument("--reuse", action="store_true",
                        help="read the runs recorded in --results, then those in output_dir whose command finished, "
                             "instead of training them again (interrupted runs are trained again)")
    parser.add_argument("--report", action="store_true",
                        help="train nothing: the table of the recorded and finished runs (a table built up over "
                             "several sessions, or read while its runs go on)")
    parser.add_argument("--output_dir", type=Path, default=Path("outputs/benchmarks/moma_mamujoco_table4"))
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="CSV record of every finished run (method, setting, dataset, seed, score, seconds, "
                             "commit); committed, so a table outlives the machine its runs were on")
    args = parser.parse_args()

    cells = [(s, d) for s in args.settings for d in (args.ant_datasets if s in ANT_SETTINGS else ["expert-mix"])]
    for method in args.methods:
        for setting in args.settings:
            config_path(method, setting)
    for setting, dataset in [] if args.report else cells:
        ensure_dataset(setting, dataset)
    jobs = [(m, s, d, seed) for s, d in cells for m in args.methods for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(jobs, pool.map(
            lambda job: run_one(*job, args.output_dir, args.results, args.reuse, train=not args.report), jobs)))

    print(f"seeds {args.seeds}; final greedy normalized score (100 episodes on Reacher, 20 on Ant), mean ± standard "
          "error over seeds (paper: its Table 4, 3 seeds, 100 episodes)")
    print("| setting | dataset | " + " | ".join(f"{METHOD_NAMES[m]} | paper" for m in args.methods) + " |")
    print("|---|---|" + "---|---|" * len(args.methods))
    for setting, dataset in cells:
        row = []
        for m in args.methods:
            row += [mean_sem([results[(m, setting, dataset, s)][0] for s in args.seeds], len(args.seeds)),
                    PAPER[(setting, dataset)]["moma" if m == PAPER_SCALE else m]]
        print(f"| {setting} | {dataset} | " + " | ".join(row) + " |")
    for m in args.methods:
        times = [results[job][1] for job in jobs if job[0] == m and results[job][1] == results[job][1]]
        if not times:
            continue
        print(f"{METHOD_NAMES[m]}: wall-clock per run {statistics.mean(times):.0f} s (max {max(times):.0f} s), "
              f"{args.jobs} runs at a time")
    for (m, s, d, seed), (score, _) in sorted(results.items()):
        print(f"  {m} {s} {d} seed {seed}: " + (f"{score:.3f}" if score == score else "not finished"))


if __name__ == "__main__":
    main()
