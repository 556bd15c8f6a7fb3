"""``python -m lightning_mbmarl report <sweep>``: a sweep's tables (Markdown, as the README prints them) and its
learning-curve plots, read from its results files only (``<results>.csv``, one row per finished point, and
``<results>_curves.csv``, one row per evaluation), so a table can be reprinted on any machine.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from lightning_mbmarl.sweeps.results import read_results

#: results columns that are not grid values: what a point is called, and what it measured
NOT_GRID = ("point", "config", "env_steps", "seconds", "commit", "recorded")


def latest_rows(rows: Sequence[Mapping[str, str]]) -> list[Mapping[str, str]]:
    """One row per point (the latest, where a point was recorded again after its run folder was removed)."""
    latest = {(r["point"], r["experiment"]): r for r in rows}
    return list(latest.values())


def group_columns(rows: Sequence[Mapping[str, str]], metrics: Iterable[str]) -> list[str]:
    """The columns that tell the points of a sweep apart, other than the seed: the experiment and grid values."""
    if not rows:
        return []
    skip = set(NOT_GRID) | set(metrics) | {"seed"}
    return [column for column in rows[0] if column not in skip]


def spread_text(values: list[float], spread: str, digits: int, seeds: int | None = None) -> str:
    """``mean ± spread`` over seeds (``std``: sample standard deviation; ``se``: standard error of the mean); the
    value alone for a single seed; ``(n of <seeds> seeds)`` after it where fewer than ``seeds`` are recorded."""
    mean = statistics.fmean(values)
    suffix = f" ({len(values)} of {seeds} seeds)" if seeds and len(values) < seeds else ""
    if len(values) < 2:
        return f"{mean:.{digits}f}{suffix}"
    deviation = statistics.stdev(values)
    if spread == "se":
        deviation /= math.sqrt(len(values))
    elif spread != "std":
        raise ValueError(f"table spread {spread!r}: use std or se")
    return f"{mean:.{digits}f} ± {deviation:.{digits}f}{suffix}"


def _ordered(values: Iterable[str], labels: Mapping[str, str] | None = None) -> list[str]:
    """Distinct values: those with a label first, in the labels' order; then numbers sorted numerically, or the
    rest in first-seen order."""
    seen = list(dict.fromkeys(values))
    labelled = [v for v in (labels or {}) if v in seen]
    rest = [v for v in seen if v not in labelled]
    try:
        rest = sorted(rest, key=float)
    except ValueError:
        pass
    return labelled + rest


def _select(rows: Sequence[Mapping[str, str]], where: Mapping[str, object]) -> list[Mapping[str, str]]:
    return [r for r in rows if all(str(r.get(k)) == str(v) for k, v in where.items())]


def _check_cell(cell: Sequence[Mapping[str, str]], groups: list[str], where: str) -> None:
    """A cell averages seeds of one setting: points that differ in anything else would be mixed."""
    settings = {tuple(r[c] for c in groups) for r in cell}
    if len(settings) > 1:
        raise ValueError(
            f"table cell {where} mixes points of different settings {sorted(settings)} over "
            f"{groups}: make that column the table's rows or columns, or filter it with where"
        )


def final_table(spec: Mapping, rows: Sequence[Mapping[str, str]], groups: list[str]) -> str:
    """``kind: final``: rows x columns of the final metric, mean ± spread over seeds; a column with
    ``references`` (the paper's values, keyed by the column's value, or by the metric where ``columns`` is null) is
    followed by them."""
    rows = _select(rows, spec.get("where") or {})
    labels, metric, references = spec.get("labels") or {}, spec["metric"], spec.get("references") or {}
    row_values = _ordered((r[spec["rows"]] for r in rows), labels)
    column_key = spec.get("columns")
    column_values = _ordered((r[column_key] for r in rows), labels) if column_key else [None]
    header = [spec.get("title") or spec["rows"]]
    reference_key = {column: metric if column is None else column for column in column_values}
    for column, text in zip(column_values, _column_headers(spec, column_values)):
        header.append(text)
        if reference_key[column] in references:
            name = text if column is None else labels.get(column, column)
            header.append(f"{name} ({spec.get('reference_label', 'paper')})")
    lines = [_markdown_row(header), _markdown_row(["---"] * len(header))]
    for value in row_values:
        cells = [labels.get(value, value)]
        for column in column_values:
            cell = [r for r in rows if r[spec["rows"]] == value and (column is None or r[column_key] == column)]
            cell = [r for r in cell if r.get(metric)]
            _check_cell(cell, [g for g in groups if g not in (spec["rows"], column_key)], f"({value}, {column})")
            cells.append(
                spread_text([float(r[metric]) for r in cell], spec["spread"], spec["digits"], spec.get("seeds"))
                if cell
                else "–"
            )
            if reference_key[column] in references:
                cells.append(str(references[reference_key[column]].get(value, "–")))
        lines.append(_markdown_row(cells))
    return "\n".join(lines)


def value_at(curve: Sequence[tuple[float, float]], steps: float) -> float | None:
    """The latest evaluation at or before ``steps`` environment steps (None before the first)."""
    earlier = [value for at, value in curve if at <= steps]
    return earlier[-1] if earlier else None


def curve_table(
    spec: Mapping, rows: Sequence[Mapping[str, str]], curves: Sequence[Mapping[str, str]], groups: list[str]
) -> str:
    """``kind: curve``: the metric at each environment-step mark (each run at its latest evaluation at or before
    it; ``–`` past every run's budget), mean ± spread over seeds; a last row with the final values."""
    rows, curves = _select(rows, spec.get("where") or {}), _select(curves, spec.get("where") or {})
    metric, column_key = spec["metric"], spec.get("columns")
    column_values = _ordered((r[column_key] for r in rows), spec.get("labels")) if column_key else [None]
    points = {r["point"] + "|" + r["experiment"]: r for r in rows}
    runs: dict[str, list[tuple[float, float]]] = {key: [] for key in points}
    for row in curves:
        key = row["point"] + "|" + row["experiment"]
        if key in runs and row.get(metric):
            runs[key].append((float(row["env_steps"]), float(row[metric])))
    runs = {key: sorted(curve) for key, curve in runs.items()}
    members = {
        column: [k for k, r in points.items() if column is None or r[column_key] == column] for column in column_values
    }
    for column, keys in members.items():
        _check_cell([points[k] for k in keys], [g for g in groups if g != column_key], f"(column {column})")
    header = [spec.get("title") or "env steps"] + _column_headers(spec, column_values)
    lines = [_markdown_row(header), _markdown_row(["---"] * len(header))]
    for mark in spec["marks"]:
        cells = [str(mark)]
        for column in column_values:
            values = [value_at(runs[k], mark) for k in members[column] if float(points[k]["env_steps"]) >= mark]
            values = [v for v in values if v is not None]
            cells.append(spread_text(values, spec["spread"], spec["digits"], spec.get("seeds")) if values else "–")
        lines.append(_markdown_row(cells))
    finals = [
        spread_text(
            [float(points[k][metric]) for k in members[column]], spec["spread"], spec["digits"], spec.get("seeds")
        )
        for column in column_values
    ]
    lines.append(_markdown_row(["final", *finals]))
    return "\n".join(lines)


def _column_headers(spec: Mapping, column_values: list[str | None]) -> list[str]:
    labels, form = spec.get("labels") or {}, spec.get("column_format") or "{}"
    return [spec["metric"] if c is None else form.format(labels.get(c, c)) for c in column_values]


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def plot_curves(path: Path, metric: str, curves: Sequence[Mapping[str, str]], groups: list[str]) -> None:
    """One line per setting (mean over seeds at each evaluation step; the band: min to max over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings: dict[tuple[str, ...], dict[str, list[tuple[float, float]]]] = {}
    for row in curves:
        if row.get(metric):
            setting = tuple(row[g] for g in groups)
            settings.setdefault(setting, {}).setdefault(row["point"], []).append(
                (float(row["env_steps"]), float(row[metric]))
            )
    figure, axes = plt.subplots(figsize=(6, 4))
    for setting, seeds in settings.items():
        steps = sorted({at for curve in seeds.values() for at, _ in curve})
        at_step = [[v for v in (value_at(sorted(c), s) for c in seeds.values()) if v is not None] for s in steps]
        name = ", ".join(setting[1:]) or setting[0]  # the grid values; the experiment where there are none
        axes.plot(steps, [statistics.fmean(v) for v in at_step], label=f"{name} ({len(seeds)} seeds)")
        axes.fill_between(steps, [min(v) for v in at_step], [max(v) for v in at_step], alpha=0.2)
    axes.set_xlabel("environment steps")
    axes.set_ylabel(metric)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def report(settings: Mapping, plots: bool = True) -> str:
    """The sweep's tables as Markdown (blank line between tables); with ``plots``, one PNG per metric beside the
    results file (``<results>_<metric>.png``; ``<results>_<value>_<metric>.png`` per value of ``plot_by``)."""
    results = Path(settings["results"])
    rows = latest_rows(read_results(results))
    if not rows:
        raise FileNotFoundError(f"{results}: no finished points yet; run the sweep first")
    curves = read_results(results.with_name(results.stem + "_curves.csv"))
    groups = group_columns(rows, settings["metrics"])
    tables = [
        final_table(spec, rows, groups) if spec["kind"] == "final" else curve_table(spec, rows, curves, groups)
        for spec in settings["tables"]
    ]
    if plots and any(float(c["env_steps"]) > 0 for c in curves):  # offline runs have no environment-step curves
        panel = settings.get("plot_by")
        for value in _ordered(r[panel] for r in rows) if panel else [None]:
            selected = _select(curves, {panel: value}) if panel else curves
            for metric in settings["metrics"]:
                name = "_".join(p for p in (results.stem, value, metric.replace("/", "_")) if p)
                plot_curves(results.with_name(f"{name}.png"), metric, selected, [g for g in groups if g != panel])
    return "\n\n".join(tables)


def main(words: list[str]) -> int:
    """The ``report`` command."""
    parser = argparse.ArgumentParser(
        prog="python -m lightning_mbmarl report",
        description="a sweep's tables and learning-curve plots from its results files",
    )
    parser.add_argument(
        "sweep", nargs="?", default="", help="the sweep file's name in --config-path (e.g. aorpo_climb)"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the sweep file (e.g. sweep.results=...)")
    parser.add_argument("--config-path", default="conf/sweeps", help="the folder of sweep files")
    parser.add_argument("--no-plots", action="store_true", help="print the tables only")
    args = parser.parse_intermixed_args(words)
    from lightning_mbmarl.sweeps.launch import SweepError, load_settings

    try:
        settings = load_settings(Path(args.config_path), args.sweep, args.overrides)
        print(report(settings, plots=not args.no_plots))
    except (SweepError, FileNotFoundError, ValueError) as error:
        print(f"python -m lightning_mbmarl report: error: {error}", file=sys.stderr)
        return 2
    return 0
