"""Independent behavioural cloning (IBC) on the same actor networks as MAPPO."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from lightning_mbmarl.learners.actor import Actor
from lightning_mbmarl.learners.mappo import MAPPOActorCritic
from lightning_mbmarl.learners.memory import history_from


def bc_loss(model: Actor | MAPPOActorCritic, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Negative log-likelihood of the dataset actions under the per-agent policies, averaged over ``B`` and ``N``.

    Batch keys: ``obs [B, N, O]``, ``action`` (int64 ``[B, N]`` / float ``[B, N, A]``), optional ``avail
    [B, N, A]``, and ``history_obs / history_action / history_mask`` when the actor has a memory module.
    """
    actor = model.actor if isinstance(model, MAPPOActorCritic) else model
    dist = actor(batch["obs"], batch.get("avail"), *history_from(batch))
    return -dist.log_prob(batch["action"]).mean()
