"""Per-agent networks: ``N`` independent MLPs in one batched matmul, or one MLP shared by all agents.

With ``share_parameters`` the agents' rows are stacked into a single group (``G = 1``) and an agent one-hot
is appended to the input so the shared network can still tell agents apart; otherwise agent ``i`` is group
``i`` of a :class:`~lightning_mbmarl.nn.batched.BatchedMLP` (``G = N``).
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_mbmarl.nn.batched import BatchedMLP
from lightning_mbmarl.nn.one_hot_input import OneHotInputMLP


def split_agents(x: torch.Tensor, n_agents: int, shared: bool, trailing: int = 1) -> torch.Tensor:
    """``[*lead, N, *T] -> [G, M, *T]`` with ``len(T) == trailing``.

    Per-agent: ``G = N``, ``M = prod(lead)``; shared: ``G = 1``, ``M = prod(lead) * N``.
    """
    trail = x.shape[x.dim() - trailing :]
    if x.shape[x.dim() - trailing - 1] != n_agents:
        raise ValueError(f"expected the agent axis N={n_agents} before {tuple(trail)}, got shape {tuple(x.shape)}")
    rows = x.reshape(-1, n_agents, *trail)
    return rows.reshape(1, -1, *trail) if shared else rows.transpose(0, 1)


def merge_agents(y: torch.Tensor, lead: torch.Size | tuple[int, ...], n_agents: int, shared: bool) -> torch.Tensor:
    """Inverse of :func:`split_agents`: ``[G, M, *T] -> [*lead, N, *T]``."""
    trail = y.shape[2:]
    rows = y.reshape(-1, n_agents, *trail) if shared else y.transpose(0, 1)
    return rows.reshape(*lead, n_agents, *trail)


class AgentMLP(nn.Module):
    """Per-agent MLPs ``[..., N, in] -> [..., N, out]`` (independent, or shared with an agent one-hot)."""

    def __init__(
        self,
        n_agents: int,
        in_features: int,
        out_features: int,
        hidden: tuple[int, ...] = (256, 256),
        share_parameters: bool = False,
    ) -> None:
        super().__init__()
        self.n_agents, self.share_parameters, self.in_features = n_agents, share_parameters, in_features
        groups = 1 if share_parameters else n_agents
        extra = n_agents if share_parameters else 0
        self.net = BatchedMLP(groups, in_features + extra, out_features, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-2]
        if self.share_parameters:
            ids = torch.eye(self.n_agents, dtype=x.dtype, device=x.device).expand(*lead, -1, -1)
            x = torch.cat([x, ids], dim=-1)
        y = self.net(split_agents(x, self.n_agents, self.share_parameters))
        return merge_agents(y, lead, self.n_agents, self.share_parameters)

    def forward_one_hot(self, dense: torch.Tensor, hot: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` on inputs given as their first ``d`` columns ``dense [..., N, d]`` and the columns
        (``>= d``) that hold a 1 ``hot`` int64 ``[..., N, J]``, all others 0 (see
        :func:`~lightning_mbmarl.nn.one_hot_input.one_hot_input_linear`): ``[..., N, out]``."""
        lead, shared = dense.shape[:-2], self.share_parameters
        if shared:  # the agent one-hot is one more hot column
            ids = torch.arange(self.in_features, self.in_features + self.n_agents, device=hot.device)
            hot = torch.cat([hot, ids.view(-1, 1).expand(*lead, -1, 1)], dim=-1)
        y = OneHotInputMLP(self.net.net)(
            split_agents(dense, self.n_agents, shared), split_agents(hot, self.n_agents, shared)
        )
        return merge_agents(y, lead, self.n_agents, shared)


def agent_batch_mean(values: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per-agent mean over the batch: ``values [..., B, N] -> [..., N]``.

    ``weights [B, N]`` (optional) say how much each sample counts for each agent; AORPO gives each agent only the
    transitions of its own ego rollouts (weight 1) and every agent the real transitions.
    """
    if weights is None:
        return values.mean(dim=-2)
    weights = weights.to(values.dtype)
    return (values * weights).sum(dim=-2) / weights.sum(dim=0).clamp_min(1e-8)
