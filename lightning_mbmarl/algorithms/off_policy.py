"""Base of the off-policy actor-critic methods (MASAC, MADDPG, and AORPO / AORDPG on them): per-agent actors and
centralised critics built from the method's config, acting through the actors, one gradient step per update on a
replay batch (:meth:`OffPolicyAlgorithm.learn_from`, which model-based subclasses call on batches of their own)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import torch

from lightning_mbmarl.algorithms.online import OnlineAlgorithm
from lightning_mbmarl.data.online_datamodule import OnlineDataModule
from lightning_mbmarl.learners.memory import History


class OffPolicyAlgorithm(OnlineAlgorithm):
    """Replay-batch learning with per-agent actors; subclasses build their agents with :meth:`build_agents` and
    implement :meth:`learn_from`."""

    #: whether the actors read the other agents' (predicted) actions; subclasses that predict them (AORPO, AORDPG)
    #: set it and pass the predictions to ``agents.act`` / the batches they learn from
    opponent_conditioning: bool = False

    def build_agents(self, config: Any, agents: Callable[..., torch.nn.Module], section: str) -> None:
        """Keep the learner's ``config`` (the ``section`` of the method's options, e.g. ``masac``) and build its
        agents; a zero or negative ``policy_delay`` fails here, naming the option."""
        if config.policy_delay < 1:
            raise ValueError(f"{type(self).__name__}: {section}.policy_delay must be >= 1, got {config.policy_delay}")
        self.config = config
        self.agents = agents(self.env_spec, self.env_spec.state_dim, config, self.opponent_conditioning)
        self.counters.update(gradient_steps=0)

    def act(self, obs: torch.Tensor, avail: torch.Tensor, history: History, greedy: bool) -> torch.Tensor:
        """Greedy: each actor's deterministic action; otherwise its exploration action (a sample, or with noise)."""
        return self.agents.act(obs, avail, greedy=greedy)

    def update(self, datamodule: OnlineDataModule) -> dict[str, torch.Tensor]:
        batch = datamodule.sample(self.online.batch_size)
        return self.learn_from({key: value.to(self.device) for key, value in batch.items()})

    def learn_from(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One gradient step on ``batch`` (keys: :mod:`lightning_mbmarl.learners.masac`); scalars to log."""
        raise NotImplementedError
