"""Environment registry: every family behind the :mod:`lightning_mbmarl.envs.base` interface."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from lightning_mbmarl.envs.base import (
    ActionKind,
    EnvSpec,
    MultiAgentEnv,
    StepResult,
    TeamObservation,
    VectorMultiAgentEnv,
)

_FACTORIES: dict[str, Callable[..., MultiAgentEnv]] = {}
_VECTOR_FACTORIES: dict[str, Callable[..., VectorMultiAgentEnv]] = {}


def register_env(
    name: str,
    factory: Callable[..., MultiAgentEnv],
    vector_factory: Callable[..., VectorMultiAgentEnv] | None = None,
) -> None:
    """Make ``factory(**kwargs)`` available as environment ``name``.

    ``vector_factory(num_envs, **kwargs)``, when given, builds a natively batched version (e.g. ``jax.vmap``) that
    :func:`make_vector_env` uses instead of stepping ``num_envs`` single copies one after another.
    """
    _FACTORIES[name] = factory
    if vector_factory is not None:
        _VECTOR_FACTORIES[name] = vector_factory


def _register_builtin() -> None:
    from functools import partial

    from lightning_mbmarl.envs.climb import ClimbGame
    from lightning_mbmarl.envs.icg import IteratedCoordinationGame

    register_env("icg", IteratedCoordinationGame)
    register_env("climb", ClimbGame)
    # mpe.py imports mpe2 only when an MPE environment is built (pip install -e ".[mpe]")
    from lightning_mbmarl.envs.mpe import MPE_SCENARIOS, MPEEnv

    for name in MPE_SCENARIOS:
        register_env(name, partial(MPEEnv, name))
    # mamujoco.py imports gymnasium-robotics only when an environment is built (pip install -e ".[mamujoco]")
    from lightning_mbmarl.envs.mamujoco import MaMuJoCoEnv

    register_env("mamujoco", MaMuJoCoEnv)

    # smax.py imports jax and jaxmarl (pip install -e ".[smax]", seconds to import): only when an SMAX env is built.
    def smax(**kwargs: Any) -> MultiAgentEnv:
        from lightning_mbmarl.envs.smax import SMAXEnv

        return SMAXEnv(**kwargs)

    def smax_vector(num_envs: int, **kwargs: Any) -> VectorMultiAgentEnv:
        from lightning_mbmarl.envs.smax import SMAXVectorEnv

        return SMAXVectorEnv(num_envs, **kwargs)

    register_env("smax", smax, smax_vector)

    # flatland.py imports flatland-rl (the flatland extra plus flatland-rl itself, see its INSTALL_HINT) only when a
    # Flatland env is built; "flatland" starts from MABL's 5-agent task, "flatland_10" from its 10-agent task.
    def flatland(**kwargs: Any) -> MultiAgentEnv:
        from lightning_mbmarl.envs.flatland import FlatlandEnv

        return FlatlandEnv(**kwargs)

    def flatland_10(**kwargs: Any) -> MultiAgentEnv:
        from lightning_mbmarl.envs.flatland import TEN_AGENTS, FlatlandEnv

        return FlatlandEnv(**{**TEN_AGENTS, **kwargs})

    register_env("flatland", flatland)
    register_env("flatland_10", flatland_10)
    # smacv2.py imports smacv2 (and needs StarCraft II) only when an environment is built.
    from lightning_mbmarl.envs.smacv2 import SMACv2Env

    register_env("smacv2", SMACv2Env)


@dataclass
class EnvConfig:
    """Which environment to build: a registry name and the keyword arguments of its constructor."""

    name: str = "icg"  # registered environment name (see lightning_mbmarl.envs.available_envs())
    kwargs: dict[str, Any] = field(default_factory=dict)  # constructor options, e.g. {episode_length: 10}


def available_envs() -> list[str]:
    return sorted(_FACTORIES)


def make_env(config: EnvConfig) -> MultiAgentEnv:
    """Build one environment copy; an unknown name lists the registered ones."""
    if config.name not in _FACTORIES:
        raise KeyError(f"unknown environment {config.name!r}; registered environments: {available_envs()}")
    try:
        return _FACTORIES[config.name](**config.kwargs)
    except TypeError as err:
        raise TypeError(f"environment {config.name!r} rejected its options {config.kwargs}: {err}") from err


def make_vector_env(config: EnvConfig, num_envs: int) -> VectorMultiAgentEnv:
    """``num_envs`` copies of the environment stepped together."""
    if config.name in _VECTOR_FACTORIES:
        return _VECTOR_FACTORIES[config.name](num_envs, **config.kwargs)
    return VectorMultiAgentEnv([make_env(config) for _ in range(num_envs)])


def env_spec(config: EnvConfig) -> EnvSpec:
    """The environment's :class:`EnvSpec` (builds one copy and closes it)."""
    env = make_env(config)
    try:
        return env.spec
    finally:
        env.close()


_register_builtin()

__all__ = [
    "ActionKind",
    "EnvConfig",
    "EnvSpec",
    "MultiAgentEnv",
    "StepResult",
    "TeamObservation",
    "VectorMultiAgentEnv",
    "available_envs",
    "env_spec",
    "make_env",
    "make_vector_env",
    "register_env",
]
