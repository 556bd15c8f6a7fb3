"""Timing helpers shared by the speed benchmarks: wall time of training iterations inside a real ``fit``, split by
phase, and of a repeated call."""

from __future__ import annotations

import os
import statistics
import time
from collections import defaultdict
from typing import Any, Callable

import lightning as L
import torch

from lightning_mbmarl.cli import RUN_DIR_ENV, build_cli


#: trainer options of a timed ``fit``: no validation, progress bar, model summary, logger or callbacks
QUIET_TRAINER = [
    "--trainer.limit_val_batches=0",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.logger=false",
    "--trainer.callbacks=[]",
]


class IterationTimer(L.Callback):
    """Wall time of every training step; stops the run after ``iterations`` timed ones (the first is skipped)."""

    def __init__(self, iterations: int) -> None:
        self.iterations, self.times, self._start = iterations, [], 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        synchronize(pl_module.device)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        synchronize(pl_module.device)
        self.times.append(time.perf_counter() - self._start)
        if len(self.times) > self.iterations:
            trainer.should_stop = True


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(timer: IterationTimer, phases: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, adding its wall time to ``phases[name]`` at every call of a timed iteration."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            if timer.times:  # the first iteration is not timed
                phases[name] += time.perf_counter() - start

    return wrapper


def timed_fit(
    config: str,
    overrides: list[str],
    iterations: int,
    phases_of: Callable[[Any], dict[str, str]],
    after_fit: Callable[[Any, Any], None] | None = None,
) -> tuple[list[float], dict[str, float], Any]:
    """Train ``config`` (with ``overrides``) for ``iterations + 1`` iterations, the first untimed.

    ``phases_of(model)`` names the model's methods to time: ``{method name: phase name}``. Returns the timed
    iteration seconds, each phase's seconds per timed iteration, and the trained model; ``after_fit(cli, model)``
    runs before the run's objects are released.
    """
    os.environ.pop(RUN_DIR_ENV, None)  # each run gets its own folder
    cli = build_cli(["--config", config, *overrides], run=False)
    timer = IterationTimer(iterations)
    cli.trainer.callbacks.append(timer)
    model, phases = cli.model, defaultdict(float)
    for method, phase in phases_of(model).items():
        setattr(model, method, timed(timer, phases, phase, getattr(model, method)))
    cli.trainer.fit(model, datamodule=cli.datamodule)
    if after_fit is not None:
        after_fit(cli, model)
    return timer.times[1:], {name: total / iterations for name, total in phases.items()}, model


def time_calls(fn: Callable[[], Any], calls: int, device: torch.device, warmup: int = 3) -> float:
    """Median seconds of one call of ``fn`` over ``calls`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
