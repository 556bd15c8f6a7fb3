"""Model-error curves: after each evaluation, branch the module's world model from real states and log how its
error compounds with the rollout horizon (AORPO §6.3's c_h; MAG Fig. 3's accumulated error).

Any method plugs in by implementing :class:`ModelErrorSource`: given real sequences it returns the model's open-loop
predictions and the real values they should match (next global states for ensembles, observations for latent
models). Sequences come from the data module's ``sample_sequences`` (online replay).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from lightning_mbmarl.callbacks.learning_curve import plots_folder
from lightning_mbmarl.world_models.compounding_error import (
    accumulated_from_curve,
    compounding_error,
    window_is_one_episode,
)


@runtime_checkable
class ModelErrorSource(Protocol):
    def model_error_rollout(self, sequences: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """sequences: replay windows ``[B, H + 1, ...]`` -> (predicted, target) ``[B, H, D]`` for steps 1..H,
        branched from step 0 with the model (and whatever the method uses to choose actions in its rollouts)."""


def pool_over_ranks(curves: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-rank curves ``[R, H]``, each the mean over its rank's ``counts`` ``[R]`` valid trajectories -> the mean
    over all of them ``[H]`` and their number."""
    total = counts.sum()
    weights = counts.to(curves.dtype) / total.clamp(min=1)
    return (curves * weights[:, None]).sum(0), total


class ModelErrorCurve(L.Callback):
    """Logs ``model_error/c_<h>`` for ``h`` in ``1..horizon`` and writes ``plots/model_error.png``."""

    def __init__(self, horizon: int = 10, trajectories: int = 256) -> None:
        self.horizon, self.trajectories = horizon, trajectories

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if trainer.sanity_checking or not isinstance(pl_module, ModelErrorSource) or datamodule is None:
            return
        if not hasattr(datamodule, "sample_sequences") or len(getattr(datamodule, "buffer", ())) == 0:
            return
        if not pl_module.evaluation_ready():
            return
        with torch.no_grad():
            sequences = datamodule.sample_sequences(self.trajectories, self.horizon + 1)
            sequences = {k: v.to(pl_module.device) for k, v in sequences.items()}
            valid = window_is_one_episode(sequences["is_first"], sequences["terminated"] | sequences["truncated"])
            count = valid.sum()
            curve = torch.zeros(self.horizon, device=pl_module.device)
            if count > 0:
                curve = compounding_error(*pl_module.model_error_rollout(sequences), valid)
            if trainer.world_size > 1:  # each rank samples its own replay: the curve over every rank's trajectories
                curve, count = pool_over_ranks(pl_module.all_gather(curve), pl_module.all_gather(count))
            if count == 0:  # the same decision on every rank
                return
        accumulated = accumulated_from_curve(curve)
        for h, value in enumerate(curve.tolist(), start=1):
            pl_module.log(f"model_error/c_{h}", value, sync_dist=True)  # equal on every rank: keeps DDP quiet
        pl_module.log("model_error/accumulated", accumulated[-1], sync_dist=True)
        self._plot(trainer, plots_folder(trainer), curve.cpu(), accumulated.cpu())

    @rank_zero_only
    def _plot(self, trainer: L.Trainer, folder: Path, curve: torch.Tensor, accumulated: torch.Tensor) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
        steps = range(1, len(curve) + 1)
        left.plot(steps, curve.numpy(), marker="o")
        left.set(xlabel="horizon h", ylabel="c_h", title="compounding error")
        right.plot(steps, accumulated.numpy(), marker="o")
        right.set(xlabel="rollout step", ylabel="accumulated error", title="accumulated model error")
        fig.tight_layout()
        folder.mkdir(parents=True, exist_ok=True)
        fig.savefig(folder / "model_error.png", dpi=100)
        for logger in trainer.loggers:
            if hasattr(logger.experiment, "add_figure"):
                logger.experiment.add_figure("model_error", fig, global_step=trainer.global_step)
        plt.close(fig)
