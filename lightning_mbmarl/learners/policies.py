"""Per-agent policy heads and the distributions they produce over padded actions.

Every policy is called as ``dist = policy(features [..., N, F], avail [..., N, action_dim] | None)`` and the
distribution offers ``sample(generator=None)``, ``log_prob(actions) -> [..., N]``, ``entropy() -> [..., N]`` and
``mode()`` (the greedy action). Log-probabilities and entropies are computed in float32 whatever the network's
dtype (bf16 autocast may be active), and padded choices / dimensions (``EnvSpec.action_mask``) never count.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.agent_nets import AgentMLP

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


class CategoricalPolicy(nn.Module):
    """Per-agent logits ``[..., N, F] -> MaskedCategorical`` over ``spec.action_dim`` padded choices."""

    def __init__(
        self, spec: EnvSpec, in_features: int, hidden: tuple[int, ...] = (256, 256), share_parameters: bool = False
    ) -> None:
        super().__init__()
        self.net = AgentMLP(spec.n_agents, in_features, spec.action_dim, hidden, share_parameters)
        self.register_buffer("action_mask", torch.as_tensor(spec.action_mask()), persistent=False)

    def forward(self, features: torch.Tensor, avail: torch.Tensor | None = None) -> MaskedCategorical:
        """avail: bool ``[..., N, A]``; None means every real choice is available."""
        return self.distribution(self.net(features), avail)

    def forward_one_hot(self, dense: torch.Tensor, hot: torch.Tensor, avail: torch.Tensor | None) -> MaskedCategorical:
        """:meth:`forward` on features given as ``dense [..., N, d]`` and hot columns int64 ``[..., N, J]``
        (:meth:`AgentMLP.forward_one_hot`)."""
        return self.distribution(self.net.forward_one_hot(dense, hot), avail)

    def distribution(self, logits: torch.Tensor, avail: torch.Tensor | None) -> MaskedCategorical:
        """The masked distribution of logits ``[..., N, A]`` (avail as in :meth:`forward`)."""
        allowed = self.action_mask if avail is None else avail.bool() & self.action_mask
        return MaskedCategorical(logits, allowed.expand(logits.shape))


class GaussianPolicy(nn.Module):
    """Per-agent state-dependent mean and std ``[..., N, F] -> PaddedGaussian`` (no tanh squashing, A.1).

    std = softplus(head) + min_std.
    """

    def __init__(
        self,
        spec: EnvSpec,
        in_features: int,
        hidden: tuple[int, ...] = (256, 256),
        share_parameters: bool = False,
        min_std: float = 1e-3,
    ) -> None:
        super().__init__()
        self.min_std = min_std
        self.net = AgentMLP(spec.n_agents, in_features, 2 * spec.action_dim, hidden, share_parameters)
        self.register_buffer("action_mask", torch.as_tensor(spec.action_mask()), persistent=False)

    def forward(self, features: torch.Tensor, avail: torch.Tensor | None = None) -> PaddedGaussian:
        """avail is accepted for the common interface and ignored (continuous actions are always available)."""
        mean, raw_std = self.net(features).float().chunk(2, dim=-1)
        return PaddedGaussian(mean, F.softplus(raw_std) + self.min_std, self.action_mask)


def make_policy(
    spec: EnvSpec,
    in_features: int,
    hidden: tuple[int, ...] = (256, 256),
    share_parameters: bool = False,
    min_std: float = 1e-3,
) -> CategoricalPolicy | GaussianPolicy:
    """The policy head matching ``spec.action_kind``."""
    if spec.discrete:
        return CategoricalPolicy(spec, in_features, hidden, share_parameters)
    return GaussianPolicy(spec, in_features, hidden, share_parameters, min_std)


def action_bound_penalty(
    actions: torch.Tensor,
    low: float = -1.0,
    high: float = 1.0,
    action_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Squared excess beyond ``[low, high]`` summed over action dimensions (A.1): ``[..., N, A] -> [..., N]``.

    action_mask: bool ``[N, A]`` (``EnvSpec.action_mask``); padded dimensions do not count.
    """
    a = actions.float()
    excess = (a - high).clamp_min(0.0) + (low - a).clamp_min(0.0)
    squared = excess.square()
    if action_mask is not None:
        squared = torch.where(action_mask, squared, 0.0)
    return squared.sum(dim=-1)
