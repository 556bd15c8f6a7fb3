"""benchmarks/flatland_references.py: the observation-reading shortest-branch policy on a hand-built tree
observation, and one real Flatland episode of each fixed policy."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flatland", reason="the flatland extra is not installed (pip install -e '.[flatland]')")

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "flatland_references.py"
spec = importlib.util.spec_from_file_location("flatland_references", SCRIPT)
references = importlib.util.module_from_spec(spec)
spec.loader.exec_module(references)

DEPTH, OWN = 3, 8  # 85 nodes of 12 features, then the train's own 8 features


class _Env:
    settings = {"tree_depth": DEPTH}


def observation(distances: dict[int, float]) -> np.ndarray:
    """A depth-3 tree whose root children L, F, R (pre-order rows 1, 22, 43) are present where ``distances`` names
    them (child index -> dist_min_to_target) and missing (-1) otherwise."""
    nodes = np.zeros((85, 12), np.float32)
    for k in range(3):
        row = 1 + 21 * k
        nodes[row] = distances[k] if k in distances else -1.0
        if k in distances:
            nodes[row, references.DIST_MIN_TO_TARGET] = distances[k]
    return np.concatenate([nodes.reshape(-1), np.zeros(OWN, np.float32)])


def test_observed_shortest_takes_the_branch_nearer_the_target():
    obs = np.stack(
        [
            observation({1: 0.3, 2: 0.1}),  # forward or right: right is nearer -> rightmost (1)
            observation({0: 0.2, 1: 0.5}),  # left or forward: left is nearer -> leftmost (0)
            observation({0: 0.4, 2: 0.4}),  # a tie -> leftmost
            observation({1: 0.9}),  # one way on: go (0), never stop
            observation({0: 0.9, 2: 0.1}),  # no choice this step (avail) -> 0
        ]
    )
    avail = np.ones((5, 3), bool)
    avail[4, 1:] = False
    assert [len(references.root_branches(o, DEPTH)) for o in obs] == [2, 2, 2, 1, 2]
    assert references.observed_shortest(_Env(), obs, avail, np.random.default_rng(0)).tolist() == [1, 0, 0, 0, 0]


@pytest.mark.parametrize("name", sorted(references.POLICIES))
def test_each_policy_plays_a_real_episode(name):
    from lightning_mbmarl.envs.flatland import FlatlandEnv

    env = FlatlandEnv(episode_limit=60)
    result = references.play(env, references.POLICIES[name], 10_000, np.random.default_rng(0))
    assert set(result) == {"arrived", "deadlocked", "flatland_score"}
    assert 0.0 <= result["arrived"] <= 1.0 and 0.0 <= result["deadlocked"] <= 1.0
    assert 0.0 <= result["flatland_score"] <= 1.0
