"""MAIQL: multi-agent implicit Q-learning with QMIX-decomposed Q and V, the CTDE model-free baseline of the MOMA-PPO
paper (§5.1, A.1, Tables 3-4).

Read top to bottom, one training step is one gradient step on a dataset batch
(:mod:`lightning_mbmarl.learners.iql`):

1. value step: expectile regression of the mixed V towards the target mixed Q (Eq. 1);
2. actor step: advantage-weighted regression with the decomposed weights of Eq. 7, using the V just updated;
3. Q step: the mixed Q regresses ``r + gamma V(s')`` (Eq. 2), then the target Q and its mixer move by ``tau``.

After ``steps`` gradient steps the run stops with a final greedy evaluation. Discrete (masked categorical) and
continuous (tanh-squashed Gaussian) actions.
"""

from __future__ import annotations

from typing import Any

import torch

from lightning_mbmarl.algorithms.base import Capabilities, EvaluationConfig, MultiAgentAlgorithm, as_config
from lightning_mbmarl.algorithms.optimization import optimizer_step
from lightning_mbmarl.envs import EnvSpec
from lightning_mbmarl.learners.iql import MAIQLAgents, MAIQLConfig, actor_loss, q_loss, value_loss
from lightning_mbmarl.learners.masac import soft_update
from lightning_mbmarl.learners.memory import History


class MAIQL(MultiAgentAlgorithm):
    """MAIQL on an :class:`~lightning_mbmarl.data.offline_datamodule.OfflineDataModule`."""

    capabilities = Capabilities(data="offline")

    progress_counters = ("gradient_steps",)

    def __init__(
        self,
        env_spec: EnvSpec | dict[str, Any] | None = None,
        steps: int = 1_000_000,  # gradient steps before the final evaluation (paper: 1e6)
        maiql: MAIQLConfig = MAIQLConfig(),
        evaluation: EvaluationConfig = EvaluationConfig(),
    ) -> None:
        super().__init__(env_spec, evaluation)
        self.save_config_hyperparameters()
        self.config = as_config(maiql, MAIQLConfig)
        if steps < 1:
            raise ValueError(f"MAIQL: steps must be >= 1, got {steps}")
        self.steps = steps
        self.agents = MAIQLAgents(self.env_spec, self.config)
        self.counters.update(gradient_steps=0)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, avail: torch.Tensor, history: History, greedy: bool) -> torch.Tensor:
        """Greedy: argmax / squashed mean of each actor; otherwise a sample."""
        return self.agents.act(obs, avail, greedy=greedy)

    def configure_optimizers(self):
        c, agents = self.config, self.agents
        return [
            torch.optim.Adam(agents.value.parameters(), lr=c.value_lr),
            torch.optim.Adam(agents.actor.parameters(), lr=c.actor_lr),
            torch.optim.Adam(agents.critic.parameters(), lr=c.critic_lr),
        ]

    def schedule_done(self) -> bool:
        return self.counters["gradient_steps"] >= self.steps

    def progress(self) -> tuple[str, float, float]:
        return "gradient steps", float(self.counters["gradient_steps"]), float(self.steps)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        value_optimizer, actor_optimizer, critic_optimizer = self.optimizers()
        config, agents = self.config, self.agents
        value = value_loss(agents, batch, config)
        optimizer_step(self, value_optimizer, value["loss"], config.max_grad_norm)
        actor = actor_loss(agents, batch, config)
        optimizer_step(self, actor_optimizer, actor["loss"], config.max_grad_norm)
        critic = q_loss(agents, batch, config)
        optimizer_step(self, critic_optimizer, critic["loss"], config.max_grad_norm)
        soft_update(agents.target_critic, agents.critic, config.tau)
        self.counters["gradient_steps"] += 1
        if self.schedule_done():
            self.finish()  # before logging: the last training step is always a logged one
        self.log_training_progress(
            {
                "maiql/value_loss": value["loss"],
                "maiql/v": value["v"],
                "maiql/actor_loss": actor["loss"],
                "maiql/weight": actor["weight"],
                "maiql/log_prob": actor["log_prob"],
                "maiql/q_loss": critic["loss"],
                "maiql/q": critic["q"],
                "maiql/target": critic["target"],
            }
        )
