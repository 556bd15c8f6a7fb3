"""The typed schema of a sweep file (``conf/sweeps/<sweep>.yaml``), registered with Hydra's ConfigStore as
``lightning_mbmarl_sweep``. A sweep file starts with ``defaults: [lightning_mbmarl_sweep, _self_]``, so a misspelt
key of ``sweep:`` or ``point:`` fails when the file is loaded, before any job starts.

Example (the grid lives under ``hydra.sweeper.params``; any key can also be swept from the command line)::

    defaults: [lightning_mbmarl_sweep, _self_]
    sweep:
      name: aorpo_climb                     # results: benchmarks/results/aorpo_climb.csv
      metrics: [eval/nash_distance, eval/return]
    point:
      config: conf/aorpo_climb.yaml
      args: {model: {init_args: {online: {total_env_steps: 3000}}}}   # --model.init_args.online.total_env_steps=3000
    hydra:
      sweeper:
        params:
          point.seed: range(5)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class TableSpec:
    """One table that ``report`` prints from a sweep's results file (Markdown, as in the README).

    ``kind: final``: one row per value of the results column ``rows``, one column per value of ``columns`` (or a
    single column when ``columns`` is null); each cell is ``metric``'s final value, mean ± spread over the seeds.
    ``kind: curve``: one row per environment-step mark in ``marks``, one column per value of ``columns``; each cell
    is ``metric`` at the run's latest evaluation at or before the mark (from the curves file), mean ± spread over
    seeds, ``–`` where no run has reached the mark.
    """

    kind: str = "final"  # final | curve
    metric: str = "eval/return"
    rows: str = "experiment"  # kind=final: the results column whose values make the rows
    columns: Optional[str] = None  # the results column whose values make the columns
    marks: list[int] = field(default_factory=list)  # kind=curve: environment-step marks, one row each
    spread: str = "std"  # std | se (standard error of the mean)
    digits: int = 2
    title: str = ""  # the first header cell
    seeds: Optional[int] = None  # seeds a cell should have: fewer show "(2 of 3 seeds)"
    labels: dict[str, str] = field(default_factory=dict)  # a column or row value -> the label printed
    column_format: str = "{}"  # the header of a column without a label, e.g. "seed {}"
    where: dict[str, str] = field(default_factory=dict)  # only the results rows with these column values
    references: dict[str, dict[str, str]] = field(default_factory=dict)  # column value -> {row value: paper's}
    reference_label: str = "paper"  # a reference column follows its column: "<column> (<label>)"


@dataclass
class SweepSettings:
    """Where a sweep's runs and results go, and what it records."""

    name: str = MISSING  # results file benchmarks/results/<name>.csv, runs <output_dir>/<name>/
    results: str = "benchmarks/results/${sweep.name}.csv"
    output_dir: str = "outputs/sweeps"
    metrics: list[str] = field(default_factory=lambda: ["eval/return"])  # final values recorded per point
    threads: Optional[int] = None  # OMP_NUM_THREADS of each point's run (null: inherited)
    env: dict[str, str] = field(default_factory=dict)  # more environment variables of each point's run
    plot_by: Optional[str] = None  # one learning-curve figure per value of this results column
    tables: list[TableSpec] = field(default_factory=list)
    objective: Optional[str] = None  # a search's objective: the final metric each trial returns
    document: Optional[str] = None  # the README or docs page that prints these tables (checked by a test)


@dataclass
class GridPoint:
    """One run of the grid: ``fit --config <config> --seed_everything=<seed>`` plus ``args`` (a nested mapping,
    flattened to ``--a.b.c=value`` options of the package's command line). ``vars`` are grid values with a name of
    their own, for interpolations (``config: conf/${point.vars.method}_icg.yaml``); each is a results column."""

    config: str = MISSING
    seed: int = 0
    args: dict[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)  # named grid values for interpolations, e.g. the method


@dataclass
class SweepFile:
    sweep: SweepSettings = field(default_factory=SweepSettings)
    point: GridPoint = field(default_factory=GridPoint)


#: Hydra settings every sweep shares: its bookkeeping under the sweep's output folder; jobs keep the working folder
HYDRA_SETTINGS = {
    "sweep": {"dir": "${sweep.output_dir}/${sweep.name}/.hydra/${now:%Y-%m-%d_%H-%M-%S}", "subdir": "${hydra.job.num}"},
    "job": {"chdir": False},
    "callbacks": {"best_point": {"_target_": "lightning_mbmarl.sweeps.search.BestPoint"}},
}

SCHEMA_NAME = "lightning_mbmarl_sweep"


def register() -> None:
    """Register the schema (and the shared Hydra settings) under :data:`SCHEMA_NAME`."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node={**SweepFile().__dict__, "hydra": HYDRA_SETTINGS})
