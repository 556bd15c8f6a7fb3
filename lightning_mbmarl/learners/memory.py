"""Memory module for partial observability (MOMA-PPO §3.2 and Appendix A.1 "Memory module").

An agent's history ``h_t`` holds its last ``H`` (observation, encoded action) pairs *before* step ``t``,
oldest first: ``(o_{t-H}, a_{t-H}), ..., (o_{t-1}, a_{t-1})``. Steps before the episode start are padding,
marked False in ``history_mask``. The module turns a history into an embedding of size ``e_h`` that the
policy and value networks read next to the current observation ``o_t``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from lightning_mbmarl.learners.agent_nets import merge_agents, split_agents
from lightning_mbmarl.nn.batched import BatchedLinear

History = tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """Positional encodings of Vaswani et al. (2017), ``[length, dim]``."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    encoding = torch.zeros(length, dim)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency)[:, : dim // 2]
    return encoding


class MemoryModule(nn.Module):
    """History of ``(obs, action)`` pairs -> embedding, per agent (or one module shared by all agents).

    linear encoder to ``embed_dim`` + sinusoidal positions -> one layer of scaled dot-product self-attention
    (linear Q, K, V) with skip connection and LayerNorm -> soft-attention pooling (bias-less linear soft-key,
    a normally initialised trainable soft-query of size ``embed_dim``).
    """

    def __init__(
        self,
        n_agents: int,
        obs_dim: int,
        action_dim: int,
        memory_length: int,
        embed_dim: int = 128,
        share_parameters: bool = False,
    ) -> None:
        super().__init__()
        if memory_length < 1:
            raise ValueError(f"MemoryModule: memory_length must be >= 1, got {memory_length}")
        self.n_agents, self.memory_length, self.embed_dim = n_agents, memory_length, embed_dim
        self.share_parameters = share_parameters
        groups = 1 if share_parameters else n_agents
        self.encoder = BatchedLinear(groups, obs_dim + action_dim, embed_dim)
        self.qkv = BatchedLinear(groups, embed_dim, 3 * embed_dim)
        self.norm_weight = nn.Parameter(torch.ones(groups, 1, 1, embed_dim))
        self.norm_bias = nn.Parameter(torch.zeros(groups, 1, 1, embed_dim))
        self.soft_key = BatchedLinear(groups, embed_dim, embed_dim, bias=False)
        self.soft_query = nn.Parameter(torch.randn(groups, embed_dim))
        self.register_buffer("positions", sinusoidal_positions(memory_length, embed_dim), persistent=False)

    def _linear(self, layer: BatchedLinear, x: torch.Tensor) -> torch.Tensor:
        """Apply a batched layer to ``[G, M, H, in]`` -> ``[G, M, H, out]``."""
        g, m, h, _ = x.shape
        return layer(x.reshape(g, m * h, -1)).reshape(g, m, h, -1)

    def forward(
        self, history_obs: torch.Tensor, history_action: torch.Tensor, history_mask: torch.Tensor
    ) -> torch.Tensor:
        """history_obs ``[..., N, H, O]``, history_action ``[..., N, H, A]`` (encoded actions),
        history_mask bool ``[..., H]`` (True on real steps) -> embedding ``[..., N, embed_dim]``.

        Padded steps are never attended to; a history without any real step embeds to zeros.
        """
        lead, n, h = history_obs.shape[:-3], self.n_agents, self.memory_length
        if history_obs.shape[-3:-1] != (n, h) or history_mask.shape != (*lead, h):
            raise ValueError(
                f"MemoryModule expects history_obs [..., N={n}, H={h}, O] and history_mask [..., H], got "
                f"{tuple(history_obs.shape)} and {tuple(history_mask.shape)}"
            )
        real = history_mask.bool().unsqueeze(-2).expand(*lead, n, h)  # [..., N, H]
        x = torch.cat([history_obs, history_action.to(history_obs.dtype)], dim=-1)
        x = torch.where(real.unsqueeze(-1), x, 0.0)  # padded content never reaches the network
        x = split_agents(x, n, self.share_parameters, trailing=2)  # [G, M, H, O + A]
        real = split_agents(real, n, self.share_parameters)  # [G, M, H]

        x = self._linear(self.encoder, x) + self.positions
        q, k, v = self._linear(self.qkv, x).chunk(3, dim=-1)
        scores = (q @ k.transpose(-1, -2)).float() / math.sqrt(self.embed_dim)  # [G, M, H(query), H(key)]
        scores = scores.masked_fill(~real.unsqueeze(-2), torch.finfo(torch.float32).min)
        attended = scores.softmax(dim=-1).to(v.dtype) @ v
        y = F.layer_norm(x + attended, (self.embed_dim,)) * self.norm_weight + self.norm_bias  # [G, M, H, e]

        keys = self._linear(self.soft_key, y)
        logits = (keys * self.soft_query[:, None, None, :]).sum(dim=-1).float() / math.sqrt(self.embed_dim)
        weights = logits.masked_fill(~real, torch.finfo(torch.float32).min).softmax(dim=-1)  # [G, M, H]
        pooled = (weights.unsqueeze(-1).to(y.dtype) * y).sum(dim=-2)  # [G, M, e]
        pooled = torch.where(real.any(dim=-1, keepdim=True), pooled, 0.0)
        return merge_agents(pooled, lead, n, self.share_parameters)


def push_history(
    history_obs: torch.Tensor,
    history_action: torch.Tensor,
    history_mask: torch.Tensor,
    obs: torch.Tensor,
    action_features: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Drop the oldest step and append ``(obs [..., N, O], action_features [..., N, A])`` as a real step.

    Histories as in :class:`MemoryModule`: ``[..., N, H, O]``, ``[..., N, H, A]``, bool ``[..., H]``. An empty
    history (``H = 0``, memory disabled) stays empty.
    """
    if history_mask.shape[-1] == 0:
        return history_obs, history_action, history_mask
    return (
        torch.cat([history_obs[..., 1:, :], obs.unsqueeze(-2).to(history_obs.dtype)], dim=-2),
        torch.cat([history_action[..., 1:, :], action_features.unsqueeze(-2).to(history_action.dtype)], dim=-2),
        torch.cat([history_mask[..., 1:], torch.ones_like(history_mask[..., :1])], dim=-1),
    )


def clear_histories(
    history: tuple[torch.Tensor, torch.Tensor, torch.Tensor], done: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reset to all-padding the histories of the copies whose episode ended (``done`` bool ``[B]``; histories
    ``[B, ...]``), so each starts its next episode empty."""
    return tuple(h.masked_fill(done.view(-1, *[1] * (h.dim() - 1)), 0) for h in history)


def empty_history(
    batch_size: int,
    n_agents: int,
    memory_length: int,
    obs_dim: int,
    action_dim: int,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An all-padding history for episode starts: zeros ``[B, N, H, O]``, ``[B, N, H, A]`` and mask False ``[B, H]``."""
    return (
        torch.zeros(batch_size, n_agents, memory_length, obs_dim, device=device),
        torch.zeros(batch_size, n_agents, memory_length, action_dim, device=device),
        torch.zeros(batch_size, memory_length, dtype=torch.bool, device=device),
    )


def history_from(batch: Mapping[str, torch.Tensor]) -> History:
    """``(history_obs, history_action, history_mask)`` of a batch, None where absent (memory disabled)."""
    return batch.get("history_obs"), batch.get("history_action"), batch.get("history_mask")
