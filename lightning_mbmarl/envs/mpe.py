"""Multi-Agent Particle Environment tasks (AORPO paper §6.2) through the ``mpe2`` package's PettingZoo parallel API.

Registered as two environments, one per cooperative task of the paper:

* ``mpe_spread`` - cooperative navigation (``simple_spread_v3``): ``N`` agents (default 3) cover ``N`` landmarks;
  observations 18 numbers per agent (N=3), state 54, actions Box(5) / Discrete(5).
* ``mpe_speaker_listener`` - cooperative communication (``simple_speaker_listener_v4``): a speaker (observes 3,
  says 3) and a listener (observes 11, moves 5); state 14.

Options (``EnvConfig.kwargs``): ``episode_length`` (default 25, as in the paper), ``continuous_actions`` (default
True, as in the paper; False gives discrete actions), and any keyword of the mpe2 scenario itself, passed on as is
(e.g. ``N``, ``local_ratio``, ``num_agent_neighbors`` for ``mpe_spread``).

Conventions of this adapter:

* Observations are zero-padded to the largest agent's size; the global state is mpe2's ``state()``, which is the
  concatenation of the agents' observations in agent order, so ``spec.obs_from_state`` selects each agent's slice.
* Continuous actions live in ``[-1, 1]`` here and are clipped, then mapped linearly onto mpe2's Box bounds
  (``[0, 1]``). Discrete actions are ``int64`` choice indices; every real choice is always available.
* The team reward is the mean of the agents' mpe2 rewards (they coincide except in ``mpe_spread``, where each
  agent's own collision penalty enters with weight ``local_ratio``); ``agent_rewards`` holds the per-agent ones.
* Episodes end by truncation after ``episode_length`` steps; mpe2's own termination (only with
  ``terminate_on_success=True``) is passed on as ``terminated``.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import numpy as np
from gymnasium import spaces as gym_spaces

from lightning_mbmarl.envs.base import EnvSpec, MultiAgentEnv

# Registered environment name -> mpe2 module.
MPE_SCENARIOS: dict[str, str] = {
    "mpe_spread": "simple_spread_v3",
    "mpe_speaker_listener": "simple_speaker_listener_v4",
}


def _parallel_env(name: str, **kwargs: Any) -> Any:
    """The mpe2 PettingZoo parallel environment of registered task ``name``."""
    if name not in MPE_SCENARIOS:
        raise ValueError(f"unknown MPE task {name!r}; known: {sorted(MPE_SCENARIOS)}")
    try:
        module = importlib.import_module(f"mpe2.{MPE_SCENARIOS[name]}")
    except ModuleNotFoundError as err:
        raise ImportError(
            f'environment {name!r} needs the mpe2 package: install it with `pip install -e ".[mpe]"`'
        ) from err
    return module.parallel_env(**kwargs)


def _spec(name: str, env: Any, episode_length: int) -> EnvSpec:
    """The spec of an mpe2 parallel env; its ``state()`` is the agents' observations concatenated in agent order."""
    agents = tuple(env.possible_agents)
    obs_dims = tuple(int(env.observation_space(a).shape[0]) for a in agents)
    spaces = [env.action_space(a) for a in agents]
    continuous = isinstance(spaces[0], gym_spaces.Box)
    offsets = np.cumsum((0,) + obs_dims)
    return EnvSpec(
        name=name,
        n_agents=len(agents),
        obs_dims=obs_dims,
        state_dim=int(env.state_space.shape[0]),
        action_kind="continuous" if continuous else "discrete",
        action_sizes=tuple(int(s.shape[0]) if continuous else int(s.n) for s in spaces),
        episode_limit=episode_length,
        agent_names=agents,
        obs_from_state=tuple(tuple(range(offsets[i], offsets[i + 1])) for i in range(len(agents))),
    )


class MPEEnv(MultiAgentEnv):
    """One copy of an mpe2 task behind the common interface; see the module docstring for the conventions."""

    render_options = {"render_mode": "rgb_array"}  # mpe2 draws with pygame (SDL's dummy video driver off-screen)

    def __init__(
        self, name: str, episode_length: int = 25, continuous_actions: bool = True, **scenario_kwargs: Any
    ) -> None:
        if episode_length < 1:
            raise ValueError(f"{name}: episode_length must be >= 1, got {episode_length}")
        if scenario_kwargs.get("render_mode"):
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        self._env = _parallel_env(
            name, max_cycles=episode_length, continuous_actions=continuous_actions, **scenario_kwargs
        )
        self.spec = _spec(name, self._env, episode_length)
        self._agents = self.spec.agent_names
        self._avail = self.spec.action_mask()
        # Continuous actions only: each agent's mpe2 Box bounds (low [d_i], high [d_i]).
        self._bounds = [
            (np.asarray(space.low, np.float32), np.asarray(space.high, np.float32))
            for space in (self._env.action_space(a) for a in self._agents)
            if isinstance(space, gym_spaces.Box)
        ]
        self._t = 0
        self._running = False

    def _pad(self, observations: dict[str, np.ndarray]) -> np.ndarray:
        obs = np.zeros((self.spec.n_agents, self.spec.obs_dim), np.float32)
        for i, (agent, d) in enumerate(zip(self._agents, self.spec.obs_dims)):
            obs[i, :d] = observations[agent]
        return obs

    def _mpe_actions(self, actions: np.ndarray) -> dict[str, Any]:
        """Our actions (``int64 [N]`` or ``float32 [N, action_dim]`` in [-1, 1]) -> mpe2's per-agent actions."""
        spec = self.spec
        if spec.discrete:
            actions = np.asarray(actions).reshape(-1)
            sizes = np.asarray(spec.action_sizes)
            integral = np.issubdtype(actions.dtype, np.integer)
            if actions.shape != (spec.n_agents,) or not integral or not np.all((actions >= 0) & (actions < sizes)):
                raise ValueError(
                    f"{spec.name}: actions must be {spec.n_agents} integers, agent i's in [0, action_sizes[i]) with "
                    f"action_sizes={spec.action_sizes}, got {actions!r}"
                )
            return {agent: int(a) for agent, a in zip(self._agents, actions)}
        actions = np.asarray(actions, np.float32)
        if actions.shape != (spec.n_agents, spec.action_dim) or not np.isfinite(actions).all():
            shape = (spec.n_agents, spec.action_dim)
            raise ValueError(f"{spec.name}: actions must be finite floats of shape {shape}, got {actions!r}")
        unit = (np.clip(actions, -1.0, 1.0) + 1.0) / 2.0  # [-1, 1] -> [0, 1]
        return {
            agent: (low + unit[i, : len(low)] * (high - low)).astype(np.float32)
            for i, (agent, (low, high)) in enumerate(zip(self._agents, self._bounds))
        }

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        observations, _ = self._env.reset(seed=seed)
        self._t = 0
        self._running = True
        return self._pad(observations), self._env.state().astype(np.float32), self._avail.copy()

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray, bool, bool, dict[str, Any]]:
        if not self._running:
            raise RuntimeError(f"{self.spec.name}: call reset() before step() (the episode has ended or not begun)")
        observations, rewards, terminations, _, _ = self._env.step(self._mpe_actions(actions))
        self._t += 1
        agent_rewards = np.array([rewards[a] for a in self._agents], np.float32)
        terminated = any(terminations.values())
        truncated = self._t >= self.spec.episode_limit and not terminated
        self._running = not (terminated or truncated)
        obs, state, reward = self._pad(observations), self._env.state().astype(np.float32), float(agent_rewards.mean())
        return obs, state, self._avail.copy(), reward, agent_rewards, terminated, truncated, {}

    def render(self) -> np.ndarray:
        frame = self._env.render()
        if frame is None:
            raise NotImplementedError(f"{self.spec.name}: build the copy with {self.render_options} to draw it")
        return np.asarray(frame, np.uint8)

    def close(self) -> None:
        self._env.close()
