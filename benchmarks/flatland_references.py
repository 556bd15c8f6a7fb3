"""Fixed policies on the Flatland task, the references a learned policy's ``eval/arrived`` reads against.

Each policy plays the same episodes (episode ``e`` on a rail network seeded ``seed + e``) of a Flatland task of the
package (``--env flatland``: MABL's 5 trains; reduced action set: 0 leftmost branch, 1 rightmost, 2 stop):

* ``random``: uniform over the available actions (stop included), the package's ``evaluation.policy: random``;
* ``random_branch``: a uniform branch wherever a train chooses, never stop;
* ``observed_shortest``: reads the train's own observation only, as a decentralised policy would: of the branches
  its tree observation (``TreeObsForRailEnv``) starts with, the leftmost and the rightmost, it takes the one whose
  node reports the smaller ``dist_min_to_target``; never stops (ties: the leftmost);
* ``map_shortest``: the branch whose next cell is nearer the target on Flatland's own distance map (what the
  observation approximates: tree distances are clipped at ``width + height`` cells); never stops.

None of them waits for another train, so their deadlocks are what route choice alone leaves. Prints one line per
policy (arrived, deadlocked, Flatland's normalised score: mean and standard deviation over episodes) and appends
them to ``--out``::

    OMP_NUM_THREADS=1 python benchmarks/flatland_references.py --episodes 100 \
        --out benchmarks/results/flatland_references.csv
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cli_runs import append_row, code_commit  # noqa: E402

from lightning_mbmarl.envs import EnvConfig, make_env  # noqa: E402
from lightning_mbmarl.envs.flatland import FlatlandEnv  # noqa: E402
from lightning_mbmarl.envs.flatland_rail import MOVES, NODE_FEATURES, options, tree_size  # noqa: E402

DIST_MIN_TO_TARGET = 6  # a tree node's feature: the shortest distance to the target from the node's end
BRANCH = 1  # a reduced-set action available only where a train chooses its way
METRICS = ("arrived", "deadlocked", "flatland_score")  # of an episode, from its last step's info

Policy = Callable[[FlatlandEnv, np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


def root_branches(observation: np.ndarray, depth: int) -> list[np.ndarray]:
    """The nodes of the branches a train's tree observation starts with, leftmost first (of L, F, R; the U-turn
    branch B is not a choice of the reduced set): ``observation [tree_size(depth) * 12 + own]`` -> nodes ``[12]``."""
    nodes = observation[: tree_size(depth) * NODE_FEATURES].reshape(-1, NODE_FEATURES)
    children = [nodes[1 + k * tree_size(depth - 1)] for k in range(3)]
    return [node for node in children if node[0] != -1.0]  # a missing branch reads -1 everywhere


def random_policy(env: FlatlandEnv, obs: np.ndarray, avail: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (rng.random(avail.shape) * avail).argmax(-1)


def random_branch(env: FlatlandEnv, obs: np.ndarray, avail: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.where(avail[:, BRANCH], rng.integers(0, 2, len(avail)), 0)


def observed_shortest(env: FlatlandEnv, obs: np.ndarray, avail: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    actions = np.zeros(len(avail), np.int64)
    for i in np.flatnonzero(avail[:, BRANCH]):
        branches = root_branches(obs[i], env.settings["tree_depth"])
        if len(branches) > 1:
            actions[i] = int(branches[-1][DIST_MIN_TO_TARGET] < branches[0][DIST_MIN_TO_TARGET])
    return actions


def map_shortest(env: FlatlandEnv, obs: np.ndarray, avail: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    table = env._env.distance_map.get()  # [N, H, W, 4]: cells to the target, entering heading
    actions = np.zeros(len(avail), np.int64)
    for i in np.flatnonzero(avail[:, BRANCH]):
        (row, col), heading = env._configuration(env._env.agents[i])
        ways = options(env._trans, (row, col), heading)
        if len(ways) > 1:
            left, right = ((row + MOVES[w, 0], col + MOVES[w, 1], w) for w in (ways[0], ways[-1]))
            actions[i] = int(table[i][right] < table[i][left])
    return actions


POLICIES: dict[str, Policy] = {
    "random": random_policy,
    "random_branch": random_branch,
    "observed_shortest": observed_shortest,
    "map_shortest": map_shortest,
}


def play(env: FlatlandEnv, policy: Policy, seed: int, rng: np.random.Generator) -> dict[str, float]:
    """One episode on the network seeded ``seed``: its last step's ``arrived``, ``deadlocked``, ``flatland_score``."""
    obs, _, avail = env.reset(seed=seed)
    while True:
        obs, _, avail, _, _, terminated, truncated, info = env.step(policy(env, obs, avail, rng))
        if terminated or truncated:
            return {key: info[key] for key in METRICS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="flatland", help="a Flatland task of the package (flatland, flatland_10)")
    parser.add_argument("--policies", nargs="+", choices=sorted(POLICIES), default=list(POLICIES))
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=10_000, help="episode e runs on the network seeded seed + e")
    parser.add_argument("--out", type=Path, help="results CSV to append to")
    args = parser.parse_args()
    env = make_env(EnvConfig(name=args.env))
    if not isinstance(env, FlatlandEnv) or env.raw_actions:
        parser.error(f"--env {args.env} is not a Flatland task with the reduced action set")
    commit = code_commit()
    for name in args.policies:
        rng, start = np.random.default_rng(args.seed), time.perf_counter()
        episodes = [play(env, POLICIES[name], args.seed + e, rng) for e in range(args.episodes)]
        row: dict[str, object] = {"env": args.env, "policy": name, "episodes": args.episodes, "seed": args.seed}
        for key in METRICS:
            values = np.array([episode[key] for episode in episodes])
            row[f"{key}_mean"], row[f"{key}_std"] = round(values.mean(), 4), round(values.std(), 4)
        row["seconds"], row["commit"] = round(time.perf_counter() - start, 1), commit
        print(
            f"{args.env} {name}: arrived {row['arrived_mean']:.3f} ± {row['arrived_std']:.3f}, deadlocked "
            f"{row['deadlocked_mean']:.3f}, Flatland score {row['flatland_score_mean']:.3f} ({args.episodes} episodes)"
        )
        if args.out:
            append_row(args.out, row)


if __name__ == "__main__":
    main()
