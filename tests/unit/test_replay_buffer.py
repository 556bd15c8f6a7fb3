"""Replay buffer: ring storage, transition and sequence sampling, save and restore; the online data module."""

import numpy as np
import pytest
import torch

from lightning_mbmarl.data.online_datamodule import OnlineDataModule
from lightning_mbmarl.data.replay_buffer import ReplayBuffer, StepRecord
from lightning_mbmarl.envs import EnvConfig
from lightning_mbmarl.envs.icg import icg_spec

SPEC = icg_spec()


def _record(step: int, envs: int = 2, first: bool = False) -> StepRecord:
    value = torch.full((envs,), float(step))
    return StepRecord(
        obs=value.view(envs, 1, 1).expand(envs, 2, 5).clone(),
        state=value.view(envs, 1).expand(envs, 5).clone(),
        avail=torch.ones(envs, 2, 2, dtype=torch.bool),
        action=torch.zeros(envs, 2, dtype=torch.long),
        reward=value,
        agent_rewards=value.view(envs, 1).expand(envs, 2).clone(),
        terminated=torch.zeros(envs, dtype=torch.bool),
        truncated=torch.zeros(envs, dtype=torch.bool),
        next_obs=(value + 1).view(envs, 1, 1).expand(envs, 2, 5).clone(),
        next_state=(value + 1).view(envs, 1).expand(envs, 5).clone(),
        next_avail=torch.ones(envs, 2, 2, dtype=torch.bool),
        is_first=torch.full((envs,), first),
    )


def test_ring_keeps_the_newest_steps_and_sequences_are_consecutive():
    buffer = ReplayBuffer(SPEC, capacity=5, num_envs=2)
    for step in range(8):
        buffer.add(_record(step))
    assert len(buffer) == 10
    rewards = buffer.sample(200, torch.Generator().manual_seed(0))["reward"]
    assert set(rewards.tolist()) == {3.0, 4.0, 5.0, 6.0, 7.0}
    sequences = buffer.sample_sequences(50, 3, torch.Generator().manual_seed(0))
    assert sequences["state"].shape == (50, 3, 5)
    steps = sequences["reward"]
    assert torch.equal(steps[:, 1:] - steps[:, :-1], torch.ones(50, 2))  # oldest first, no wrap-around jumps
    assert sequences["action_features"].shape == (50, 3, 2, 2)


def test_recent_sampling_and_errors():
    buffer = ReplayBuffer(SPEC, capacity=10, num_envs=1)
    with pytest.raises(RuntimeError, match="empty"):
        buffer.sample(1)
    for step in range(10):
        buffer.add(_record(step, envs=1))
    assert set(buffer.sample(100, recent=2)["reward"].tolist()) == {8.0, 9.0}
    with pytest.raises(RuntimeError, match="need >= 11"):
        buffer.sample_sequences(1, 11)
    with pytest.raises(ValueError, match="reward"):
        bad = _record(0, envs=1)
        bad.reward = torch.zeros(2)
        buffer.add(bad)


def test_save_and_restore_continues_the_ring():
    buffer = ReplayBuffer(SPEC, capacity=4, num_envs=2)
    for step in range(6):
        buffer.add(_record(step))
    restored = ReplayBuffer(SPEC, capacity=4, num_envs=2)
    restored.load_state_dict(buffer.state_dict())
    restored.add(_record(6))
    buffer.add(_record(6))
    generator = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    for key in ("reward", "state", "next_obs"):
        assert torch.equal(buffer.sample(64, generator())[key], restored.sample(64, generator())[key])
    with pytest.raises(ValueError, match="num_envs"):
        ReplayBuffer(SPEC, capacity=4, num_envs=3).load_state_dict(buffer.state_dict())


def test_online_datamodule_collects_counts_and_resumes():
    dm = OnlineDataModule(EnvConfig("icg", {"episode_length": 4}), num_envs=3, buffer_capacity=30, seed=1)
    dm.setup("fit")
    finished = dm.collect(dm.random_policy(), vector_steps=8).episodes
    assert dm.env_steps == 24 and len(dm.buffer) == 24
    assert len(finished) == 6 and all(e.length == 4 for e in finished)  # two 4-step episodes per copy
    batch = dm.sample(16)
    assert batch["obs"].shape == (16, 2, 5) and batch["action"].dtype == torch.long
    starts = dm.sample_sequences(8, 4)["is_first"]
    assert starts.shape == (8, 4)
    state = dm.state_dict()
    resumed = OnlineDataModule(EnvConfig("icg", {"episode_length": 4}), num_envs=3, buffer_capacity=30, seed=1)
    resumed.load_state_dict(state)
    assert resumed.env_steps == 24 and len(resumed.buffer) == 24
    assert torch.equal(resumed.sample(16)["reward"], dm.sample(16)["reward"])
    np.testing.assert_array_equal(resumed.buffer.storage["state"][:8].numpy(), dm.buffer.storage["state"][:8].numpy())
