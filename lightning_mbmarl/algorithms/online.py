"""Base of online methods: act in the real environment, store, update; counted in environment steps.

Each training step first tops the replay buffer up so that this rank has taken
``warmup_env_steps + (updates + 1) * env_steps_per_update`` environment steps (uniform random actions during
warm-up, the method's exploration policy after), then calls :meth:`OnlineAlgorithm.update` once. The run ends
after the final evaluation once ``total_env_steps`` (summed over ranks) are reached. ``env_steps`` is logged as the
x-axis of learning curves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lightning_mbmarl.algorithms.base import EvaluationConfig, MultiAgentAlgorithm, as_config
from lightning_mbmarl.config_ranges import require_non_negative, require_positive
from lightning_mbmarl.data.env_runner import TeamPolicy
from lightning_mbmarl.data.online_datamodule import OnlineDataModule
from lightning_mbmarl.envs import EnvSpec


@dataclass
class OnlineConfig:
    """How much to interact with the environment, and how often to learn."""

    total_env_steps: int = 100_000  # stop once this many environment steps are taken (summed over ranks)
    warmup_env_steps: int = 1_000  # uniform random team actions on each rank before the first update
    env_steps_per_update: float = 1.0  # environment steps collected on each rank per training step
    batch_size: int = 256  # transitions per gradient step

    def __post_init__(self) -> None:
        require_positive(self, "total_env_steps", "env_steps_per_update", "batch_size")
        require_non_negative(self, "warmup_env_steps")


class OnlineAlgorithm(MultiAgentAlgorithm):
    """Collect-then-update loop on an :class:`OnlineDataModule`; subclasses implement :meth:`update`."""

    progress_counters = ("env_steps",)

    def __init__(
        self, env_spec: EnvSpec | dict[str, Any] | None, online: OnlineConfig, evaluation: EvaluationConfig
    ) -> None:
        super().__init__(env_spec, evaluation)
        self.online = as_config(online, OnlineConfig)
        self.counters.update(env_steps=0, updates=0)

    @property
    def datamodule(self) -> OnlineDataModule:
        return self.trainer.datamodule  # an OnlineDataModule: MultiAgentAlgorithm.setup checked it

    def exploration_policy(self) -> TeamPolicy:
        """The team policy that collects data after warm-up (default: sample from the policy)."""
        return lambda obs, avail, history: self.act(obs, avail, history, greedy=False)

    def update(self, datamodule: OnlineDataModule) -> dict[str, torch.Tensor | float] | None:
        """One learning step (gradient steps of the method); returns values to log, or None when a stop request
        (:meth:`stop_requested`) interrupted it part-way: the step's progress is in the counters, and the resumed
        run finishes it before collecting again."""
        raise NotImplementedError

    def update_in_progress(self) -> bool:
        """Whether an interrupted :meth:`update` is waiting to be finished (a resumed run does that first)."""
        return False

    def schedule_done(self) -> bool:
        return self.counters["env_steps"] >= self.online.total_env_steps and not self.update_in_progress()

    def progress(self) -> tuple[str, float, float]:
        return "env steps", float(self.counters["env_steps"]), float(self.online.total_env_steps)

    def training_step(self, batch: Any, batch_idx: int) -> None:
        datamodule = self.datamodule
        warmup = self.online.warmup_env_steps
        target = warmup + (self.counters["updates"] + 1) * self.online.env_steps_per_update
        finished = []
        while datamodule.env_steps < target:
            policy = datamodule.random_policy() if datamodule.env_steps < warmup else self.exploration_policy()
            with torch.no_grad():
                finished += datamodule.collect(policy).episodes
        self.counters["env_steps"] = datamodule.total_env_steps()
        self.record_episodes(finished)
        logs = self.update(datamodule)
        if logs is None:  # stopped part-way by a stop request: the checkpoint taken now finishes it on resume
            return
        self.counters["updates"] += 1
        if self.schedule_done():
            self.finish()  # before logging: the last training step is always a logged one
        self.log_training_progress({**logs, "env_steps": float(self.counters["env_steps"])})
