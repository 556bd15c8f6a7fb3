"""Fitting a Gaussian dynamics ensemble, the same way for every method that has one (the split of MBRL-Lib: the
model in ``ensemble.py`` / ``ego_ensembles.py``, its fitting here, its use in ``model_env.py`` and the rollouts).

:class:`EnsembleFitting` computes the bootstrapped loss of a training batch under the method's fast path, and on
evaluation data each member's error and, when asked, the choice of elites, with the names they are logged under
(``<prefix>/<loss term>``, ``<prefix>/<data>_error``, ``<prefix>/elite_<data>_error``). The gradient step itself
stays with the method (Lightning's manual optimisation). MOMA-PPO fits one ensemble in an offline phase with a
held-out split; AORPO refits its per-ego ensembles every few environment steps, scored on recent data.
"""

from __future__ import annotations

from typing import Protocol

import torch

from lightning_mbmarl.nn.fast_path import FastPath

Batch = dict[str, torch.Tensor]


class FittableEnsemble(Protocol):
    """What :class:`EnsembleFitting` needs of a model (``GaussianEnsemble``, ``EgoEnsembles``)."""

    def loss(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``loss`` (scalar) and per-member terms [E] of a training batch (bootstrap weights per member)."""
        ...

    def held_out_errors(self, batch: Batch) -> torch.Tensor:
        """Each member's error [E] on ``batch``."""
        ...

    def choose_elites(self, errors: torch.Tensor) -> torch.Tensor:
        """Keep the members with the lowest ``errors`` [E] as elites; their indices."""
        ...


class EnsembleFitting:
    """Loss, evaluation and elite choice of one ensemble, logged under ``prefix`` (see the module docstring)."""

    def __init__(self, model: FittableEnsemble, fast: FastPath, prefix: str) -> None:
        self.model, self.fast, self.prefix = model, fast, prefix

    def loss(self, batch: Batch, device: torch.device) -> dict[str, torch.Tensor]:
        """The model's loss terms on a training batch, under the fast path (bf16 autocast, compile as configured)."""
        with self.fast.autocast(device):
            return self.fast.compile(f"{self.prefix}_loss", self.model.loss)(batch)

    def loss_logs(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every loss term, averaged over members: ``<prefix>/<term>``."""
        return {f"{self.prefix}/{key}": value.detach().mean() for key, value in losses.items()}

    @torch.no_grad()
    def evaluate(self, batch: Batch, choose_elites: bool, data: str = "held_out") -> dict[str, torch.Tensor]:
        """The members' mean error on ``batch`` (``<prefix>/<data>_error``: ``held_out`` for data the model was not
        fitted on); with ``choose_elites``, the new elites' mean error too (``<prefix>/elite_<data>_error``)."""
        errors = self.model.held_out_errors(batch)
        logs = {f"{self.prefix}/{data}_error": errors.mean()}
        if choose_elites:
            logs[f"{self.prefix}/elite_{data}_error"] = errors[self.model.choose_elites(errors)].mean()
        return logs
