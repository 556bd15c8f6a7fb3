"""Observation functions O^i applied to batches of global states (for rollouts in a world model)."""

from __future__ import annotations

import torch

from lightning_mbmarl.envs.base import EnvSpec


class StateObserver:
    """Maps global states ``[..., S]`` to padded per-agent observations ``[..., N, obs_dim]`` with
    ``spec.obs_from_state``; availability masks are the spec's static action masks (every real action available).
    """

    def __init__(self, spec: EnvSpec) -> None:
        if spec.obs_from_state is None:
            raise ValueError(
                f"environment {spec.name!r} does not define obs_from_state, so agents' observations cannot be "
                "derived from predicted global states; model-based rollouts over global states need it"
            )
        index = torch.zeros(spec.n_agents, spec.obs_dim, dtype=torch.long)
        valid = torch.zeros(spec.n_agents, spec.obs_dim, dtype=torch.bool)
        for i, idx in enumerate(spec.obs_from_state):
            index[i, : len(idx)] = torch.tensor(idx, dtype=torch.long)
            valid[i, : len(idx)] = True
        self.index, self.valid = index, valid
        self.action_mask = torch.as_tensor(spec.action_mask())

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """``state [..., S] -> obs [..., N, obs_dim]``."""
        index, valid = self.index.to(state.device), self.valid.to(state.device)
        obs = state[..., index]  # [..., N, obs_dim]
        return obs * valid.to(obs.dtype)

    def available(self, state: torch.Tensor) -> torch.Tensor:
        """``state [..., S] -> avail bool [..., N, action_dim]``."""
        mask = self.action_mask.to(state.device)
        return mask.expand(*state.shape[:-1], *mask.shape)
