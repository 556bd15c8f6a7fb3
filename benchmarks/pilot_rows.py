"""A pilot run's evaluations with what its logs say about them, as rows for a results file.

For each evaluation of a run (by default its ``eval/won_rate`` and ``eval/return``; ``--evaluation`` names others,
e.g. Flatland's ``eval/arrived``), the mean of the training
diagnostics logged over the ``--window`` environment steps before it: the policy's entropy, the imagined return and
the world-model loss (issue 17's "what the logs say about why"). Used for the SMAX pilots outside the protocol
(``results/mag_smax_cpu_3m_*_pilot.csv``)::

    python benchmarks/pilot_rows.py outputs/mamba_smax_3m_cpu/version_3 "mamba_smax_3m_cpu seed 0, ... (pilot)" \
        benchmarks/results/mag_smax_cpu_3m_horizon_pilot.csv      # appends; "-" prints instead
    python benchmarks/pilot_rows.py RUN "mappo_smax_3m_cpu seed 0, ..." OUT --diagnostics   # evaluations only
    python benchmarks/pilot_rows.py RUN "mabl_flatland_5_cpu seed 0, ..." OUT --evaluation eval/arrived eval/deadlocked
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_runs import append_row, evaluation_curve, metric_rows  # noqa: E402

EVALUATION = ("eval/won_rate", "eval/return")
DIAGNOSTICS = ("mappo/entropy", "mappo/imagined_return", "world_model/loss")


def pilot_rows(
    rows: list[dict[str, str]],
    label: str,
    window: float,
    diagnostics: tuple[str, ...] = DIAGNOSTICS,
    evaluation: tuple[str, ...] = EVALUATION,
) -> list[dict[str, object]]:
    """One row per evaluation (where all of ``evaluation`` were logged): ``run``, ``env_steps``, those metrics and
    each of ``diagnostics``' mean over the training rows logged in (env_steps - window, env_steps] (empty where none
    was logged there)."""
    training = [(float(r["env_steps"]), r) for r in rows if r.get("env_steps") and any(r.get(m) for m in diagnostics)]
    out = []
    for at, values in evaluation_curve(rows, evaluation):
        recent = [r for steps, r in training if at - window < steps <= at]
        means = {}
        for metric in diagnostics:
            logged = [float(r[metric]) for r in recent if r.get(metric)]
            means[metric] = sum(logged) / len(logged) if logged else ""
        out.append({"run": label, "env_steps": int(at), **values, **means})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a run folder holding metrics.csv")
    parser.add_argument("label", help="the run column: config, seed and what the pilot changes")
    parser.add_argument("out", help="results CSV to append to, or - to print")
    parser.add_argument("--window", type=float, default=500.0, help="environment steps averaged before each evaluation")
    parser.add_argument(
        "--diagnostics",
        nargs="*",
        default=list(DIAGNOSTICS),
        help="training metrics to average (none: evaluations only)",
    )
    parser.add_argument("--evaluation", nargs="+", default=list(EVALUATION), help="evaluation metrics of each row")
    args = parser.parse_args()
    rows = pilot_rows(
        metric_rows(args.run_dir), args.label, args.window, tuple(args.diagnostics), tuple(args.evaluation)
    )
    if not rows:
        parser.error(f"{args.run_dir}/metrics.csv holds no evaluation with all of {args.evaluation}: nothing to write")
    if args.out == "-":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return
    for row in rows:
        append_row(Path(args.out), row)


if __name__ == "__main__":
    main()
