"""QMIX-style value decomposition of the centralised critic (MOMA-PPO §3.2)."""

from __future__ import annotations

import torch
from torch import nn

from lightning_mbmarl.nn.batched import BatchedMLP


class ValueMixer(nn.Module):
    """``V(s) = sum_i w_i(s) V_i(h_i) + b(s)`` with ``w`` and ``b`` from one state-conditioned MLP.

    ``monotonic`` takes ``|w|`` as in QMIX, so V grows with every agent's value.
    """

    def __init__(
        self, n_agents: int, state_dim: int, hidden: tuple[int, ...] = (256, 256), monotonic: bool = True
    ) -> None:
        super().__init__()
        self.n_agents, self.state_dim, self.monotonic = n_agents, state_dim, monotonic
        self.hypernet = BatchedMLP(1, state_dim, n_agents + 1, hidden)

    def mixing(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """state ``[..., S]`` -> (weights ``[..., N]``, bias ``[...]``), float32."""
        lead = state.shape[:-1]
        out = self.hypernet(state.reshape(1, -1, self.state_dim)).reshape(*lead, self.n_agents + 1).float()
        weights, bias = out[..., : self.n_agents], out[..., self.n_agents]
        return (weights.abs() if self.monotonic else weights), bias

    def forward(self, agent_values: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """agent_values ``[..., N]``, state ``[..., S]`` -> team value float32 ``[...]``."""
        weights, bias = self.mixing(state)
        return (weights * agent_values.float()).sum(dim=-1) + bias
