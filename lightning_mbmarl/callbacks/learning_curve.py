"""Plot of the evaluation score against training progress, written into the run folder after every evaluation."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only


def plots_folder(trainer: L.Trainer) -> Path:
    """``<run folder>/plots``. Call it on every rank: ``trainer.log_dir`` is a collective operation under DDP."""
    return Path(trainer.log_dir or trainer.default_root_dir) / "plots"


class LearningCurvePlot(L.Callback):
    """Writes ``<run folder>/plots/<metric>.png``: ``metric`` (default ``eval/normalized_score``, else
    ``eval/return``) against the module counter ``x_axis`` (default: ``env_steps`` for methods that count them,
    else the trainer's ``global_step``)."""

    def __init__(self, metric: str = "eval/normalized_score", x_axis: str | None = None) -> None:
        self.metric, self.x_axis = metric, x_axis
        self.points: list[tuple[float, float]] = []

    def _axis(self, pl_module: L.LightningModule) -> str:
        if self.x_axis is not None:
            return self.x_axis
        return "env_steps" if "env_steps" in getattr(pl_module, "counters", {}) else "global_step"

    def _x(self, trainer: L.Trainer, pl_module: L.LightningModule) -> float:
        counters = getattr(pl_module, "counters", {})
        axis = self._axis(pl_module)
        return float(counters[axis]) if axis in counters else float(trainer.global_step)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = trainer.callback_metrics
        name = self.metric if self.metric in metrics else "eval/return"
        if name not in metrics or trainer.sanity_checking:
            return
        self.points.append((self._x(trainer, pl_module), float(metrics[name])))
        # Every rank asks for the folder: trainer.log_dir is a collective (a broadcast from rank 0) under DDP.
        self._plot(plots_folder(trainer), name, self._axis(pl_module))

    @rank_zero_only
    def _plot(self, folder: Path, name: str, x_label: str) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        folder.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(5, 3.2))
        xs, ys = zip(*self.points)
        ax.plot(xs, ys, marker="o")
        ax.set_xlabel(x_label)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(folder / f"{name.replace('/', '_')}.png", dpi=100)
        plt.close(fig)

    def state_dict(self) -> dict:
        return {"points": self.points}

    def load_state_dict(self, state_dict: dict) -> None:
        self.points = list(state_dict.get("points", []))
