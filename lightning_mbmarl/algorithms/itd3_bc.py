"""ITD3+BC: independent TD3+BC learners on an offline dataset, a baseline of the MOMA-PPO paper (§5.1, Table 4).

Read top to bottom:

1. at the start of fit, the observation statistics are measured on the dataset (TD3+BC's state normalisation;
   a resumed run takes them from its checkpoint instead);
2. one training step is one gradient step on a dataset batch: a twin-critic step on the smoothed TD target, and
   every ``policy_delay`` steps a BC-regularised actor step followed by the Polyak update of the target actors and
   critics (:mod:`lightning_mbmarl.learners.td3_bc`);
3. after ``steps`` gradient steps the run stops with a final greedy evaluation.

Continuous actions only (MaMuJoCo); discrete tasks are refused with an error at construction.
"""

from __future__ import annotations

from typing import Any

import torch

from lightning_mbmarl.algorithms.base import Capabilities, EvaluationConfig, MultiAgentAlgorithm, as_config
from lightning_mbmarl.algorithms.optimization import optimizer_step
from lightning_mbmarl.envs import EnvSpec
from lightning_mbmarl.learners.masac import soft_update
from lightning_mbmarl.learners.memory import History
from lightning_mbmarl.learners.td3_bc import TD3BCAgents, TD3BCConfig, actor_loss, critic_loss

# Dataset transitions drawn (with replacement, fixed seed so every DDP rank agrees) to measure observation statistics.
STATISTICS_SAMPLES = 20_000


class ITD3BC(MultiAgentAlgorithm):
    """Independent TD3+BC on an :class:`~lightning_mbmarl.data.offline_datamodule.OfflineDataModule`."""

    capabilities = Capabilities(action_kinds=("continuous",), data="offline")  # deterministic actors

    progress_counters = ("gradient_steps",)

    def __init__(
        self,
        env_spec: EnvSpec | dict[str, Any] | None = None,
        steps: int = 1_000_000,  # gradient steps before the final evaluation (paper: 1e6)
        td3_bc: TD3BCConfig = TD3BCConfig(),
        evaluation: EvaluationConfig = EvaluationConfig(),
    ) -> None:
        super().__init__(env_spec, evaluation)
        self.save_config_hyperparameters()
        self.config = config = as_config(td3_bc, TD3BCConfig)
        if steps < 1 or config.policy_delay < 1:
            raise ValueError(
                f"ITD3BC: steps and td3_bc.policy_delay must be >= 1, got {steps} and {config.policy_delay}"
            )
        self.steps = steps
        self.agents = TD3BCAgents(self.env_spec, config)
        self.counters.update(gradient_steps=0)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, avail: torch.Tensor, history: History, greedy: bool) -> torch.Tensor:
        """The deterministic actors' actions, greedy or not."""
        return self.agents.act(obs)

    def setup(self, stage: str) -> None:
        """Measure the observation statistics on the dataset (a checkpoint restored afterwards overrides them)."""
        super().setup(stage)
        if stage != "fit" or not self.config.normalize_observations:
            return
        sample = self.trainer.datamodule.sample_start_states(STATISTICS_SAMPLES, torch.Generator().manual_seed(0))
        self.agents.set_observation_statistics(sample["obs"])

    def configure_optimizers(self):
        c = self.config
        return [
            torch.optim.Adam(self.agents.critic.parameters(), lr=c.critic_lr),
            torch.optim.Adam(self.agents.actor.parameters(), lr=c.actor_lr),
        ]

    def schedule_done(self) -> bool:
        return self.counters["gradient_steps"] >= self.steps

    def progress(self) -> tuple[str, float, float]:
        return "gradient steps", float(self.counters["gradient_steps"]), float(self.steps)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        critic_optimizer, actor_optimizer = self.optimizers()
        config, agents = self.config, self.agents
        critic = critic_loss(agents, batch, config)
        optimizer_step(self, critic_optimizer, critic["loss"], config.max_grad_norm)
        values = {"td3_bc/critic_loss": critic["loss"], "td3_bc/q": critic["q"], "td3_bc/target": critic["target"]}
        if self.counters["gradient_steps"] % config.policy_delay == 0:
            actor = actor_loss(agents, batch, config)
            optimizer_step(self, actor_optimizer, actor["loss"], config.max_grad_norm)
            soft_update(agents.target_critic, agents.critic, config.tau)
            soft_update(agents.target_actor, agents.actor, config.tau)
            values.update(
                {"td3_bc/actor_loss": actor["loss"], "td3_bc/bc": actor["bc"], "td3_bc/lambda": actor["lambda"]}
            )
        self.counters["gradient_steps"] += 1
        if self.schedule_done():
            self.finish()  # before logging: the last training step is always a logged one
        self.log_training_progress(values)
