"""Results files: one CSV row per finished run, kept in the repository so results outlive the machine their runs
were on, and the metrics a run folder holds (its ``metrics.csv``).

Several processes may append to one results file at once (a sweep's parallel points): appends hold an exclusive
lock on the file (``fcntl.flock``; on a cluster, keep results files on a file system whose locks work across nodes).
"""

from __future__ import annotations

import csv
import fcntl
from pathlib import Path


def read_results(path: str | Path) -> list[dict[str, str]]:
    """The rows of a results file (empty when it does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def append_row(path: str | Path, row: dict[str, object]) -> None:
    """Append ``row`` to the CSV file ``path`` (created with a header row from the first row's keys). Raises if the
    file's columns are not the row's, naming both: a results file keeps one set of columns."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", newline="") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            file.seek(0)
            header = next(csv.reader(file), None)
            if header is not None and header != list(row):
                raise ValueError(f"{path}: its columns are {header}, this row's are {list(row)}")
            file.seek(0, 2)
            writer = csv.DictWriter(file, fieldnames=list(row))
            if header is None:
                writer.writeheader()
            writer.writerow(row)
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def metric_rows(run_dir: str | Path) -> list[dict[str, str]]:
    """The rows of a run's ``metrics.csv``."""
    with open(Path(run_dir) / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def evaluation_curve(
    rows: list[dict[str, str]], metrics: tuple[str, ...] | list[str]
) -> list[tuple[float, dict[str, float]]]:
    """Each evaluation of a run as (environment steps when it ran, {metric: value}), from its ``metrics.csv`` rows.
    Evaluations log ``eval/env_steps`` in their own row; runs made before that was logged fall back to the latest
    ``env_steps`` of a training row."""
    curve, env_steps = [], 0.0
    for row in sorted(rows, key=lambda r: int(r["step"])):
        if row.get("env_steps"):
            env_steps = max(env_steps, float(row["env_steps"]))
        if all(row.get(m) for m in metrics):
            at = float(row["eval/env_steps"]) if row.get("eval/env_steps") else env_steps
            curve.append((at, {m: float(row[m]) for m in metrics}))
    return curve
