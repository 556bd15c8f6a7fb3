"""``last.ckpt`` after every evaluation, whatever else is saved.

Lightning's ``ModelCheckpoint(save_last=True, save_top_k=0)`` writes ``last.ckpt`` at validation only when it also
wrote a top-k checkpoint there, so with ``save_top_k=0`` a run had no checkpoint until it ended (an hour into
MOMA-PPO's Ant world-model phase, nothing to resume). :class:`LastCheckpoint` writes it at the end of every
validation (every ``trainer.val_check_interval`` training steps) and at the end of training, always to the run
folder's own ``checkpoints/last.ckpt`` (a resumed run overwrites it: no ``last-v1.ckpt``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from typing_extensions import override


class LastCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that keeps ``last.ckpt`` current at every validation (see the module docstring)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**{"save_last": True, "save_top_k": 0, **options, "enable_version_counter": False})

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._save_last_if_behind(trainer)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save_last_if_behind(trainer)  # Lightning's saves here only if no last.ckpt was written yet

    def _save_last_if_behind(self, trainer: L.Trainer) -> None:
        if not self._should_skip_saving_checkpoint(trainer) and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
