"""The Climb game: hand-worked rewards, the unique Nash equilibrium, nash_distance, transitions and truncation."""

import numpy as np
import pytest
import torch

from lightning_mbmarl.envs import EnvConfig, make_env, make_vector_env
from lightning_mbmarl.envs.climb import ClimbGame, climb_reward, equilibrium, nash_distance, tempting_landmark
from lightning_mbmarl.envs.observation import StateObserver

GRID = np.linspace(-1.0, 1.0, 401)  # step 0.005, contains both landmarks' coordinates


def test_equilibria_are_the_papers_landmarks():
    np.testing.assert_array_equal(equilibrium(0), [-0.5, -0.5])  # the paper's state 1: lower-left
    np.testing.assert_array_equal(equilibrium(1), [0.5, 0.5])  # state 2: upper-right
    np.testing.assert_array_equal(tempting_landmark(0), [0.5, 0.5])
    with pytest.raises(ValueError, match="state must be 0 or 1"):
        equilibrium(2)


def test_hand_worked_rewards_in_state_0():
    # summit: 1/2 [k_n(0) k_w(0) + k_w(0) k_n(0)] = 1; the hill is 1.414 > 1 away.
    assert climb_reward(0, np.array([-0.5, -0.5])) == pytest.approx(1.0, abs=1e-12)
    # tempting hill top 0.3; the summit's ridges are 1 away there (k_n(1) = exp(-22.2)).
    assert climb_reward(0, np.array([0.5, 0.5])) == pytest.approx(0.3, abs=1e-9)
    # half-coordination (a on the equilibrium's coordinate, b on the tempting one's): 1/2 k_w(1) = exp(-1/4.5) / 2.
    assert climb_reward(0, np.array([-0.5, 0.5])) == pytest.approx(0.400369, abs=1e-6)
    assert climb_reward(0, np.array([0.5, -0.5])) == pytest.approx(0.400369, abs=1e-6)
    # corner (1, 1): hill 0.3 (1 - 0.5)^2 = 0.075, summit ridges 1.5 away (k_n(1.5) = exp(-50)).
    assert climb_reward(0, np.array([1.0, 1.0])) == pytest.approx(0.075, abs=1e-9)
    # out-of-range actions are clipped: (3, 3) is the corner.
    assert climb_reward(0, np.array([3.0, 3.0])) == pytest.approx(0.075, abs=1e-9)


def test_state_1_mirrors_state_0():
    points = np.random.default_rng(0).uniform(-1, 1, (100, 2))
    np.testing.assert_allclose(climb_reward(1, points), climb_reward(0, -points), atol=1e-12)


@pytest.mark.parametrize("state", [0, 1])
def test_equilibrium_is_the_unique_nash_equilibrium_on_a_grid(state):
    a, b = np.meshgrid(GRID, GRID, indexing="ij")
    reward = climb_reward(state, np.stack([a, b], -1))  # [a, b]
    best_a = GRID[reward.argmax(0)]  # agent 1's best response to each b
    best_b = GRID[reward.argmax(1)]  # agent 2's best response to each a
    fixed_points = [(x, y) for i, x in enumerate(GRID) for j, y in enumerate(GRID) if best_a[j] == x and best_b[i] == y]
    np.testing.assert_allclose(fixed_points, [equilibrium(state)], atol=1e-12)


@pytest.mark.parametrize("state", [0, 1])
def test_tempting_landmark_is_a_local_maximum_but_a_unilateral_jump_pays(state):
    o, e = tempting_landmark(state), equilibrium(state)
    top = climb_reward(state, o)
    nearby = o + 0.05 * np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [-1, -1], [1, -1], [-1, 1]])
    assert (climb_reward(state, nearby) < top).all()
    assert climb_reward(state, np.array([e[0], o[1]])) > top + 0.1  # agent 1 alone onto the equilibrium's coordinate
    assert climb_reward(state, np.array([o[0], e[1]])) > top + 0.1  # agent 2 alone
    assert climb_reward(state, e) > climb_reward(state, np.array([e[0], o[1]])) + 0.5  # then the partner joins


def test_nash_distance_hand_examples():
    assert nash_distance(np.array([-0.5, -0.5]), np.array([0.5, 0.5])) == 0.0
    assert nash_distance(np.array([-0.5, -0.5]), np.array([0.5, 0.2])) == pytest.approx(0.3)
    assert nash_distance(np.array([0.0, 0.0]), np.array([0.5, 0.2])) == pytest.approx(np.sqrt(0.5))
    # playing each state's tempting landmark is as far as the two landmarks are apart
    assert nash_distance(np.array([0.5, 0.5]), np.array([-0.5, -0.5])) == pytest.approx(np.sqrt(2.0))


def test_states_alternate_from_a_seeded_random_start_and_reward_follows_the_state():
    env = ClimbGame(episode_length=6)
    starts = {int(env.reset(seed=s)[1].argmax()) for s in range(20)}
    assert starts == {0, 1}
    obs, state, avail = env.reset(seed=0)
    assert env.reset(seed=0)[1].tolist() == state.tolist()
    np.testing.assert_array_equal(obs, [state, state])
    assert avail.shape == (2, 1) and avail.all()
    current = int(state.argmax())
    for _ in range(6):
        action = equilibrium(current).reshape(2, 1).astype(np.float32)
        obs, state, _, reward, agent_rewards, terminated, truncated, _ = env.step(action)
        assert reward == pytest.approx(1.0) and agent_rewards.tolist() == pytest.approx([1.0, 1.0])
        assert int(state.argmax()) == 1 - current and not terminated
        current = 1 - current
    assert truncated


def test_episode_truncates_at_25_and_vector_env_resets():
    venv = make_vector_env(EnvConfig("climb"), 2)
    venv.reset(seed=1)
    results = [venv.step(np.zeros((2, 2, 1), np.float32)) for _ in range(25)]
    assert [r.truncated.any() for r in results] == [False] * 24 + [True]
    assert results[-1].truncated.all() and not any(r.terminated.any() for r in results)


def test_spec_and_observation_function():
    env = make_env(EnvConfig("climb", {"episode_length": 5}))
    spec = env.spec
    assert (spec.n_agents, spec.obs_dims, spec.state_dim, spec.action_kind, spec.action_sizes, spec.episode_limit) == (
        2,
        (2, 2),
        2,
        "continuous",
        (1, 1),
        5,
    )
    observer = StateObserver(spec)
    _, state, _ = env.reset(seed=3)
    for _ in range(3):
        obs, state, *_ = env.step(np.zeros((2, 1), np.float32))
        np.testing.assert_array_equal(observer.observe(torch.as_tensor(state)).numpy(), obs)


def test_bad_actions_are_rejected():
    env = ClimbGame()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="two finite numbers"):
        env.step(np.array([[0.0], [np.nan]]))
    with pytest.raises(ValueError, match="two finite numbers"):
        env.step(np.zeros(3))


def test_observe_last_actions_appends_the_previous_joint_action_clipped():
    env = make_env(EnvConfig("climb", {"episode_length": 3, "observe_last_actions": True}))
    assert (env.spec.obs_dims, env.spec.state_dim) == ((4, 4), 4)
    observer = StateObserver(env.spec)
    obs, state, _ = env.reset(seed=1)
    first = int(np.argmax(state[:2]))
    np.testing.assert_array_equal(state, [*np.eye(2)[first], 0.0, 0.0])  # no previous action at the start
    obs, state, _, reward, *_ = env.step(np.array([[0.25], [-1.5]], np.float32))
    np.testing.assert_allclose(state, [*np.eye(2)[1 - first], 0.25, -1.0])  # agent 2's action as executed (clipped)
    np.testing.assert_array_equal(obs, np.stack([state, state]))
    np.testing.assert_array_equal(observer.observe(torch.as_tensor(state)).numpy(), obs)
    assert reward == pytest.approx(float(climb_reward(first, np.array([0.25, -1.0]))))
    env.step(np.zeros((2, 1), np.float32))
    env.step(np.zeros((2, 1), np.float32))
    _, state, _ = env.reset(seed=2)
    np.testing.assert_array_equal(state[2:], [0.0, 0.0])  # a new episode forgets the last one's actions
