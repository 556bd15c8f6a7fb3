"""MASAC: model-free multi-agent soft actor-critic on real environment steps (the learner AORPO builds on).

Read top to bottom, one training step is:

1. top the replay buffer up with exploration steps (:class:`OnlineAlgorithm`: uniform random during warm-up,
   then actions sampled from the actors);
2. sample ``online.batch_size`` transitions and take one gradient step with :meth:`MASAC.learn_from`:
   a critic step on the soft Bellman error (Eq. 5), every ``policy_delay`` steps an actor step (Eq. 4) and a
   temperature step, then the target critics move towards the critics by ``tau``.

Model-based methods (AORPO) run the same gradient step on batches they assemble themselves (model rollouts,
mixed real/model data, predicted opponent actions) by calling :meth:`MASAC.learn_from`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from lightning_mbmarl.algorithms.base import EvaluationConfig, as_config
from lightning_mbmarl.algorithms.off_policy import OffPolicyAlgorithm
from lightning_mbmarl.algorithms.online import OnlineConfig
from lightning_mbmarl.algorithms.optimization import optimizer_step
from lightning_mbmarl.envs import EnvSpec
from lightning_mbmarl.learners.masac import MASACAgents, MASACConfig, actor_loss, alpha_loss, critic_loss, soft_update


class MASAC(OffPolicyAlgorithm):
    """Multi-agent SAC with per-agent actors, centralised twin critics and per-agent temperatures."""

    def __init__(
        self,
        env_spec: EnvSpec | dict[str, Any] | None = None,
        online: OnlineConfig = OnlineConfig(),
        masac: MASACConfig = MASACConfig(),
        evaluation: EvaluationConfig = EvaluationConfig(),
    ) -> None:
        super().__init__(env_spec, as_config(online, OnlineConfig), evaluation)
        self.save_config_hyperparameters()
        self.build_agents(as_config(masac, MASACConfig), MASACAgents, "masac")

    def configure_optimizers(self):
        c, agents = self.config, self.agents
        return [
            torch.optim.Adam(agents.critic.parameters(), lr=c.critic_lr),
            torch.optim.Adam(agents.actor.parameters(), lr=c.actor_lr),
            torch.optim.Adam([agents.log_alpha], lr=c.alpha_lr),
        ]

    def learn_from(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One MASAC gradient step on ``batch`` (keys: :mod:`lightning_mbmarl.learners.masac`); scalars to log."""
        critic_optimizer, actor_optimizer, alpha_optimizer = self.optimizers()[:3]  # subclasses append theirs
        config = self.config
        critic = critic_loss(self.agents, batch, config)
        optimizer_step(self, critic_optimizer, critic["loss"], config.max_grad_norm)
        logs = {"masac/critic_loss": critic["loss"].detach(), "masac/q": critic["q"], "masac/target": critic["target"]}
        if self.counters["gradient_steps"] % config.policy_delay == 0:
            actor = actor_loss(self.agents, batch, config)
            optimizer_step(self, actor_optimizer, actor["loss"], config.max_grad_norm)
            alpha = alpha_loss(self.agents, actor["agent_entropy"])
            optimizer_step(self, alpha_optimizer, alpha["loss"], None)
            logs.update(
                {
                    "masac/actor_loss": actor["loss"].detach(),
                    "masac/entropy": actor["entropy"],
                    "masac/alpha": alpha["alpha"],
                }
            )
        soft_update(self.agents.target_critic, self.agents.critic, config.tau)
        self.counters["gradient_steps"] += 1
        return logs
