"""The multi-agent HDF5 format, single-agent D4RL import, dataset collection and the ``dataset`` command."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest

from lightning_mbmarl.data.collection import collect_dataset, icg_dataset_policy
from lightning_mbmarl.data.dataset_tool import episode_scores, main, make_icg_dataset
from lightning_mbmarl.data.hdf5_format import (
    DatasetError,
    OfflineDataset,
    read_d4rl_single_agent,
    read_dataset,
    write_dataset,
)
from lightning_mbmarl.envs import EnvConfig, EnvSpec
from lightning_mbmarl.envs.icg import icg_spec
from lightning_mbmarl.reference_scores import REFERENCE_SCORES

ICG = icg_spec(10)
CONTINUOUS = EnvSpec(
    "toy-cont",
    n_agents=3,
    obs_dims=(4, 2, 3),
    state_dim=6,
    action_kind="continuous",
    action_sizes=(2, 1, 2),
    episode_limit=5,
)


def random_dataset(spec: EnvSpec, episode_lengths: list[int], seed: int = 0, extras: bool = True) -> OfflineDataset:
    """A valid dataset of ``spec`` with random contents; episodes of the given lengths, each truncated."""
    rng = np.random.default_rng(seed)
    t, n, o, a, s = sum(episode_lengths), spec.n_agents, spec.obs_dim, spec.action_dim, spec.state_dim
    ends = np.cumsum(episode_lengths) - 1
    timeouts = np.zeros(t, bool)
    timeouts[ends] = True
    if spec.discrete:
        actions = rng.integers(0, np.asarray(spec.action_sizes), size=(t, n))
    else:
        actions = rng.uniform(-1, 1, (t, n, a)).astype(np.float32)
    return OfflineDataset(
        observations=rng.normal(size=(t, n, o)).astype(np.float32),
        next_observations=rng.normal(size=(t, n, o)).astype(np.float32),
        actions=actions,
        rewards=rng.normal(size=t).astype(np.float32),
        terminals=np.zeros(t, bool),
        timeouts=timeouts,
        states=rng.normal(size=(t, s)).astype(np.float32),
        next_states=rng.normal(size=(t, s)).astype(np.float32),
        available_actions=np.broadcast_to(spec.action_mask(), (t, n, a)).copy(),
        next_available_actions=np.broadcast_to(spec.action_mask(), (t, n, a)).copy(),
        agent_rewards=rng.normal(size=(t, n)).astype(np.float32) if extras else None,
        infos={"won": rng.random(t) < 0.5, "qpos": rng.normal(size=(t, 3))} if extras else {},
        metadata={
            "env_spec": spec.to_dict(),
            "env_config": {"name": spec.name, "kwargs": {"episode_length": spec.episode_limit}},
            "produced_by": "uniform random test data",
            "format_version": 1,
            "agent_order": list(spec.agent_names),
            "action_partition": [[0, 1], [2], [3, 4]],
            "note": None,
            "score": 0.5,
            "flag": True,
        },
    )


def assert_same(a: OfflineDataset, b: OfflineDataset) -> None:
    for f in dataclasses.fields(OfflineDataset):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        elif f.name == "infos":
            assert x.keys() == y.keys()
            for key in x:
                np.testing.assert_array_equal(x[key], y[key], err_msg=key)
        else:
            assert x == y, f.name


# ------------------------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("spec", [ICG, CONTINUOUS], ids=["discrete", "continuous"])
def test_round_trip(tmp_path: Path, spec: EnvSpec) -> None:
    original = random_dataset(spec, [3, 5, 2])
    path = write_dataset(tmp_path / "nested" / "folder" / "data.hdf5", original)
    loaded = read_dataset(path)
    assert_same(original, loaded)
    assert loaded.actions.dtype == (np.int64 if spec.discrete else np.float32)
    assert loaded.terminals.dtype == bool and loaded.observations.dtype == np.float32
    assert loaded.spec == spec
    starts, ends = loaded.episode_bounds()
    assert starts.tolist() == [0, 3, 8] and ends.tolist() == [2, 7, 9]


def test_optional_keys_absent_round_trip(tmp_path: Path) -> None:
    original = random_dataset(ICG, [4], extras=False)
    loaded = read_dataset(write_dataset(tmp_path / "d.hdf5", original))
    assert loaded.agent_rewards is None and loaded.infos == {}
    assert_same(original, loaded)


def test_big_arrays_are_compressed_and_casts_canonical(tmp_path: Path) -> None:
    data = random_dataset(ICG, [10] * 400)
    data.observations = data.observations.astype(np.float64)  # accepted, stored as float32
    path = write_dataset(tmp_path / "d.hdf5", data)
    with h5py.File(path) as f:
        assert f["observations"].compression == "gzip" and f["observations"].dtype == np.float32
        assert f["rewards"].compression is None  # small arrays stay plain


# ----------------------------------------------------------------------------------------------- bad input


def _edit(key: str, value: Callable[[np.ndarray], np.ndarray] | None) -> Callable[[h5py.File], None]:
    """A file edit that replaces (or, with ``value=None``, deletes) dataset ``key``."""

    def edit(f: h5py.File) -> None:
        old = f[key][()]
        del f[key]
        if value is not None:
            f.create_dataset(key, data=value(old))

    return edit


def _nan_at_3(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[3] = np.nan
    return x


BAD_FILES = {
    "missing key": (_edit("states", None), "missing key(s) states"),
    "missing metadata": (_edit("metadata/env_spec", None), "metadata/env_spec"),
    "format version": (_edit("metadata/format_version", lambda x: 2), "metadata/format_version is 2"),
    "dtype": (
        _edit("observations", lambda x: x.astype(np.int32)),
        "observations has dtype int32; env 'icg' needs float32",
    ),
    "action dtype": (
        _edit("actions", lambda x: x.astype(np.float32)),
        "actions has dtype float32; env 'icg' needs int64",
    ),
    "bool dtype": (
        _edit("terminals", lambda x: x.astype(np.float32)),
        "terminals has dtype float32; env 'icg' needs bool",
    ),
    "length": (_edit("rewards", lambda x: x[:-1]), "rewards has length 9 but observations has length 10"),
    "info length": (_edit("infos/qpos", lambda x: x[:-2]), "infos/qpos has length 8 but observations has length 10"),
    "shape": (
        _edit("observations", lambda x: x[:, :, :4]),
        "observations has shape (10, 2, 4); env 'icg' needs (T, 2, 5)",
    ),
    "agents": (_edit("actions", lambda x: x[:, :1]), "actions has shape (10, 1); env 'icg' needs (T, 2)"),
    "reward shape": (_edit("rewards", lambda x: x[:, None]), "rewards has shape (10, 1); env 'icg' needs (T,)"),
    "episode end": (_edit("timeouts", lambda x: np.r_[x[:-1], False]), "the last transition (index 9) ends no episode"),
    "nan": (_edit("rewards", _nan_at_3), "rewards contains NaN or inf (first at index (3,))"),
    "inf": (_edit("next_states", lambda x: np.full_like(x, np.inf)), "next_states contains NaN or inf"),
    "action range": (_edit("actions", lambda x: x + 1), "actions at transition"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_gives_one_clear_error(tmp_path: Path, case: str) -> None:
    path = write_dataset(tmp_path / "bad.hdf5", random_dataset(ICG, [4, 6]))
    edit, message = BAD_FILES[case]
    with h5py.File(path, "r+") as f:
        edit(f)
    with pytest.raises(DatasetError) as err:
        read_dataset(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_shape_checked_against_given_spec(tmp_path: Path) -> None:
    small = dataclasses.replace(ICG, obs_dims=(4, 4), obs_from_state=None)
    data = random_dataset(small, [10])
    path = write_dataset(tmp_path / "d.hdf5", data)
    with pytest.raises(DatasetError, match=r"observations has shape \(10, 2, 4\); env 'icg' needs \(T, 2, 5\)"):
        read_dataset(path, ICG)


def test_missing_file_names_path_and_hint(tmp_path: Path) -> None:
    path = tmp_path / "nope.hdf5"
    with pytest.raises(DatasetError) as err:
        read_dataset(path, missing_hint="create it with `make-it`")
    assert str(err.value) == f"dataset file {path} does not exist; create it with `make-it`"


def test_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "text.hdf5"
    path.write_text("hello")
    with pytest.raises(DatasetError, match="not a readable HDF5 file"):
        read_dataset(path)


def test_invalid_dataset_is_never_written(tmp_path: Path) -> None:
    data = random_dataset(ICG, [5])
    data.timeouts[-1] = False
    with pytest.raises(DatasetError, match="ends no episode"):
        write_dataset(tmp_path / "out" / "d.hdf5", data)
    assert not (tmp_path / "out" / "d.hdf5").exists()
    assert list(tmp_path.rglob("*")) in ([], [tmp_path / "out"])


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    path = write_dataset(tmp_path / "d.hdf5", random_dataset(ICG, [5]))
    bad = random_dataset(ICG, [7])
    bad.metadata["unstorable"] = object()  # fails half-way through writing
    with pytest.raises(DatasetError, match="metadata/unstorable"):
        write_dataset(path, bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.hdf5"]
    assert read_dataset(path).num_transitions == 5


# --------------------------------------------------------------------------------------- single-agent D4RL


ANT = EnvSpec(
    "ant-4x2",
    n_agents=4,
    obs_dims=(15, 15, 15, 13),
    state_dim=111,
    action_kind="continuous",
    action_sizes=(2, 2, 2, 2),
    episode_limit=1000,
)
OBS_PARTITION = [list(range(5)) + list(range(5 + 10 * i, 5 + 10 * i + (10 if i < 3 else 8))) for i in range(4)]
ACTION_PARTITION = [[2 * i, 2 * i + 1] for i in range(4)]


def _write_d4rl(path: Path, with_next: bool) -> dict[str, np.ndarray]:
    """30 rows: a terminated episode (rows 0-9), a timed-out one (10-19), and one cut by the file end (20-29)."""
    rng = np.random.default_rng(3)
    raw = {
        "observations": rng.normal(size=(30, 111)),
        "actions": rng.uniform(-1, 1, (30, 8)).astype(np.float32),
        "rewards": rng.normal(size=30),
        "terminals": np.isin(np.arange(30), [9]),
        "timeouts": np.isin(np.arange(30), [19]),
    }
    if with_next:
        raw["next_observations"] = rng.normal(size=(30, 111))
    with h5py.File(path, "w") as f:
        for key, value in raw.items():
            f.create_dataset(key, data=value)
        f.create_dataset("metadata/algorithm", data="SAC")
    return raw


def _check_split(data: OfflineDataset, raw: dict[str, np.ndarray], rows: np.ndarray) -> None:
    for i, (obs_idx, act_idx) in enumerate(zip(OBS_PARTITION, ACTION_PARTITION)):
        np.testing.assert_allclose(
            data.observations[:, i, : len(obs_idx)], raw["observations"][rows][:, obs_idx], rtol=1e-6
        )
        assert not data.observations[:, i, len(obs_idx) :].any()
        np.testing.assert_array_equal(data.actions[:, i], raw["actions"][rows][:, act_idx])
    np.testing.assert_allclose(data.states, raw["observations"][rows], rtol=1e-6)
    np.testing.assert_allclose(data.rewards, raw["rewards"][rows], rtol=1e-6)
    assert data.available_actions.all()
    assert data.metadata["observation_partition"] == OBS_PARTITION
    assert data.metadata["action_partition"] == ACTION_PARTITION
    assert "SAC" in data.metadata["produced_by"]


def test_d4rl_with_next_observations(tmp_path: Path) -> None:
    raw = _write_d4rl(tmp_path / "ant.hdf5", with_next=True)
    data = read_d4rl_single_agent(tmp_path / "ant.hdf5", OBS_PARTITION, ACTION_PARTITION, None, ANT)
    rows = np.arange(30)
    _check_split(data, raw, rows)
    np.testing.assert_allclose(data.next_states, raw["next_observations"], rtol=1e-6)
    assert np.flatnonzero(data.terminals).tolist() == [9]
    assert np.flatnonzero(data.timeouts).tolist() == [19, 29]  # the file end truncates the last episode
    assert_same(data, read_dataset(write_dataset(tmp_path / "ma.hdf5", data), ANT))


def test_d4rl_without_next_observations_drops_episode_ends(tmp_path: Path) -> None:
    raw = _write_d4rl(tmp_path / "ant.hdf5", with_next=False)
    data = read_d4rl_single_agent(tmp_path / "ant.hdf5", OBS_PARTITION, ACTION_PARTITION, list(range(111)), ANT)
    rows = np.r_[0:10, 10:19, 20:29]  # the timed-out row 19 and the file's last row 29 have no next row
    _check_split(data, raw, rows)
    assert data.num_transitions == 28
    assert np.flatnonzero(data.terminals).tolist() == [9]
    assert np.flatnonzero(data.timeouts).tolist() == [18, 27]
    within = rows != 9  # the terminal row's next observation is never used
    np.testing.assert_allclose(data.next_states[within], raw["observations"][rows[within] + 1], rtol=1e-6)


def test_d4rl_state_indices_and_bad_partition(tmp_path: Path) -> None:
    _write_d4rl(tmp_path / "ant.hdf5", with_next=True)
    torso = dataclasses.replace(ANT, state_dim=27)
    data = read_d4rl_single_agent(tmp_path / "ant.hdf5", OBS_PARTITION, ACTION_PARTITION, list(range(27)), torso)
    assert data.states.shape == (30, 27)
    with pytest.raises(DatasetError, match=r"action_partition\[1\] has 1 indices; agent 1 needs 2"):
        read_d4rl_single_agent(tmp_path / "ant.hdf5", OBS_PARTITION, [[0, 1], [2], [4, 5], [6, 7]], None, ANT)
    with pytest.raises(DatasetError, match="action_partition has 3 groups; the env has 4 agents"):
        read_d4rl_single_agent(tmp_path / "ant.hdf5", OBS_PARTITION, ACTION_PARTITION[:3], None, ANT)
    with pytest.raises(DatasetError, match="state_indices selects 111 columns"):
        read_d4rl_single_agent(tmp_path / "ant.hdf5", OBS_PARTITION, ACTION_PARTITION, None, torso)


def test_d4rl_partition_must_agree_with_obs_from_state(tmp_path: Path) -> None:
    _write_d4rl(tmp_path / "ant.hdf5", with_next=True)
    linked = dataclasses.replace(ANT, obs_from_state=tuple(tuple(p) for p in OBS_PARTITION))
    read_d4rl_single_agent(tmp_path / "ant.hdf5", OBS_PARTITION, ACTION_PARTITION, None, linked)
    reversed_state = list(range(110, -1, -1))
    with pytest.raises(DatasetError, match=r"observation_partition\[0\] = \[0, 1, .* disagrees with env 'ant-4x2'"):
        read_d4rl_single_agent(tmp_path / "ant.hdf5", OBS_PARTITION, ACTION_PARTITION, reversed_state, linked)


# --------------------------------------------------------------------------------- collection and the command


@pytest.mark.parametrize("policy,score", [("favorable", 0.625), ("neutral", 0.5), ("unfavorable", 0.375)])
def test_icg_datasets_score_as_table_1(tmp_path: Path, policy: str, score: float) -> None:
    data = read_dataset(make_icg_dataset(tmp_path / f"{policy}.hdf5", policy, episodes=500), ICG)
    returns, lengths = episode_scores(data)
    assert len(returns) == 500 and (lengths == 10).all()
    scores = [REFERENCE_SCORES["icg"].normalize(r, n) for r, n in zip(returns, lengths)]
    assert abs(np.mean(scores) - score) < 0.03


def test_collected_episodes_are_contiguous() -> None:
    data = collect_dataset(
        EnvConfig("icg", {"episode_length": 4}),
        icg_dataset_policy((0.5, 0.5)),
        episodes=7,
        seed=1,
        num_envs=3,
        produced_by="test",
    )
    assert data.num_transitions == 28
    assert np.flatnonzero(data.timeouts).tolist() == [3, 7, 11, 15, 19, 23, 27]
    first = np.arange(28) % 4 == 0
    assert (data.states[:, 4] == first).all()  # the is_first_step flag starts every episode
    inside = ~data.timeouts
    np.testing.assert_array_equal(data.next_states[inside], data.states[1:][inside[:-1]])
    # the next state records the joint action just taken
    np.testing.assert_array_equal(data.next_states[:, [1, 3]], data.actions.astype(np.float32))
    assert data.agent_rewards.shape == (28, 2)


def test_dataset_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "icg.hdf5"
    assert (
        main(["make", "icg", "--policy", "neutral", "--out", str(out), "--episodes", "20", "--episode-length", "5"])
        == 0
    )
    assert out.exists()
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    for expected in (
        "env                icg",
        "agents             2",
        "transitions        100",
        "episodes           20",
        "episode return",
        "normalized score   min",
    ):
        assert expected in text
    assert main(["info", str(tmp_path / "missing.hdf5")]) == 1
    assert "does not exist" in capsys.readouterr().err
