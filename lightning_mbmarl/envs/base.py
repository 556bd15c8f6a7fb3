"""The one multi-agent environment interface every environment family implements.

Conventions (shared by environments, datasets, world models and learners):

* ``N`` agents, each with its own observation size ``obs_dims[i]``; observations are zero-padded to
  ``obs_dim = max(obs_dims)`` so a team's observations form one ``[N, obs_dim]`` array.
* Actions are either all discrete or all continuous.
  - discrete: agent ``i`` has ``action_sizes[i]`` choices; an action is an integer index, a team's actions an
    ``int64 [N]`` array. Availability masks are ``bool [N, action_dim]`` with ``action_dim = max(action_sizes)``;
    padded choices are never available.
  - continuous: agent ``i`` controls ``action_sizes[i]`` dimensions in ``[low, high]``; a team's actions are a
    ``float32 [N, action_dim]`` array, padded dimensions are ignored by the environment.
* ``reward`` is the team reward (a scalar per step); ``agent_rewards`` ``[N]`` where an environment has them.
* ``terminated`` marks an absorbing state (death, goal), ``truncated`` a time limit: the value of the last state is
  still a valid return-to-go after a truncation, never after a termination.

A :class:`VectorMultiAgentEnv` steps ``B`` copies at once and resets finished copies itself (same-step auto-reset):
the arrays a step returns describe the state each copy is in *now* (a fresh episode for copies that just ended),
and ``final_obs`` / ``final_state`` hold the true last observation of copies that ended.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

ActionKind = Literal["discrete", "continuous"]


@dataclass(frozen=True)
class EnvSpec:
    """Static description of a multi-agent task: sizes, action kind, time limit."""

    name: str  # registry name with its options, e.g. "icg" or "mamujoco:Ant-4x2"
    n_agents: int
    obs_dims: tuple[int, ...]  # true observation size of each agent
    state_dim: int  # size of the global state
    action_kind: ActionKind
    action_sizes: tuple[int, ...]  # number of choices (discrete) or of dimensions (continuous) per agent
    episode_limit: int  # steps after which an episode is truncated
    action_low: float = -1.0  # continuous actions only
    action_high: float = 1.0
    agent_names: tuple[str, ...] = field(default=())
    # Observation function O^i as state indices: agent i observes state[obs_from_state[i]] (then zero-padded).
    # Model-based methods that predict global states (MOMA-PPO) derive the agents' observations with it;
    # None where observations are not a selection of the state.
    obs_from_state: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        if len(self.obs_dims) != self.n_agents or len(self.action_sizes) != self.n_agents:
            raise ValueError(
                f"EnvSpec {self.name!r}: obs_dims {self.obs_dims} and action_sizes {self.action_sizes} must each "
                f"have one entry per agent (n_agents={self.n_agents})"
            )
        if self.action_kind not in ("discrete", "continuous"):
            raise ValueError(
                f"EnvSpec {self.name!r}: action_kind must be 'discrete' or 'continuous', got {self.action_kind!r}"
            )
        if self.obs_from_state is not None:
            sizes = tuple(len(idx) for idx in self.obs_from_state)
            if sizes != self.obs_dims or any(not 0 <= j < self.state_dim for idx in self.obs_from_state for j in idx):
                raise ValueError(
                    f"EnvSpec {self.name!r}: obs_from_state must give obs_dims={self.obs_dims} state indices in "
                    f"[0, {self.state_dim}) per agent, got sizes {sizes}"
                )
        if not self.agent_names:
            object.__setattr__(self, "agent_names", tuple(f"agent_{i}" for i in range(self.n_agents)))

    @property
    def obs_dim(self) -> int:
        """Padded per-agent observation size."""
        return max(self.obs_dims)

    @property
    def action_dim(self) -> int:
        """Padded per-agent action size (choices for discrete, dimensions for continuous)."""
        return max(self.action_sizes)

    @property
    def discrete(self) -> bool:
        return self.action_kind == "discrete"

    def observation_mask(self) -> np.ndarray:
        """``bool [N, obs_dim]``: True on each agent's real observation entries, False on padding."""
        mask = np.zeros((self.n_agents, self.obs_dim), dtype=bool)
        for i, d in enumerate(self.obs_dims):
            mask[i, :d] = True
        return mask

    def action_mask(self) -> np.ndarray:
        """``bool [N, action_dim]``: True on each agent's real choices / dimensions, False on padding."""
        mask = np.zeros((self.n_agents, self.action_dim), dtype=bool)
        for i, d in enumerate(self.action_sizes):
            mask[i, :d] = True
        return mask

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "n_agents": self.n_agents,
            "obs_dims": list(self.obs_dims),
            "state_dim": self.state_dim,
            "action_kind": self.action_kind,
            "action_sizes": list(self.action_sizes),
            "episode_limit": self.episode_limit,
            "action_low": self.action_low,
            "action_high": self.action_high,
            "agent_names": list(self.agent_names),
            "obs_from_state": None if self.obs_from_state is None else [list(i) for i in self.obs_from_state],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EnvSpec":
        return cls(
            name=str(d["name"]),
            n_agents=int(d["n_agents"]),
            obs_dims=tuple(int(x) for x in d["obs_dims"]),
            state_dim=int(d["state_dim"]),
            action_kind=d["action_kind"],
            action_sizes=tuple(int(x) for x in d["action_sizes"]),
            episode_limit=int(d["episode_limit"]),
            action_low=float(d.get("action_low", -1.0)),
            action_high=float(d.get("action_high", 1.0)),
            agent_names=tuple(d.get("agent_names", ())),
            obs_from_state=None
            if d.get("obs_from_state") is None
            else tuple(tuple(int(j) for j in i) for i in d["obs_from_state"]),
        )


@dataclass
class TeamObservation:
    """What a team sees at one step of ``B`` environment copies.

    obs:   float32 [B, N, obs_dim]   per-agent observations (zero-padded)
    state: float32 [B, state_dim]    global state
    avail: bool    [B, N, action_dim] available actions (all True for continuous actions)
    """

    obs: np.ndarray
    state: np.ndarray
    avail: np.ndarray


@dataclass
class StepResult:
    """Outcome of one step of ``B`` environment copies (after same-step auto-reset).

    next:          TeamObservation the copies are in now (a fresh episode where a copy just ended)
    final_obs:     float32 [B, N, obs_dim] the true next observation (equals ``next.obs`` where not done)
    final_state:   float32 [B, state_dim]  the true next state
    final_avail:   bool [B, N, action_dim] the true next availability mask
    reward:        float32 [B]              team reward
    agent_rewards: float32 [B, N]           per-agent rewards (the team reward repeated where there are none)
    terminated:    bool [B]                 absorbing state reached
    truncated:     bool [B]                 time limit reached (and not terminated)
    info:          per-copy extra scalars, e.g. {"won": bool [B]}
    """

    next: TeamObservation
    final_obs: np.ndarray
    final_state: np.ndarray
    final_avail: np.ndarray
    reward: np.ndarray
    agent_rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    info: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated


class MultiAgentEnv(abc.ABC):
    """One copy of a multi-agent environment. Arrays are single-copy versions of :class:`TeamObservation`."""

    spec: EnvSpec

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Start an episode; returns ``(obs [N, obs_dim], state [state_dim], avail [N, action_dim])``."""

    @abc.abstractmethod
    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray, bool, bool, dict[str, Any]]:
        """Apply team actions (``int64 [N]`` or ``float32 [N, action_dim]``).

        Returns ``(obs, state, avail, reward, agent_rewards [N], terminated, truncated, info)``; the environment
        truncates at ``spec.episode_limit`` itself.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release simulator resources."""

    #: constructor options that make a copy able to draw itself (:meth:`render`); None: it cannot
    render_options: dict[str, Any] | None = None

    def render(self) -> np.ndarray:
        """The current frame, RGB ``uint8 [H, W, 3]``, for a copy built with :attr:`render_options`."""
        raise NotImplementedError(f"{self.spec.name} cannot draw itself")


class VectorMultiAgentEnv:
    """``B`` copies of a :class:`MultiAgentEnv` stepped together, with same-step auto-reset.

    Copy ``b`` is seeded ``seed + b`` at the first reset; later resets draw from each copy's own stream.
    """

    def __init__(self, envs: list[MultiAgentEnv]) -> None:
        if not envs:
            raise ValueError("VectorMultiAgentEnv needs at least one environment copy")
        self.envs = envs
        self.spec = envs[0].spec
        self.num_envs = len(envs)

    def reset(self, seed: int | None = None) -> TeamObservation:
        parts = [env.reset(None if seed is None else seed + b) for b, env in enumerate(self.envs)]
        return TeamObservation(*(np.stack(x) for x in zip(*parts)))

    def step(self, actions: np.ndarray) -> StepResult:
        expected = (
            (self.num_envs, self.spec.n_agents)
            if self.spec.discrete
            else (self.num_envs, self.spec.n_agents, self.spec.action_dim)
        )
        if tuple(actions.shape) != expected:
            raise ValueError(f"{self.spec.name}: actions must have shape {expected}, got {tuple(actions.shape)}")
        obs, state, avail, final_obs, final_state, final_avail = [], [], [], [], [], []
        reward = np.zeros(self.num_envs, np.float32)
        agent_rewards = np.zeros((self.num_envs, self.spec.n_agents), np.float32)
        terminated = np.zeros(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool)
        infos: dict[str, list[Any]] = {}
        for b, env in enumerate(self.envs):
            o, s, a, r, ar, term, trunc, info = env.step(actions[b])
            final_obs.append(o)
            final_state.append(s)
            final_avail.append(a)
            reward[b], agent_rewards[b], terminated[b], truncated[b] = r, ar, term, trunc and not term
            for key, value in info.items():
                infos.setdefault(key, [None] * self.num_envs)[b] = value
            if term or trunc:
                o, s, a = env.reset()
            obs.append(o)
            state.append(s)
            avail.append(a)
        return StepResult(
            next=TeamObservation(np.stack(obs), np.stack(state), np.stack(avail)),
            final_obs=np.stack(final_obs),
            final_state=np.stack(final_state),
            final_avail=np.stack(final_avail),
            reward=reward,
            agent_rewards=agent_rewards,
            terminated=terminated,
            truncated=truncated,
            info={k: np.asarray(v) for k, v in infos.items()},
        )

    def close(self) -> None:
        for env in self.envs:
            env.close()
