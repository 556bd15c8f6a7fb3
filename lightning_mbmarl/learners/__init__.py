"""Learners: plain ``nn.Module`` networks and pure loss functions, usable on real or imagined batches."""

from lightning_mbmarl.learners.actor import Actor
from lightning_mbmarl.learners.agent_nets import AgentMLP
from lightning_mbmarl.learners.bc import bc_loss
from lightning_mbmarl.learners.gae import timeout_gae
from lightning_mbmarl.learners.mappo import MAPPOActorCritic, MAPPOConfig, ppo_loss, update_entropy_alpha
from lightning_mbmarl.learners.memory import MemoryModule, empty_history, history_from, push_history
from lightning_mbmarl.learners.policies import (
    CategoricalPolicy,
    GaussianPolicy,
    MaskedCategorical,
    PaddedGaussian,
    action_bound_penalty,
    make_policy,
)
from lightning_mbmarl.learners.value_mixer import ValueMixer

__all__ = [
    "Actor",
    "AgentMLP",
    "CategoricalPolicy",
    "GaussianPolicy",
    "MAPPOActorCritic",
    "MAPPOConfig",
    "MaskedCategorical",
    "MemoryModule",
    "PaddedGaussian",
    "ValueMixer",
    "action_bound_penalty",
    "bc_loss",
    "empty_history",
    "history_from",
    "make_policy",
    "ppo_loss",
    "push_history",
    "timeout_gae",
    "update_entropy_alpha",
]
