"""Self-attention across the agent axis (MAMBA's transition mixes the agents' inputs with it).

Each agent's vector attends to every agent's vector of the same sample; a learned per-agent embedding is added
first so the shared weights can tell agents apart. Any leading batch shape is accepted: ``[..., N, W]`` is
flattened to ``[M, N, W]`` for the transformer layers and restored afterwards.
"""

from __future__ import annotations

import torch
from torch import nn


class AgentAttention(nn.Module):
    """A stack of transformer encoder layers over agents: ``[..., N, width] -> [..., N, width]``."""

    def __init__(self, n_agents: int, width: int, layers: int, heads: int, feedforward: int, dropout: float) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"AgentAttention: width {width} must be divisible by the number of heads {heads}")
        self.n_agents = n_agents
        self.agent_embedding = nn.Parameter(0.02 * torch.randn(n_agents, width))
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(width, heads, feedforward, dropout, batch_first=True) for _ in range(layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[-2] != self.n_agents:
            raise ValueError(f"AgentAttention expects [..., N={self.n_agents}, width], got {tuple(x.shape)}")
        lead = x.shape[:-2]
        h = (x + self.agent_embedding).reshape(-1, *x.shape[-2:])
        for layer in self.layers:
            h = layer(h)
        return h.reshape(*lead, *h.shape[-2:])
