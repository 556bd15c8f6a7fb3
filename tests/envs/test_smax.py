"""JaxMARL's SMAX behind our interface: specs, availability masks, endings, the batched env and seeding.

Stepping tests share one configuration (3m, enemies that do not shoot, 30 steps) so SMAX compiles once per
function (jit caches are shared per configuration); a win is then a matter of focusing fire.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jaxmarl", reason="SMAX needs the smax extra: pip install -e '.[smax]'")

from lightning_mbmarl.envs import EnvConfig, make_env, make_vector_env  # noqa: E402
from lightning_mbmarl.envs.smax import STOP, SMAXEnv, SMAXVectorEnv  # noqa: E402

EAST, WEST, FIRST_ATTACK = 1, 3, 5
CONFIG = {"map": "3m", "episode_length": 30, "enemy_shoots": False}


def random_available(rng: np.random.Generator, avail: np.ndarray) -> np.ndarray:
    """One uniformly drawn available action per agent: ``avail bool [..., A] -> int64 [...]``."""
    return (rng.random(avail.shape) * avail).argmax(-1)


def focus_fire(avail: np.ndarray) -> np.ndarray:
    """Attack the first enemy in range, else move east (towards the enemy), else stop: ``[N, A] -> [N]``."""
    can_attack = avail[:, FIRST_ATTACK:].any(-1)
    return np.where(can_attack, FIRST_ATTACK + avail[:, FIRST_ATTACK:].argmax(-1), np.where(avail[:, EAST], EAST, STOP))


@pytest.mark.parametrize(
    "map_name, n_agents, obs_dim, state_dim, n_actions",
    [
        ("2s3z", 5, 127, 120, 10),
        ("3s_vs_5z", 3, 101, 96, 10),
        ("3s5z_vs_3s6z", 8, 218, 204, 14),
        ("smacv2_5_units", 5, 127, 120, 10),
    ],
)
def test_specs_of_the_paper_maps(map_name, n_agents, obs_dim, state_dim, n_actions):
    spec = make_env(EnvConfig("smax", {"map": map_name})).spec
    assert (spec.name, spec.n_agents, spec.obs_dims, spec.state_dim) == (
        f"smax:{map_name}",
        n_agents,
        (obs_dim,) * n_agents,
        state_dim,
    )
    assert (spec.action_sizes, spec.episode_limit, spec.discrete) == ((n_actions,) * n_agents, 100, True)


def test_unknown_map_lists_the_known_ones():
    with pytest.raises(ValueError, match="2s3z"):
        SMAXEnv(map="2s3y")


def test_stepping_with_available_actions_never_errors_and_unavailable_ones_are_refused():
    env = SMAXEnv(**CONFIG, seed=0)
    obs, state, avail = env.reset()
    assert (obs.dtype, obs.shape, state.dtype, state.shape, avail.dtype, avail.shape) == (
        np.float32,
        (3, 75),
        np.float32,
        (72,),
        bool,
        (3, 8),
    )
    assert not avail[:, FIRST_ATTACK:].any()  # enemies start out of range
    with pytest.raises(ValueError, match="not available"):
        env.step(np.array([FIRST_ATTACK, STOP, STOP]))
    rng = np.random.default_rng(0)
    for _ in range(40):
        obs, state, avail, *_, terminated, truncated, info = env.step(random_available(rng, avail))
        assert isinstance(info["won"], bool)
        if terminated or truncated:
            obs, state, avail = env.reset()


def test_dead_unit_keeps_a_zero_row_and_may_only_stop():
    env = SMAXEnv(**CONFIG, seed=0)
    obs, state, avail = env.reset()
    for _ in range(10):  # walls kill: walk ally 0 west into the map's edge
        obs, state, avail, *_ = env.step(np.array([WEST if avail[0, WEST] else STOP, STOP, STOP]))
    assert avail[0].tolist() == [a == STOP for a in range(8)]
    assert not obs[0].any() and obs[1].any()
    assert avail[1:, :STOP].all()


def test_focused_fire_wins_and_the_win_terminates_the_episode():
    env = SMAXEnv(**CONFIG, seed=1)
    obs, state, avail = env.reset()
    steps = []
    while not steps or not (steps[-1][5] or steps[-1][6]):
        steps.append(env.step(focus_fire(avail)))
        avail = steps[-1][2]
    *_, reward, agent_rewards, terminated, truncated, info = steps[-1]
    assert (terminated, truncated, info["won"]) == (True, False, True) and len(steps) < 30
    assert reward > 1.0 and (agent_rewards == reward).all()  # health removed this step plus the win bonus
    assert not any(s[7]["won"] for s in steps[:-1])


def test_time_limit_truncates_without_terminating():
    env = SMAXEnv(**CONFIG, seed=2)
    env.reset()
    ends = [env.step(np.full(3, STOP))[5:] for _ in range(30)]
    assert [(te, tr) for te, tr, _ in ends] == [(False, False)] * 29 + [(False, True)]
    assert not any(info["won"] for *_, info in ends)


def test_batched_env_matches_single_copies_and_auto_resets():
    venv = make_vector_env(EnvConfig("smax", CONFIG), 3)
    assert isinstance(venv, SMAXVectorEnv)
    first = venv.reset(seed=5)
    singles = [SMAXEnv(**CONFIG) for _ in range(3)]
    for b, env in enumerate(singles):  # copy b is seeded 5 + b
        np.testing.assert_array_equal(first.state[b], env.reset(5 + b)[1])
    rng = np.random.default_rng(0)
    avail, ended = first.avail, 0
    for _ in range(32):
        actions = random_available(rng, avail)
        result = venv.step(actions)
        assert result.info["won"].dtype == bool and result.info["won"].shape == (3,)
        for b, env in enumerate(singles):
            obs, state, single_avail, reward, _, terminated, truncated, info = env.step(actions[b])
            np.testing.assert_array_equal(result.final_obs[b], obs)
            np.testing.assert_array_equal(result.final_state[b], state)
            np.testing.assert_array_equal(result.final_avail[b], single_avail)
            assert (result.reward[b], result.terminated[b], result.truncated[b], result.info["won"][b]) == (
                reward,
                terminated,
                truncated,
                info["won"],
            )
            if terminated or truncated:  # the batched copy already holds the next episode
                ended += 1
                next_obs, next_state, _ = env.reset()
                np.testing.assert_array_equal(result.next.obs[b], next_obs)
                assert not np.array_equal(result.next.state[b], result.final_state[b])
            else:
                np.testing.assert_array_equal(result.next.state[b], result.final_state[b])
        avail = result.next.avail
    assert ended >= 3  # every copy passed its 30-step limit at least once


def test_seeded_copies_replay_the_same_episode():
    def rollout(seed: int) -> list[np.ndarray]:
        env, rng = SMAXEnv(**CONFIG, seed=seed), np.random.default_rng(0)
        obs, state, avail = env.reset()
        states = [state]
        for _ in range(5):
            obs, state, avail, *_ = env.step(random_available(rng, avail))
            states.append(state)
        return states

    np.testing.assert_array_equal(rollout(3), rollout(3))
    assert not np.array_equal(rollout(3)[0], rollout(4)[0])


def test_compilations_go_to_the_package_cache_unless_jax_has_its_own(tmp_path, monkeypatch):
    import jax

    from lightning_mbmarl.envs.smax import keep_compilations_on_disk

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    before = jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        assert keep_compilations_on_disk() == tmp_path / "lightning_mbmarl" / "jax"
        jax.config.update("jax_compilation_cache_dir", str(tmp_path / "own"))
        assert keep_compilations_on_disk() == tmp_path / "own"  # JAX's own setting wins
        jax.config.update("jax_enable_compilation_cache", False)
        assert keep_compilations_on_disk() is None
    finally:
        jax.config.update("jax_compilation_cache_dir", before[0])
        jax.config.update("jax_enable_compilation_cache", before[1])


def test_a_fresh_process_writes_its_compiled_reset_to_disk(tmp_path):
    """In a new process (JAX decides once per process whether to cache), building an env and resetting it leaves
    the compiled reset in the package's cache folder. JAX writes only compilations that took at least
    ``jax_persistent_cache_min_compile_time_secs`` (1 s by default; the reset compiles faster than that on a quiet
    machine), so the threshold is 0 here: the test checks the folder the package points JAX at, not the timing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env.update(XDG_CACHE_HOME=str(tmp_path), JAX_PLATFORMS="cpu", JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    code = "from lightning_mbmarl.envs.smax import SMAXEnv; SMAXEnv('3m').reset(seed=0)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list((tmp_path / "lightning_mbmarl" / "jax").glob("jit_reset*")), done.stderr[-3000:]


def test_smax_loads_without_jaxmarls_other_environments_and_jaxmarl_still_imports_after():
    """A fresh process building SMAX loads jaxmarl's SMAX modules alone (its package __init__ would import every
    environment it has, seconds here); importing jaxmarl afterwards runs the real package, which reuses them."""
    code = (
        "import sys, io\n"
        "out = sys.stdout\n"
        "from lightning_mbmarl.envs.smax import SMAXEnv, HeuristicEnemySMAX\n"
        "assert sys.stdout is out\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('jaxmarl.environments.'))\n"
        "assert 'jaxmarl' not in sys.modules and not any('coin_game' in m or 'storm' in m for m in loaded), loaded\n"
        "SMAXEnv('3m').reset(seed=0)\n"
        "sys.stdout = io.StringIO()\n"
        "import jaxmarl\n"
        "sys.stdout = out\n"
        "assert jaxmarl.make('HeuristicEnemySMAX').__class__ is HeuristicEnemySMAX\n"
        "assert 'jaxmarl.environments.coin_game' in sys.modules\n"
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
