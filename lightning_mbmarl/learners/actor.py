"""Decentralised actors: per-agent policies on ``[obs ⊕ memory embedding]``, shared by MAPPO and BC."""

from __future__ import annotations

import torch
from torch import nn

from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.memory import MemoryModule
from lightning_mbmarl.learners.policies import CategoricalPolicy, GaussianPolicy, make_policy
from lightning_mbmarl.nn.distributions import Distribution


class Actor(nn.Module):
    """Memory module (optional) + per-agent policy head.

    ``memory_length = 0`` disables the memory: the policy reads the observation alone and history arguments
    are ignored. Otherwise histories are required, shaped as in :class:`MemoryModule`.
    """

    def __init__(
        self,
        spec: EnvSpec,
        hidden: tuple[int, ...] = (256, 256),
        share_parameters: bool = False,
        memory_length: int = 10,
        memory_dim: int = 128,
        min_std: float = 1e-3,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.memory = (
            MemoryModule(spec.n_agents, spec.obs_dim, spec.action_dim, memory_length, memory_dim, share_parameters)
            if memory_length > 0
            else None
        )
        self.feature_dim = spec.obs_dim + (memory_dim if self.memory is not None else 0)
        self.policy: CategoricalPolicy | GaussianPolicy = make_policy(
            spec, self.feature_dim, hidden, share_parameters, min_std
        )

    def features(
        self,
        obs: torch.Tensor,
        history_obs: torch.Tensor | None = None,
        history_action: torch.Tensor | None = None,
        history_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The memory-enhanced observation ``h_t``: ``obs [..., N, O] -> [..., N, feature_dim]``."""
        if self.memory is None:
            return obs
        if history_obs is None or history_action is None or history_mask is None:
            raise ValueError(
                "Actor: the memory module is enabled, so history_obs, history_action and history_mask are required"
            )
        embedding = self.memory(history_obs, history_action, history_mask)
        return torch.cat([obs.to(embedding.dtype), embedding], dim=-1)

    def forward(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor | None = None,
        history_obs: torch.Tensor | None = None,
        history_action: torch.Tensor | None = None,
        history_mask: torch.Tensor | None = None,
    ) -> Distribution:
        """Per-agent action distributions; avail bool ``[..., N, A]`` (discrete; None = all real choices)."""
        return self.policy(self.features(obs, history_obs, history_action, history_mask), avail)

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        avail: torch.Tensor | None = None,
        history_obs: torch.Tensor | None = None,
        history_action: torch.Tensor | None = None,
        history_mask: torch.Tensor | None = None,
        greedy: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled (or greedy) actions and their float32 log-probs ``[..., N]``; no gradients.

        Actions are int64 ``[..., N]`` or float32 ``[..., N, A]``; continuous actions are not clipped (clip them
        for the environment, keep them unclipped for the PPO ratio).
        """
        dist = self(obs, avail, history_obs, history_action, history_mask)
        actions = dist.mode() if greedy else dist.sample(generator)
        return actions, dist.log_prob(actions)
