"""The smacv2 adapter's translation, against a stand-in with smacv2's wrapper methods (StarCraft II cannot run here)."""

import sys
import types

import numpy as np
import pytest

from lightning_mbmarl.envs import EnvConfig, available_envs, make_env
from lightning_mbmarl.envs.smacv2 import SMACv2Env

NO_OP, STOP, ATTACK = 0, 1, 6  # smacv2's action layout: no-op, stop, 4 moves, then one attack per enemy


class FakeBattle:
    """Test double with ``StarCraftCapabilityEnvWrapper``'s methods: 2 agents against one enemy of 3 health.

    Each attacking agent removes 1 health (reward 1 each); the enemy kills agent 1 on the first step. The battle
    is won when the enemy's health reaches 0 and times out after 4 steps (reported as smacv2 does with
    ``continuing_episode=True``).
    """

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.steps, self.enemy_health, self.alive = 0, 3, [True, True]

    def get_env_info(self):
        return {"state_shape": 3, "obs_shape": 2, "cap_shape": 3, "n_actions": 7, "n_agents": 2, "episode_limit": 4}

    def reset(self):
        self.steps, self.enemy_health, self.alive = 0, 3, [True, True]
        return self.get_obs(), self.get_state()

    def get_obs(self):
        return [np.array([float(a), self.enemy_health / 3]) if a else np.zeros(2) for a in self.alive]

    def get_state(self):
        return np.array([float(self.alive[0]), float(self.alive[1]), self.enemy_health / 3])

    def get_avail_actions(self):
        return [[0, 1, 1, 1, 1, 1, int(self.enemy_health > 0)] if a else [1, 0, 0, 0, 0, 0, 0] for a in self.alive]

    def step(self, actions):
        self.steps += 1
        hits = sum(a == ATTACK for a in actions)
        self.enemy_health = max(self.enemy_health - hits, 0)
        self.alive[1] = False
        if self.enemy_health == 0:
            return float(hits), True, {"battle_won": True, "dead_allies": 1, "dead_enemies": 1}
        if self.steps >= 4:
            return float(hits), True, {"battle_won": False, "episode_limit": True}
        return float(hits), False, {"battle_won": False}

    def close(self):
        self.closed = True


def test_spec_and_reset_follow_get_env_info():
    env = SMACv2Env(race="zerg", n_units=5, n_enemies=6, wrapper_cls=FakeBattle)
    assert (env.spec.name, env.spec.n_agents, env.spec.obs_dims, env.spec.state_dim) == (
        "smacv2:10gen_zerg",
        2,
        (2, 2),
        3,
    )
    assert (env.spec.action_sizes, env.spec.episode_limit, env.spec.discrete) == ((7, 7), 4, True)
    obs, state, avail = env.reset()
    assert (obs.dtype, obs.shape, state.dtype, state.shape, avail.dtype, avail.shape) == (
        np.float32,
        (2, 2),
        np.float32,
        (3,),
        bool,
        (2, 7),
    )
    assert not avail[:, NO_OP].any() and avail[:, ATTACK].all()


def test_generated_maps_get_smacv2_capability_config_and_time_out_reports():
    kwargs = SMACv2Env(race="zerg", n_units=5, n_enemies=6, seed=3, wrapper_cls=FakeBattle)._env.kwargs
    assert kwargs["map_name"] == "10gen_zerg" and kwargs["seed"] == 3 and kwargs["continuing_episode"] is True
    config = kwargs["capability_config"]
    assert (config["n_units"], config["n_enemies"]) == (5, 6)
    assert config["team_gen"]["unit_types"] == ["zergling", "baneling", "hydralisk"]
    assert config["start_positions"]["dist_type"] == "surrounded_and_reflect"
    classic = SMACv2Env(map="3s_vs_5z", env_args={"difficulty": "5"}, wrapper_cls=FakeBattle)._env.kwargs
    assert classic["capability_config"] == {} and classic["difficulty"] == "5" and classic["continuing_episode"] is True
    with pytest.raises(ValueError, match="fixed"):
        SMACv2Env(map="3s_vs_5z", n_units=4, wrapper_cls=FakeBattle)
    with pytest.raises(ValueError, match="n_units <= n_enemies"):
        SMACv2Env(n_units=6, n_enemies=5, wrapper_cls=FakeBattle)


def test_won_battle_terminates_with_reward_and_dead_agent_gets_only_no_op():
    env = SMACv2Env(wrapper_cls=FakeBattle)
    env.reset()
    obs, state, avail, reward, agent_rewards, terminated, truncated, info = env.step(np.array([ATTACK, ATTACK]))
    assert (reward, terminated, truncated, info) == (2.0, False, False, {"won": False})
    np.testing.assert_array_equal(agent_rewards, [2.0, 2.0])
    np.testing.assert_array_equal(avail[1], [True] + [False] * 6)  # agent 1 died: no-op only
    np.testing.assert_array_equal(obs[1], [0.0, 0.0])
    *_, reward, _, terminated, truncated, info = env.step(np.array([ATTACK, NO_OP]))
    assert (reward, terminated, truncated, info) == (1.0, True, False, {"won": True})


def test_episode_limit_becomes_truncation_and_reset_starts_over():
    env = SMACv2Env(wrapper_cls=FakeBattle)
    env.reset()
    flags = [env.step(np.array([STOP, STOP if t == 0 else NO_OP]))[5:] for t in range(4)]
    assert [f[:2] for f in flags] == [(False, False)] * 3 + [(False, True)]
    assert not any(f[2]["won"] for f in flags)
    obs, state, avail = env.reset()
    np.testing.assert_array_equal(state, [1.0, 1.0, 1.0])
    assert avail[1, STOP]


def test_unavailable_actions_are_rejected():
    env = SMACv2Env(wrapper_cls=FakeBattle)
    env.reset()
    with pytest.raises(ValueError, match="unavailable"):
        env.step(np.array([NO_OP, STOP]))  # no-op is for dead agents only
    with pytest.raises(ValueError, match="2 integers"):
        env.step(np.array([STOP]))


def test_missing_smacv2_names_everything_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "smacv2", None)  # makes `import smacv2...` fail
    assert "smacv2" in available_envs()
    with pytest.raises(ImportError) as err:
        make_env(EnvConfig("smacv2", {"race": "terran"}))
    message = str(err.value)
    for needed in (
        "pip install git+https://github.com/oxwhirl/smacv2.git",
        "StarCraft II",
        "4.10",
        "~/StarCraftII",
        "SC2PATH",
        "StarCraftII/Maps/SMAC_Maps",
    ):
        assert needed in message


def test_missing_game_or_map_is_reported(monkeypatch, tmp_path):
    env_module = types.ModuleType("smacv2.env")
    env_module.StarCraftCapabilityEnvWrapper = FakeBattle
    maps_module = types.ModuleType("smacv2.env.starcraft2.maps")
    maps_module.get_map_params = lambda name: {"map_name": "32x32_flat"}
    for name, module in {
        "smacv2": types.ModuleType("smacv2"),
        "smacv2.env": env_module,
        "smacv2.env.starcraft2": types.ModuleType("smacv2.env.starcraft2"),
        "smacv2.env.starcraft2.maps": maps_module,
    }.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setenv("SC2PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="StarCraft II is not installed"):
        SMACv2Env()
    (tmp_path / "Versions").mkdir()
    with pytest.raises(FileNotFoundError, match="32x32_flat.SC2Map") as err:
        SMACv2Env()
    assert "pip install git+https://github.com/oxwhirl/smacv2.git" in str(err.value)
    (tmp_path / "Maps" / "SMAC_Maps").mkdir(parents=True)
    (tmp_path / "Maps" / "SMAC_Maps" / "32x32_flat.SC2Map").touch()
    assert SMACv2Env().spec.n_agents == 2
