"""The Climb game (AORPO paper §6.1, Fig. 4).

What the paper fixes: agent 1 picks ``a`` in [-1, 1], agent 2 picks ``b`` in [-1, 1]; ``(a, b)`` is a position.
There are two states and two landmarks, lower-left (-0.5, -0.5) and upper-right (0.5, 0.5); the only Nash
equilibrium is the lower-left landmark in state 1 and the upper-right landmark in state 2.

Choices made here (the paper gives no formula):

* States are indexed 0 (the paper's state 1) and 1 (state 2). A state's *equilibrium landmark* ``e = (c, c)`` is
  lower-left in state 0 and upper-right in state 1; its *tempting landmark* ``o`` is the other one.
* Common payoff: both agents get the same reward (``agent_rewards = [r, r]``), and the team reward is ``r``. (The
  paper calls Climb a modified Battle of the Sexes and lists it among competitive tasks; with one equilibrium wanted
  in each state, a shared climb-style payoff keeps the team reward meaningful for this package's learners.)::

      r(s, a, b) = 1/2 [k_n(a - c) k_w(b - c) + k_w(a - c) k_n(b - c)]      summit on two ridges
                 + 0.3 max(0, 1 - |(a, b) - o|^2)^2                         tempting hill

  with ``k_n(x) = exp(-x^2 / (2 * 0.15^2))`` (narrow) and ``k_w(x) = exp(-x^2 / (2 * 1.5^2))`` (wide). The first
  term is a summit of height 1 at ``e`` reached along two narrow ridges: an agent standing exactly on its own
  coordinate of ``e`` earns ``1/2 k_w(partner's distance)`` whatever the partner does. The second is a broad hill
  of height 0.3 and radius 1 around ``o``, exactly zero at ``e`` and on the ridges' crests.
* Numbers: r(e) = 1; r(o) = 0.3 (+2e-10); half-coordination, one agent on ``e``'s coordinate and the other on
  ``o``'s, e.g. (c, -c): 1/2 (k_w(1) + k_n(1)) = 0.400. So from ``o`` either agent gains by jumping alone to ``e``'s
  coordinate (0.3 -> 0.4), and then its partner by joining (0.4 -> 1): ``o`` is a strict local maximum of ``r`` but no
  equilibrium. For every partner action, moving onto ``e``'s coordinate is an agent's best response, so ``e`` is the
  unique Nash equilibrium of each state's stage game (checked on a 401 x 401 grid in the tests).
* Landscape, measured with :func:`climb_reward`: joint gradient ascent on ``r`` from 4000 uniform random starts
  ends at ``o`` from 31% of them and at ``e`` from 69%, so a deterministic gradient learner can get stuck. The
  expected reward under Gaussian exploration noise (std sigma per agent, integrated on a fine grid) still has ``o``
  as a local maximum at sigma = 0.3, but at sigma = 0.4 its only maximum is ``e`` (at sigma = 0.5 it sits at
  (-0.45, -0.45) in state 0, pulled inwards by clipping): a learner that explores widely early finds the equilibrium.
* Transitions: the state alternates 0, 1, 0, ... independently of the actions, starting from a uniformly random
  state (seeded by ``reset(seed)``). Since the actions never move the state, the game's Markov Nash equilibrium is
  the stage equilibrium of each state.
* Episodes last ``episode_length`` steps (default 25, the length of the paper's episodes) and end by truncation.
* Each agent observes the state as a one-hot ``[2]``; the global state is the same one-hot.
* Option ``observe_last_actions`` (default off): observations and the global state also hold the previous joint
  action ``[agent 1's, agent 2's]`` (zeros at an episode's first step), as the ICG's do, so ``[4]`` each. The Climb
  of AORPO's experiments leaves it off. It is for learners whose reward model reads one agent's own history only
  (MABL's agent-level reward head, §3.1.2 of its paper): with the plain one-hot, no observation tells an agent what
  its partner did, and such a model can only learn the payoff averaged over the partner's behaviour.
* Actions: ``float32 [2, 1]`` in [-1, 1] (values outside are clipped).
* ``info["nash_distance"]`` (every step): :func:`nash_distance` of the latest joint actions taken in each state
  (nan until both states were played). At the end of a greedy episode it is the distance the issue's
  ``eval/nash_distance`` asks for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lightning_mbmarl.envs.base import EnvSpec, MultiAgentEnv

LOWER_LEFT = np.array([-0.5, -0.5])
UPPER_RIGHT = np.array([0.5, 0.5])
SUMMIT_RIDGE_WIDTH = 0.15  # k_n: how exactly one agent must stand on the equilibrium's coordinate
SUMMIT_RIDGE_LENGTH = 1.5  # k_w: how slowly a ridge falls off with the partner's distance
TEMPTATION = 0.3  # height of the hill at the tempting landmark
TEMPTATION_RADIUS = 1.0  # radius of that hill


def equilibrium(state: int) -> np.ndarray:
    """The Nash-equilibrium joint action ``[2]`` of ``state`` (0: lower-left landmark, 1: upper-right)."""
    if state not in (0, 1):
        raise ValueError(f"climb: state must be 0 or 1, got {state!r}")
    return (LOWER_LEFT if state == 0 else UPPER_RIGHT).copy()


def tempting_landmark(state: int) -> np.ndarray:
    """The other landmark ``[2]`` of ``state``: a local maximum of the reward, not an equilibrium."""
    return equilibrium(1 - state)


def climb_reward(state: int, position: np.ndarray) -> np.ndarray:
    """Common reward of joint actions ``position [..., 2]`` (agent 1's, agent 2's) in ``state``; returns ``[...]``."""
    p = np.clip(np.asarray(position, np.float64), -1.0, 1.0)
    d = p - equilibrium(state)
    narrow = np.exp(-(d**2) / (2 * SUMMIT_RIDGE_WIDTH**2))
    wide = np.exp(-(d**2) / (2 * SUMMIT_RIDGE_LENGTH**2))
    summit = 0.5 * (narrow[..., 0] * wide[..., 1] + wide[..., 0] * narrow[..., 1])
    u2 = ((p - tempting_landmark(state)) ** 2).sum(-1) / TEMPTATION_RADIUS**2
    hill = TEMPTATION * np.clip(1.0 - u2, 0.0, None) ** 2
    return summit + hill


def nash_distance(actions_state1: np.ndarray, actions_state2: np.ndarray) -> float:
    """Largest Euclidean distance, over both states, between the joint action ``[2]`` taken there and the state's
    equilibrium (``eval/nash_distance``; 0 at the equilibrium). ``actions_state1`` is for state 0 (the paper's 1)."""
    gaps = [
        np.linalg.norm(np.asarray(a, np.float64).reshape(2) - equilibrium(s))
        for s, a in enumerate((actions_state1, actions_state2))
    ]
    return float(max(gaps))


def climb_spec(episode_length: int = 25, observe_last_actions: bool = False) -> EnvSpec:
    width = 4 if observe_last_actions else 2
    return EnvSpec(
        name="climb",
        n_agents=2,
        obs_dims=(width, width),
        state_dim=width,
        action_kind="continuous",
        action_sizes=(1, 1),
        episode_limit=episode_length,
        agent_names=("agent_1", "agent_2"),
        obs_from_state=(tuple(range(width)), tuple(range(width))),
    )


class ClimbGame(MultiAgentEnv):
    """One copy of the game; see the module docstring for reward, transitions and observations."""

    def __init__(self, episode_length: int = 25, observe_last_actions: bool = False) -> None:
        if episode_length < 1:
            raise ValueError(f"climb: episode_length must be >= 1, got {episode_length}")
        self.spec = climb_spec(episode_length, observe_last_actions)
        self._observe_last_actions = observe_last_actions
        self._rng = np.random.default_rng()
        self._state = 0
        self._t = 0
        self._last_joint = np.full((2, 2), np.nan)  # the latest joint action taken in each state, for nash_distance

    def _observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        state = np.eye(2, dtype=np.float32)[self._state]
        if self._observe_last_actions:  # the previous step was played in the other state; nan (-> 0) at the start
            previous = np.nan_to_num(self._last_joint[1 - self._state], nan=0.0)
            state = np.concatenate([state, previous.astype(np.float32)])
        return np.stack([state, state]), state, np.ones((2, 1), bool)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._state = int(self._rng.integers(2))
        self._t = 0
        self._last_joint[:] = np.nan
        return self._observe()

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray, bool, bool, dict[str, Any]]:
        actions = np.asarray(actions, np.float64)
        if actions.size != 2 or not np.isfinite(actions).all():
            raise ValueError(f"climb: actions must be two finite numbers (shape [2, 1]), got {actions!r}")
        reward = float(climb_reward(self._state, actions.reshape(2)))
        self._last_joint[self._state] = np.clip(actions.reshape(2), -1.0, 1.0)
        self._state = 1 - self._state
        self._t += 1
        obs, state, avail = self._observe()
        truncated = self._t >= self.spec.episode_limit
        # nan until both states have been played; at the end of an episode, how far the team's latest joint actions
        # in the two states are from the equilibria (logged as eval/nash_distance)
        distance = np.nan if np.isnan(self._last_joint).any() else nash_distance(*self._last_joint)
        return obs, state, avail, reward, np.full(2, reward, np.float32), False, truncated, {"nash_distance": distance}
