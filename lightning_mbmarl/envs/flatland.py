"""Flatland train scheduling (flatland-rl 4.3) in the MABL / MAMBA set-up.

``N`` trains on a ``width x height`` sparse rail network of ``cities`` cities must each reach their target
station. Registered as ``flatland`` (defaults: MABL's 5-agent task) and ``flatland_10`` (MABL's 10-agent task);
every option below can be given to both.

Settings of the MABL / MAMBA Flatland experiments. The MABL paper (§4) names the 5- and 10-agent tasks and
defers their details to an appendix our copy lacks; the numbers are those of MABL's released code
(aravindvenu7/MABL at 9327343: ``mabl/env/flatland/params.py``, ``SeveralAgents`` and ``PackOfAgents``, and the
reward shapers of ``mabl/train.py``), as ``shared/notes/mabl_released_code.md`` §3 records them:

* 5 agents: 35x35 grid, 3 cities, malfunction rate 1/100; 10 agents: 35x35, 4 cities, rate 1/150; both with
  at most 2 rails between cities, 2 rail pairs (4 tracks) per city, cities placed at random, malfunctions lasting
  20-50 steps, trains removed at their target.
* Reward per train: +10 on arrival, 0.01 x the drop of its shortest-path distance to the target this step (the
  distance is taken from the start cell before departure, is 0 once arrived, and reads 1000 where the target
  cannot be reached from the train's cell and heading), -5 once when it becomes deadlocked.
* Those experiments ran Flatland 2, which had no timetables: every train may depart at step 0 and episodes are
  capped at ``int(8 * (width + height + n_agents / cities))`` steps (573 for 5 agents; 580 for 10, where the
  released wrapper's own counter, written for 3 cities, says 586). Here Flatland 4 runs with that timetable
  (earliest departure 0, latest arrival at the cap), unless ``episode_limit`` sets another cap.

One step, with ``N`` trains:

* observation ``float32 [N, 85 * 12 + 8]``: Flatland's ``TreeObsForRailEnv`` of depth 3 (with its
  shortest-path predictor, ``predictor_depth`` steps, for the conflict feature) flattened and normalised by
  :func:`~lightning_mbmarl.envs.flatland_rail.tree_features` (distances / (width + height), train counts / N,
  malfunction steps / ``malfunction_max_steps``, all clipped to [0, 1]; -1 on missing branches), then the train's
  own ``TrainState`` one-hot (7) and deadlock flag. An arrived train's row is all zeros.
* state ``float32 [18 N + 1]`` (Flatland has none; defined here): per train its cell ``(row / (H-1), col / (W-1))``
  (the start cell before departure, the target once arrived), heading one-hot (4), target cell (2), ``TrainState``
  one-hot (7), malfunction steps left / ``malfunction_max_steps``, shortest-path distance to the target /
  (width + height) (both clipped to 1), deadlock flag; then the elapsed fraction of the episode cap.
* actions ``int64 [N]``, ``action_set="reduced"`` (default, the released set): 0 take the leftmost branch,
  1 the rightmost (the same where the track leads one way), 2 stop (before departure: wait). A train only chooses
  at decision cells (:func:`~lightning_mbmarl.envs.flatland_rail.decision_cells`: on and in front of junctions and
  targets, the released rule) and before departure; elsewhere an autopilot follows the track. ``"raw"``:
  Flatland's 5 actions (0 nothing, 1 left, 2 forward, 3 right, 4 stop), no autopilot.
* availability ``bool [N, A]``: every action of the set while a train's choice is read (reduced: at a decision
  cell or ready to depart; raw: the moves its track allows, nothing and stop, on the map or ready to depart),
  only action 0 while it is not (waiting, malfunctioning, deadlocked, arrived, or between decision cells).
  Actions of trains without a choice are ignored.
* reward: the mean of the trains' rewards above; ``agent_rewards`` holds them.
* terminated: every train arrived or deadlocked. truncated: the episode cap reached first.
* info (every step): ``arrived`` and ``deadlocked``, fractions of the trains, and ``flatland_score``, Flatland's
  normalised score ``sum_i max(R_i, -T) / (T N) + 1`` of its own rewards ``R_i`` with ``T`` the cap, NaN until the
  episode ends. An episode ended by deadlocks is scored as if it had run to the cap. Evaluation logs
  ``eval/arrived`` (the papers' score), ``eval/deadlocked`` and ``eval/flatland_score`` from them.

Deadlocks (:func:`~lightning_mbmarl.envs.flatland_rail.find_deadlocks`, every step): a train on the map is
deadlocked when every cell it could enter holds a train that is itself blocked that way (trains facing each other
on a track, and the queues behind them). The released code uses the same idea; it also ends such a train's episode.

Seeding: ``reset(seed)`` builds a fresh Flatland environment seeded ``seed`` (Flatland's malfunction generator keeps
random numbers across resets, so reseeding in place would not repeat an episode); later resets draw new networks
from that stream. A copy first reset without a seed uses its ``seed`` option. Flatland reseeds Python's ``random``
module on a seeded reset.

Speed, random available actions with resets included, one core of the project's 2-core CPU while two trainings
ran on it: about 410 steps/s for 5 trains (the defaults; 590 without the predictor), 220 for 10; Flatland's tree
observation takes three quarters of a step. Measure with
``OMP_NUM_THREADS=1 python -c "from lightning_mbmarl.envs.flatland import benchmark; benchmark()"``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from lightning_mbmarl.envs.base import EnvSpec, MultiAgentEnv
from lightning_mbmarl.envs.flatland_rail import (
    NODE_FEATURES,
    decision_cells,
    find_deadlocks,
    options,
    transitions,
    tree_features,
    tree_size,
)

INSTALL_HINT = (
    "Flatland needs the flatland extra and flatland-rl itself, installed without its numpy<2 pin: "
    "pip install -e '.[flatland]' && pip install --no-deps flatland-rl==4.3.0"
)
try:
    from flatland.envs.line_generators import sparse_line_generator
    from flatland.envs.malfunction_generators import MalfunctionParameters, ParamMalfunctionGen
    from flatland.envs.observations import TreeObsForRailEnv
    from flatland.envs.predictions import ShortestPathPredictorForRailEnv
    from flatland.envs.rail_env import RailEnv
    from flatland.envs.rail_generators import sparse_rail_generator
    from flatland.envs.step_utils.states import TrainState
    from flatland.envs.timetable_utils import Timetable
except ImportError as err:
    raise ImportError(f"{INSTALL_HINT}; import failed with: {err}") from err

ARRIVAL_REWARD, DISTANCE_COEF, DEADLOCK_PENALTY = 10.0, 0.01, -5.0  # MABL train.py's reward shapers
UNREACHABLE_DISTANCE = 1000.0  # distance counted where Flatland's is infinite (released NearRewardShaper)
N_STATES = len(TrainState)
OWN_FEATURES = N_STATES + 1  # TrainState one-hot, deadlock flag
AGENT_STATE_FEATURES = 18
ACTION_SETS = {
    "reduced": ("left branch", "right branch", "stop"),
    "raw": ("nothing", "left", "forward", "right", "stop"),
}
NOTHING, LEFT, FORWARD, RIGHT, STOP = range(5)  # Flatland's RailEnvActions
TEN_AGENTS = {"n_agents": 10, "cities": 4, "malfunction_rate": 1 / 150}  # MABL's PackOfAgents


def flatland2_episode_limit(width: int, height: int, n_agents: int, cities: int) -> int:
    """Flatland 2's episode cap for a sparse network, which the MABL / MAMBA experiments ran under."""
    return int(8 * (width + height + n_agents / cities))


def check_settings(
    n_agents: int, width: int, height: int, cities: int, max_rails_between_cities: int, max_rail_pairs_in_city: int
) -> None:
    """Raise ValueError, saying what would fit, where Flatland cannot build the network asked for.

    Flatland places cities of radius ``max_rail_pairs_in_city + 2`` on a grid of squares and quietly builds fewer
    than asked where they do not fit; each city has at most ``2 * max_rail_pairs_in_city`` station tracks, and
    we ask for one per train.
    """
    if n_agents < 1 or max_rails_between_cities < 1 or max_rail_pairs_in_city < 1:
        raise ValueError(
            f"flatland: n_agents, max_rails_between_cities and max_rail_pairs_in_city must be >= 1, "
            f"got {n_agents}, {max_rails_between_cities}, {max_rail_pairs_in_city}"
        )
    if cities < 2:
        raise ValueError(f"flatland: trains run between cities, so cities must be >= 2, got {cities}")
    square = 2 * (max_rail_pairs_in_city + 3)
    fit = ((height - 2) // square) * ((width - 2) // square)
    if cities > fit:
        side = square * math.ceil(math.sqrt(cities)) + 2
        raise ValueError(
            f"flatland: a {width}x{height} grid holds at most {fit} cities with max_rail_pairs_in_city="
            f"{max_rail_pairs_in_city}, got cities={cities}; use cities <= {fit} or a grid of at least {side}x{side}"
        )
    tracks = 2 * max_rail_pairs_in_city * cities
    if n_agents > tracks:
        raise ValueError(
            f"flatland: {n_agents} trains need a station track each, but {cities} cities with max_rail_pairs_in_city="
            f"{max_rail_pairs_in_city} have at most {tracks}; use n_agents <= {tracks}, cities >= "
            f"{math.ceil(n_agents / (2 * max_rail_pairs_in_city))} or max_rail_pairs_in_city >= "
            f"{math.ceil(n_agents / (2 * cities))}"
        )


class FlatlandEnv(MultiAgentEnv):
    """One Flatland copy behind :class:`MultiAgentEnv`; see the module docstring for what it returns."""

    def __init__(
        self,
        n_agents: int = 5,
        width: int = 35,
        height: int = 35,
        cities: int = 3,
        max_rails_between_cities: int = 2,
        max_rail_pairs_in_city: int = 2,
        malfunction_rate: float = 1 / 100,
        malfunction_min_steps: int = 20,
        malfunction_max_steps: int = 50,
        action_set: str = "reduced",
        tree_depth: int = 3,
        predictor_depth: int = 20,
        episode_limit: int | None = None,
        seed: int = 0,
    ) -> None:
        check_settings(n_agents, width, height, cities, max_rails_between_cities, max_rail_pairs_in_city)
        if action_set not in ACTION_SETS:
            raise ValueError(f"flatland: action_set must be one of {sorted(ACTION_SETS)}, got {action_set!r}")
        if not (malfunction_rate >= 0 and 1 <= malfunction_min_steps <= malfunction_max_steps):
            raise ValueError(
                f"flatland: need malfunction_rate >= 0 and 1 <= malfunction_min_steps <= malfunction_max_steps, got "
                f"{malfunction_rate}, {malfunction_min_steps}, {malfunction_max_steps}"
            )
        if tree_depth < 1 or predictor_depth < 0 or (episode_limit is not None and episode_limit < 1):
            raise ValueError(
                f"flatland: need tree_depth >= 1, predictor_depth >= 0 and episode_limit >= 1 (or None), "
                f"got {tree_depth}, {predictor_depth}, {episode_limit}"
            )
        limit = episode_limit or flatland2_episode_limit(width, height, n_agents, cities)
        self.settings = dict(
            n_agents=n_agents,
            width=width,
            height=height,
            cities=cities,
            max_rails_between_cities=max_rails_between_cities,
            max_rail_pairs_in_city=max_rail_pairs_in_city,
            malfunction_rate=malfunction_rate,
            malfunction_min_steps=malfunction_min_steps,
            malfunction_max_steps=malfunction_max_steps,
            tree_depth=tree_depth,
            predictor_depth=predictor_depth,
        )
        self.raw_actions = action_set == "raw"
        self.spec = EnvSpec(
            name="flatland",
            n_agents=n_agents,
            obs_dims=(tree_size(tree_depth) * NODE_FEATURES + OWN_FEATURES,) * n_agents,
            state_dim=AGENT_STATE_FEATURES * n_agents + 1,
            action_kind="discrete",
            action_sizes=(len(ACTION_SETS[action_set]),) * n_agents,
            episode_limit=limit,
            agent_names=tuple(f"train_{i}" for i in range(n_agents)),
        )
        self._seed = seed
        self._env: RailEnv | None = None
        self._running = False

    # ------------------------------------------------------------------------------------------------ episodes
    def _rail_env(self, seed: int) -> RailEnv:
        o, limit = self.settings, self.spec.episode_limit

        def timetable(agents: list, *_: Any) -> Timetable:  # Flatland 2's: depart from step 0, arrive by the cap
            return Timetable(
                earliest_departures=[[0, None] for _ in agents],
                latest_arrivals=[[None, limit] for _ in agents],
                max_episode_steps=limit,
            )

        predictor = ShortestPathPredictorForRailEnv(o["predictor_depth"]) if o["predictor_depth"] else None
        return RailEnv(
            width=o["width"],
            height=o["height"],
            rail_generator=sparse_rail_generator(
                max_num_cities=o["cities"],
                grid_mode=False,
                max_rails_between_cities=o["max_rails_between_cities"],
                max_rail_pairs_in_city=o["max_rail_pairs_in_city"],
            ),
            line_generator=sparse_line_generator(),
            number_of_agents=o["n_agents"],
            obs_builder_object=TreeObsForRailEnv(max_depth=o["tree_depth"], predictor=predictor),
            malfunction_generator=ParamMalfunctionGen(
                MalfunctionParameters(o["malfunction_rate"], o["malfunction_min_steps"], o["malfunction_max_steps"])
            ),
            remove_agents_at_target=True,
            random_seed=seed,
            timetable_generator=timetable,
        )

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if seed is not None or self._env is None:
            self._env = self._rail_env(self._seed if seed is None else seed)
        tree, _ = self._env.reset()
        env, n = self._env, self.spec.n_agents
        self._trans = transitions(env.rail.grid)
        self._targets = [tuple(int(x) for x in agent.waypoints[-1][0].position) for agent in env.agents]
        self._decisions = decision_cells(self._trans, self._targets)
        self._t = 0
        self._deadlocked = np.zeros(n, bool)
        self._arrived = np.zeros(n, bool)
        self._returns = np.zeros(n)  # Flatland's own rewards, for its score
        self._distance = self._distances()
        self._running = True
        return self._observe(tree)

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray, bool, bool, dict[str, Any]]:
        if not self._running:
            raise RuntimeError("flatland: call reset() before step() (the episode has ended or not begun)")
        actions = np.asarray(actions)
        n, size = self.spec.n_agents, self.spec.action_dim
        integral = np.issubdtype(actions.dtype, np.integer)
        if actions.shape != (n,) or not integral or not ((actions >= 0) & (actions < size)).all():
            raise ValueError(f"flatland: actions must be {n} integers in [0, {size}), got {actions!r}")
        tree, rewards, dones, _ = self._env.step(self._flatland_actions(actions))
        self._t += 1
        self._returns += [rewards[i] for i in range(n)]
        arrived = np.array([agent.state == TrainState.DONE for agent in self._env.agents])
        deadlocked = self._deadlocked | find_deadlocks(*self._cells(), self._trans)
        distance = self._distances()
        agent_rewards = (
            ARRIVAL_REWARD * (arrived & ~self._arrived)
            + DISTANCE_COEF * (self._distance - distance)
            + DEADLOCK_PENALTY * (deadlocked & ~self._deadlocked)
        ).astype(np.float32)
        self._arrived, self._deadlocked, self._distance = arrived, deadlocked, distance
        terminated = bool((arrived | deadlocked).all())
        truncated = self._t >= self.spec.episode_limit and not terminated
        self._running = not (terminated or truncated)
        info = {
            "arrived": float(arrived.mean()),
            "deadlocked": float(deadlocked.mean()),
            "flatland_score": np.nan if self._running else self._score(ended_by_flatland=dones["__all__"]),
        }
        return *self._observe(tree), float(agent_rewards.mean()), agent_rewards, terminated, truncated, info

    def _score(self, ended_by_flatland: bool) -> float:
        """Flatland's normalised score of the episode; an episode we end (every train arrived or deadlocked) before
        Flatland does gets Flatland's end-of-episode rewards as at the cap."""
        env, limit, returns = self._env, self.spec.episode_limit, self._returns.copy()
        if not ended_by_flatland:
            returns += [env.rewards.end_of_episode_reward(agent, env.distance_map, limit) for agent in env.agents]
        return float(env.rewards.normalize(*returns, num_agents=self.spec.n_agents, max_episode_steps=limit))

    # ------------------------------------------------------------------------------------------------- actions
    def _configuration(self, agent: Any) -> tuple[tuple[int, int], int] | None:
        """Where a train is, or will enter the map: ``((row, col), heading)``; None once arrived."""
        if agent.state == TrainState.DONE:
            return None
        return agent.initial_configuration if agent.state.is_off_map_state() else agent.current_configuration

    def _chooses(self, i: int, agent: Any, configuration: tuple[tuple[int, int], int] | None) -> bool:
        """Whether Flatland reads train ``i``'s action now (and, reduced set, the autopilot does not drive)."""
        if configuration is None or self._deadlocked[i] or agent.malfunction_handler.in_malfunction:
            return False
        if agent.state.is_off_map_state():
            return agent.state != TrainState.WAITING
        (row, col), heading = configuration
        return self.raw_actions or bool(self._decisions[row, col, heading])

    def _flatland_actions(self, actions: np.ndarray) -> dict[int, int]:
        """Our actions -> Flatland's, per train (raw: as they are; reduced: branch choices, stops, autopilot)."""
        if self.raw_actions:
            return {i: int(a) for i, a in enumerate(actions)}
        chosen = {}
        for i, agent in enumerate(self._env.agents):
            configuration = self._configuration(agent)
            if configuration is None:
                continue
            action = actions[i] if self._chooses(i, agent, configuration) else 0  # autopilot: follow the track
            if action == 2:
                chosen[i] = NOTHING if agent.state.is_off_map_state() else STOP
                continue
            cell, heading = configuration
            ways = options(self._trans, cell, heading)
            if not ways:  # a dead end: Flatland turns the train round on a forward move
                chosen[i] = FORWARD
                continue
            way = ways[0] if action == 0 else ways[-1]
            chosen[i] = FORWARD + (way - heading + 1) % 4 - 1  # heading - 1, heading, heading + 1 -> L, F, R
        return chosen

    def _availability(self) -> np.ndarray:
        avail = np.zeros((self.spec.n_agents, self.spec.action_dim), bool)
        avail[:, 0] = True
        for i, agent in enumerate(self._env.agents):
            configuration = self._configuration(agent)
            if not self._chooses(i, agent, configuration):
                continue
            if not self.raw_actions:
                avail[i] = True
                continue
            cell, heading = configuration
            ways = options(self._trans, cell, heading)
            avail[i, [NOTHING, STOP]] = True
            avail[i, LEFT] = (heading - 1) % 4 in ways
            avail[i, RIGHT] = (heading + 1) % 4 in ways
            avail[i, FORWARD] = heading in ways or len(ways) <= 1  # curves and dead ends: forward follows the track
        return avail

    # ----------------------------------------------------------------------------------------- views and state
    def _cells(self) -> tuple[list[tuple[int, int] | None], list[int]]:
        """Cells and headings of the trains on the map (None, 0 for the others)."""
        cells, headings = [], []
        for agent in self._env.agents:
            on_map = agent.state.is_on_map_state()
            cells.append(tuple(agent.current_configuration[0]) if on_map else None)
            headings.append(int(agent.current_configuration[1]) if on_map else 0)
        return cells, headings

    def _distances(self) -> np.ndarray:
        """``float64 [N]``: each train's shortest-path distance to its target (0 once arrived)."""
        table = self._env.distance_map.get()
        distance = np.zeros(self.spec.n_agents)
        for i, agent in enumerate(self._env.agents):
            configuration = self._configuration(agent)
            if configuration is not None:
                (row, col), heading = configuration
                distance[i] = table[i, row, col, heading]
        return np.where(np.isinf(distance), UNREACHABLE_DISTANCE, distance)

    def _observe(self, tree: dict[int, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        o, n = self.settings, self.spec.n_agents
        scale, malfunction_scale = o["width"] + o["height"], o["malfunction_max_steps"]
        obs = np.zeros((n, self.spec.obs_dim), np.float32)
        state = np.zeros((n, AGENT_STATE_FEATURES), np.float32)
        for i, agent in enumerate(self._env.agents):
            status = np.eye(N_STATES, dtype=np.float32)[int(agent.state)]
            if not self._arrived[i]:
                obs[i, :-OWN_FEATURES] = tree_features(tree[i], o["tree_depth"], scale, n, malfunction_scale)
                obs[i, -OWN_FEATURES:] = np.append(status, self._deadlocked[i])
            (row, col), heading = self._configuration(agent) or agent.target_configuration
            state[i] = np.concatenate(
                [
                    [row / (o["height"] - 1), col / (o["width"] - 1)],
                    np.eye(4)[int(heading)],
                    [self._targets[i][0] / (o["height"] - 1), self._targets[i][1] / (o["width"] - 1)],
                    status,
                    [
                        min(agent.malfunction_handler.malfunction_down_counter / malfunction_scale, 1.0),
                        min(self._distance[i] / scale, 1.0),
                        self._deadlocked[i],
                    ],
                ]
            )
        state = np.append(state.reshape(-1), self._t / self.spec.episode_limit).astype(np.float32)
        return obs, state, self._availability()


def benchmark(steps: int = 2000, seed: int = 0, **settings: Any) -> float:
    """Random-action steps per second of one copy (resets included), printed and returned."""
    env = FlatlandEnv(seed=seed, **settings)
    rng = np.random.default_rng(seed)
    _, _, avail = env.reset(seed)
    start = time.perf_counter()
    for _ in range(steps):
        actions = (rng.random(avail.shape) * avail).argmax(-1)
        *_, avail, _, _, terminated, truncated, _ = env.step(actions)
        if terminated or truncated:
            _, _, avail = env.reset()
    rate = steps / (time.perf_counter() - start)
    print(f"flatland {env.spec.n_agents} trains, {settings or 'defaults'}: {rate:.0f} steps/s")
    return rate
