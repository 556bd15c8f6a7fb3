"""How a data module resolves the history length it serves."""

from __future__ import annotations


def resolve_history_length(configured: int | None, trainer, owner: str) -> int:
    """The history length a data module serves: the attached model's ``history_length`` when ``configured`` is
    None, else ``configured`` (which must then agree with the model's)."""
    model = getattr(trainer, "lightning_module", None) if trainer is not None else None
    wanted = getattr(model, "history_length", None)
    if configured is None:
        return int(wanted or 0)
    if wanted is not None and configured != wanted:
        raise ValueError(
            f"{owner}: history_length={configured} but the model reads histories of {wanted} steps; "
            "leave data.init_args.history_length unset (null) to follow the model"
        )
    return configured
