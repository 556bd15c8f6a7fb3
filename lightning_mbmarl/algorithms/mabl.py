"""MABL: multi-agent RL on a bi-level latent world model (Venugopal et al., AAMAS 2024), with its ablations.

MAMBA's loop (:mod:`~lightning_mbmarl.algorithms.mamba`, MABL's Algorithm 1: collect, ``mamba.model_updates``
world-model steps, ``mamba.policy_rounds`` rounds of MAPPO on imagined trajectories) with the world model of
:mod:`~lightning_mbmarl.world_models.bilevel_rssm`:

* the world model learns both levels with :func:`~lightning_mbmarl.world_models.bilevel_losses.
  bilevel_world_model_loss`; imagination rolls both levels' priors;
* the policy reads each agent's agent-level features ``[h^a, z^a]`` only, in imagination and for real (§3.3): acting
  filters the agent level alone, from the agent's own observation and action, so execution is decentralised;
* the critic reads every agent's ``[h^a, h^g, z^a, z^g]`` through one attention layer (centralised training).

``world_model.global_mode`` gives the paper's variants with this one module: ``per_agent`` (MABL), ``shared``
(MABL-SG) and ``none`` (DreamerV2 per agent, whose critic reads agent features). The learner is MAPPO, as in every
experiment of the paper; its sizes and rates come from ``mappo`` and ``critic``.
"""

from __future__ import annotations

import dataclasses

from typing import Any

import torch

from lightning_mbmarl.algorithms.base import as_config
from lightning_mbmarl.algorithms.mamba import MAMBA, MAMBA_PPO
from lightning_mbmarl.learners.latent_actor_critic import AttentionCriticConfig, LatentActorCritic
from lightning_mbmarl.learners.mappo import MAPPOConfig
from lightning_mbmarl.learners.memory import History
from lightning_mbmarl.nn.one_hot_input import LatentLayout
from lightning_mbmarl.world_models.bilevel_losses import TERMS, bilevel_world_model_loss
from lightning_mbmarl.world_models.bilevel_rssm import BiLevelConfig, BiLevelState, BiLevelWorldModel

#: The released MABL learner: MAMBA's PPO with actor lr 1e-4 and critic lr 1e-3 (the actor's weight decay 1e-5 is
#: not used here)
MABL_PPO = dataclasses.replace(MAMBA_PPO, actor_lr=1e-4, critic_lr=1e-3)


class MABL(MAMBA):
    """MABL, MABL-SG or DreamerV2 per agent on an :class:`OnlineDataModule` (see the module docstring)."""

    world_model: BiLevelWorldModel  # type: ignore[assignment]

    def __init__(
        self,
        world_model: BiLevelConfig = BiLevelConfig(),
        mappo: MAPPOConfig = MABL_PPO,
        **mamba_options: Any,
    ) -> None:
        """``world_model``: the bi-level model's options; ``mappo``: the learner's, MABL's released rates by default;
        every other option is MAMBA's (:class:`MAMBA`, with its defaults), which the command line reads from MAMBA's
        signature."""
        super().__init__(world_model=world_model, mappo=mappo, **mamba_options)

    def build_world_model(self, config: BiLevelConfig | dict[str, Any]) -> BiLevelWorldModel:  # type: ignore[override]
        return BiLevelWorldModel(self.env_spec, as_config(config, BiLevelConfig))

    def build_actor_critic(
        self, critic: AttentionCriticConfig, policy_layout: LatentLayout | None = None
    ) -> LatentActorCritic:
        """MAMBA's learner with the policy on each agent's own level (``[h^a, z^a]``) unless told otherwise."""
        return super().build_actor_critic(critic, policy_layout or self.world_model.agent_layout)

    # ----------------------------------------------------------------------------------------------- acting
    @torch.no_grad()
    def act(self, obs: torch.Tensor, avail: torch.Tensor, history: History, greedy: bool) -> torch.Tensor:
        """Each agent filters its own agent level (its observation ``[E, N, O]`` and last action) and acts on
        ``[h^a, z^a]``: nothing global is read."""
        features = self.filtered(obs, history, greedy).features
        return self.executed(self.actor_critic.act_on_policy_features(features, avail, greedy)[0])

    # ------------------------------------------------------------------------------------------- learning
    def learn_world_model(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One world-model gradient step on replay windows ``[B, L, ...]``; scalars to log."""
        with self.fast.autocast(self.device):
            losses = self.fast.compile("bilevel_world_model_loss", bilevel_world_model_loss)(self.world_model, batch)
        return self.world_model_step(losses, TERMS)

    # -------------------------------------------------------------------------------------- model error
    def first_posterior(self, sequences: dict[str, torch.Tensor]) -> BiLevelState:  # type: ignore[override]
        """Both levels' posteriors after each window's first observation and state, from a fresh state: ``[B]``
        (where :meth:`MAMBA.model_error_rollout` starts; it then rolls both levels with the real joint actions)."""
        model = self.world_model
        reset = model.reset_prior(sequences["obs"].shape[:1])
        return model.posterior(
            reset.agent.deter,
            None if reset.upper is None else reset.upper.deter,
            model.encode(sequences["obs"][:, 0]),
            model.encode_state(sequences["state"][:, 0]),
        )
