"""Range checks for the typed configs' numbers, run when a config is built: a size of 0 or below, a negative count
or a learning rate of 0 is named at start (``RSSMConfig: hidden must be > 0, got -1``) rather than failing later
inside a layer (``Trying to create tensor with negative dimension -1``)."""

from __future__ import annotations

from typing import Any


def require_positive(config: Any, *names: str) -> None:
    """Raise ``ValueError`` naming the first field of ``names`` of the dataclass ``config`` that is not > 0 (a tuple
    field, e.g. hidden sizes: any entry)."""
    _require(config, names, lambda value: value > 0, "> 0")


def require_non_negative(config: Any, *names: str) -> None:
    """As :func:`require_positive`, for fields that may be 0 (warm-up steps, layer counts)."""
    _require(config, names, lambda value: value >= 0, ">= 0")


def _require(config: Any, names: tuple[str, ...], holds, bound: str) -> None:
    for name in names:
        value = getattr(config, name)
        entries = value if isinstance(value, (tuple, list)) else (value,)
        if not all(holds(entry) for entry in entries):
            what = "every entry of " if isinstance(value, (tuple, list)) else ""
            raise ValueError(f"{type(config).__name__}: {what}{name} must be {bound}, got {value}")
