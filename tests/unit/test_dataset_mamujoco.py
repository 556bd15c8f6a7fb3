"""MaMuJoCo datasets through the dataset tool: random and trained teams, mixtures, D4RL Ant import, Reacher elbow
conventions, make_if_missing recipes and reference scores looked up from env configs."""

from __future__ import annotations

from pathlib import Path

import h5py
import lightning
import numpy as np
import pytest
import torch

pytest.importorskip("gymnasium_robotics", reason="MaMuJoCo needs the mamujoco extra: pip install -e '.[mamujoco]'")

from lightning_mbmarl.data.checkpoints import load_algorithm  # noqa: E402
from lightning_mbmarl.algorithms.mappo import MAPPO  # noqa: E402
from lightning_mbmarl.data.dataset_tool import example_recipe, main, make_command_hint  # noqa: E402
from lightning_mbmarl.data.hdf5_format import DatasetError, OfflineDataset, read_dataset, write_dataset  # noqa: E402
from lightning_mbmarl.data.mamujoco_datasets import (  # noqa: E402
    CLOCKWISE,
    COUNTER_CLOCKWISE,
    collect_mamujoco,
    elbow_conventions,
    import_d4rl_ant,
    mamujoco_config,
    policy_elbow_conventions,
)
from lightning_mbmarl.data.offline_datamodule import OfflineDataModule  # noqa: E402
from lightning_mbmarl.envs import EnvConfig, EnvSpec, env_spec  # noqa: E402
from lightning_mbmarl.envs.mamujoco import MaMuJoCoEnv  # noqa: E402
from lightning_mbmarl.learners.mappo import MAPPOConfig  # noqa: E402
from lightning_mbmarl.reference_scores import REFERENCE_SCORES, reference_for  # noqa: E402

REACHER = {"scenario": "Reacher", "agent_conf": "2x1"}


@pytest.fixture(autouse=True)
def _mujoco_log_in_tmp(tmp_path, monkeypatch):
    """MuJoCo may write MUJOCO_LOG.TXT into the working directory."""
    monkeypatch.chdir(tmp_path)


def observe(states: np.ndarray, spec: EnvSpec) -> np.ndarray:
    """``[T, S] -> [T, N, obs_dim]``: every agent's ``state[obs_from_state[i]]``, zero-padded."""
    obs = np.zeros((len(states), spec.n_agents, spec.obs_dim), np.float32)
    for i, idx in enumerate(spec.obs_from_state):
        obs[:, i, : len(idx)] = states[:, idx]
    return obs


def save_tiny_mappo(path: Path, observation: str, memory_length: int = 0) -> Path:
    """An untrained MAPPO Reacher team (hidden [8]) saved as the CLI's checkpoints are: weights and hyperparameters
    with the ``_class_path`` LightningCLI records."""
    torch.manual_seed(0)
    spec = env_spec(EnvConfig("mamujoco", {**REACHER, "observation": observation}))
    model = MAPPO(spec, mappo=MAPPOConfig(hidden=(8,), memory_length=memory_length, memory_dim=8))
    hparams = {"_class_path": "lightning_mbmarl.algorithms.mappo.MAPPO", **dict(model.hparams)}
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": hparams,
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("checkpoints")
    return {
        "independent": save_tiny_mappo(folder / "independent.ckpt", "independent"),
        "memory": save_tiny_mappo(folder / "memory.ckpt", "leader_only", memory_length=2),
    }


# ------------------------------------------------------------------------------------------------- collection


def test_random_ant_partial_dataset_round_trips(tmp_path: Path, capsys) -> None:
    out = tmp_path / "ant.hdf5"
    assert (
        main(
            [
                "make",
                "mamujoco",
                "--scenario",
                "Ant",
                "--observation",
                "partial",
                "--policy",
                "random",
                "--episodes",
                "2",
                "--episode-length",
                "20",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    data = read_dataset(out)
    spec = data.spec
    assert spec.name == "mamujoco:Ant-4x2-partial" and data.num_transitions == 40
    assert np.flatnonzero(data.timeouts).tolist() == [19, 39]
    np.testing.assert_array_equal(data.observations, observe(data.states, spec))
    np.testing.assert_array_equal(data.next_observations, observe(data.next_states, spec))
    assert np.abs(data.actions).max() <= 1.0
    assert data.metadata["env_config"] == {
        "name": "mamujoco",
        "kwargs": {"scenario": "Ant", "agent_conf": "4x2", "observation": "partial", "episode_length": 20},
    }
    assert data.metadata["partition"] == MaMuJoCoEnv("Ant", "4x2", observation="partial").partition()
    assert data.metadata["policies"] == [
        {"policy": "random", "description": "uniform random actions in [-1, 1]", "episodes": 2, "seed": 0}
    ]
    printed = capsys.readouterr().out
    assert "normalized score   min" in printed  # the mamujoco:Ant reference is found from the env config


def test_mixture_has_equal_parts_and_records_them(tmp_path: Path, checkpoints) -> None:
    config = mamujoco_config("Reacher", "all_observant", episode_length=10)
    data = collect_mamujoco(config, ["random", str(checkpoints["independent"])], episodes=4, seed=3)
    assert data.num_transitions == 40 and np.flatnonzero(data.timeouts).tolist() == [9, 19, 29, 39]
    parts = data.metadata["policies"]
    assert [(p["policy"], p["episodes"], p["seed"]) for p in parts] == [
        ("random", 2, 3),
        (str(checkpoints["independent"]), 2, 1003),
    ]
    assert parts[1]["trained_on"] == "mamujoco:Reacher-2x1-independent" and parts[1]["greedy"] is False
    assert data.metadata["produced_by"].startswith("mixture of 2 equal parts: uniform random")
    with pytest.raises(DatasetError, match="3 cannot be split into 2 equal parts"):
        collect_mamujoco(config, ["random", "random"], episodes=3)


def test_checkpoint_policy_acts_on_its_own_observations(tmp_path: Path, checkpoints) -> None:
    path = checkpoints["independent"]
    config = mamujoco_config("Reacher", "all_observant", episode_length=10)
    data = collect_mamujoco(config, [str(path)], episodes=2, greedy=True)
    model = load_algorithm(path)
    own = model.env_spec
    assert isinstance(model, MAPPO) and own.name == "mamujoco:Reacher-2x1-independent"
    np.testing.assert_array_equal(data.observations, observe(data.states, data.spec))  # recorded: all_observant
    with torch.no_grad():
        expected = model.act(
            torch.as_tensor(observe(data.states, own)),
            torch.ones(20, 2, 1, dtype=torch.bool),
            (None, None, None),
            greedy=True,
        ).clamp(-1.0, 1.0)
    np.testing.assert_allclose(data.actions, expected.numpy(), atol=1e-6)


def test_exported_policy_keeps_the_weights_and_drops_training_state(tmp_path: Path, checkpoints) -> None:
    training = torch.load(checkpoints["independent"], weights_only=False)
    training["optimizer_states"] = [{"state": {0: torch.zeros(1000)}}]  # stands for what training adds
    source = tmp_path / "training.ckpt"
    torch.save(training, source)
    assert main(["export-policy", str(source), "--out", str(tmp_path / "policy.ckpt")]) == 0
    exported = torch.load(tmp_path / "policy.ckpt", weights_only=False)
    assert "optimizer_states" not in exported
    original, loaded = load_algorithm(source).state_dict(), load_algorithm(tmp_path / "policy.ckpt").state_dict()
    assert original.keys() == loaded.keys() and all(torch.equal(original[k], loaded[k]) for k in original)
    assert main(["export-policy", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "x.ckpt")]) == 1
    assert not (tmp_path / "x.ckpt").exists()


def test_policy_with_memory_samples_reproducibly(tmp_path: Path, checkpoints) -> None:
    config = mamujoco_config("Reacher", "independent", episode_length=10)
    first, second = (collect_mamujoco(config, [str(checkpoints["memory"])], episodes=2, seed=5) for _ in range(2))
    np.testing.assert_array_equal(first.actions, second.actions)
    assert not np.array_equal(first.actions[:10], first.actions[10:])  # sampled, from different start states


def test_reobserving_equals_collecting_with_the_other_observation_function(tmp_path: Path, checkpoints) -> None:
    policies = [str(checkpoints["independent"]), "random"]
    full = collect_mamujoco(
        mamujoco_config("Reacher", "all_observant", episode_length=10), policies, episodes=2, seed=3
    )
    direct = collect_mamujoco(
        mamujoco_config("Reacher", "leader_only", episode_length=10), policies, episodes=2, seed=3
    )
    write_dataset(tmp_path / "full.hdf5", full)
    assert (
        main(
            [
                "reobserve",
                str(tmp_path / "full.hdf5"),
                "--observation",
                "leader_only",
                "--out",
                str(tmp_path / "leader.hdf5"),
            ]
        )
        == 0
    )
    copy = read_dataset(tmp_path / "leader.hdf5")
    assert copy.spec == direct.spec and copy.metadata["partition"] == direct.metadata["partition"]
    for key in ("observations", "next_observations", "states", "actions", "rewards", "terminals", "timeouts"):
        np.testing.assert_array_equal(getattr(copy, key), getattr(direct, key), err_msg=key)


def test_policy_of_another_task_is_refused(checkpoints) -> None:
    with pytest.raises(DatasetError, match="trained on mamujoco:Reacher-2x1-independent .* cannot act in mamujoco:Ant"):
        collect_mamujoco(mamujoco_config("Ant", "full", episode_length=5), [str(checkpoints["independent"])], 1)


# ------------------------------------------------------------------------------------------------ D4RL import


def write_d4rl_ant(path: Path, lengths: tuple[int, ...] = (5, 7), width: int = 111) -> dict[str, np.ndarray]:
    """A synthetic file in the layout of D4RL's ant-*-v2 files (random numbers), each episode ending in a timeout."""
    rng = np.random.default_rng(0)
    t = sum(lengths)
    timeouts = np.zeros(t, bool)
    timeouts[np.cumsum(lengths) - 1] = True
    raw = {
        "observations": rng.normal(size=(t, width)),
        "next_observations": rng.normal(size=(t, width)),
        "actions": rng.uniform(-1, 1, (t, 8)),
        "rewards": rng.normal(size=t),
        "terminals": np.zeros(t, bool),
        "timeouts": timeouts,
    }
    with h5py.File(path, "w") as f:
        for key, value in raw.items():
            f.create_dataset(key, data=value)
    return raw


def test_d4rl_ant_import_splits_with_the_env_partition(tmp_path: Path) -> None:
    raw = write_d4rl_ant(tmp_path / "ant-medium-v2.hdf5")
    out = tmp_path / "ant_partial.hdf5"
    assert (
        main(["import-d4rl", str(tmp_path / "ant-medium-v2.hdf5"), "--observation", "partial", "--out", str(out)]) == 0
    )
    data = read_dataset(out)
    obs = raw["observations"].astype(np.float32)
    np.testing.assert_array_equal(data.states, obs[:, :27])  # the 84 contact forces are dropped
    np.testing.assert_array_equal(data.observations, observe(obs[:, :27], data.spec))
    np.testing.assert_array_equal(data.observations[:, 1, :4], obs[:, [7, 8, 21, 22]])  # agent 1: leg 2 only
    assert set(range(5)) <= set(data.spec.obs_from_state[0])  # agent 0 (hip_1's leg) sees the torso
    actions = raw["actions"].astype(np.float32)
    for agent, actuators in enumerate([[2, 3], [4, 5], [6, 7], [0, 1]]):  # MaMuJoCo's 4x2 order
        np.testing.assert_array_equal(data.actions[:, agent], actions[:, actuators])
    assert data.metadata["env_config"] == {
        "name": "mamujoco",
        "kwargs": {"scenario": "Ant", "agent_conf": "4x2", "observation": "partial", "contact_cost_weight": 0.0},
    }
    assert data.metadata["partition"]["action_partition"] == [[2, 3], [4, 5], [6, 7], [0, 1]]
    assert np.flatnonzero(data.timeouts).tolist() == [4, 11]


def test_d4rl_file_of_another_layout_is_named(tmp_path: Path) -> None:
    write_d4rl_ant(tmp_path / "hopper.hdf5", width=11)
    with pytest.raises(DatasetError, match=r"observations \(12, 11\) .* a D4RL Ant file has observations \(T, 111\)"):
        import_d4rl_ant(tmp_path / "hopper.hdf5", "full")


# ------------------------------------------------------------------------------------------ elbow conventions


def reacher_dataset(elbow_angles: list[tuple[float, float]], length: int = 10) -> OfflineDataset:
    """Reacher episodes whose elbow angle is ``first`` in the first half and ``last`` in the second half."""
    spec = env_spec(EnvConfig("mamujoco", {**REACHER, "observation": "independent"}))
    angles = np.concatenate([np.repeat([first, last], length // 2) for first, last in elbow_angles])
    t = len(angles)
    states = np.zeros((t, 10), np.float32)
    states[:, 1], states[:, 3] = np.cos(angles), np.sin(angles)
    timeouts = (np.arange(t) % length) == length - 1
    avail = np.ones((t, 2, 1), bool)
    return OfflineDataset(
        observations=observe(states, spec),
        next_observations=observe(states, spec),
        actions=np.zeros((t, 2, 1), np.float32),
        rewards=np.zeros(t, np.float32),
        terminals=np.zeros(t, bool),
        timeouts=timeouts,
        states=states,
        next_states=states,
        available_actions=avail,
        next_available_actions=avail,
        metadata={
            "env_spec": spec.to_dict(),
            "env_config": {"name": "mamujoco", "kwargs": {**REACHER}},
            "produced_by": "test",
            "format_version": 1,
        },
    )


def test_elbow_conventions_of_a_dataset_use_each_episodes_last_half(tmp_path: Path, capsys) -> None:
    data = reacher_dataset([(-1.0, 0.5), (0.4, -0.7), (-2.0, 1.1)])
    conventions = elbow_conventions(data)
    np.testing.assert_allclose(conventions.episode_angles, [0.5, -0.7, 1.1], atol=1e-6)
    assert conventions.counter_clockwise_fraction == pytest.approx(2 / 3)
    assert conventions.convention == COUNTER_CLOCKWISE
    assert elbow_conventions(reacher_dataset([(0.3, -0.2)])).convention == CLOCKWISE

    path = write_dataset(tmp_path / "reacher.hdf5", data)
    assert main(["convention", str(path)]) == 0
    assert f"66.7% {COUNTER_CLOCKWISE}, 33.3% {CLOCKWISE}" in capsys.readouterr().out


def test_elbow_conventions_of_a_checkpoint(checkpoints, capsys) -> None:
    conventions = policy_elbow_conventions(checkpoints["independent"], episodes=2)
    assert conventions.episode_angles.shape == (2,)
    assert main(["convention", str(checkpoints["independent"]), "--episodes", "2"]) == 0
    printed = capsys.readouterr().out
    assert "greedy episodes    2" in printed and f"convention         {conventions.convention}" in printed


# ---------------------------------------------------------------------------------------------------- recipes


def test_random_recipe_is_made_on_the_spot(tmp_path: Path) -> None:
    env = EnvConfig("mamujoco", {**REACHER, "observation": "leader_only", "episode_length": 10})
    recipe = {"kind": "mamujoco", "policy": "random", "episodes": 2}
    module = OfflineDataModule(env, str(tmp_path / "made.hdf5"), make_if_missing=recipe, batch_size=4)
    module.setup()
    data = read_dataset(tmp_path / "made.hdf5")
    assert data.spec == module.env_spec and data.num_transitions == 20
    assert example_recipe(env) == {"kind": "mamujoco", "policy": "random", "episodes": 1000, "seed": 0}


def test_dataset_too_long_to_make_on_the_spot_gives_its_command(tmp_path: Path) -> None:
    env = EnvConfig("mamujoco", {**REACHER, "observation": "independent"})
    out = tmp_path / "expert.hdf5"
    recipe = {"kind": "mamujoco", "policy": "random", "episodes": 4, "on_the_spot": False}
    module = OfflineDataModule(
        env, dataset="expert", datasets={"expert": {"path": str(out), "make_if_missing": recipe}}
    )
    with pytest.raises(DatasetError, match="too long to collect on the spot") as err:
        module.setup()
    assert (
        f"python -m lightning_mbmarl dataset make mamujoco --scenario Reacher --agent-conf 2x1 --observation "
        f"independent --policy random --episodes 4 --seed 0 --out {out}"
    ) in str(err.value)
    assert not out.exists()


def test_recipe_with_a_missing_checkpoint_names_the_command(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "mappo_reacher.yaml").write_text("{}\n")
    env = EnvConfig("mamujoco", {**REACHER, "observation": "independent", "episode_length": 10})
    checkpoint = "outputs/mappo_reacher/version_3/checkpoints/last.ckpt"
    out = tmp_path / "expert.hdf5"
    module = OfflineDataModule(
        env,
        str(out),
        make_if_missing={"kind": "mamujoco", "policy": [checkpoint, "random"], "episodes": 4, "greedy": True},
    )
    with pytest.raises(DatasetError) as err:
        module.setup()
    text = str(err.value)
    assert f"policy checkpoint {checkpoint} does not exist" in text
    assert "python -m lightning_mbmarl fit --config conf/mappo_reacher.yaml" in text
    assert (
        f"python -m lightning_mbmarl dataset make mamujoco --scenario Reacher --agent-conf 2x1 --observation "
        f"independent --policy {checkpoint} --policy random --episodes 4 --episode-length 10 --seed 0 --greedy "
        f"--out {out}"
    ) in text
    assert not out.exists()


def test_recipe_disagreeing_with_the_env_is_refused(tmp_path: Path) -> None:
    env = EnvConfig("mamujoco", {**REACHER, "observation": "independent"})
    module = OfflineDataModule(
        env,
        str(tmp_path / "x.hdf5"),
        make_if_missing={"kind": "mamujoco", "policy": "random", "observation": "leader_only"},
    )
    with pytest.raises(DatasetError, match="observation='leader_only' but the data module's env has observation="):
        module.setup()


def test_make_command_hint_for_a_mamujoco_env() -> None:
    env = EnvConfig(
        "mamujoco", {"scenario": "Ant", "agent_conf": "4x2", "observation": "partial", "contact_cost_weight": 0.0}
    )
    assert make_command_hint(env, "data/ant.hdf5") == (
        "python -m lightning_mbmarl dataset make mamujoco --scenario Ant --agent-conf 4x2 --observation partial "
        "--policy {random,CHECKPOINT.ckpt} --episodes 1000 --contact-cost-weight 0.0 --seed 0 --out data/ant.hdf5"
    )


# ------------------------------------------------------------------------------------------- reference scores


def test_references_are_found_from_env_configs() -> None:
    ant = REFERENCE_SCORES["mamujoco:Ant"]
    for observation in ("full", "partial"):
        assert reference_for("mamujoco", {"scenario": "Ant", "agent_conf": "4x2", "observation": observation}) is ant
    assert reference_for("mamujoco", {}) is ant  # MaMuJoCoEnv's default scenario
    reacher = reference_for("mamujoco", {**REACHER, "observation": "leader_only"})
    assert reacher is REFERENCE_SCORES["mamujoco:Reacher"]
    assert reacher.normalize(reacher.random, 50) == 0.0 and reacher.normalize(reacher.expert, 50) == 1.0
    assert reference_for("icg", {"episode_length": 10}) is REFERENCE_SCORES["icg"]
    assert reference_for("mamujoco", {"scenario": "Humanoid"}) is None and reference_for("smax", {}) is None
