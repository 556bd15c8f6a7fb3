"""The distributions policies produce over padded actions, shared by learners and by world models' opponent models.

Each offers ``sample(generator=None)``, ``log_prob(actions) -> [..., N]``, ``entropy() -> [..., N]`` and ``mode()``
(the greedy action), computed in float32 whatever the network's dtype, and padded choices / dimensions
(``EnvSpec.action_mask``) never count.
"""

from __future__ import annotations

import math

import torch

# Logit given to unavailable choices: exp() of it underflows to exactly 0 in float32, while log-probs of
# unavailable choices (and products of them with PPO ratios) stay finite.
MASKED_LOGIT = -1e9
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class MaskedCategorical:
    """Categorical over ``action_dim`` choices per agent; unavailable choices have probability exactly 0.

    logits: ``[..., N, A]``; avail: bool ``[..., N, A]``. A row with no available choice at all (which a
    well-formed environment never produces) is treated as if every choice were available.
    """

    def __init__(self, logits: torch.Tensor, avail: torch.Tensor) -> None:
        avail = avail.bool()
        self.avail = avail | ~avail.any(dim=-1, keepdim=True)
        self.log_probs = torch.where(self.avail, logits.float(), MASKED_LOGIT).log_softmax(dim=-1)

    @property
    def probs(self) -> torch.Tensor:
        return self.log_probs.exp()

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """int64 ``[..., N]``."""
        probs = self.probs
        flat = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
        return flat.reshape(probs.shape[:-1])

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """``actions`` int64 ``[..., N]`` -> float32 ``[..., N]``."""
        return self.log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        """float32 ``[..., N]``."""
        return -torch.where(self.avail, self.probs * self.log_probs, 0.0).sum(dim=-1)

    def mode(self) -> torch.Tensor:
        """Most likely available choice, int64 ``[..., N]``."""
        return self.log_probs.argmax(dim=-1)


class PaddedGaussian:
    """Diagonal Gaussian per agent without squashing; padded dimensions are excluded and sampled as 0.

    mean, std: ``[..., N, A]``; action_mask: bool ``[N, A]`` (True on each agent's real dimensions).
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, action_mask: torch.Tensor) -> None:
        self.mean, self.std, self.action_mask = mean.float(), std.float(), action_mask

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """float32 ``[..., N, A]``, unbounded (the action penalty, not a tanh, keeps actions near the bounds)."""
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=torch.float32)
        return torch.where(self.action_mask, self.mean + self.std * noise, 0.0)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """``actions`` ``[..., N, A]`` -> float32 ``[..., N]`` (sum over real dimensions)."""
        z = (actions.float() - self.mean) / self.std
        per_dim = -0.5 * z.square() - self.std.log() - _HALF_LOG_2PI
        return torch.where(self.action_mask, per_dim, 0.0).sum(dim=-1)

    def entropy(self) -> torch.Tensor:
        """float32 ``[..., N]``."""
        per_dim = 0.5 + _HALF_LOG_2PI + self.std.log()
        return torch.where(self.action_mask, per_dim, 0.0).sum(dim=-1)

    def mode(self) -> torch.Tensor:
        """The mean, float32 ``[..., N, A]`` (0 on padded dimensions)."""
        return torch.where(self.action_mask, self.mean, 0.0)


Distribution = MaskedCategorical | PaddedGaussian
