"""The multi-agent D4RL-style HDF5 layout of offline datasets: reading, validating, writing.

A file holds ``T`` transitions of a team of ``N`` agents, with ``O = spec.obs_dim`` and ``A = spec.action_dim``
(both padded, see :mod:`lightning_mbmarl.envs.base`) and ``S = spec.state_dim``. Root datasets:

==========================  =============================  ===================================================
key                         dtype and shape                meaning
==========================  =============================  ===================================================
``observations``            float32 [T, N, O]              per-agent observations (zero-padded)
``next_observations``       float32 [T, N, O]              per-agent observations after the step
``actions``                 int64 [T, N] (discrete)        chosen action index per agent
                            float32 [T, N, A] (continuous) action vector per agent (padded dims ignored)
``rewards``                 float32 [T]                    team reward
``terminals``               bool [T]                       absorbing state reached at this step
``timeouts``                bool [T]                       episode truncated at this step (D4RL meaning)
``states``                  float32 [T, S]                 global state
``next_states``             float32 [T, S]                 global state after the step
``available_actions``       bool [T, N, A]                 available actions (all True for continuous)
``next_available_actions``  bool [T, N, A]                 available actions after the step
``agent_rewards``           float32 [T, N]                 optional per-agent rewards
``infos/<key>``             any numeric / bool [T, ...]    optional per-step extras
``metadata/<key>``          scalar or string               see below
==========================  =============================  ===================================================

``metadata`` holds at least ``env_spec`` (:meth:`EnvSpec.to_dict`), ``env_config`` (``{name, kwargs}``),
``produced_by`` (free text: which policy made the data) and ``format_version`` (``1``); optionally
``observation_partition`` / ``action_partition`` (per-agent index lists, for data split from a single-agent
file), ``agent_order`` (agent names), ``partition`` (MaMuJoCo: ``MaMuJoCoEnv.partition()``) and ``policies`` (each
part of the data: policy, episodes, seed). Strings and scalars are stored as they are, dicts and lists as JSON
strings (marked with the attribute ``json=True``).

An episode ends at every transition where ``terminals | timeouts`` is True; the file's last transition must end
one, so episodes are the contiguous runs between those ends.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lightning_mbmarl.envs.base import EnvSpec

FORMAT_VERSION = 1
REQUIRED_METADATA = ("env_spec", "env_config", "produced_by", "format_version")
_COMPRESS_BYTES = 64 * 1024  # arrays at least this big are gzip-compressed


class DatasetError(ValueError):
    """An offline dataset file or array is missing, malformed, or does not fit the environment."""


@dataclass
class OfflineDataset:
    """``T`` transitions of an ``N``-agent team; the module docstring lists every array's dtype and shape."""

    observations: np.ndarray  # float32 [T, N, O]
    next_observations: np.ndarray  # float32 [T, N, O]
    actions: np.ndarray  # int64 [T, N] (discrete) or float32 [T, N, A] (continuous)
    rewards: np.ndarray  # float32 [T] team reward
    terminals: np.ndarray  # bool [T]
    timeouts: np.ndarray  # bool [T]
    states: np.ndarray  # float32 [T, S]
    next_states: np.ndarray  # float32 [T, S]
    available_actions: np.ndarray  # bool [T, N, A]
    next_available_actions: np.ndarray  # bool [T, N, A]
    metadata: dict[str, Any]  # env_spec, env_config, produced_by, format_version, ...
    agent_rewards: np.ndarray | None = None  # float32 [T, N]
    infos: dict[str, np.ndarray] = field(default_factory=dict)  # each [T, ...]

    @property
    def num_transitions(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def spec(self) -> EnvSpec:
        """The :class:`EnvSpec` recorded in the metadata."""
        return EnvSpec.from_dict(self.metadata["env_spec"])

    def episode_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(starts, ends)``: int64 [E] first and last transition index of each episode, in file order."""
        ends = np.flatnonzero(self.terminals | self.timeouts)
        starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
        return starts, ends.astype(np.int64)


# --------------------------------------------------------------------------------------------------- validation

_ARRAY_KEYS = (
    "observations",
    "next_observations",
    "actions",
    "rewards",
    "terminals",
    "timeouts",
    "states",
    "next_states",
    "available_actions",
    "next_available_actions",
)


def _dtype_rules(spec: EnvSpec) -> dict[str, tuple[str, np.dtype]]:
    """Key -> (accepted numpy dtype kinds, canonical dtype)."""
    floats, bools = ("f", np.dtype(np.float32)), ("b", np.dtype(bool))
    actions = ("iu", np.dtype(np.int64)) if spec.discrete else floats
    rules = {key: floats for key in ("observations", "next_observations", "rewards", "states", "next_states")}
    rules.update({key: bools for key in ("terminals", "timeouts", "available_actions", "next_available_actions")})
    rules["actions"] = actions
    rules["agent_rewards"] = floats
    return rules


def _expected_shapes(spec: EnvSpec) -> dict[str, tuple[int, ...]]:
    """Key -> shape after the leading ``T`` axis."""
    n, o, a, s = spec.n_agents, spec.obs_dim, spec.action_dim, spec.state_dim
    return {
        "observations": (n, o),
        "next_observations": (n, o),
        "actions": (n,) if spec.discrete else (n, a),
        "rewards": (),
        "terminals": (),
        "timeouts": (),
        "states": (s,),
        "next_states": (s,),
        "available_actions": (n, a),
        "next_available_actions": (n, a),
        "agent_rewards": (n,),
    }


def _named_arrays(dataset: OfflineDataset) -> dict[str, np.ndarray]:
    """Every array of the dataset by its file key (``infos/<key>`` for infos)."""
    arrays = {key: getattr(dataset, key) for key in _ARRAY_KEYS}
    if dataset.agent_rewards is not None:
        arrays["agent_rewards"] = dataset.agent_rewards
    arrays.update({f"infos/{key}": value for key, value in dataset.infos.items()})
    return arrays


def _check_metadata(metadata: dict[str, Any], source: str) -> EnvSpec:
    """Required metadata present and the format version known; returns the recorded spec."""
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise DatasetError(f"{source}: missing metadata key(s) {', '.join(f'metadata/{k}' for k in missing)}")
    if metadata["format_version"] != FORMAT_VERSION:
        raise DatasetError(
            f"{source}: metadata/format_version is {metadata['format_version']!r}; "
            f"this reader knows version {FORMAT_VERSION}"
        )
    config = metadata["env_config"]
    if not isinstance(config, dict) or "name" not in config or not isinstance(config.get("kwargs", {}), dict):
        raise DatasetError(f"{source}: metadata/env_config must be a dict {{name, kwargs}}, got {config!r}")
    try:
        return EnvSpec.from_dict(metadata["env_spec"])
    except (KeyError, TypeError, ValueError) as err:
        raise DatasetError(f"{source}: metadata/env_spec is not a valid EnvSpec dict ({err!r})") from err


def _check_dtypes(arrays: dict[str, np.ndarray], spec: EnvSpec, source: str) -> None:
    rules = _dtype_rules(spec)
    for key, value in arrays.items():
        kinds, canonical = rules.get(key, ("biuf", "a numeric or bool dtype"))
        if value.dtype.kind not in kinds:
            raise DatasetError(f"{source}: {key} has dtype {value.dtype}; env {spec.name!r} needs {canonical}")


def _check_lengths(arrays: dict[str, np.ndarray], source: str) -> int:
    for key, value in arrays.items():
        if value.ndim == 0:
            raise DatasetError(f"{source}: {key} is a scalar; expected an array with one row per transition")
    length = arrays["observations"].shape[0]
    for key, value in arrays.items():
        if value.shape[0] != length:
            raise DatasetError(
                f"{source}: {key} has length {value.shape[0]} but observations has length {length}; "
                "every key needs one row per transition"
            )
    if length == 0:
        raise DatasetError(f"{source}: observations has no transitions")
    return length


def _check_shapes(arrays: dict[str, np.ndarray], spec: EnvSpec, source: str) -> None:
    for key, tail in _expected_shapes(spec).items():
        if key in arrays and arrays[key].shape[1:] != tail:
            needs = "(" + ", ".join(["T", *map(str, tail)]) + (",)" if not tail else ")")
            raise DatasetError(f"{source}: {key} has shape {arrays[key].shape}; env {spec.name!r} needs {needs}")


def _check_values(arrays: dict[str, np.ndarray], spec: EnvSpec, source: str) -> None:
    for key, value in arrays.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            bad = np.unravel_index(np.flatnonzero(~np.isfinite(value))[0], value.shape)
            raise DatasetError(f"{source}: {key} contains NaN or inf (first at index {tuple(int(i) for i in bad)})")
    if spec.discrete:
        actions = arrays["actions"]
        limits = np.asarray(spec.action_sizes)
        bad_rows = np.flatnonzero(((actions < 0) | (actions >= limits)).any(axis=1))
        if bad_rows.size:
            raise DatasetError(
                f"{source}: actions at transition {int(bad_rows[0])} are {actions[bad_rows[0]].tolist()}; "
                f"agent i's actions must lie in [0, {list(spec.action_sizes)}[i])"
            )
    if not (arrays["terminals"][-1] or arrays["timeouts"][-1]):
        raise DatasetError(
            f"{source}: the last transition (index {arrays['terminals'].shape[0] - 1}) ends no episode; "
            "terminals or timeouts must be True there"
        )


def validate_dataset(dataset: OfflineDataset, spec: EnvSpec | None = None, source: str = "dataset") -> EnvSpec:
    """Raise :class:`DatasetError` unless ``dataset`` follows the format and fits ``spec``.

    ``spec`` defaults to the one recorded in the metadata; ``source`` (a file name) starts every message.
    Returns the spec the arrays were checked against.
    """
    recorded = _check_metadata(dataset.metadata, source)
    spec = spec or recorded
    arrays = _named_arrays(dataset)
    _check_dtypes(arrays, spec, source)
    _check_lengths(arrays, source)
    _check_shapes(arrays, spec, source)
    _check_values(arrays, spec, source)
    return spec


def _canonical(dataset: OfflineDataset, spec: EnvSpec) -> OfflineDataset:
    """The dataset with every array cast to its canonical dtype (no copy where it already has it)."""
    rules = _dtype_rules(spec)
    cast = {key: getattr(dataset, key).astype(rules[key][1], copy=False) for key in _ARRAY_KEYS}
    if dataset.agent_rewards is not None:
        cast["agent_rewards"] = dataset.agent_rewards.astype(np.float32, copy=False)
    return dataclasses.replace(dataset, **cast)


# ------------------------------------------------------------------------------------------------------ writing


def _write_array(group: h5py.Group, key: str, value: np.ndarray) -> None:
    if value.nbytes >= _COMPRESS_BYTES:
        group.create_dataset(key, data=value, compression="gzip", compression_opts=4, chunks=True)
    else:
        group.create_dataset(key, data=value)


def _write_metadata_value(group: h5py.Group, key: str, value: Any) -> None:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (str, bool, int, float)):
        group.create_dataset(key, data=value)
        return
    try:
        text = json.dumps(value)
    except TypeError as err:
        raise DatasetError(
            f"metadata/{key} has type {type(value).__name__}; use str, int, float, bool or a JSON-serialisable "
            "dict / list"
        ) from err
    group.create_dataset(key, data=text)
    group[key].attrs["json"] = True


def write_dataset(path: str | os.PathLike[str], dataset: OfflineDataset) -> Path:
    """Validate ``dataset`` and write it to ``path`` atomically; returns the path.

    The file is written to a temporary file in the same folder and renamed into place, so ``path`` never holds
    a half-written file; parent folders are created; arrays of 64 KiB or more are gzip-compressed.
    """
    path = Path(path)
    spec = validate_dataset(dataset, source=str(path))
    dataset = _canonical(dataset, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp_name, "w") as f:
            for key, value in _named_arrays(dataset).items():
                _write_array(f, key, value)
            meta = f.create_group("metadata")
            for key, value in dataset.metadata.items():
                _write_metadata_value(meta, key, value)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


# ------------------------------------------------------------------------------------------------------ reading


def _open(path: Path, missing_hint: str | None) -> h5py.File:
    if not path.exists():
        hint = f"; {missing_hint}" if missing_hint else ""
        raise DatasetError(f"dataset file {path} does not exist{hint}")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise DatasetError(f"{path}: not a readable HDF5 file ({err})") from err


def _read_metadata_value(node: h5py.Dataset) -> Any:
    value = node[()]
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    elif isinstance(value, np.generic):
        value = value.item()
    return json.loads(value) if node.attrs.get("json", False) else value


def _require(f: h5py.File, keys: tuple[str, ...], path: Path) -> None:
    missing = [key for key in keys if key not in f]
    if missing:
        raise DatasetError(f"{path}: missing key(s) {', '.join(missing)} (see lightning_mbmarl.data.hdf5_format)")


def read_dataset(
    path: str | os.PathLike[str], spec: EnvSpec | None = None, missing_hint: str | None = None
) -> OfflineDataset:
    """Read and validate a multi-agent dataset file.

    ``spec``: the environment the data must fit (default: the spec recorded in the file).
    ``missing_hint``: appended to the error when the file does not exist (e.g. how to create it).
    Raises :class:`DatasetError` naming the file and key at fault.
    """
    path = Path(path)
    with _open(path, missing_hint) as f:
        _require(f, (*_ARRAY_KEYS, "metadata"), path)
        metadata = {key: _read_metadata_value(node) for key, node in f["metadata"].items()}
        arrays = {key: f[key][()] for key in _ARRAY_KEYS}
        agent_rewards = f["agent_rewards"][()] if "agent_rewards" in f else None
        infos = {key: node[()] for key, node in f["infos"].items()} if "infos" in f else {}
    dataset = OfflineDataset(**arrays, metadata=metadata, agent_rewards=agent_rewards, infos=infos)
    spec = validate_dataset(dataset, spec, source=str(path))
    return _canonical(dataset, spec)


# ------------------------------------------------------------------------------------- single-agent D4RL import


def _check_partition(name: str, partition: list[list[int]], sizes: tuple[int, ...], width: int, path: Path) -> None:
    if len(partition) != len(sizes):
        raise DatasetError(f"{path}: {name} has {len(partition)} groups; the env has {len(sizes)} agents")
    for i, (indices, size) in enumerate(zip(partition, sizes)):
        if len(indices) != size:
            raise DatasetError(f"{path}: {name}[{i}] has {len(indices)} indices; agent {i} needs {size}")
        if any(not 0 <= j < width for j in indices):
            raise DatasetError(f"{path}: {name}[{i}] = {list(indices)} has indices outside [0, {width})")


def _check_obs_from_state(
    spec: EnvSpec, observation_partition: list[list[int]], state_indices: list[int], path: Path
) -> None:
    """Where ``spec`` derives observations from the state, the partitions must agree with it."""
    if spec.obs_from_state is None:
        return
    for i, (columns, from_state) in enumerate(zip(observation_partition, spec.obs_from_state)):
        implied = [state_indices[j] for j in from_state]
        if list(columns) != implied:
            raise DatasetError(
                f"{path}: observation_partition[{i}] = {list(columns)} disagrees with env {spec.name!r}'s "
                f"obs_from_state[{i}], which selects file columns {implied} through state_indices"
            )


def _split(flat: np.ndarray, partition: list[list[int]], width: int) -> np.ndarray:
    """``[T, D] -> [T, N, width]``: agent ``i`` gets columns ``partition[i]``, zero-padded to ``width``."""
    out = np.zeros((flat.shape[0], len(partition), width), np.float32)
    for i, indices in enumerate(partition):
        out[:, i, : len(indices)] = flat[:, indices]
    return out


_D4RL_NDIM = {"observations": 2, "next_observations": 2, "actions": 2, "rewards": 1, "terminals": 1, "timeouts": 1}


def _d4rl_transitions(f: h5py.File, path: Path) -> dict[str, np.ndarray]:
    """Flat single-agent transitions ``observations, next_observations, actions, rewards, terminals, timeouts``.

    Without ``next_observations`` the next row of the same episode is used, and transitions with no next row
    in their episode (truncated episode ends, the file's last row unless terminal) are dropped, as D4RL's
    ``qlearning_dataset`` does; terminal transitions are kept (their next observation is never used, the
    observation itself stands in). The transition before a dropped one becomes a truncated episode end.
    """
    _require(f, ("observations", "actions", "rewards", "terminals"), path)
    raw = {key: f[key][()] for key in _D4RL_NDIM if key in f}
    t = raw["observations"].shape[0]
    for key, value in raw.items():
        if value.ndim != _D4RL_NDIM[key] or value.shape[0] != t:
            needs = "(T, D)" if _D4RL_NDIM[key] == 2 else "(T,)"
            raise DatasetError(
                f"{path}: {key} has shape {value.shape}; expected {needs} with T={t} (the length of observations)"
            )
    obs = raw["observations"].astype(np.float32)
    data = {
        "actions": raw["actions"].astype(np.float32),
        "rewards": raw["rewards"].astype(np.float32),
        "terminals": raw["terminals"].astype(bool),
        "timeouts": raw["timeouts"].astype(bool) if "timeouts" in raw else np.zeros(t, bool),
    }
    data["timeouts"] &= ~data["terminals"]
    if "next_observations" in raw:
        data["observations"], data["next_observations"] = obs, raw["next_observations"].astype(np.float32)
        data["timeouts"][-1] |= not data["terminals"][-1]
        return data
    ends_without_next = data["timeouts"].copy()
    ends_without_next[-1] |= not data["terminals"][-1]
    keep = ~ends_without_next
    next_obs = np.concatenate([obs[1:], obs[-1:]])
    next_obs[data["terminals"]] = obs[data["terminals"]]
    new_end = np.concatenate([ends_without_next[1:], [False]]) & keep & ~data["terminals"]
    data["timeouts"] = new_end
    data["observations"], data["next_observations"] = obs, next_obs
    return {key: value[keep] for key, value in data.items()}


def read_d4rl_single_agent(
    path: str | os.PathLike[str],
    observation_partition: list[list[int]],
    action_partition: list[list[int]],
    state_indices: list[int] | None,
    spec: EnvSpec,
    env_config: dict[str, Any] | None = None,
) -> OfflineDataset:
    """Split a plain single-agent D4RL file into a multi-agent dataset for ``spec`` (no ``d4rl`` needed).

    The file's root keys: ``observations`` [T, D], ``actions`` [T, K], ``rewards`` [T], ``terminals`` [T],
    optional ``timeouts`` [T] and ``next_observations`` [T, D]. Agent ``i`` observes columns
    ``observation_partition[i]`` (zero-padded to ``spec.obs_dim``) and controls action columns
    ``action_partition[i]``; the global state is columns ``state_indices`` (default: all ``D``).
    ``env_config`` (``{name, kwargs}``, default ``{name: spec.name, kwargs: {}}``) is recorded in the metadata.
    """
    path = Path(path)
    if spec.discrete:
        raise DatasetError(f"{path}: single-agent D4RL files hold continuous actions; env {spec.name!r} is discrete")
    with _open(path, None) as f:
        flat = _d4rl_transitions(f, path)
        produced_by = _read_metadata_value(f["metadata/algorithm"]) if "metadata/algorithm" in f else "unknown"
    width, action_width = flat["observations"].shape[1], flat["actions"].shape[1]
    _check_partition("observation_partition", observation_partition, spec.obs_dims, width, path)
    _check_partition("action_partition", action_partition, spec.action_sizes, action_width, path)
    state_indices = list(range(width)) if state_indices is None else [int(j) for j in state_indices]
    if len(state_indices) != spec.state_dim or any(not 0 <= j < width for j in state_indices):
        raise DatasetError(
            f"{path}: state_indices selects {len(state_indices)} columns (of {width}); env {spec.name!r} needs "
            f"state_dim={spec.state_dim} indices in [0, {width})"
        )
    _check_obs_from_state(spec, observation_partition, state_indices, path)
    t = flat["rewards"].shape[0]
    avail = np.ones((t, spec.n_agents, spec.action_dim), bool)
    dataset = OfflineDataset(
        observations=_split(flat["observations"], observation_partition, spec.obs_dim),
        next_observations=_split(flat["next_observations"], observation_partition, spec.obs_dim),
        actions=_split(flat["actions"], action_partition, spec.action_dim),
        rewards=flat["rewards"],
        terminals=flat["terminals"],
        timeouts=flat["timeouts"],
        states=flat["observations"][:, state_indices],
        next_states=flat["next_observations"][:, state_indices],
        available_actions=avail,
        next_available_actions=avail.copy(),
        metadata={
            "env_spec": spec.to_dict(),
            "env_config": env_config or {"name": spec.name, "kwargs": {}},
            "produced_by": f"single-agent D4RL file {path.name} (policy: {produced_by})",
            "format_version": FORMAT_VERSION,
            "observation_partition": [list(map(int, p)) for p in observation_partition],
            "action_partition": [list(map(int, p)) for p in action_partition],
            "state_indices": state_indices,
            "agent_order": list(spec.agent_names),
            "source_file": str(path),
        },
    )
    validate_dataset(dataset, spec, source=str(path))
    return dataset
