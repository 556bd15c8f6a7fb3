"""SMACv2 (StarCraft II) behind :class:`MultiAgentEnv`: a translation of smacv2's ``StarCraftCapabilityEnvWrapper``.

smacv2 drives the real game, so it needs three things installed by hand (:data:`INSTALL_STEPS`); building this
environment without them raises an error that names what is missing. JaxMARL's SMAX (``smax``) runs similar
battles without the game.

Maps: ``10gen_protoss`` / ``10gen_terran`` / ``10gen_zerg`` are SMACv2's procedurally generated battles: every
reset draws ``n_units`` allies and ``n_enemies`` enemies from the race's unit mix (smacv2's published configs)
and places them with surround-or-reflect start positions. Any other map of smacv2's registry (``2s3z``,
``3s_vs_5z``, ``3s5z_vs_3s6z``, ...) is a classic SMAC scenario with fixed teams.

Translation, with ``N`` agents:

* observations ``float32 [N, obs_shape]`` = ``get_obs()``; state ``float32 [state_shape]`` = ``get_state()``;
  availability ``bool [N, n_actions]`` = ``get_avail_actions()`` (a dead agent may only take no-op, action 0).
* ``step(actions) -> (reward, terminated, info)``: ``reward`` is the team reward; smacv2 ends a timed-out episode
  with ``terminated`` and ``info["episode_limit"]`` (this adapter always asks for it with
  ``continuing_episode=True``), which becomes ``truncated``; ``info["battle_won"]`` becomes ``info["won"]``
  (present on every step).
* ``episode_limit`` is the map's (``get_env_info()``).

Seeding: ``seed`` is StarCraft II's game seed, fixed when the game launches; smacv2 draws teams and start
positions from unseeded generators, so ``reset(seed)`` cannot replay an episode and ignores its seed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lightning_mbmarl.envs.base import EnvSpec, MultiAgentEnv

INSTALL_STEPS = """SMACv2 needs three things installed by hand:
  1. the smacv2 package (not on PyPI): pip install git+https://github.com/oxwhirl/smacv2.git
  2. the StarCraft II binary: Blizzard's Linux package 4.10 (http://blzdistsc2-a.akamaihd.net/Linux/SC2.4.10.zip,
     listed at https://github.com/Blizzard/s2client-proto#downloads; unzip -P iagreetotheeula), unpacked to
     ~/StarCraftII or to the folder named by the SC2PATH environment variable
  3. the SMAC maps, into StarCraftII/Maps/SMAC_Maps: the SMACv2 maps from smacv2's repository
     (smacv2/env/starcraft2/maps/SMAC_Maps) and, for the classic SMAC maps,
     https://github.com/oxwhirl/smac/releases/download/v0.1-beta1/SMAC_Maps.zip"""

GENERATED_MAP_PREFIX = "10gen_"

# smacv2's published unit mixes per race (its sc2_gen_{race}.yaml configs): unit types, their weights, and the
# types that may not make up a whole team.
RACE_TEAMS: dict[str, tuple[tuple[str, ...], tuple[float, ...], tuple[str, ...]]] = {
    "protoss": (("stalker", "zealot", "colossus"), (0.45, 0.45, 0.1), ()),
    "terran": (("marine", "marauder", "medivac"), (0.45, 0.45, 0.1), ("medivac",)),
    "zerg": (("zergling", "baneling", "hydralisk"), (0.45, 0.1, 0.45), ("baneling",)),
}

# StarCraft2Env options of smacv2's published configs for generated maps, where they differ from its defaults.
GENERATED_MAP_OPTIONS: dict[str, Any] = {"obs_own_pos": True, "use_unit_ranges": True, "min_attack_range": 2}


def capability_config(race: str, n_units: int, n_enemies: int) -> dict[str, Any]:
    """smacv2's ``capability_config`` for a generated map: the race's unit mix and surround-or-reflect starts."""
    units, weights, exceptions = RACE_TEAMS[race]
    team_gen: dict[str, Any] = {
        "dist_type": "weighted_teams",
        "unit_types": list(units),
        "weights": list(weights),
        "observe": True,
    }
    if exceptions:
        team_gen["exception_unit_types"] = list(exceptions)
    return {
        "n_units": n_units,
        "n_enemies": n_enemies,
        "team_gen": team_gen,
        "start_positions": {"dist_type": "surrounded_and_reflect", "p": 0.5, "map_x": 32, "map_y": 32},
    }


def sc2_path() -> Path:
    """Where StarCraft II is expected: ``$SC2PATH``, else ``~/StarCraftII`` (pysc2's Linux default)."""
    return Path(os.environ.get("SC2PATH", "~/StarCraftII")).expanduser()


def installed_wrapper_class(map_name: str) -> Callable[..., Any]:
    """smacv2's ``StarCraftCapabilityEnvWrapper`` once the package, the game and ``map_name``'s map file are found."""
    try:
        from smacv2.env import StarCraftCapabilityEnvWrapper
        from smacv2.env.starcraft2.maps import get_map_params
    except ImportError as err:
        raise ImportError(f"smacv2 is not importable ({err}).\n{INSTALL_STEPS}") from err
    game = sc2_path()
    if not (game / "Versions").is_dir():
        raise FileNotFoundError(f"StarCraft II is not installed at {game} (no Versions folder).\n{INSTALL_STEPS}")
    map_file = game / "Maps" / "SMAC_Maps" / f"{get_map_params(map_name)['map_name']}.SC2Map"
    if not map_file.is_file():
        raise FileNotFoundError(f"the map of {map_name!r} is missing: {map_file}.\n{INSTALL_STEPS}")
    return StarCraftCapabilityEnvWrapper


class SMACv2Env(MultiAgentEnv):
    """One smacv2 battle (see the module docstring for the translation).

    ``race`` picks the generated map ``10gen_{race}`` when ``map`` is not given; ``n_units`` / ``n_enemies``
    (default 5 / ``n_units``) size a generated battle. ``env_args`` are further ``StarCraft2Env`` options
    (e.g. ``difficulty``, ``reward_sparse``). ``wrapper_cls`` replaces smacv2's wrapper class (it receives the
    ``StarCraft2Env`` keyword arguments); when None, the installed one is used.
    """

    def __init__(
        self,
        map: str | None = None,
        race: str | None = None,
        n_units: int | None = None,
        n_enemies: int | None = None,
        seed: int | None = None,
        env_args: dict[str, Any] | None = None,
        wrapper_cls: Callable[..., Any] | None = None,
    ) -> None:
        map_name = map if map is not None else GENERATED_MAP_PREFIX + (race or "protoss")
        kwargs: dict[str, Any] = {"map_name": map_name, "seed": seed}
        kwargs.update(self._map_options(map_name, race, n_units, n_enemies))
        kwargs.update(env_args or {})
        kwargs["continuing_episode"] = True  # smacv2 then reports time-outs as info["episode_limit"]
        self._env = (wrapper_cls or installed_wrapper_class(map_name))(**kwargs)
        info = self._env.get_env_info()
        n_agents = int(info["n_agents"])
        self.spec = EnvSpec(
            name=f"smacv2:{map_name}",
            n_agents=n_agents,
            obs_dims=(int(info["obs_shape"]),) * n_agents,
            state_dim=int(info["state_shape"]),
            action_kind="discrete",
            action_sizes=(int(info["n_actions"]),) * n_agents,
            episode_limit=int(info["episode_limit"]),
        )
        self._avail: np.ndarray | None = None

    @staticmethod
    def _map_options(map_name: str, race: str | None, n_units: int | None, n_enemies: int | None) -> dict[str, Any]:
        """``capability_config`` (and smacv2's options) for a generated map; fixed teams for the others."""
        if not map_name.startswith(GENERATED_MAP_PREFIX):
            if race is not None or n_units is not None or n_enemies is not None:
                raise ValueError(
                    f"smacv2: race / n_units / n_enemies apply to generated maps (10gen_<race>), "
                    f"not to {map_name!r}, whose teams are fixed"
                )
            return {"capability_config": {}}
        map_race = map_name[len(GENERATED_MAP_PREFIX) :]
        if map_race not in RACE_TEAMS or (race is not None and race != map_race):
            raise ValueError(
                f"smacv2: generated maps are {[GENERATED_MAP_PREFIX + r for r in RACE_TEAMS]}; "
                f"got map {map_name!r} with race {race!r}"
            )
        n_units = 5 if n_units is None else n_units
        n_enemies = n_units if n_enemies is None else n_enemies
        if not 1 <= n_units <= n_enemies:
            raise ValueError(f"smacv2: needs 1 <= n_units <= n_enemies, got {n_units} and {n_enemies}")
        return {"capability_config": capability_config(map_race, n_units, n_enemies), **GENERATED_MAP_OPTIONS}

    def _observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        obs = np.asarray(self._env.get_obs(), np.float32).reshape(self.spec.n_agents, self.spec.obs_dim)
        state = np.asarray(self._env.get_state(), np.float32).reshape(self.spec.state_dim)
        avail = np.asarray(self._env.get_avail_actions()).astype(bool).reshape(self.spec.n_agents, self.spec.action_dim)
        self._avail = avail
        return obs, state, avail

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._env.reset()
        return self._observe()

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray, bool, bool, dict[str, Any]]:
        if self._avail is None:
            raise RuntimeError(f"{self.spec.name}: call reset() before step()")
        actions = np.asarray(actions).reshape(-1)
        if actions.shape != (self.spec.n_agents,) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"{self.spec.name}: actions must be {self.spec.n_agents} integers, got {actions!r}")
        in_range = (actions >= 0) & (actions < self.spec.action_dim)
        if not (in_range & self._avail[np.arange(self.spec.n_agents), np.where(in_range, actions, 0)]).all():
            raise ValueError(
                f"{self.spec.name}: actions {actions.tolist()} include unavailable ones; pick actions "
                "where the availability mask is True (a dead agent may only take no-op, action 0)"
            )
        reward, ended, info = self._env.step([int(a) for a in actions])
        truncated = bool(ended and info.get("episode_limit", False))
        terminated = bool(ended) and not truncated
        obs, state, avail = self._observe()
        agent_rewards = np.full(self.spec.n_agents, reward, np.float32)
        won = bool(info.get("battle_won", False))
        return obs, state, avail, float(reward), agent_rewards, terminated, truncated, {"won": won}

    def close(self) -> None:
        self._env.close()
