"""Flatland behind our interface: shapes, global state, availability, malfunctions, arrival, deadlocks, seeding,
bad settings, and the episode numbers evaluation logs (``arrived``, ``flatland_score``)."""

import numpy as np
import pytest
import torch

pytest.importorskip(
    "flatland.envs.rail_env",
    reason="Flatland needs flatland-rl: pip install -e '.[flatland]' && pip install --no-deps flatland-rl==4.3.0",
)

from lightning_mbmarl.data.env_runner import EnvRunner, summarize_episodes  # noqa: E402
from lightning_mbmarl.envs import EnvConfig, make_env, make_vector_env  # noqa: E402
from lightning_mbmarl.envs.flatland import FlatlandEnv  # noqa: E402
from lightning_mbmarl.envs.flatland_rail import decision_cells, find_deadlocks, transitions, tree_size  # noqa: E402

MALFUNCTIONS = [2, 5]  # TrainState.MALFUNCTION_OFF_MAP, MALFUNCTION
ONE_TRAIN = {"n_agents": 1, "width": 30, "height": 30, "cities": 2, "malfunction_rate": 0.0}
ROOT_CHILDREN = [1 + k * tree_size(2) for k in range(3)]  # rows of the root's L, F, R children (depth 3)


def random_policy(obs: np.ndarray, avail: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly drawn available action per train."""
    return (rng.random(avail.shape) * avail).argmax(-1)


def greedy(obs: np.ndarray, avail: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Reduced actions that take the branch closest to the target (the children's dist_min_to_target), never stop."""
    nodes = obs[:, : tree_size(3) * 12].reshape(len(obs), -1, 12)  # feature 6: dist_min_to_target
    actions = np.zeros(len(obs), np.int64)
    for i in np.flatnonzero(avail.all(-1)):
        branches = [(nodes[i, row, 6], k) for k, row in enumerate(ROOT_CHILDREN) if nodes[i, row, 0] >= 0]
        if len(branches) > 1:
            actions[i] = int(min(branches)[1] != branches[0][1])  # 0: the leftmost branch, 1: the rightmost
    return actions


def run(env: FlatlandEnv, seed: int, policy, steps: int | None = None) -> list[tuple]:
    """The transitions of one episode (or its first ``steps``) under ``policy(obs, avail, rng)``."""
    rng = np.random.default_rng(seed)
    obs, state, avail = env.reset(seed)
    out = []
    while steps is None or len(out) < steps:
        out.append(env.step(policy(obs, avail, rng)))
        obs, state, avail, *_, terminated, truncated, _ = out[-1]
        if terminated or truncated:
            break
    return out


def test_spec_reset_and_step_shapes():
    env = make_env(EnvConfig("flatland"))
    spec = env.spec
    assert (spec.n_agents, spec.obs_dim, spec.state_dim, spec.action_sizes, spec.episode_limit) == (
        5,
        85 * 12 + 8,
        18 * 5 + 1,
        (3,) * 5,
        573,
    )
    obs, state, avail = env.reset(seed=0)
    assert obs.shape == (5, spec.obs_dim) and obs.dtype == np.float32 and -1 <= obs.min() and obs.max() <= 1
    assert state.shape == (spec.state_dim,) and state.dtype == np.float32
    assert avail.shape == (5, 3) and avail.dtype == bool
    obs, state, avail, reward, agent_rewards, terminated, truncated, info = env.step(np.zeros(5, np.int64))
    assert obs.shape == (5, spec.obs_dim) and state.shape == (spec.state_dim,) and avail.shape == (5, 3)
    assert agent_rewards.shape == (5,) and reward == pytest.approx(agent_rewards.mean())
    assert not terminated and not truncated
    assert set(info) == {"arrived", "deadlocked", "flatland_score"} and np.isnan(info["flatland_score"])
    with pytest.raises(ValueError, match=r"5 integers in \[0, 3\)"):
        env.step(np.full(5, 3))
    ten = make_env(EnvConfig("flatland_10"))
    assert (ten.spec.n_agents, ten.spec.episode_limit) == (10, 580)


def test_global_state_describes_every_train():
    env = FlatlandEnv()
    _, state, _ = env.reset(seed=1)
    trains = state[:-1].reshape(5, 18)
    assert ((0 <= trains[:, :2]) & (trains[:, :2] <= 1)).all()  # cells
    assert (trains[:, 2:6].sum(1) == 1).all() and (trains[:, 8:15].sum(1) == 1).all()  # heading, TrainState
    assert (trains[:, 15] == 0).all() and (trains[:, 16] > 0).all()  # no malfunction yet, away from targets
    assert state[-1] == 0
    _, state, *_ = env.step(np.zeros(5, np.int64))
    assert state[-1] == pytest.approx(1 / 573)


def test_availability_follows_who_chooses():
    env = FlatlandEnv()
    _, _, avail = env.reset(seed=0)
    assert (avail == [True, False, False]).all()  # waiting for the first step: nobody chooses yet
    _, _, avail, *_ = env.step(np.zeros(5, np.int64))
    assert avail.all()  # ready to depart: depart by either branch or wait
    raw = FlatlandEnv(action_set="raw")
    raw.reset(seed=0)
    _, _, avail, *_ = raw.step(np.zeros(5, np.int64))
    assert avail.shape == (5, 5) and avail[:, [0, 4]].all() and avail[:, 1:4].any(1).all()


def test_malfunctions_break_trains_down_and_take_their_choice_away():
    env = FlatlandEnv(malfunction_rate=1.0)  # a breakdown chance of 1 - e^-1 per train and step
    rng = np.random.default_rng(0)
    obs, state, avail = env.reset(seed=0)
    for _ in range(10):
        obs, state, avail, *_ = env.step(random_policy(obs, avail, rng))
        trains = state[:-1].reshape(5, 18)
        broken = trains[:, [8 + m for m in MALFUNCTIONS]].any(1)
        if broken.any():
            break
    assert broken.any() and (trains[broken, 15] > 0).all()
    assert (avail[broken] == [True, False, False]).all()


def test_a_train_that_arrives_is_rewarded_and_counted():
    steps = run(FlatlandEnv(**ONE_TRAIN), 0, greedy)
    obs, _, avail, _, agent_rewards, terminated, truncated, info = steps[-1]
    assert terminated and not truncated and info["arrived"] == 1.0 and info["flatland_score"] == 1.0
    assert agent_rewards[0] >= 10 and (obs == 0).all()
    assert all(step[4][0] < 10 for step in steps[:-1])


def straight_track(length: int) -> np.ndarray:
    """Transitions ``[1, length, 4, 4]`` of an east-west track, both ways."""
    track = np.zeros((1, length, 4, 4), bool)
    track[0, :-1, 1, 1] = track[0, 1:, 3, 3] = True
    return track


def test_rail_geometry_matches_flatland():
    from flatland.envs.rail_generators import sparse_rail_generator
    from numpy.random import RandomState

    rail, _ = sparse_rail_generator(max_num_cities=3)(35, 35, 5, 0, RandomState(0))
    trans = transitions(rail.grid)
    assert all(
        tuple(trans[r, c, d]) == tuple(rail.get_transitions(((r, c), d)))
        for r in range(35)
        for c in range(35)
        for d in range(4)
    )
    decisions = decision_cells(straight_track(5), targets=[(0, 2)])  # a target mid-track
    expected = np.zeros((1, 5, 4), bool)
    expected[0, 2] = expected[0, 1, 1] = expected[0, 3, 3] = True  # on it, and heading into it from either side
    assert (decisions == expected).all()


def test_deadlocks_are_found_and_penalised_once():
    track = straight_track(4)
    assert find_deadlocks([(0, 1), (0, 2)], [1, 3], track).all()  # face to face
    assert find_deadlocks([(0, 0), (0, 1), (0, 2)], [1, 1, 3], track).all()  # and the queue behind them
    assert not find_deadlocks([(0, 1), (0, 2)], [1, 1], track).any()  # one behind the other
    assert not find_deadlocks([(0, 1), None], [3, 0], track).any()
    steps = run(FlatlandEnv(), 0, greedy)  # greedy trains meet head-on
    deadlocked = [step[7]["deadlocked"] for step in steps]
    assert deadlocked[-1] == 1.0 and steps[-1][5]  # every train deadlocked: the episode terminates
    for before, after, step in zip([0.0] + deadlocked, deadlocked, steps):
        assert (step[4] <= -4.9).sum() == round((after - before) * 5)  # -5 (plus a distance term) once per train


def test_seeding_reproduces_an_episode():
    def episode(env: FlatlandEnv, seed: int) -> list[np.ndarray]:
        return [np.concatenate([step[0].ravel(), step[1], step[4]]) for step in run(env, seed, random_policy, steps=60)]

    env = FlatlandEnv(malfunction_rate=0.2)
    first = episode(env, 3)
    for again in (episode(env, 3), episode(FlatlandEnv(malfunction_rate=0.2), 3)):
        assert len(again) == len(first) and all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(episode(env, 4)[0], first[0])


@pytest.mark.parametrize(
    "settings,message",
    [
        (
            {"n_agents": 13},
            r"13 trains need a station track each.*use n_agents <= 12, cities >= 4 or "
            r"max_rail_pairs_in_city >= 3",
        ),
        ({"cities": 10}, r"35x35 grid holds at most 9 cities.*cities <= 9 or a grid of at least 42x42"),
        ({"cities": 1}, r"cities must be >= 2"),
        ({"width": 15, "height": 15}, r"holds at most 1 cities"),
        ({"action_set": "joystick"}, r"action_set must be one of \['raw', 'reduced'\]"),
    ],
)
def test_bad_settings_fail_at_construction(settings, message):
    with pytest.raises(ValueError, match=message):
        make_env(EnvConfig("flatland", settings))


def test_evaluation_sees_arrived_and_flatland_score():
    env = make_vector_env(EnvConfig("flatland", ONE_TRAIN), 2)
    runner = EnvRunner(env, history_length=0, seed=0)
    finished = []
    while len(finished) < 2:
        _, ended = runner.step(
            lambda obs, avail, history: torch.as_tensor(
                np.stack([greedy(o, a) for o, a in zip(obs.numpy(), avail.numpy())])
            )
        )
        finished += ended
    stats = summarize_episodes(finished)
    assert stats["arrived"] == 1.0 and stats["flatland_score"] == 1.0 and stats["deadlocked"] == 0.0
