"""Tanh-squashed Gaussian policies for bounded continuous actions (SAC-style actors).

An action is ``a = center + half_range * tanh(u)`` with ``u ~ N(mean, std)`` per dimension, so it always lies in
``[low, high]``. Its log-density carries the change-of-variables correction

    log pi(a) = sum_d [ log N(u_d; mean_d, std_d) - log(1 - tanh(u_d)^2) - log(half_range) ],

with ``log(1 - tanh(u)^2)`` computed as ``2 (log 2 - u - softplus(-2u))`` (exact, and finite for large ``|u|``).
Padded action dimensions (``EnvSpec.action_mask``) are sampled as 0 and never count.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.agent_nets import AgentMLP

# Bounds on the pre-squash log standard deviation: wide enough for exploration, narrow enough to keep log-probs finite.
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def log_one_minus_tanh_squared(u: torch.Tensor) -> torch.Tensor:
    """``log(1 - tanh(u)^2)``, elementwise and stable for large ``|u|``."""
    return 2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))


class TanhGaussian:
    """Per-agent tanh-squashed diagonal Gaussian over ``[low, high]``.

    mean, log_std: ``[..., N, A]`` (log_std already bounded); action_mask: bool ``[N, A]``. Everything is float32.
    """

    def __init__(
        self, mean: torch.Tensor, log_std: torch.Tensor, action_mask: torch.Tensor, low: float = -1.0, high: float = 1.0
    ) -> None:
        self.mean, self.log_std, self.action_mask = mean.float(), log_std.float(), action_mask
        self.center, self.half_range = 0.5 * (high + low), 0.5 * (high - low)

    def log_prob_of_pre_squash(self, u: torch.Tensor) -> torch.Tensor:
        """Log-density of the squashed action ``center + half_range * tanh(u)``: ``u [..., N, A] -> [..., N]``."""
        z = (u - self.mean) / self.log_std.exp()
        gaussian = -0.5 * z.square() - self.log_std - _HALF_LOG_2PI
        per_dim = gaussian - log_one_minus_tanh_squared(u) - math.log(self.half_range)
        return torch.where(self.action_mask, per_dim, 0.0).sum(dim=-1)

    def rsample(self, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised ``(action [..., N, A], log_prob [..., N])``; gradients flow to mean and log_std."""
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=torch.float32)
        u = self.mean + self.log_std.exp() * noise
        action = torch.where(self.action_mask, self.center + self.half_range * torch.tanh(u), 0.0)
        return action, self.log_prob_of_pre_squash(u)

    def mode(self) -> torch.Tensor:
        """The squashed mean (the greedy action), ``[..., N, A]`` with 0 on padded dimensions."""
        return torch.where(self.action_mask, self.center + self.half_range * torch.tanh(self.mean), 0.0)


class TanhGaussianPolicy(nn.Module):
    """Per-agent ``features [..., N, F] -> TanhGaussian`` over the spec's action box (one batched MLP, all agents)."""

    def __init__(self, spec: EnvSpec, in_features: int, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        self.low, self.high = spec.action_low, spec.action_high
        self.net = AgentMLP(spec.n_agents, in_features, 2 * spec.action_dim, hidden)
        self.register_buffer("action_mask", torch.as_tensor(spec.action_mask()), persistent=False)

    def forward(self, features: torch.Tensor, avail: torch.Tensor | None = None) -> TanhGaussian:
        """avail is accepted for the common policy interface and ignored (continuous actions are always available)."""
        mean, log_std = self.net(features).float().chunk(2, dim=-1)
        return TanhGaussian(mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX), self.action_mask, self.low, self.high)
