"""Online data: environment copies stepped with the learner's current policy, and the replay buffer they fill.

The algorithm decides when to act: its ``training_step`` calls :meth:`OnlineDataModule.collect` (``n`` vector steps
with a policy) and samples batches with :meth:`OnlineDataModule.sample` / :meth:`OnlineDataModule.sample_sequences`,
so each training step stays one gradient step. ``train_dataloader`` only paces the loop (one tick per training step).

Sample efficiency is counted in environment steps: :attr:`OnlineDataModule.env_steps` is this rank's count and
:meth:`OnlineDataModule.total_env_steps` the sum over ranks, the x-axis of learning curves (Lightning's
``global_step`` counts optimizer steps instead).

Under ``--trainer.devices=N`` each rank builds its own copies in ``setup``, seeded ``seed + rank * num_envs + b`` for
copy ``b``, and its own buffer; checkpoints gather every rank's buffer on rank 0 and give each rank its own back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, IterableDataset

from lightning_mbmarl.data.encoding import resolve_history_length
from lightning_mbmarl.data.env_runner import EnvRunner, FinishedEpisode, TeamPolicy
from lightning_mbmarl.data.replay_buffer import ReplayBuffer, StepRecord
from lightning_mbmarl.envs import EnvConfig, env_spec, make_vector_env
from lightning_mbmarl.envs.base import EnvSpec
from lightning_mbmarl.learners.memory import History


@dataclass
class Collected:
    """What :meth:`OnlineDataModule.collect` gathered: each vector step (oldest first) and the episodes that ended."""

    steps: list[StepRecord] = field(default_factory=list)
    episodes: list[FinishedEpisode] = field(default_factory=list)


class _Ticks(IterableDataset):
    """An endless stream of step numbers: one per training step."""

    def __iter__(self) -> Iterator[torch.Tensor]:
        step = 0
        while True:
            yield torch.tensor(step)
            step += 1


def random_team_policy(spec: EnvSpec, generator: torch.Generator | None = None) -> TeamPolicy:
    """Uniform random actions: uniform over available choices, or uniform in the action box (padding zeroed)."""

    def act(obs: torch.Tensor, avail: torch.Tensor, history: History) -> torch.Tensor:
        if spec.discrete:
            weights = avail.float().flatten(0, -2).cpu()
            return torch.multinomial(weights, 1, generator=generator).view(avail.shape[:-1]).to(obs.device)
        shape = (*obs.shape[:-1], spec.action_dim)
        uniform = torch.rand(shape, generator=generator)
        actions = spec.action_low + (spec.action_high - spec.action_low) * uniform
        return (actions * torch.as_tensor(spec.action_mask())).to(obs.device)

    return act


class OnlineDataModule(pl.LightningDataModule):
    """Vectorised environment copies, an :class:`EnvRunner` and a :class:`ReplayBuffer` for online methods."""

    def __init__(
        self,
        env: EnvConfig,  # environment to learn in
        num_envs: int = 8,  # environment copies stepped together on each rank
        buffer_capacity: int = 1_000_000,  # transitions kept on each rank (oldest dropped first)
        history_length: int | None = None,  # previous (obs, action) pairs given to the policy; None: the model's
        seed: int = 0,  # environment seed; copy b of rank r is seeded seed + r * num_envs + b
    ) -> None:
        super().__init__()
        if num_envs < 1 or buffer_capacity < num_envs or (history_length or 0) < 0:
            raise ValueError(
                f"OnlineDataModule: need num_envs >= 1, buffer_capacity >= num_envs and history_length "
                f">= 0; got {num_envs}, {buffer_capacity}, {history_length}"
            )
        self.env, self.num_envs, self.history_length, self.seed = env, num_envs, history_length, seed
        self.buffer_capacity = buffer_capacity
        self.env_spec = env_spec(env)
        self.buffer = ReplayBuffer(self.env_spec, -(-buffer_capacity // num_envs), num_envs)
        self.env_steps = 0  # environment steps taken on this rank (copies x vector steps)
        self.runner: EnvRunner | None = None
        self._sample_generator = torch.Generator().manual_seed(seed)
        self._pending_buffers: list[dict[str, Any]] | None = None

    # ------------------------------------------------------------------------------------------------ set-up
    @property
    def _rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    @property
    def _world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def setup(self, stage: str | None = None) -> None:
        if stage not in (None, "fit") or self.runner is not None:
            return
        rank = self._rank
        self.history_length = resolve_history_length(self.history_length, self.trainer, type(self).__name__)
        # The device the model trains on (it may not be there yet: setup runs before the strategy moves it).
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        self.buffer.to(device)  # replay batches are gathered where the model reads them
        self.runner = EnvRunner(
            make_vector_env(self.env, self.num_envs),
            self.history_length,
            seed=self.seed + rank * self.num_envs,
            device=device,
        )
        self._sample_generator.manual_seed(self.seed + 1_000 * rank + 1)

    def teardown(self, stage: str | None = None) -> None:
        if self.runner is not None and stage in (None, "fit"):
            self.runner.env.close()
            self.runner = None

    # --------------------------------------------------------------------------------------------- acting
    def collect(self, policy: TeamPolicy, vector_steps: int = 1) -> Collected:
        """Step every copy ``vector_steps`` times with ``policy`` and store the steps in the replay buffer."""
        if self.runner is None:
            raise RuntimeError("OnlineDataModule.collect: call setup('fit') first (the Trainer does)")
        collected = Collected()
        for _ in range(vector_steps):
            record, ended = self.runner.step(policy)
            self.buffer.add(record)
            collected.steps.append(record)
            collected.episodes += ended
            self.env_steps += self.num_envs
        return collected

    def random_policy(self) -> TeamPolicy:
        """Uniform random team actions, drawn from this rank's own stream (for warm-up)."""
        return random_team_policy(self.env_spec, self._sample_generator)

    def total_env_steps(self) -> int:
        """Environment steps over all ranks (every rank steps the same number of copies in lockstep)."""
        return self.env_steps * self._world_size

    # ------------------------------------------------------------------------------------------- sampling
    def sample(self, batch_size: int, recent: int | None = None) -> dict[str, torch.Tensor]:
        """``batch_size`` random stored transitions (``recent``: from the newest ``recent`` steps of each copy)."""
        return self.buffer.sample(batch_size, self._sample_generator, recent)

    def sample_sequences(self, batch_size: int, length: int) -> dict[str, torch.Tensor]:
        """``batch_size`` windows of ``length`` consecutive steps: ``[B, L, ...]``."""
        return self.buffer.sample_sequences(batch_size, length, self._sample_generator)

    # -------------------------------------------------------------------------------------------- loaders
    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Ticks(), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader([torch.zeros(1)], batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return DataLoader([torch.zeros(1)], batch_size=None)

    # ---------------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Every rank's buffer (gathered on rank 0), env-step count and sampler state.

        Environments themselves are not saved: a resumed run starts fresh episodes (``is_first`` marks them).
        """
        own = {
            "buffer": self.buffer.state_dict(),
            "env_steps": self.env_steps,
            "sampler": self._sample_generator.get_state(),
        }
        if self._world_size > 1 and dist.is_available() and dist.is_initialized():
            gathered: list[dict[str, Any]] | None = [None] * self._world_size if self._rank == 0 else None
            dist.gather_object(own, gathered, dst=0)
            return {"ranks": gathered if self._rank == 0 else []}
        return {"ranks": [own]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        ranks = state_dict["ranks"]
        if self._world_size != len(ranks):
            raise ValueError(
                f"checkpoint holds replay buffers of {len(ranks)} rank(s), this run has {self._world_size}: "
                "resume with the same --trainer.devices"
            )
        own = ranks[self._rank]
        self.buffer.load_state_dict(own["buffer"])
        self.env_steps = int(own["env_steps"])
        self._sample_generator.set_state(own["sampler"])
