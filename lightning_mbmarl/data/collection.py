"""Rolling out a team policy in the real environment and recording the transitions as an offline dataset."""

from __future__ import annotations

import time
from typing import Any, Callable, Protocol

import numpy as np
import torch

from lightning_mbmarl.envs.actions import encode_actions
from lightning_mbmarl.data.hdf5_format import FORMAT_VERSION, OfflineDataset
from lightning_mbmarl.envs import EnvConfig, EnvSpec, StepResult, TeamObservation, make_vector_env
from lightning_mbmarl.envs.observation import StateObserver
from lightning_mbmarl.learners.memory import History, clear_histories, empty_history, push_history

#: seconds between progress lines of a dataset collection
PROGRESS_SECONDS = 30.0

# A team policy: (observations of B environment copies, random generator) -> team actions
# (int64 [B, N] for discrete actions, float32 [B, N, action_dim] for continuous).
TeamPolicy = Callable[[TeamObservation, np.random.Generator], np.ndarray]


def icg_dataset_policy(p_right: tuple[float, float]) -> TeamPolicy:
    """The Iterated Coordination Game's dataset policy: agent ``i`` picks right (1) with probability ``p_right[i]``."""
    p = np.asarray(p_right, np.float64)

    def policy(team: TeamObservation, rng: np.random.Generator) -> np.ndarray:
        return (rng.random((team.obs.shape[0], p.size)) < p).astype(np.int64)

    return policy


def uniform_policy(low: float = -1.0, high: float = 1.0) -> TeamPolicy:
    """Continuous actions drawn uniformly from ``[low, high]`` in every (padded) action dimension."""

    def policy(team: TeamObservation, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(low, high, team.avail.shape).astype(np.float32)

    return policy


class TrainedTeam(Protocol):
    """What rolling out a trained method needs of it (every ``MultiAgentAlgorithm`` has it): its environment spec,
    device, history length and ``act``."""

    env_spec: EnvSpec
    history_length: int
    device: torch.device

    def eval(self) -> TrainedTeam: ...

    def act(self, obs: torch.Tensor, avail: torch.Tensor, history: History, greedy: bool) -> torch.Tensor: ...


class AlgorithmPolicy:
    """A trained method as a :data:`TeamPolicy` over ``B`` environment copies, on the observation function it was
    trained with.

    The method observes ``state[obs_from_state]`` of its own ``env_spec`` (so a policy trained with full
    observations acts in an environment that records partial ones), keeps each copy's history of its last
    ``history_length`` (observation, action) pairs, which :func:`collect_dataset` clears where an episode ends
    (:meth:`end_episodes`), and samples its actions (``greedy=False``) or takes their mode. Sampling draws from
    torch's global generator. Continuous actions are clipped to the spec's bounds, as the environment applies them.
    """

    def __init__(self, algorithm: TrainedTeam, greedy: bool) -> None:
        self.algorithm, self.greedy = algorithm.eval(), greedy
        self.spec = algorithm.env_spec
        self.observer = StateObserver(self.spec)
        self.history: History | None = None  # each [B, N, H, ...], created at the first call

    @torch.no_grad()
    def __call__(self, team: TeamObservation, rng: np.random.Generator) -> np.ndarray:
        """Team actions float32 / int64 for the ``B`` copies in ``team`` (``rng`` is unused: torch samples)."""
        device = self.algorithm.device
        state = torch.as_tensor(team.state, device=device)
        obs, avail = self.observer.observe(state), self.observer.available(state)
        if self.history is None:
            spec = self.spec
            self.history = empty_history(
                len(state), spec.n_agents, self.algorithm.history_length, spec.obs_dim, spec.action_dim, device
            )
        actions = self.algorithm.act(obs, avail, self.history, greedy=self.greedy)
        self.history = push_history(*self.history, obs, encode_actions(actions, self.spec))  # unclipped, as in training
        if not self.spec.discrete:
            actions = actions.clamp(self.spec.action_low, self.spec.action_high)  # what the environment executes
        return actions.cpu().numpy()

    def end_episodes(self, done: np.ndarray) -> None:
        """Forget the history of copies whose episode ended (``done`` bool [B])."""
        self.history = clear_histories(self.history, torch.as_tensor(done, device=self.algorithm.device))


def _step_record(
    team: TeamObservation, actions: np.ndarray, result: StepResult, spec: EnvSpec
) -> dict[str, np.ndarray]:
    """One vector step as arrays with a leading copy axis ``B``."""
    return {
        "observations": team.obs,
        "states": team.state,
        "available_actions": team.avail,
        "actions": actions.astype(np.int64 if spec.discrete else np.float32),
        "rewards": result.reward,
        "agent_rewards": result.agent_rewards,
        "terminals": result.terminated,
        "timeouts": result.truncated,
        "next_observations": result.final_obs,
        "next_states": result.final_state,
        "next_available_actions": result.final_avail,
    }


def _episode_rows(done: np.ndarray, quotas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(step, copy)`` indices [T] of each copy's first ``quotas[b]`` episodes, copy after copy.

    ``done``: bool [steps, B]. Each copy's episodes are consecutive in time, so its rows up to the end of its
    last kept episode list those episodes one after another.
    """
    lengths = np.array([np.flatnonzero(done[:, b])[q - 1] + 1 for b, q in enumerate(quotas)])
    steps = np.concatenate([np.arange(n) for n in lengths])
    copies = np.repeat(np.arange(len(quotas)), lengths)
    return steps, copies


def _common_infos(infos: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Info keys every step reported as numeric / bool arrays, stacked to ``[steps, B]``; other keys are dropped."""
    keys = set.intersection(*(set(info) for info in infos))
    return {
        key: np.stack([info[key] for info in infos])
        for key in sorted(keys)
        if all(info[key].dtype.kind in "biuf" for info in infos)
    }


def collect_dataset(
    env_config: EnvConfig,
    policy: TeamPolicy,
    episodes: int,
    seed: int,
    num_envs: int = 16,
    *,
    produced_by: str,
) -> OfflineDataset:
    """Run ``policy`` for ``episodes`` complete episodes in ``num_envs`` environment copies.

    Copy ``b`` is reset with seed ``seed + b`` and runs a fixed share of the episodes (so episode lengths are not
    biased towards short ones); the policy draws from ``np.random.default_rng(seed)``; an :class:`AlgorithmPolicy`
    is told where episodes end. Each episode's transitions are contiguous in the result. ``produced_by``
    describes the policy in the metadata.
    """
    if episodes < 1:
        raise ValueError(f"collect_dataset: episodes must be >= 1, got {episodes}")
    num_envs = min(num_envs, episodes)
    quotas = np.full(num_envs, episodes // num_envs) + (np.arange(num_envs) < episodes % num_envs)
    env = make_vector_env(env_config, num_envs)
    spec, rng = env.spec, np.random.default_rng(seed)
    records, infos = [], []
    finished = np.zeros(num_envs, np.int64)
    reported = started = time.monotonic()
    try:
        team = env.reset(seed)
        while (finished < quotas).any():
            if time.monotonic() - reported >= PROGRESS_SECONDS:  # collections can take minutes: say how far
                reported = time.monotonic()
                done = int(np.minimum(finished, quotas).sum())
                print(
                    f"collecting {env_config.name} ({produced_by}): {done} / {episodes} episodes after "
                    f"{reported - started:.0f} s",
                    flush=True,
                )
            actions = np.asarray(policy(team, rng))
            result = env.step(actions)
            records.append(_step_record(team, actions, result, spec))
            infos.append(result.info)
            finished += result.done
            if isinstance(policy, AlgorithmPolicy):
                policy.end_episodes(result.done)
            team = result.next
    finally:
        env.close()
    columns = {key: np.stack([r[key] for r in records]) for key in records[0]}
    rows = _episode_rows(columns["terminals"] | columns["timeouts"], quotas)
    return OfflineDataset(
        **{key: value[rows] for key, value in columns.items()},
        infos={key: value[rows] for key, value in _common_infos(infos).items()},
        metadata=dataset_metadata(spec, env_config, produced_by, episodes=episodes, seed=seed),
    )


def dataset_metadata(spec: EnvSpec, env_config: EnvConfig, produced_by: str, **extra: Any) -> dict[str, Any]:
    """The metadata every collected dataset records (spec, env config, producer, format, agent order) + ``extra``."""
    return {
        "env_spec": spec.to_dict(),
        "env_config": {"name": env_config.name, "kwargs": dict(env_config.kwargs)},
        "produced_by": produced_by,
        "format_version": FORMAT_VERSION,
        "agent_order": list(spec.agent_names),
        **extra,
    }
