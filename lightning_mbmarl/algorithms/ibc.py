"""Independent behavioural cloning (IBC): each agent imitates its own dataset actions from its own observations
(and history), the decentralised imitation baseline of the MOMA-PPO paper (§5.1, Tables 3-4).

One training step is one gradient step on a dataset batch; the run stops after ``steps`` steps and a final
greedy evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lightning_mbmarl.algorithms.base import Capabilities, EvaluationConfig, MultiAgentAlgorithm, as_config
from lightning_mbmarl.algorithms.optimization import optimizer_step
from lightning_mbmarl.envs import EnvSpec
from lightning_mbmarl.learners.actor import Actor
from lightning_mbmarl.learners.bc import bc_loss
from lightning_mbmarl.learners.memory import History


@dataclass
class IBCConfig:
    """Networks and schedule of independent behavioural cloning."""

    steps: int = 10_000  # gradient steps
    learning_rate: float = 3e-4  # Adam step size (paper's default for model-free baselines)
    hidden: tuple[int, ...] = (256, 256)  # hidden sizes of each agent's policy
    memory_length: int = 0  # history steps read by the memory module; 0 disables it
    memory_dim: int = 128  # memory embedding size
    max_grad_norm: float = 1.0  # gradient-norm clipping threshold


class IBC(MultiAgentAlgorithm):
    """Independent behavioural cloning on an offline data module."""

    capabilities = Capabilities(data="offline")

    progress_counters = ("updates",)

    def __init__(
        self,
        env_spec: EnvSpec | dict[str, Any] | None = None,
        ibc: IBCConfig = IBCConfig(),
        evaluation: EvaluationConfig = EvaluationConfig(),
    ) -> None:
        super().__init__(env_spec, evaluation)
        self.save_config_hyperparameters()
        self.config = ibc = as_config(ibc, IBCConfig)
        self.actor = Actor(self.env_spec, ibc.hidden, memory_length=ibc.memory_length, memory_dim=ibc.memory_dim)
        self.counters.update(updates=0)

    @property
    def history_length(self) -> int:
        return self.config.memory_length

    @torch.no_grad()
    def act(self, obs: torch.Tensor, avail: torch.Tensor, history: History, greedy: bool) -> torch.Tensor:
        return self.actor.act(obs, avail, *history, greedy=greedy)[0]

    def configure_optimizers(self):
        return torch.optim.Adam(self.actor.parameters(), lr=self.config.learning_rate)

    def schedule_done(self) -> bool:
        return self.counters["updates"] >= self.config.steps

    def progress(self) -> tuple[str, float, float]:
        return "updates", float(self.counters["updates"]), float(self.config.steps)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        optimizer = self.optimizers()
        loss = bc_loss(self.actor, batch)
        optimizer_step(
            self, optimizer, loss, self.config.max_grad_norm, "behavioural-cloning loss", self.counters["updates"]
        )
        self.counters["updates"] += 1
        if self.schedule_done():
            self.finish()  # before logging: the last training step is always a logged one
        self.log_training_progress({"bc/loss": loss})
