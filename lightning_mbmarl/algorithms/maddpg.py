"""MADDPG: model-free multi-agent deterministic policy gradients with centralised critics (Lowe et al., 2017).

Read top to bottom, one training step is:

1. top the replay buffer up with exploration steps (:class:`OnlineAlgorithm`: uniform random during warm-up,
   then the actors' actions with Gaussian noise / softmax samples);
2. sample ``online.batch_size`` transitions and take one gradient step with :meth:`MADDPG.learn_from`:
   a critic step on the TD error against the target actors and critics, every ``policy_delay`` steps an actor
   step (after which the target actors move towards the actors by ``tau``), then the target critics move
   towards the critics by ``tau``.

AORDPG (AORPO's model usage on MADDPG) runs the same gradient step on its own batches with
:meth:`MADDPG.learn_from`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from lightning_mbmarl.algorithms.base import EvaluationConfig, as_config
from lightning_mbmarl.algorithms.optimization import optimizer_step
from lightning_mbmarl.algorithms.off_policy import OffPolicyAlgorithm
from lightning_mbmarl.algorithms.online import OnlineConfig
from lightning_mbmarl.envs import EnvSpec
from lightning_mbmarl.learners.maddpg import MADDPGAgents, MADDPGConfig, actor_loss, critic_loss
from lightning_mbmarl.learners.masac import soft_update


class MADDPG(OffPolicyAlgorithm):
    """MADDPG with per-agent deterministic actors and per-agent centralised critics."""

    def __init__(
        self,
        env_spec: EnvSpec | dict[str, Any] | None = None,
        online: OnlineConfig = OnlineConfig(),
        maddpg: MADDPGConfig = MADDPGConfig(),
        evaluation: EvaluationConfig = EvaluationConfig(),
    ) -> None:
        super().__init__(env_spec, as_config(online, OnlineConfig), evaluation)
        self.save_config_hyperparameters()
        self.build_agents(as_config(maddpg, MADDPGConfig), MADDPGAgents, "maddpg")

    def configure_optimizers(self):
        c, agents = self.config, self.agents
        return [
            torch.optim.Adam(agents.critic.parameters(), lr=c.critic_lr),
            torch.optim.Adam(agents.actor.parameters(), lr=c.actor_lr),
        ]

    def learn_from(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One MADDPG gradient step on ``batch`` (keys: :mod:`lightning_mbmarl.learners.masac`); scalars to log."""
        critic_optimizer, actor_optimizer = self.optimizers()[:2]  # subclasses append theirs
        config, agents = self.config, self.agents
        critic = critic_loss(agents, batch, config)
        optimizer_step(self, critic_optimizer, critic["loss"], config.max_grad_norm)
        logs = {
            "maddpg/critic_loss": critic["loss"].detach(),
            "maddpg/q": critic["q"],
            "maddpg/target": critic["target"],
        }
        if self.counters["gradient_steps"] % config.policy_delay == 0:
            actor = actor_loss(agents, batch, config)
            optimizer_step(self, actor_optimizer, actor["loss"], config.max_grad_norm)
            logs.update(
                {"maddpg/actor_loss": actor["loss"].detach(), "maddpg/pre_activation_l2": actor["pre_activation_l2"]}
            )
            soft_update(agents.target_actor, agents.actor, config.tau)
        soft_update(agents.target_critic, agents.critic, config.tau)
        self.counters["gradient_steps"] += 1
        return logs
