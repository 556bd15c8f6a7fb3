"""How team actions are turned into network inputs: one-hot choices, or the continuous box as is."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_mbmarl.envs.base import EnvSpec


def encode_actions(actions: torch.Tensor, spec: EnvSpec) -> torch.Tensor:
    """Per-agent action features ``[..., N, action_dim]`` (float).

    Discrete ``int64 [..., N]`` indices become one-hot vectors of size ``spec.action_dim``; continuous
    ``[..., N, action_dim]`` actions pass through as float.
    """
    if spec.discrete:
        if actions.shape[-1] != spec.n_agents:
            raise ValueError(
                f"discrete actions must end with the agent axis N={spec.n_agents}, got {tuple(actions.shape)}"
            )
        return F.one_hot(actions.long(), spec.action_dim).float()
    if actions.shape[-2:] != (spec.n_agents, spec.action_dim):
        raise ValueError(
            f"continuous actions must end with [N={spec.n_agents}, action_dim={spec.action_dim}], got {tuple(actions.shape)}"
        )
    return actions.float()
