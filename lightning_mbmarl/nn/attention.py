"""Self-attention across the agent axis (MAMBA's transition mixes the agents' inputs with it).

Each agent's vector attends to every agent's vector of the same sample; a learned per-agent embedding is added
first so the shared weights can tell agents apart. Any leading batch shape is accepted: ``[..., N, W]`` is
flattened to ``[M, N, W]`` for the transformer layers and restored afterwards.

The layers are PyTorch's post-norm ReLU ``TransformerEncoderLayer`` (its parameters, names and initialisation, so
checkpoints are unchanged) with a forward of fewer operations that mixes the agents in float32: under bf16 autocast
this CPU's bf16 attention is slower than its float32 one (forward + backward of 1000 x 5 agents x 128 wide, 2 heads:
24 against 30 ms for the whole layer; 320 x 5, 4 heads: 8.3 against 12.4 ms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AgentEncoderLayer(nn.TransformerEncoderLayer):
    """``TransformerEncoderLayer(width, heads, feedforward, dropout, batch_first=True)``: ``[M, N, width] -> [M, N,
    width]``, the same computation (dropout on the attention weights, after the attention and inside and after the
    feed-forward, in train mode) with the attention itself in float32, its result back in the projections' dtype
    (bf16 under autocast or in a bf16 copy of the model, such as MAG's look-ahead)."""

    def __init__(self, width: int, heads: int, feedforward: int, dropout: float) -> None:
        super().__init__(width, heads, feedforward, dropout, batch_first=True)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        samples, agents, width = h.shape
        attention = self.self_attn
        qkv = F.linear(h, attention.in_proj_weight, attention.in_proj_bias)
        q, k, v = qkv.float().view(samples, agents, 3, attention.num_heads, -1).permute(2, 0, 3, 1, 4)  # [M, h, N, d]
        with torch.autocast(h.device.type, enabled=False):
            mixed = F.scaled_dot_product_attention(q, k, v, dropout_p=attention.dropout if self.training else 0.0)
        mixed = attention.out_proj(mixed.to(qkv.dtype).transpose(1, 2).reshape(samples, agents, width))
        h = self.norm1(h + self.dropout1(mixed))
        return self.norm2(h + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(h))))))


class AgentAttention(nn.Module):
    """A stack of transformer encoder layers over agents: ``[..., N, width] -> [..., N, width]``."""

    def __init__(self, n_agents: int, width: int, layers: int, heads: int, feedforward: int, dropout: float) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"AgentAttention: width {width} must be divisible by the number of heads {heads}")
        self.n_agents = n_agents
        self.agent_embedding = nn.Parameter(0.02 * torch.randn(n_agents, width))
        self.layers = nn.ModuleList(AgentEncoderLayer(width, heads, feedforward, dropout) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[-2] != self.n_agents:
            raise ValueError(f"AgentAttention expects [..., N={self.n_agents}, width], got {tuple(x.shape)}")
        lead = x.shape[:-2]
        h = (x + self.agent_embedding).reshape(-1, *x.shape[-2:])
        for layer in self.layers:
            h = layer(h)
        return h.reshape(*lead, *h.shape[-2:])
