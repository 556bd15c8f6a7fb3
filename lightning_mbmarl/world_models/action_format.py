"""What the latent world models (MAMBA's RSSM, MABL's bi-level model) do with actions of either kind.

* **Transition inputs**: a discrete choice enters as its one-hot; a continuous action as the vector itself, clipped
  to the action box (``[-1, 1]`` in every adapter here), which is what the environment executes (MaMuJoCo and MPE
  clip the same way), so the model never sees an action outside the box.
* **Action decoder** (the mutual-information "info" term, which keeps each agent's latent informative about its own
  action): logits and a cross-entropy for discrete actions; for continuous ones a diagonal Gaussian, the head's
  output split into ``[mean, raw std]`` with ``std = softplus(raw) + DECODER_MIN_STD``, and the term its negative
  log-likelihood summed over each agent's real dimensions. (MAMBA's and MABL's released code have discrete actions
  only; the Gaussian likelihood is the issue's specification.)
* **Availability**: continuous spaces have no available-action head; every real dimension is always available.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lightning_mbmarl.envs.actions import encode_actions
from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.nn.distributions import MaskedCategorical, PaddedGaussian

#: Smallest standard deviation of the continuous action decoder: keeps its likelihood bounded when it is sure.
DECODER_MIN_STD = 0.1


@dataclass(frozen=True)
class ActionFormat:
    """How a world model reads and predicts the actions of one environment (see the module docstring)."""

    spec: EnvSpec

    @property
    def discrete(self) -> bool:
        return self.spec.discrete

    @property
    def decoder_width(self) -> int:
        """Outputs of the action decoder: ``A`` logits, or ``A`` means and ``A`` raw standard deviations."""
        return self.spec.action_dim if self.discrete else 2 * self.spec.action_dim

    def inputs(self, actions: torch.Tensor) -> torch.Tensor:
        """Transition inputs ``float [..., N, A]`` of int64 choices ``[..., N]`` or continuous ``[..., N, A]``: the
        package's action encoding (:func:`~lightning_mbmarl.envs.actions.encode_actions`), continuous actions clipped
        to the box."""
        encoded = encode_actions(actions, self.spec)
        return encoded if self.discrete else encoded.clamp(self.spec.action_low, self.spec.action_high)

    def decoder_distribution(self, outputs: torch.Tensor, action_mask: torch.Tensor) -> PaddedGaussian:
        """The continuous decoder's Gaussian from its outputs ``[..., N, 2A]`` (``action_mask`` bool ``[N, A]``)."""
        mean, raw_std = outputs.float().chunk(2, dim=-1)
        return PaddedGaussian(mean, F.softplus(raw_std) + DECODER_MIN_STD, action_mask)

    def decoder_nll(self, outputs: torch.Tensor, actions: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of the taken actions under the decoder's outputs: ``[..., N]`` (float32).

        Discrete: cross-entropy among each agent's real choices (``actions`` int64 ``[..., N]``); continuous: the
        Gaussian NLL summed over real dimensions of the actions as the model read them (clipped to the box).
        """
        if self.discrete:
            return -MaskedCategorical(outputs, action_mask.expand(outputs.shape)).log_prob(actions)
        return -self.decoder_distribution(outputs, action_mask).log_prob(self.inputs(actions))

    def all_available(self, leading: torch.Size | tuple[int, ...], action_mask: torch.Tensor) -> torch.Tensor:
        """Availability of a continuous space: every real dimension, ``bool [*leading, N, A]``."""
        return action_mask.expand(*leading, *action_mask.shape)
