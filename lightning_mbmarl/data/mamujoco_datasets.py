"""Offline MaMuJoCo datasets: collecting them with random or trained teams, importing D4RL's Ant files, recipes,
and the elbow convention of Reacher teams (MOMA-PPO paper §5.3).

Policies are named by strings: ``"random"`` (uniform actions in [-1, 1]) or the path of a Lightning checkpoint of a
:class:`~lightning_mbmarl.algorithms.base.MultiAgentAlgorithm`. A trained team acts on the observation function it
was trained with, derived from the true state, while the dataset records the observation function asked for, so one
fully observing expert makes the datasets of every observation function. Several policies make a mixture: equal
numbers of episodes from each, one part after the other.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from lightning_mbmarl.data.checkpoints import load_algorithm
from lightning_mbmarl.data.collection import (
    AlgorithmPolicy,
    TeamPolicy,
    collect_dataset,
    dataset_metadata,
    uniform_policy,
)
from lightning_mbmarl.data.hdf5_format import (
    DatasetError,
    OfflineDataset,
    read_d4rl_single_agent,
    write_dataset,
)
from lightning_mbmarl.envs import EnvConfig, EnvSpec, make_env
from lightning_mbmarl.envs.mamujoco_observations import ANT_STATE_DIM, observation_names, reacher_elbow_angle
from lightning_mbmarl.envs.observation import StateObserver
from lightning_mbmarl.random_streams import own_random_stream

RANDOM = "random"
DEFAULT_AGENT_CONF = {"Ant": "4x2", "Reacher": "2x1"}
PART_SEED_STRIDE = 1_000  # part k of a mixture is collected with seed + k * PART_SEED_STRIDE
COUNTER_CLOCKWISE = "counter-clockwise (elbow angle >= 0)"
CLOCKWISE = "clockwise (elbow angle <= 0)"
# The task options the make command and recipes name themselves; other env kwargs pass through to the env.
_TASK_OPTIONS = ("scenario", "agent_conf", "observation", "episode_length")
_RECIPE_OPTIONS = {*_TASK_OPTIONS, "policy", "episodes", "seed", "greedy", "on_the_spot"}


def mamujoco_config(
    scenario: str,
    observation: str | None = None,
    agent_conf: str | None = None,
    episode_length: int | None = None,
    **env_options: Any,
) -> EnvConfig:
    """The env config of a MaMuJoCo task; ``agent_conf`` defaults to the scenario's (Ant 4x2, Reacher 2x1),
    ``observation`` to its fully observable function, ``episode_length`` (left out when None) to the time limit."""
    if agent_conf is None and scenario not in DEFAULT_AGENT_CONF:
        raise DatasetError(f"mamujoco {scenario}: give agent_conf (defaults exist for {sorted(DEFAULT_AGENT_CONF)})")
    kwargs: dict[str, Any] = {
        "scenario": scenario,
        "agent_conf": agent_conf or DEFAULT_AGENT_CONF[scenario],
        "observation": observation or observation_names(scenario)[0],
    }
    if episode_length is not None:
        kwargs["episode_length"] = episode_length
    return EnvConfig("mamujoco", {**kwargs, **env_options})


def task_layout(config: EnvConfig) -> tuple[EnvSpec, dict[str, Any]]:
    """``(spec, partition)`` of a MaMuJoCo env config (builds one copy); bad options raise :class:`DatasetError`."""
    try:
        env = make_env(config)
    except (TypeError, ValueError) as err:
        raise DatasetError(f"env {config.name} {config.kwargs}: {err}") from err
    try:
        return env.spec, env.partition()
    finally:
        env.close()


# --------------------------------------------------------------------------------------------------- policies


def _task_name(spec: EnvSpec) -> str:
    """``"mamujoco:Reacher-2x1"`` from ``"mamujoco:Reacher-2x1-all_observant"``: the task without its observation."""
    return spec.name.rsplit("-", 1)[0]


def _check_policy_fits(policy_spec: EnvSpec, target: EnvSpec, source: str) -> None:
    """A trained team can act in ``target`` when it was trained on the same task, agents and state layout."""
    same = _task_name(policy_spec) == _task_name(target) and (
        policy_spec.n_agents,
        policy_spec.action_sizes,
        policy_spec.state_dim,
        policy_spec.agent_names,
    ) == (target.n_agents, target.action_sizes, target.state_dim, target.agent_names)
    if not same or policy_spec.obs_from_state is None:
        raise DatasetError(
            f"policy {source} was trained on {policy_spec.name} ({policy_spec.n_agents} agents, action sizes "
            f"{list(policy_spec.action_sizes)}, state_dim {policy_spec.state_dim}); it cannot act in {target.name}, "
            f"which needs a policy of task {_task_name(target)} with observations selected from the state"
        )


def _check_checkpoints_exist(policies: Sequence[str]) -> None:
    for policy in policies:
        if policy != RANDOM and not Path(policy).is_file():
            raise DatasetError(
                f"policy checkpoint {policy} does not exist; a policy is {RANDOM!r} or the Lightning checkpoint "
                "(.ckpt) of a lightning_mbmarl method, e.g. outputs/mappo_reacher/version_0/checkpoints/last.ckpt"
            )


def load_policy(policy: str, target: EnvSpec, greedy: bool) -> tuple[TeamPolicy, dict[str, Any]]:
    """``(team policy, description)`` of a policy name acting in ``target``; the description (policy, method, the
    env it was trained on, greedy) goes into the metadata."""
    if policy == RANDOM:
        return uniform_policy(), {"policy": RANDOM, "description": "uniform random actions in [-1, 1]"}
    try:
        algorithm = load_algorithm(policy)
    except (FileNotFoundError, ValueError) as err:
        raise DatasetError(f"policy {policy}: {err}") from err
    _check_policy_fits(algorithm.env_spec, target, policy)
    mode = "greedy actions" if greedy else "sampled actions"
    return AlgorithmPolicy(algorithm, greedy), {
        "policy": policy,
        "description": f"{type(algorithm).__name__} checkpoint {policy} ({mode}, observing as in its training env "
        f"{algorithm.env_spec.name})",
        "method": type(algorithm).__name__,
        "trained_on": algorithm.env_spec.name,
        "greedy": greedy,
    }


# ------------------------------------------------------------------------------------------------- collection


def _concatenate(parts: Sequence[OfflineDataset], metadata: dict[str, Any]) -> OfflineDataset:
    """The parts' transitions one after another, with ``metadata``; infos every part has are kept."""
    arrays = {
        f.name: np.concatenate([getattr(p, f.name) for p in parts])
        for f in dataclasses.fields(OfflineDataset)
        if f.name not in ("metadata", "infos", "agent_rewards")
    }
    keys = set.intersection(*(set(p.infos) for p in parts))
    infos = {key: np.concatenate([p.infos[key] for p in parts]) for key in sorted(keys)}
    agent_rewards = (
        np.concatenate([p.agent_rewards for p in parts]) if all(p.agent_rewards is not None for p in parts) else None
    )
    return OfflineDataset(**arrays, agent_rewards=agent_rewards, infos=infos, metadata=metadata)


def _part_episodes(episodes: int, policies: Sequence[str]) -> int:
    if not policies:
        raise DatasetError("give at least one policy ('random' or a checkpoint path)")
    if episodes < 1 or episodes % len(policies):
        raise DatasetError(
            f"episodes={episodes} cannot be split into {len(policies)} equal parts, one per policy; give a positive "
            f"multiple of {len(policies)}"
        )
    return episodes // len(policies)


def collect_mamujoco(
    config: EnvConfig, policies: Sequence[str], episodes: int, seed: int = 0, greedy: bool = False
) -> OfflineDataset:
    """``episodes`` episodes of the MaMuJoCo task ``config``, equal parts from each policy, in order.

    Part ``k`` runs with seed ``seed + k * PART_SEED_STRIDE`` (environment copies, random actions and torch's
    sampling of trained policies). The metadata records the env config, the task's :meth:`partition`, and each
    part's policy, episode count and seed.
    """
    per_part = _part_episodes(episodes, policies)
    _check_checkpoints_exist(policies)
    spec, partition = task_layout(config)
    parts, described = [], []
    for k, name in enumerate(policies):
        part_seed = seed + k * PART_SEED_STRIDE
        policy, description = load_policy(name, spec, greedy)
        with own_random_stream(part_seed, torch.device("cpu")):
            parts.append(collect_dataset(config, policy, per_part, part_seed, produced_by=description["description"]))
        described.append({**description, "episodes": per_part, "seed": part_seed})
    produced_by = "; ".join(d["description"] for d in described)
    if len(described) > 1:
        produced_by = f"mixture of {len(described)} equal parts: {produced_by}"
    metadata = dataset_metadata(
        spec, config, produced_by, partition=partition, policies=described, episodes=episodes, seed=seed
    )
    return _concatenate(parts, metadata)


def reobserve(dataset: OfflineDataset, observation: str) -> OfflineDataset:
    """The same MaMuJoCo transitions seen through another observation function: ``observations`` and
    ``next_observations`` [T, N, O'] recomputed from ``states`` / ``next_states`` with the new spec's
    ``obs_from_state``. Exact: collection draws the same episodes whatever the recorded observation function
    (policies act on their own observations of the state), so this equals collecting again with ``observation``.
    """
    source = dataset.metadata.get("env_config", {})
    if source.get("name") != "mamujoco":
        raise DatasetError(f"reobserve needs a mamujoco dataset; this one is from env {source.get('name')!r}")
    kwargs = {**source.get("kwargs", {}), "observation": observation}
    config = EnvConfig("mamujoco", kwargs)
    spec, partition = task_layout(config)
    observer = StateObserver(spec)
    seen = lambda states: observer.observe(torch.from_numpy(states)).numpy()  # noqa: E731  [T, S] -> [T, N, O']
    metadata = {
        **dataset.metadata,
        "env_spec": spec.to_dict(),
        "env_config": {"name": "mamujoco", "kwargs": kwargs},
        "partition": partition,
        "reobserved_from": dataset.metadata["env_spec"]["name"],
    }
    return dataclasses.replace(
        dataset, observations=seen(dataset.states), next_observations=seen(dataset.next_states), metadata=metadata
    )


def make_mamujoco_dataset(
    out: str | os.PathLike[str],
    config: EnvConfig,
    policies: Sequence[str],
    episodes: int,
    seed: int = 0,
    greedy: bool = False,
) -> Path:
    """Collect (:func:`collect_mamujoco`) and write a MaMuJoCo dataset atomically; returns the path."""
    return write_dataset(out, collect_mamujoco(config, policies, episodes, seed, greedy))


def make_command(
    env_kwargs: dict[str, Any],
    out: str | os.PathLike[str],
    policies: Sequence[str] | None = None,
    episodes: int = 1000,
    seed: int = 0,
    greedy: bool = False,
) -> str:
    """The ``python -m lightning_mbmarl dataset make mamujoco`` command that makes a dataset for the env kwargs
    (``policies`` None: a placeholder choice between random and a checkpoint)."""
    scenario = env_kwargs.get("scenario", "Ant")  # MaMuJoCoEnv's default
    words = ["python -m lightning_mbmarl dataset make mamujoco", f"--scenario {scenario}"]
    words.append(f"--agent-conf {env_kwargs.get('agent_conf', '4x2')}")  # MaMuJoCoEnv's default
    words.append(f"--observation {env_kwargs.get('observation') or observation_names(scenario)[0]}")
    if policies is None:
        words.append("--policy {random,CHECKPOINT.ckpt}")
    else:
        words.extend(f"--policy {shlex.quote(str(p))}" for p in policies)
    words.append(f"--episodes {episodes}")
    if env_kwargs.get("episode_length") is not None:
        words.append(f"--episode-length {env_kwargs['episode_length']}")
    if env_kwargs.get("contact_cost_weight") is not None:
        words.append(f"--contact-cost-weight {env_kwargs['contact_cost_weight']}")
    words.append(f"--seed {seed}")
    if greedy:
        words.append("--greedy")
    words.append(f"--out {shlex.quote(str(out))}")
    return " ".join(words)


# ---------------------------------------------------------------------------------------------------- recipes


def _recipe_config(recipe: dict[str, Any], env: EnvConfig) -> EnvConfig:
    """The env config a recipe collects in: the data module's, which the recipe's task options must agree with."""
    if env.name != "mamujoco":
        raise DatasetError(
            f"dataset recipe {recipe}: kind 'mamujoco' needs a mamujoco env, the data module has {env.name!r}"
        )
    kwargs = dict(env.kwargs)
    for key in _TASK_OPTIONS:
        if key in recipe and key in kwargs and recipe[key] != kwargs[key]:
            raise DatasetError(
                f"dataset recipe {recipe}: {key}={recipe[key]!r} but the data module's env has {key}={kwargs[key]!r}; "
                f"leave {key} out of the recipe or make them agree"
            )
        if key in recipe:
            kwargs[key] = recipe[key]
    return mamujoco_config(kwargs.pop("scenario", "Ant"), **kwargs)  # "Ant": MaMuJoCoEnv's default


def _training_hint(checkpoint: str) -> str:
    """`` (e.g. `python -m lightning_mbmarl fit --config conf/<experiment>.yaml`)`` when the checkpoint path is a run
    folder's (``outputs/<experiment>/version_<k>/checkpoints/...``) and that config exists, else empty."""
    parts = Path(checkpoint).parts
    if len(parts) >= 4 and parts[-2] == "checkpoints" and parts[-3].startswith("version_"):
        config = Path("conf") / f"{parts[-4]}.yaml"
        if config.is_file():
            return f" (e.g. `python -m lightning_mbmarl fit --config {config}`)"
    return ""


def make_from_recipe(out: str | os.PathLike[str], recipe: dict[str, Any], env: EnvConfig) -> Path:
    """Create the dataset of a ``kind: mamujoco`` recipe, e.g. ``{kind: mamujoco, policy: random, episodes: 1000}``.

    Options: ``policy`` (``"random"``, a checkpoint path, or a list of them for a mixture), ``episodes`` (default
    1000), ``seed`` (0), ``greedy`` (False), and the task options ``scenario``, ``agent_conf``, ``observation``,
    ``episode_length``, which default to the data module's env and must agree with it, and ``on_the_spot``
    (True): False marks a dataset too long to collect in passing, whose absence raises an error giving the
    command that makes it. A recipe naming a checkpoint that does not exist raises an error with the command
    that makes the dataset once it does.
    """
    options = {key: value for key, value in recipe.items() if key != "kind"}
    unknown = sorted(set(options) - _RECIPE_OPTIONS)
    if unknown or "policy" not in options:
        raise DatasetError(
            f"dataset recipe {recipe}: unknown option(s) {unknown} or no policy; kind 'mamujoco' takes "
            f"{sorted(_RECIPE_OPTIONS)}, with policy 'random', a checkpoint path or a list of them"
        )
    policy = options["policy"]
    policies = [policy] if isinstance(policy, str) else [str(p) for p in policy]
    episodes, seed = int(options.get("episodes", 1000)), int(options.get("seed", 0))
    greedy = bool(options.get("greedy", False))
    config = _recipe_config(options, env)
    if not options.get("on_the_spot", True):
        command = make_command(config.kwargs, out, policies, episodes, seed, greedy)
        raise DatasetError(
            f"dataset {out} does not exist, and its recipe marks it as too long to collect on the spot "
            f"({episodes} episodes of {', '.join(policies)}); make it once with `{command}`"
        )
    missing = [p for p in policies if p != RANDOM and not Path(p).is_file()]
    if missing:
        command = make_command(config.kwargs, out, policies, episodes, seed, greedy)
        raise DatasetError(
            f"dataset recipe {recipe}: policy checkpoint {missing[0]} does not exist. Train that policy first"
            f"{_training_hint(missing[0])}; then this recipe makes {out} on the spot, or make it with `{command}`"
        )
    return make_mamujoco_dataset(out, config, policies, episodes, seed, greedy)


# ------------------------------------------------------------------------------------------------- D4RL import

D4RL_ANT_WIDTHS = (111, ANT_STATE_DIM)  # D4RL ant-*-v2: the 27 state numbers, then 84 contact forces; or none
ANT_ACTIONS = 8


def _check_d4rl_ant_widths(path: Path) -> None:
    """Observations [T, 111] (or [T, 27]) and actions [T, 8], named in the error otherwise."""
    try:
        with h5py.File(path, "r") as f:
            obs = f["observations"].shape if "observations" in f else None
            actions = f["actions"].shape if "actions" in f else None
    except OSError as err:
        raise DatasetError(f"{path}: not a readable HDF5 file ({err})") from err
    if obs is None or actions is None:
        raise DatasetError(f"{path}: a D4RL file needs root keys observations and actions (and rewards, terminals)")
    if len(obs) != 2 or obs[1] not in D4RL_ANT_WIDTHS or len(actions) != 2 or actions[1] != ANT_ACTIONS:
        raise DatasetError(
            f"{path}: observations {obs} and actions {actions}; a D4RL Ant file has observations (T, 111) (the "
            f"27-number Ant state then 84 contact forces, or (T, 27) without them) and actions (T, {ANT_ACTIONS})"
        )


def import_d4rl_ant(path: str | os.PathLike[str], observation: str, contact_cost_weight: float = 0.0) -> OfflineDataset:
    """A D4RL ``ant-*-v2`` file as a MaMuJoCo Ant 4x2 dataset under ``observation`` (``full`` or ``partial``).

    The contact forces (columns 27-110) are dropped; columns 0-26 are the Ant state of
    :mod:`~lightning_mbmarl.envs.mamujoco_observations`, split per agent with the env's own observation partition.
    Actions are split with the env's ``action_partition``: agent 0 drives actuators [2, 3], agent 1 [4, 5],
    agent 2 [6, 7], agent 3 [0, 1]. (The official MOMA-PPO code splits by [[0, 1], [2, 3], [4, 5], [6, 7]],
    which pairs the torso-observing agent with another leg's actuators; the env's partition keeps every agent's
    observations and actions on the same leg.) The recorded env config sets ``contact_cost_weight`` (default 0.0:
    D4RL's Ant-v2 under mujoco-py 2 read zero contact forces, so its rewards carry no contact cost).
    """
    path = Path(path)
    _check_d4rl_ant_widths(path)
    config = mamujoco_config("Ant", observation, "4x2", contact_cost_weight=contact_cost_weight)
    spec, partition = task_layout(config)
    dataset = read_d4rl_single_agent(
        path,
        observation_partition=partition["observation_partition"],  # state indices = file columns 0-26
        action_partition=partition["action_partition"],
        state_indices=list(range(ANT_STATE_DIM)),
        spec=spec,
        env_config={"name": config.name, "kwargs": dict(config.kwargs)},
    )
    dataset.metadata["partition"] = partition
    dataset.metadata["dropped_columns"] = "observation columns 27-110 (contact forces), where present"
    return dataset


# ----------------------------------------------------------------------------------------- elbow conventions


@dataclass(frozen=True)
class ElbowConventions:
    """Reacher episodes' elbow bends: ``episode_angles`` float64 [E], each episode's mean elbow angle (rad) over
    its last half (MOMA-PPO §5.3: θ2 >= 0 is counter-clockwise)."""

    episode_angles: np.ndarray

    @property
    def counter_clockwise_fraction(self) -> float:
        return float(np.mean(self.episode_angles >= 0))

    @property
    def clockwise_fraction(self) -> float:
        return 1.0 - self.counter_clockwise_fraction

    @property
    def mean_angle(self) -> float:
        return float(np.mean(self.episode_angles))

    @property
    def convention(self) -> str:
        """The convention of the mean angle over all episodes."""
        return COUNTER_CLOCKWISE if self.mean_angle >= 0 else CLOCKWISE


def elbow_conventions(dataset: OfflineDataset) -> ElbowConventions:
    """The elbow bend of every episode of a MaMuJoCo Reacher dataset (any observation function)."""
    config = dataset.metadata["env_config"]
    if config.get("name") != "mamujoco" or config.get("kwargs", {}).get("scenario") != "Reacher":
        raise DatasetError(f"elbow conventions need a MaMuJoCo Reacher dataset; this one was made in {config}")
    starts, ends = dataset.episode_bounds()
    angles = reacher_elbow_angle(dataset.states)  # [T]
    halves = [angles[start + (end - start + 1) // 2 : end + 1] for start, end in zip(starts, ends)]
    return ElbowConventions(np.array([np.mean(h) for h in halves], np.float64))


def policy_elbow_conventions(checkpoint: str | os.PathLike[str], episodes: int = 20, seed: int = 0) -> ElbowConventions:
    """The elbow bends of a Reacher 2x1 team's greedy episodes (environment copies seeded ``seed + b``)."""
    data = collect_mamujoco(mamujoco_config("Reacher"), [str(checkpoint)], episodes, seed, greedy=True)
    return elbow_conventions(data)
