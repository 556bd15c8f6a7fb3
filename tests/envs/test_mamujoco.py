"""MaMuJoCo adapter: spec shapes, observation functions as state selections, action routing, seeding, time limits.

Random-action speed is measured in the docstring of lightning_mbmarl/envs/mamujoco.py (not asserted here).
"""

import json
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("gymnasium_robotics", reason="MaMuJoCo needs the mamujoco extra: pip install -e '.[mamujoco]'")

from lightning_mbmarl.envs import EnvConfig, make_env, make_vector_env  # noqa: E402
from lightning_mbmarl.envs.mamujoco import MaMuJoCoEnv  # noqa: E402
from lightning_mbmarl.envs.mamujoco_observations import ANT_TORSO, reacher_elbow_angle  # noqa: E402
from lightning_mbmarl.envs.observation import StateObserver  # noqa: E402

REACHER_TARGET, REACHER_FINGERTIP = {4, 5}, {8, 9}


@pytest.fixture(autouse=True)
def _mujoco_log_in_tmp(tmp_path, monkeypatch):
    """MuJoCo writes its warnings (e.g. HumanoidStandup's deprecated settotalmass) to MUJOCO_LOG.TXT in the cwd."""
    monkeypatch.chdir(tmp_path)


def task_of(env: MaMuJoCoEnv):
    """The gymnasium MuJoCo task (model, data, set_state) under the adapter."""
    return env.mamujoco.single_agent_env.unwrapped


def random_actions(env: MaMuJoCoEnv, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-1, 1, (env.spec.n_agents, env.spec.action_dim)).astype(np.float32)


def actuated_state_index(env: MaMuJoCoEnv, actuator: int) -> int:
    """State index of the angle of the joint ``actuator`` drives (Ant: state = qpos[2:] + qvel)."""
    model = task_of(env).model
    return int(model.jnt_qposadr[model.actuator_trnid[actuator, 0]]) - 2


@pytest.mark.parametrize(
    "kwargs, obs_dims, state_dim, action_sizes, limit",
    [
        ({"scenario": "Ant", "agent_conf": "4x2"}, (27,) * 4, 27, (2,) * 4, 1000),
        ({"scenario": "Ant", "agent_conf": "4x2", "observation": "partial"}, (15, 4, 4, 4), 27, (2,) * 4, 1000),
        ({"scenario": "Reacher", "agent_conf": "2x1"}, (10, 10), 10, (1, 1), 50),
        ({"scenario": "Reacher", "agent_conf": "2x1", "observation": "independent"}, (5, 5), 10, (1, 1), 50),
        ({"scenario": "Reacher", "agent_conf": "2x1", "observation": "leader_only"}, (8, 6), 10, (1, 1), 50),
        ({"scenario": "Humanoid", "agent_conf": "9|8"}, (348, 348), 348, (9, 8), 1000),
        ({"scenario": "Humanoid", "agent_conf": "9|8", "observation": "local"}, (242, 170), 348, (9, 8), 1000),
        ({"scenario": "HumanoidStandup", "agent_conf": "9|8", "observation": "local"}, (242, 170), 348, (9, 8), 1000),
        (
            {"scenario": "HalfCheetah", "agent_conf": "6x1", "observation": "local"},
            (9, 9, 8, 9, 9, 8),
            17,
            (1,) * 6,
            1000,
        ),
    ],
)
def test_spec_shapes(kwargs, obs_dims, state_dim, action_sizes, limit):
    env = make_env(EnvConfig("mamujoco", kwargs))
    spec = env.spec
    assert (spec.obs_dims, spec.state_dim, spec.action_sizes) == (obs_dims, state_dim, action_sizes)
    assert spec.episode_limit == limit
    assert spec.action_kind == "continuous" and (spec.action_low, spec.action_high) == (-1.0, 1.0)
    obs, state, avail = env.reset(seed=0)
    assert obs.shape == (spec.n_agents, spec.obs_dim) and state.shape == (state_dim,) and avail.all()
    assert obs.dtype == state.dtype == np.float32
    json.dumps(env.partition())
    env.close()


def test_ant_partial_gives_torso_to_the_leg_1_agent_only_and_each_agent_its_own_leg():
    env = MaMuJoCoEnv("Ant", "4x2", observation="partial")
    assert env.action_partition == ((2, 3), (4, 5), (6, 7), (0, 1))  # MaMuJoCo order: agent 0 is leg 1 (hip_1)
    torso = set(ANT_TORSO)
    for i, (idx, actuators) in enumerate(zip(env.spec.obs_from_state, env.action_partition)):
        own_angles = {actuated_state_index(env, a) for a in actuators}
        own = own_angles | {j + 14 for j in own_angles}  # velocity of the joint at angle index j sits at j + 14
        assert set(idx) == (own | torso if i == 0 else own), f"agent {i}"
    assert sum(bool(torso & set(idx)) for idx in env.spec.obs_from_state) == 1
    assert [actuated_state_index(env, a) for a in env.action_partition[0]] == [5, 6]  # hip_1, ankle_1


def test_ant_full_shows_every_agent_the_whole_state():
    env = MaMuJoCoEnv("Ant", "4x2", observation="full")
    assert all(idx == tuple(range(27)) for idx in env.spec.obs_from_state)


def test_reacher_observation_functions():
    own_joint = [{0, 2, 6}, {1, 3, 7}]  # cos, sin, velocity of shoulder / elbow
    both = own_joint[0] | own_joint[1]
    full = MaMuJoCoEnv("Reacher", "2x1", observation="all_observant").spec.obs_from_state
    assert full == (tuple(range(10)),) * 2
    independent = MaMuJoCoEnv("Reacher", "2x1", observation="independent").spec.obs_from_state
    assert [set(i) for i in independent] == [own_joint[0] | REACHER_TARGET, own_joint[1] | REACHER_TARGET]
    leader_only = MaMuJoCoEnv("Reacher", "2x1", observation="leader_only").spec.obs_from_state
    assert [set(i) for i in leader_only] == [both | REACHER_TARGET, both]  # the follower lacks the target
    assert not any(REACHER_FINGERTIP & set(i) for i in independent + leader_only)


@pytest.mark.parametrize(
    "scenario, conf, observation",
    [("Ant", "4x2", "partial"), ("Reacher", "2x1", "leader_only"), ("HalfCheetah", "6x1", "local")],
)
def test_obs_from_state_reproduces_environment_observations(scenario, conf, observation):
    env = MaMuJoCoEnv(scenario, conf, observation=observation)
    observer = StateObserver(env.spec)
    rng = np.random.default_rng(0)
    obs, state, _ = env.reset(seed=0)
    for _ in range(5):
        np.testing.assert_array_equal(observer.observe(torch.as_tensor(state)).numpy(), obs)
        obs, state, *_ = env.step(random_actions(env, rng))


@pytest.mark.parametrize("scenario, conf", [("HalfCheetah", "6x1"), ("Humanoid", "9|8")])
def test_local_observations_are_mamujocos_own(scenario, conf):
    from gymnasium_robotics import mamujoco_v1

    env = MaMuJoCoEnv(scenario, conf, observation="local")
    reference = mamujoco_v1.parallel_env(scenario, conf)
    rng = np.random.default_rng(1)
    obs, *_ = env.reset(seed=4)
    ref_obs, _ = reference.reset(seed=4)
    for _ in range(3):
        for i, agent in enumerate(reference.possible_agents):
            np.testing.assert_allclose(obs[i, : env.spec.obs_dims[i]], ref_obs[agent], rtol=1e-6, atol=1e-6)
        actions = random_actions(env, rng)
        obs, *_ = env.step(actions)
        ref_obs, *_ = reference.step(reference.map_global_action_to_local_actions(env.single_agent_action(actions)))


@pytest.mark.parametrize("scenario, conf, high", [("Ant", "4x2", 1.0), ("Humanoid", "9|8", 0.4)])
def test_each_agents_action_reaches_its_own_actuators(scenario, conf, high):
    env = MaMuJoCoEnv(scenario, conf)
    env.reset(seed=0)
    for i, actuators in enumerate(env.action_partition):
        for k, actuator in enumerate(actuators):
            actions = np.zeros((env.spec.n_agents, env.spec.action_dim), np.float32)
            actions[i, k] = 1.0
            actions[i, len(actuators) :] = 1.0  # padding is ignored
            env.step(actions)
            expected = np.zeros(len(env.single_agent_action(actions)))
            expected[actuator] = high
            np.testing.assert_allclose(task_of(env).data.ctrl, expected, atol=1e-7, err_msg=f"agent {i} dim {k}")


def test_seeded_resets_and_steps_are_reproducible():
    rollouts = []
    for seed in (7, 7, 8):
        env = MaMuJoCoEnv("Ant", "4x2")
        rng = np.random.default_rng(0)
        states = [env.reset(seed=seed)[1]] + [env.step(random_actions(env, rng))[1] for _ in range(5)]
        rollouts.append(np.stack(states))
    np.testing.assert_array_equal(rollouts[0], rollouts[1])
    assert not np.allclose(rollouts[0], rollouts[2])


def test_truncation_at_episode_length_and_vector_reset():
    venv = make_vector_env(EnvConfig("mamujoco", {"scenario": "Reacher", "agent_conf": "2x1", "episode_length": 4}), 2)
    first = venv.reset(seed=0)
    actions = np.zeros((2, 2, 1), np.float32)
    results = [venv.step(actions) for _ in range(4)]
    assert [r.truncated.tolist() for r in results] == [[False, False]] * 3 + [[True, True]]
    assert not any(r.terminated.any() for r in results)
    assert not np.allclose(results[-1].next.state[:, 4:6], first.state[:, 4:6])  # fresh episodes, new targets


def test_ant_terminates_when_the_torso_leaves_the_healthy_height_range():
    env = MaMuJoCoEnv("Ant", "4x2")
    env.reset(seed=0)
    task = task_of(env)
    qpos = task.data.qpos.copy()
    qpos[2] = 2.0  # above the healthy torso height range (0.2, 1.0) of Ant-v5
    task.set_state(qpos, np.zeros_like(task.data.qvel))
    *_, terminated, truncated, _ = env.step(np.zeros((4, 2), np.float32))
    assert terminated and not truncated


@pytest.mark.parametrize("elbow", [0.7, -0.7])
def test_elbow_angle_sign_matches_the_bend_direction(elbow):
    env = MaMuJoCoEnv("Reacher", "2x1", episode_length=3)
    env.reset(seed=0)
    task = task_of(env)
    qpos = task.data.qpos.copy()
    qpos[:2] = (0.0, elbow)  # upper arm along +x, elbow bent by `elbow`
    task.set_state(qpos, np.zeros_like(task.data.qvel))
    _, state, *_ = env.step(np.zeros((2, 1), np.float32))
    assert reacher_elbow_angle(state) == pytest.approx(elbow, abs=1e-3)
    fingertip_y = state[9] + state[5]  # (fingertip - target) + target
    assert np.sign(fingertip_y) == np.sign(elbow)  # positive angle = counter-clockwise bend (MOMA-PPO Fig. 3b)
    np.testing.assert_allclose(reacher_elbow_angle(np.stack([state, state])), [elbow, elbow], atol=1e-3)


def test_bad_options_are_rejected_with_the_choices():
    with pytest.raises(ValueError, match="'full', 'partial'"):
        MaMuJoCoEnv("Ant", "4x2", observation="local")
    with pytest.raises(ValueError, match="all_observant"):
        MaMuJoCoEnv("Reacher", "2x1", observation="partial")
    env = MaMuJoCoEnv("Reacher", "2x1")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 1\)"):
        env.step(np.zeros((2, 2), np.float32))


def test_missing_extra_names_the_install_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[mamujoco\]"'):
        make_env(EnvConfig("mamujoco", {"scenario": "Ant", "agent_conf": "4x2"}))
