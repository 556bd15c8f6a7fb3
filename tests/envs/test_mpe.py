"""MPE tasks through mpe2: spec and padding, the observation function, action mapping, truncation, seeding, rewards."""

import sys

import numpy as np
import pytest
import torch

pytest.importorskip("mpe2", reason="MPE tasks need the optional mpe2 package: pip install -e '.[mpe]'")

from lightning_mbmarl.envs import EnvConfig, make_env, make_vector_env  # noqa: E402
from lightning_mbmarl.envs.mpe import MPEEnv  # noqa: E402
from lightning_mbmarl.envs.observation import StateObserver  # noqa: E402

# name -> (agent names, obs_dims, state_dim, action_sizes)
SHAPES = {
    "mpe_spread": (("agent_0", "agent_1", "agent_2"), (18, 18, 18), 54, (5, 5, 5)),
    "mpe_speaker_listener": (("speaker_0", "listener_0"), (3, 11), 14, (3, 5)),
}
KINDS = [("mpe_spread", True), ("mpe_spread", False), ("mpe_speaker_listener", True), ("mpe_speaker_listener", False)]


def random_actions(env: MPEEnv, rng: np.random.Generator) -> np.ndarray:
    spec = env.spec
    if spec.discrete:
        return rng.integers(0, spec.action_sizes).astype(np.int64)
    return rng.uniform(-1, 1, (spec.n_agents, spec.action_dim)).astype(np.float32)


@pytest.mark.parametrize("name,continuous", KINDS)
def test_spec_shapes_and_padding(name, continuous):
    env = make_env(EnvConfig(name, {"continuous_actions": continuous}))
    agents, obs_dims, state_dim, action_sizes = SHAPES[name]
    spec = env.spec
    assert (spec.name, spec.agent_names, spec.obs_dims, spec.state_dim, spec.action_sizes, spec.episode_limit) == (
        name,
        agents,
        obs_dims,
        state_dim,
        action_sizes,
        25,
    )
    assert spec.action_kind == ("continuous" if continuous else "discrete")
    obs, state, avail = env.reset(seed=0)
    assert obs.shape == (len(agents), max(obs_dims)) and obs.dtype == np.float32
    assert state.shape == (state_dim,) and state.dtype == np.float32
    np.testing.assert_array_equal(avail, spec.action_mask())  # every real choice, no padded one
    obs, *_ = env.step(random_actions(env, np.random.default_rng(0)))
    assert (obs[~spec.observation_mask()] == 0).all()
    env.close()


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("mpe_spread", {}),
        ("mpe_spread", {"N": 4, "num_agent_neighbors": 2}),  # scenario options reach mpe2
        ("mpe_speaker_listener", {}),
    ],
)
def test_state_is_the_concatenated_observations(name, kwargs):
    env = make_env(EnvConfig(name, kwargs))
    observer = StateObserver(env.spec)
    obs, state, _ = env.reset(seed=1)
    rng = np.random.default_rng(1)
    for _ in range(5):
        np.testing.assert_array_equal(observer.observe(torch.as_tensor(state)).numpy(), obs)
        obs, state, *_ = env.step(random_actions(env, rng))
    assert env.spec.n_agents == kwargs.get("N", env.spec.n_agents)


def test_continuous_actions_map_onto_mpe_bounds_and_are_clipped():
    env = MPEEnv("mpe_speaker_listener")
    env.reset(seed=0)
    # speaker says [-1, 0, 1] -> mpe2's [0, 0.5, 1]; the listener hears it (last 3 of its 11 observations).
    obs, *_ = env.step(np.array([[-1, 0, 1, 0, 0], [-1, -1, -1, -1, -1]], np.float32))
    np.testing.assert_allclose(obs[1, 8:11], [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(obs[1, :2], [0.0, 0.0])  # all-minimum movement: no force
    # out-of-range actions are clipped to the bounds; full "right" (dim 2) against zero "left" (dim 1) pushes +x
    obs, *_ = env.step(np.array([[-7, 0.5, 7, 9, 9], [-1, -5, 5, -1, -1]], np.float32))
    np.testing.assert_allclose(obs[1, 8:11], [0.0, 0.75, 1.0])
    assert obs[1, 0] == pytest.approx(5.0 * 0.1)  # from rest: force 1 x sensitivity 5 x dt 0.1
    assert obs[1, 1] == pytest.approx(0.0)


def test_discrete_actions_are_checked():
    env = MPEEnv("mpe_speaker_listener", continuous_actions=False)
    env.reset(seed=0)
    obs, *_ = env.step(np.array([2, 2]))  # say the third word, move right
    np.testing.assert_array_equal(obs[1, 8:11], [0.0, 0.0, 1.0])
    assert obs[1, 0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="integers"):
        env.step(np.array([3, 0]))  # the speaker has 3 words
    with pytest.raises(ValueError, match="integers"):
        env.step(np.array([0.0, 1.0]))


@pytest.mark.parametrize("continuous", [True, False])
def test_truncation_at_25_never_terminal_and_vector_auto_reset(continuous):
    venv = make_vector_env(EnvConfig("mpe_spread", {"continuous_actions": continuous}), 2)
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    results = [venv.step(np.stack([random_actions(env, rng) for env in venv.envs])) for _ in range(25)]
    assert [bool(r.truncated.any()) for r in results] == [False] * 24 + [True]
    assert results[-1].truncated.all() and not any(r.terminated.any() for r in results)
    assert not np.allclose(results[-1].final_state, results[-1].next.state)  # fresh episodes started
    env = venv.envs[0]
    env.reset()
    for _ in range(25):
        env.step(random_actions(env, rng))
    with pytest.raises(RuntimeError, match="reset"):
        env.step(random_actions(env, rng))


@pytest.mark.parametrize("name,continuous", KINDS)
def test_seeded_resets_are_reproducible(name, continuous):
    def rollout(seed: int) -> list[np.ndarray]:
        env = MPEEnv(name, continuous_actions=continuous)
        obs, state, _ = env.reset(seed=seed)
        out, rng = [obs, state], np.random.default_rng(0)
        for _ in range(5):
            obs, state, _, reward, *_ = env.step(random_actions(env, rng))
            out += [obs, state, np.float32(reward)]
        return out

    for a, b in zip(rollout(7), rollout(7)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(rollout(7)[1], rollout(8)[1])


def test_speaker_listener_agents_share_the_reward():
    env = MPEEnv("mpe_speaker_listener")
    env.reset(seed=2)
    rng = np.random.default_rng(2)
    for _ in range(5):
        *_, reward, agent_rewards, _, _, _ = env.step(random_actions(env, rng))
        assert agent_rewards.tolist() == [reward, reward]


def test_spread_team_reward_is_the_mean_of_per_agent_collision_shaped_rewards():
    env = MPEEnv("mpe_spread", local_ratio=0.5)
    env.reset(seed=3)
    world = env._env.unwrapped.world  # agents 0 and 1 overlap (sizes 0.15 each), agent 2 far away
    world.agents[0].state.p_pos[:] = [0.0, 0.0]
    world.agents[1].state.p_pos[:] = [0.1, 0.0]
    world.agents[2].state.p_pos[:] = [0.9, 0.9]
    *_, reward, agent_rewards, _, _, _ = env.step(np.full((3, 5), -1.0, np.float32))  # nobody moves
    assert agent_rewards[0] == pytest.approx(agent_rewards[1])
    assert agent_rewards[0] == pytest.approx(agent_rewards[2] - 0.5)  # collision penalty -1 weighted by local_ratio
    assert reward == pytest.approx(agent_rewards.mean())


def test_unknown_option_and_missing_package_errors(monkeypatch):
    with pytest.raises(TypeError, match="mpe_spread"):
        make_env(EnvConfig("mpe_spread", {"not_an_option": 1}))
    monkeypatch.setitem(sys.modules, "mpe2.simple_spread_v3", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[mpe\]"'):
        make_env(EnvConfig("mpe_spread"))
