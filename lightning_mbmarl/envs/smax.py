"""JaxMARL's SMAX: SMAC / SMACv2 style StarCraft battles re-implemented in JAX (CPU, no game binary needed).

Our agents are the allied units; the enemies are played by JaxMARL's scripted heuristic
(``HeuristicEnemySMAX``, the set-up of JaxMARL's own SMAX baselines: attack an ally in range, else advance;
``enemy_shoots=False`` disarms it, ``attack_mode`` picks its target, "closest" or "random").
Maps are JaxMARL's scenarios (``map_name_to_scenario``): SMAC maps such as "2s3z", "3s_vs_5z", "3s5z_vs_3s6z"
keep fixed teams; the SMACv2-style "smacv2_5_units" / "smacv2_10_units" / "smacv2_20_units" draw mirrored
teams (each unit uniformly from all six SMAX unit types, races mixed, unlike SMACv2) and surround-or-reflect
start positions at every reset.

One step, with ``N`` allies, ``E`` enemies and ``U = N + E`` units:

* observation ``float32 [N, obs_dim]``: JaxMARL's unit-list view (the other allies, the enemies, then the
  agent's own features; units out of sight range are zeros). A dead agent's row is all zeros.
* state ``float32 [12 U]``: JaxMARL's world state (every unit's health, position, weapon cooldown and type
  one-hot, then every unit's team and type id).
* actions ``int64 [N]`` in ``[0, 5 + E)``: 0-3 move north/east/south/west, 4 stop, ``5 + e`` attack enemy ``e``.
  Availability ``bool [N, 5 + E]`` is JaxMARL's ``get_avail_actions``; a dead agent may only stop (4), SMAX's no-op.
  Stepping with an unavailable action raises, as SMAC does.
* reward: the allies' team reward (enemy health removed this step as a fraction of the enemy team's, plus 1 on
  a win), repeated as ``agent_rewards``.
* terminated: one side has no units left. truncated: ``episode_length`` steps passed without that (JaxMARL's
  default limit, 100, unless given). ``info["won"]`` is True on the step the allies win (every enemy dead, an
  ally alive) and False on every other step.

Randomness: a copy seeded ``s`` starts from ``jax.random.key(s)`` and splits that key for every reset and step;
:class:`SMAXVectorEnv` seeds copy ``b`` with ``seed + b``, so it reproduces :class:`SMAXEnv` seeded ``seed + b``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import types
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lightning_mbmarl.envs.base import EnvSpec, MultiAgentEnv, StepResult, TeamObservation, VectorMultiAgentEnv

INSTALL_HINT = "SMAX needs the smax extra: pip install -e '.[smax]' (jaxmarl==0.2.0 with CPU jax==0.10.2)"

# jaxmarl's package __init__ imports every environment it has (coin game, STORM, Overcooked, JaxNav, MABrax where
# brax is installed, ...), prints while probing optional ones and, through MABrax, resets sys.stdout and sys.stderr
# to the process's original streams: 5.7 s here, where SMAX's own modules and jax take 2.2 s. Unless jaxmarl is
# imported already, its two package modules are stood in for by empty packages over the same folders while SMAX's
# modules load, then taken out again: a later `import jaxmarl` runs the real package, which reuses the SMAX modules
# loaded here.
_stand_ins: list[str] = []
try:
    _jaxmarl = None if "jaxmarl" in sys.modules else importlib.util.find_spec("jaxmarl")
    if _jaxmarl is not None and _jaxmarl.submodule_search_locations:
        _root = list(_jaxmarl.submodule_search_locations)
        for _name, _path in (("jaxmarl", _root), ("jaxmarl.environments", [os.path.join(_root[0], "environments")])):
            sys.modules[_name] = types.ModuleType(_name)
            sys.modules[_name].__path__ = _path
            _stand_ins.append(_name)
    import jax
    import jax.numpy as jnp
    from jaxmarl.environments.smax import HeuristicEnemySMAX, map_name_to_scenario
    from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO
except ImportError as err:
    raise ImportError(f"{INSTALL_HINT}; import failed with: {err}") from err
finally:
    for _name in _stand_ins:
        del sys.modules[_name]

STOP = 4  # SMAX's stop action, the only one a dead unit may take
ATTACK_MODES = ("closest", "random")


class View(NamedTuple):
    """What the allies see in one copy: obs ``[N, obs_dim]``, state ``[S]``, avail ``bool [N, A]``."""

    obs: jax.Array
    state: jax.Array
    avail: jax.Array


class Transition(NamedTuple):
    """One step of one copy, after auto-reset (JAX arrays; a leading batch axis under ``vmap``).

    key/env_state/now: the copy's next key, state and view (a fresh episode where the step ended one);
    final: the view the step led to; reward, terminated, truncated, won: scalars.
    """

    key: jax.Array
    env_state: Any
    now: View
    final: View
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    won: jax.Array


class Battle:
    """Pure reset and step functions of one SMAX copy against the heuristic enemy, and their compiled forms.

    ``reset_one`` / ``step_one`` are ``jax.jit`` of :meth:`reset` / :meth:`step`; ``reset_batch`` /
    ``step_batch`` the same over a leading copy axis (``jax.vmap``). Build battles with :func:`battle`, which
    shares one per configuration, so every environment of a configuration reuses the compiled code.
    """

    def __init__(
        self,
        map: str = "2s3z",
        episode_length: int | None = None,
        enemy_shoots: bool = True,
        attack_mode: str = "closest",
    ) -> None:
        if map not in MAP_NAME_TO_SCENARIO:
            raise ValueError(f"smax: unknown map {map!r}; JaxMARL's SMAX maps are {sorted(MAP_NAME_TO_SCENARIO)}")
        if attack_mode not in ATTACK_MODES:
            raise ValueError(f"smax: attack_mode must be one of {ATTACK_MODES}, got {attack_mode!r}")
        if episode_length is not None and episode_length < 1:
            raise ValueError(f"smax: episode_length must be >= 1, got {episode_length}")
        limit = {} if episode_length is None else {"max_steps": episode_length}
        self.env = HeuristicEnemySMAX(
            scenario=map_name_to_scenario(map),
            enemy_shoots=enemy_shoots,
            attack_mode=attack_mode,
            see_enemy_actions=True,
            walls_cause_death=True,
            **limit,
        )
        self.n_allies = self.env.num_allies
        self.episode_limit = int(self.env.max_steps)
        n_actions = self.env.num_ally_actions
        self.spec = EnvSpec(
            name=f"smax:{map}",
            n_agents=self.n_allies,
            obs_dims=(self.env.obs_size,) * self.n_allies,
            state_dim=self.env.state_size,
            action_kind="discrete",
            action_sizes=(n_actions,) * self.n_allies,
            episode_limit=self.episode_limit,
            agent_names=tuple(self.env.agents),
        )
        self._stop_only = jnp.zeros(n_actions, bool).at[STOP].set(True)
        self.reset_one = jax.jit(self.reset)
        self.step_one = jax.jit(self.step)
        self.reset_batch = jax.jit(jax.vmap(self.reset))
        self.step_batch = jax.jit(jax.vmap(self.step))

    def view(self, env_state: Any) -> View:
        alive = env_state.state.unit_alive[: self.n_allies, None]
        obs = self.env.get_obs(env_state)
        obs = jnp.stack([obs[agent] for agent in self.env.agents])
        avail = self.env.get_avail_actions(env_state)
        avail = jnp.stack([avail[agent] for agent in self.env.agents]).astype(bool)
        return View(
            obs=jnp.where(alive, obs, 0.0).astype(jnp.float32),
            state=self.env.get_world_state(env_state).astype(jnp.float32),
            avail=jnp.where(alive, avail, self._stop_only),
        )

    def reset(self, key: jax.Array) -> tuple[jax.Array, Any, View]:
        """``key -> (next key, env state, view)``."""
        key, reset_key = jax.random.split(key)
        _, env_state = self.env.reset(reset_key)
        # Strong dtypes, as after a step (the heuristic's initial state is weakly typed), so the jitted step
        # sees one input signature and compiles once.
        env_state = jax.tree.map(lambda x: jax.lax.convert_element_type(x, x.dtype), env_state)
        return key, env_state, self.view(env_state)

    def step(self, key: jax.Array, env_state: Any, actions: jax.Array) -> Transition:
        """Apply ``int32 [N]`` actions; a copy whose episode ends is reset within the same call."""
        key, step_key = jax.random.split(key)
        team_actions = {agent: actions[i] for i, agent in enumerate(self.env.agents)}
        _, after, rewards, _, _ = self.env.step_env(step_key, env_state, team_actions)
        alive = after.state.unit_alive
        allies_alive, enemies_alive = alive[: self.n_allies].any(), alive[self.n_allies :].any()
        terminated = ~(allies_alive & enemies_alive)
        truncated = (after.state.step >= self.episode_limit) & ~terminated
        done = terminated | truncated
        final = self.view(after)
        key, fresh, fresh_view = self.reset(key)
        pick = lambda new, old: jnp.where(done, new, old)  # noqa: E731
        return Transition(
            key=key,
            env_state=jax.tree.map(pick, fresh, after),
            now=View(*jax.tree.map(pick, tuple(fresh_view), tuple(final))),
            final=final,
            reward=rewards[self.env.agents[0]].astype(jnp.float32),
            terminated=terminated,
            truncated=truncated,
            won=allies_alive & ~enemies_alive,
        )


@functools.lru_cache(maxsize=None)
def battle(map: str, episode_length: int | None, enemy_shoots: bool, attack_mode: str) -> Battle:
    """The shared :class:`Battle` of a configuration (compiling SMAX takes seconds)."""
    keep_compilations_on_disk()
    return Battle(map, episode_length, enemy_shoots, attack_mode)


def keep_compilations_on_disk() -> Path | None:
    """Have JAX keep its compiled SMAX functions on disk, so a run on a map compiled before skips compiling it.

    Compiling one map's reset and step (single and batched) took 28 s of a run's start on this project's 2-core
    machine (beside two training runs; a one-off timing in a fresh process); read from JAX's persistent compilation
    cache, 5 s. Where JAX has no cache
    folder of its own (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``), the package's is used:
    ``$XDG_CACHE_HOME/lightning_mbmarl/jax`` (default ``~/.cache/lightning_mbmarl/jax``, under 1 MB a map).
    ``JAX_ENABLE_COMPILATION_CACHE=false`` turns the cache off. Must run before JAX's first compilation in the
    process (it decides once whether to use a cache). Returns the folder in use, None when the cache is off.
    """
    if not jax.config.jax_enable_compilation_cache:
        return None
    if jax.config.jax_compilation_cache_dir is None:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        jax.config.update("jax_compilation_cache_dir", str(root / "lightning_mbmarl" / "jax"))
    return Path(jax.config.jax_compilation_cache_dir)


def _check_actions(spec: EnvSpec, actions: np.ndarray, avail: np.ndarray) -> np.ndarray:
    """Integer actions of shape ``avail.shape[:-1]`` that are all available, as ``int32``."""
    actions = np.asarray(actions)
    if actions.shape != avail.shape[:-1] or not np.issubdtype(actions.dtype, np.integer):
        raise ValueError(
            f"{spec.name}: actions must be integers of shape {avail.shape[:-1]}, got {actions.dtype} {actions.shape}"
        )
    in_range = (actions >= 0) & (actions < spec.action_dim)
    ok = in_range & np.take_along_axis(avail, np.where(in_range, actions, 0)[..., None], -1)[..., 0]
    if not ok.all():
        where = np.argwhere(~ok)[0]
        raise ValueError(
            f"{spec.name}: action {actions[tuple(where)]} of agent at {tuple(where)} is not available; "
            "pick actions where the availability mask is True (a dead agent may only stop, action 4)"
        )
    return actions.astype(np.int32)


def _numpy_view(view: View) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.array(view.obs, np.float32), np.array(view.state, np.float32), np.array(view.avail, bool)


class Outcome(NamedTuple):
    """A :class:`Transition` copied to numpy (one device transfer): views as ``(obs, state, avail)``."""

    now: tuple[np.ndarray, np.ndarray, np.ndarray]
    final: tuple[np.ndarray, np.ndarray, np.ndarray]
    reward: np.ndarray  # float32
    terminated: np.ndarray  # bool
    truncated: np.ndarray  # bool
    won: np.ndarray  # bool


def _fetch(t: Transition) -> Outcome:
    now, final, reward, terminated, truncated, won = jax.device_get(
        (t.now, t.final, t.reward, t.terminated, t.truncated, t.won)
    )
    return Outcome(
        now=_numpy_view(now),
        final=_numpy_view(final),
        reward=np.asarray(reward, np.float32),
        terminated=np.asarray(terminated, bool),
        truncated=np.asarray(truncated, bool),
        won=np.asarray(won, bool),
    )


class SMAXEnv(MultiAgentEnv):
    """One SMAX copy behind :class:`MultiAgentEnv` (see the module docstring for what it returns).

    After a step that ends an episode the copy already holds the next episode (drawn from its own key stream),
    which ``reset()`` without a seed returns.
    """

    def __init__(
        self,
        map: str = "2s3z",
        episode_length: int | None = None,
        seed: int = 0,
        enemy_shoots: bool = True,
        attack_mode: str = "closest",
    ) -> None:
        self.battle = battle(map, episode_length, enemy_shoots, attack_mode)
        self.spec = self.battle.spec
        self._key = jax.random.key(seed)
        self._env_state: Any = None
        self._view: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._fresh = False  # the held episode has not been stepped yet

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if seed is not None:
            self._key = jax.random.key(seed)
        if seed is not None or self._view is None or not self._fresh:
            self._key, self._env_state, view = self.battle.reset_one(self._key)
            self._view, self._fresh = _numpy_view(view), True
        return self._view

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray, bool, bool, dict[str, Any]]:
        if self._view is None:
            raise RuntimeError(f"{self.spec.name}: call reset() before step()")
        checked = jnp.asarray(_check_actions(self.spec, actions, self._view[2]))
        t = self.battle.step_one(self._key, self._env_state, checked)
        self._key, self._env_state = t.key, t.env_state
        out = _fetch(t)
        self._view = out.now
        reward, terminated, truncated = float(out.reward), bool(out.terminated), bool(out.truncated)
        self._fresh = terminated or truncated
        agent_rewards = np.full(self.spec.n_agents, reward, np.float32)
        return *out.final, reward, agent_rewards, terminated, truncated, {"won": bool(out.won)}

    render_options: dict[str, Any] | None = {}  # JaxMARL's own SMAX drawing, through matplotlib

    def render(self) -> np.ndarray:
        """The battle as JaxMARL's SMAX visualiser draws it (allies blue, enemies green, paler while being shot):
        RGB ``uint8 [480, 480, 3]``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if self._env_state is None:
            raise RuntimeError(f"{self.spec.name}: call reset() before render()")
        env, units = self.battle.env, self._env_state.state
        attacks = {agent: units.prev_attack_actions[i] for i, agent in enumerate(env.all_agents)}
        figure, axes = plt.subplots(figsize=(6, 6), dpi=80)  # square: JaxMARL reads its canvas as [W, H]
        try:
            image = env.init_render(axes, (None, units, attacks), 0, int(units.step))
            return np.asarray(image.get_array())[..., :3].astype(np.uint8)
        finally:
            plt.close(figure)


class SMAXVectorEnv(VectorMultiAgentEnv):
    """``num_envs`` SMAX copies in one ``jax.jit(jax.vmap(...))`` call per step, with same-step auto-reset."""

    def __init__(
        self,
        num_envs: int,
        map: str = "2s3z",
        episode_length: int | None = None,
        seed: int = 0,
        enemy_shoots: bool = True,
        attack_mode: str = "closest",
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"smax: num_envs must be >= 1, got {num_envs}")
        self.battle = battle(map, episode_length, enemy_shoots, attack_mode)
        self.spec = self.battle.spec
        self.num_envs = num_envs
        self._keys = self._seed_keys(seed)
        self._env_state: Any = None
        self._avail: np.ndarray | None = None

    def _seed_keys(self, seed: int) -> jax.Array:
        """Copy ``b`` starts from ``jax.random.key(seed + b)``: ``key [num_envs]``."""
        return jnp.stack([jax.random.key(seed + b) for b in range(self.num_envs)])

    def reset(self, seed: int | None = None) -> TeamObservation:
        if seed is not None:
            self._keys = self._seed_keys(seed)
        self._keys, self._env_state, view = self.battle.reset_batch(self._keys)
        obs, state, avail = _numpy_view(view)
        self._avail = avail
        return TeamObservation(obs, state, avail)

    def step(self, actions: np.ndarray) -> StepResult:
        if self._avail is None:
            raise RuntimeError(f"{self.spec.name}: call reset() before step()")
        checked = jnp.asarray(_check_actions(self.spec, actions, self._avail))
        t = self.battle.step_batch(self._keys, self._env_state, checked)
        self._keys, self._env_state = t.key, t.env_state
        out = _fetch(t)
        self._avail = out.now[2]
        final_obs, final_state, final_avail = out.final
        return StepResult(
            next=TeamObservation(*out.now),
            final_obs=final_obs,
            final_state=final_state,
            final_avail=final_avail,
            reward=out.reward,
            agent_rewards=np.repeat(out.reward[:, None], self.spec.n_agents, axis=1),
            terminated=out.terminated,
            truncated=out.truncated,
            info={"won": out.won},
        )

    def close(self) -> None:
        """Nothing to release (the copies are JAX arrays)."""
