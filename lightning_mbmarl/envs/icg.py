"""The Iterated Coordination Game (MOMA-PPO paper §5.2, Fig. 3a, Table 1).

Two agents each pick left (0) or right (1) at every step of a fixed-length episode. The team gets reward 1
when both pick the same side and 0 otherwise, so (left, left) and (right, right) are two equally good
conventions the team must agree on.

Choices made here (the paper leaves them open):

* Episodes last ``episode_length`` steps (default 10) and end by truncation (a time limit, not a terminal state).
* Each agent observes the previous joint action, its own choice first: ``[one_hot(own previous action),
  one_hot(partner's previous action), is_first_step]`` (5 numbers; the one-hots are zero at the first step).
  Seeing what the partner did last lets an agent follow a convention once one is established.
* The global state is ``[one_hot(agent 0's previous action), one_hot(agent 1's previous action), is_first_step]``.
* The score of an episode is its mean per-step reward, in [0, 1]; under dataset policies that pick right with
  probabilities (p1, p2) it is p1 p2 + (1 - p1)(1 - p2) in expectation (0.625 / 0.5 / 0.375 for Table 1's
  favorable / neutral / unfavorable datasets; the paper measured 0.623 / 0.502 / 0.375).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lightning_mbmarl.envs.base import EnvSpec, MultiAgentEnv

LEFT, RIGHT = 0, 1

# P(a^1 = right), P(a^2 = right) of the policies that collect the paper's datasets (Table 1).
DATASET_POLICIES: dict[str, tuple[float, float]] = {
    "favorable": (0.75, 0.75),
    "neutral": (0.5, 0.5),
    "unfavorable": (0.25, 0.75),
}


def icg_spec(episode_length: int = 10) -> EnvSpec:
    return EnvSpec(
        name="icg",
        n_agents=2,
        obs_dims=(5, 5),
        state_dim=5,
        action_kind="discrete",
        action_sizes=(2, 2),
        episode_limit=episode_length,
        agent_names=("agent_1", "agent_2"),
        # agent 1 sees the state as is; agent 2 sees the two one-hots swapped (its own choice first).
        obs_from_state=((0, 1, 2, 3, 4), (2, 3, 0, 1, 4)),
    )


class IteratedCoordinationGame(MultiAgentEnv):
    """One copy of the game; see the module docstring for observations, state and reward."""

    def __init__(self, episode_length: int = 10) -> None:
        if episode_length < 1:
            raise ValueError(f"icg: episode_length must be >= 1, got {episode_length}")
        self.spec = icg_spec(episode_length)
        self._t = 0
        self._previous: np.ndarray | None = None  # previous joint action, int64 [2]

    def _observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        onehot = np.zeros((2, 2), np.float32)
        if self._previous is not None:
            onehot[np.arange(2), self._previous] = 1.0
        first = np.float32(self._previous is None)
        state = np.concatenate([onehot[0], onehot[1], [first]]).astype(np.float32)
        obs = np.stack(
            [
                np.concatenate([onehot[0], onehot[1], [first]]),
                np.concatenate([onehot[1], onehot[0], [first]]),
            ]
        ).astype(np.float32)
        avail = np.ones((2, 2), bool)
        return obs, state, avail

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # The game has no randomness of its own; the seed is accepted for the common interface.
        self._t = 0
        self._previous = None
        return self._observe()

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray, bool, bool, dict[str, Any]]:
        actions = np.asarray(actions).reshape(-1)
        if actions.shape != (2,) or not np.isin(actions, (LEFT, RIGHT)).all():
            raise ValueError(f"icg: actions must be two integers in {{0 (left), 1 (right)}}, got {actions!r}")
        self._previous = actions.astype(np.int64)
        self._t += 1
        reward = float(actions[0] == actions[1])
        obs, state, avail = self._observe()
        truncated = self._t >= self.spec.episode_limit
        return obs, state, avail, reward, np.full(2, reward, np.float32), False, truncated, {}


def expected_dataset_score(p_right: tuple[float, float]) -> float:
    """Expected per-step reward of two independent agents picking right with probabilities ``p_right``."""
    p1, p2 = p_right
    return p1 * p2 + (1.0 - p1) * (1.0 - p2)
