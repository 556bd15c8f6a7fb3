"""MAG's model-reward predictor R̂_m: how wrong the world model is likely to be on a transition it predicts.

MAG (Wu et al., AAAI 2023, "Approximating R_m") trains a network on real transitions with the model's prediction
errors as labels, then lets the local models plan against it. Here the labels are the per-step, per-agent
model errors that :func:`~lightning_mbmarl.world_models.rssm_losses.world_model_loss` returns (``model_error
[B, L, N]``: KL, reconstruction, reward, continuation, availability and info terms of each transition), and the
input is what a rollout knows of the same transition: the prior state the model predicted, whose features
``[deter, stoch]`` hold the deterministic summary of ``(s_t, a_t)`` and the sampled prediction. In planning the
candidates' states are exactly such prior states.

Team error of a transition = sum over agents of the per-agent predictions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightning_mbmarl.nn.fast_path import Float32OutputLinear
from lightning_mbmarl.world_models.rssm import ObservedSequence, RSSMWorldModel
from lightning_mbmarl.world_models.rssm_losses import world_model_loss


@dataclass
class ModelRewardConfig:
    """Size and optimiser of R̂_m (defaults: the released MAG code's DenseModel, 4 x 256 ELU, lr 5e-4)."""

    hidden: int = 256  # width of every hidden layer
    layers: int = 4  # hidden layers (ELU)
    learning_rate: float = 5e-4  # Adam step size
    grad_clip: float = 100.0  # gradient-norm clip


class ModelRewardPredictor(nn.Module):
    """Per-agent predicted model error of the transition that led to a prior state: ``[..., N, F] -> [..., N]``."""

    def __init__(self, feature_dim: int, config: ModelRewardConfig | None = None) -> None:
        super().__init__()
        c = self.config = config or ModelRewardConfig()
        sizes = [feature_dim] + [c.hidden] * c.layers
        modules: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            modules += [nn.Linear(a, b), nn.ELU()]
        self.net = nn.Sequential(*modules, Float32OutputLinear(sizes[-1], 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(-1)


def model_reward_loss(
    predictor: ModelRewardPredictor, prior_features: torch.Tensor, model_error: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Smooth-L1 between R̂_m and the model errors (float32): prior_features ``[B, L, N, F]`` (detached),
    model_error ``[B, L, N]``. Returns ``loss`` (with gradients) and ``mean_error`` (detached label mean)."""
    predicted = predictor(prior_features.detach()).float()
    loss = F.smooth_l1_loss(predicted, model_error.float())
    return {"loss": loss, "mean_error": model_error.float().mean()}


class _Observing:
    """Stands in for an :class:`RSSMWorldModel` and keeps what its ``observe`` returned."""

    def __init__(self, model: RSSMWorldModel) -> None:
        self.model = model
        self.observed: ObservedSequence | None = None

    def observe(self, batch: dict[str, torch.Tensor]) -> ObservedSequence:
        self.observed = self.model.observe(batch)
        return self.observed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def world_model_loss_and_sequence(
    model: RSSMWorldModel, batch: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], ObservedSequence]:
    """:func:`world_model_loss` and the filtered sequence it computed (so R̂_m's inputs ``observed.prior`` and its
    labels ``losses["model_error"]`` come from one pass, with the same latent samples)."""
    observing = _Observing(model)
    losses = world_model_loss(observing, batch)  # type: ignore[arg-type]
    assert observing.observed is not None
    return losses, observing.observed
