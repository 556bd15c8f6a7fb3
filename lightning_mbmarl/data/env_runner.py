"""Stepping ``E`` environment copies with a team policy: the one loop behind evaluation and online collection.

It keeps what a policy needs between steps (each copy's action-observation history, reset at episode starts) and
what a learning curve needs (each copy's running return; finished episodes are reported with their flags).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from lightning_mbmarl.envs.actions import encode_actions
from lightning_mbmarl.data.replay_buffer import StepRecord
from lightning_mbmarl.envs.base import VectorMultiAgentEnv
from lightning_mbmarl.learners.memory import History, clear_histories, empty_history, push_history

#: (obs [E, N, O], avail bool [E, N, A], history) -> actions (int64 [E, N] or float [E, N, A]), on the runner's device
TeamPolicy = Callable[[torch.Tensor, torch.Tensor, History], torch.Tensor]


@dataclass
class FinishedEpisode:
    """An episode that ended during a step: which copy, its return and length, its boolean flags (e.g. won) and the
    numbers the environment reported at its last step (e.g. nash_distance)."""

    copy: int
    episode_return: float
    length: int
    flags: dict[str, bool] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


class EnvRunner:
    """Runs a :class:`VectorMultiAgentEnv` one step at a time under a :data:`TeamPolicy`."""

    def __init__(
        self, env: VectorMultiAgentEnv, history_length: int, seed: int, device: torch.device | str = "cpu"
    ) -> None:
        self.env, self.spec, self.device = env, env.spec, torch.device(device)
        self.history_length = history_length
        self.team = env.reset(seed)
        E = env.num_envs
        self.history = empty_history(
            E, self.spec.n_agents, history_length, self.spec.obs_dim, self.spec.action_dim, self.device
        )
        self.is_first = np.ones(E, dtype=bool)
        self.episode_return = np.zeros(E)
        self.episode_length = np.zeros(E, dtype=np.int64)

    def step(self, policy: TeamPolicy) -> tuple[StepRecord, list[FinishedEpisode]]:
        """One step of every copy; returns the step (CPU tensors, ready for a replay buffer) and the episodes it ended."""
        obs = torch.as_tensor(self.team.obs, device=self.device)
        avail = torch.as_tensor(self.team.avail, device=self.device)
        actions = policy(obs, avail, self.history)
        result = self.env.step(actions.cpu().numpy())
        record = StepRecord(
            obs=torch.as_tensor(self.team.obs),
            state=torch.as_tensor(self.team.state),
            avail=torch.as_tensor(self.team.avail),
            action=actions.detach().cpu(),
            reward=torch.as_tensor(result.reward),
            agent_rewards=torch.as_tensor(result.agent_rewards),
            terminated=torch.as_tensor(result.terminated),
            truncated=torch.as_tensor(result.truncated),
            next_obs=torch.as_tensor(result.final_obs),
            next_state=torch.as_tensor(result.final_state),
            next_avail=torch.as_tensor(result.final_avail),
            is_first=torch.as_tensor(self.is_first),
        )
        done = result.done
        if self.history_length:
            history = push_history(*self.history, obs, encode_actions(actions, self.spec))
            self.history = clear_histories(history, torch.as_tensor(done, device=self.device))
        self.episode_return += result.reward
        self.episode_length += 1
        finished = [
            FinishedEpisode(
                int(b),
                float(self.episode_return[b]),
                int(self.episode_length[b]),
                {k: bool(v[b]) for k, v in result.info.items() if v.dtype == bool},
                {k: float(v[b]) for k, v in result.info.items() if v.dtype.kind == "f"},
            )
            for b in np.flatnonzero(done)
        ]
        self.episode_return[done] = 0.0
        self.episode_length[done] = 0
        self.is_first = done.copy()
        self.team = result.next
        return record, finished


def summarize_episodes(episodes: list[FinishedEpisode]) -> dict[str, float]:
    """Mean ``episode_return`` and ``episode_length`` of finished episodes, the rate of each flag (``won_rate``) and
    the mean of each number reported at episode ends (``nash_distance``)."""
    if not episodes:
        return {}
    stats = {
        "episode_return": float(np.mean([e.episode_return for e in episodes])),
        "episode_length": float(np.mean([e.length for e in episodes])),
    }
    for flag in sorted({k for e in episodes for k in e.flags}):
        stats[f"{flag}_rate"] = float(np.mean([e.flags.get(flag, False) for e in episodes]))
    for name in sorted({k for e in episodes for k in e.metrics}):
        stats[name] = float(np.nanmean([e.metrics.get(name, np.nan) for e in episodes]))
    return stats
