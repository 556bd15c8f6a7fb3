"""Per-agent policy heads over padded actions (their distributions: :mod:`lightning_mbmarl.nn.distributions`).

Every policy is called as ``dist = policy(features [..., N, F], avail [..., N, action_dim] | None)`` and the
distribution offers ``sample(generator=None)``, ``log_prob(actions) -> [..., N]``, ``entropy() -> [..., N]`` and
``mode()`` (the greedy action). Log-probabilities and entropies are computed in float32 whatever the network's
dtype (bf16 autocast may be active), and padded choices / dimensions (``EnvSpec.action_mask``) never count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.agent_nets import AgentMLP
from lightning_mbmarl.nn.distributions import MaskedCategorical, PaddedGaussian


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
        return self.distribution(self.net(features))

    def forward_one_hot(self, dense: torch.Tensor, hot: torch.Tensor, avail: torch.Tensor | None) -> PaddedGaussian:
        """:meth:`forward` on features given as ``dense [..., N, d]`` and hot columns int64 ``[..., N, J]``
        (:meth:`AgentMLP.forward_one_hot`)."""
        return self.distribution(self.net.forward_one_hot(dense, hot))

    def distribution(self, outputs: torch.Tensor) -> PaddedGaussian:
        """The Gaussian of the network's outputs ``[..., N, 2A]`` (means, then raw standard deviations)."""
        mean, raw_std = outputs.float().chunk(2, dim=-1)
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
