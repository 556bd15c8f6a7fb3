"""Searches: a sweep under Hydra's Optuna sweeper (``hydra/sweeper=optuna``) maximises or minimises
``sweep.objective``, a final metric of each trial's results row. Every trial is a grid point like any other (its
run folder, its results row); once the search ends, :class:`BestPoint` writes the best point beside the results
(``<results>_best.yaml``: objective, best value, best parameters, trials recorded).

The searched keys must exist in the sweep file (Optuna's sweeper sets them, it cannot add them): give each a
default under ``point.args``, e.g. ``point.args.model.init_args.masac.actor_lr: 0.001``, and its range under
``hydra.sweeper.params`` (``interval(1e-4, 1e-2)``, ``choice(64, 128)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lightning_mbmarl.sweeps.results import read_results

#: what the Optuna sweeper writes into the sweep's Hydra folder when it ends
OPTUNA_RESULTS = "optimization_results.yaml"


def best_point_path(results: str | Path) -> Path:
    results = Path(results)
    return results.with_name(f"{results.stem}_best.yaml")


class BestPoint(Callback):
    """After a search (a sweep whose sweeper wrote :data:`OPTUNA_RESULTS`): the best point beside the results."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        found = Path(str(config.hydra.sweep.dir)) / OPTUNA_RESULTS
        if not found.exists():
            return
        optuna = OmegaConf.to_container(OmegaConf.load(found))
        summary = {
            "sweep": config.sweep.name,
            "objective": config.sweep.objective,
            "direction": str(config.hydra.sweeper.get("direction", "")),
            "best_value": optuna.get("best_value"),
            "best_params": optuna.get("best_params"),
            "trials_recorded": len(read_results(config.sweep.results)),
        }
        OmegaConf.save(OmegaConf.create(summary), best_point_path(config.sweep.results))
