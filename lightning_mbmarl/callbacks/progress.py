"""Progress over a run's real length, readable anywhere: a terminal or a log file.

Lightning's progress bar counts epochs and batches of an endless loader (``Epoch 0/-2``) and only reaches a file at
the end. This report reads the method's own schedule instead
(:meth:`~lightning_mbmarl.algorithms.base.MultiAgentAlgorithm.progress`: environment steps, world-model steps,
policy iterations, gradient steps) and prints, on rank 0, one line per ``every_seconds`` and after every
evaluation::

    [00:12:31] mamba_icg: env steps 1,200 / 2,500 (48%) | eval/normalized_score 0.81 | ~13m left

In a terminal the line is redrawn in place with a bar; to a file or pipe each report is a new line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.utilities import rank_zero_only


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class ProgressReport(L.Callback):
    """See the module docstring."""

    def __init__(self, every_seconds: float = 30.0, stream: TextIO | None = None) -> None:
        self.every_seconds = every_seconds
        self.stream = stream
        self._start = self._last = 0.0
        self._phase: tuple[str, float, float] = ("", 0.0, 0.0)  # (label, done, time) where the current phase began
        self._score = self._name = self._line = ""

    @property
    def _out(self) -> TextIO:
        return self.stream or sys.stdout

    @property
    def _terminal(self) -> bool:
        return bool(getattr(self._out, "isatty", lambda: False)())

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._start = self._last = time.monotonic()
        label, done, _ = pl_module.progress()
        self._phase = (label, done, self._start)
        self._name = Path(trainer.default_root_dir).parent.name or type(pl_module).__name__

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        interval = min(self.every_seconds, 2.0) if self._terminal else self.every_seconds
        if time.monotonic() - self._last >= interval:
            self.report(pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        scores = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("eval/")}
        names = ("eval/normalized_score", "eval/won_rate", "eval/arrived", "eval/return")
        headline = next((k for k in names if k in scores), None)
        if headline is not None:
            self._score = f" | {headline} {scores[headline]:.3g}"
        self.report(pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.report(pl_module)
        if self._terminal:
            print(file=self._out, flush=True)

    @rank_zero_only
    def report(self, pl_module: Any) -> None:
        self._last = now = time.monotonic()
        label, done, total = pl_module.progress()
        if label != self._phase[0]:  # a new phase (MOMA-PPO: world model, then policy): its own rate
            self._phase = (label, done, now)
        fraction = done / total if total else 1.0
        rate = (done - self._phase[1]) / max(now - self._phase[2], 1e-9)
        left = f" | ~{format_duration((total - done) / rate)} left in this phase" if rate > 0 and done < total else ""
        clock = time.strftime("%H:%M:%S", time.gmtime(now - self._start))
        line = f"[{clock}] {self._name}: {label} {done:,.0f} / {total:,.0f} ({100 * fraction:.0f}%){self._score}{left}"
        if line == self._line:
            return
        self._line = line
        if self._terminal:
            filled = int(20 * min(fraction, 1.0))
            print(f"\r{'#' * filled}{'.' * (20 - filled)} {line}\033[K", end="", file=self._out, flush=True)
        else:
            print(line, file=self._out, flush=True)
