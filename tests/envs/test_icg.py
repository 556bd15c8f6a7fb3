"""The Iterated Coordination Game: reward, observations, truncation, and the observation function."""

import numpy as np
import pytest
import torch

from lightning_mbmarl.envs import EnvConfig, make_vector_env
from lightning_mbmarl.envs.icg import IteratedCoordinationGame, expected_dataset_score
from lightning_mbmarl.envs.observation import StateObserver


def test_reward_is_one_exactly_when_agents_agree():
    env = IteratedCoordinationGame(episode_length=4)
    env.reset()
    rewards = [env.step(np.array(a))[3] for a in ([0, 0], [0, 1], [1, 0], [1, 1])]
    assert rewards == [1.0, 0.0, 0.0, 1.0]


def test_observations_show_previous_joint_action_own_choice_first():
    env = IteratedCoordinationGame()
    obs, state, avail = env.reset()
    np.testing.assert_array_equal(obs, [[0, 0, 0, 0, 1], [0, 0, 0, 0, 1]])
    obs, state, *_ = env.step(np.array([0, 1]))  # agent 1 left, agent 2 right
    np.testing.assert_array_equal(state, [1, 0, 0, 1, 0])
    np.testing.assert_array_equal(obs, [[1, 0, 0, 1, 0], [0, 1, 1, 0, 0]])
    assert avail.all()


def test_episode_truncates_at_its_length_and_vector_env_resets():
    venv = make_vector_env(EnvConfig("icg", {"episode_length": 3}), 2)
    venv.reset(0)
    flags = [venv.step(np.array([[1, 1], [0, 1]])) for _ in range(3)]
    assert [f.truncated.tolist() for f in flags] == [[False, False], [False, False], [True, True]]
    assert not flags[-1].terminated.any()
    np.testing.assert_array_equal(flags[-1].final_state[1], [1, 0, 0, 1, 0])  # true last state kept
    np.testing.assert_array_equal(flags[-1].next.state[1], [0, 0, 0, 0, 1])  # fresh episode


def test_observation_function_reproduces_environment_observations():
    env = IteratedCoordinationGame()
    observer = StateObserver(env.spec)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs, state, *_ = env.step(rng.integers(0, 2, 2))
        np.testing.assert_array_equal(observer.observe(torch.as_tensor(state)).numpy(), obs)


def test_bad_actions_are_rejected_with_the_rule():
    env = IteratedCoordinationGame()
    env.reset()
    with pytest.raises(ValueError, match="two integers"):
        env.step(np.array([0, 2]))


def test_expected_dataset_scores_match_table_1():
    assert expected_dataset_score((0.75, 0.75)) == pytest.approx(0.625)
    assert expected_dataset_score((0.5, 0.5)) == pytest.approx(0.5)
    assert expected_dataset_score((0.25, 0.75)) == pytest.approx(0.375)
