"""Stop on SIGTERM or SIGINT without losing work: finish the current part of the training step, write ``last.ckpt``,
say so, and exit non-zero (the command line returns ``128 + signal``), so that ``--ckpt_path .../last.ckpt`` resumes
exactly where the run stopped.

A cluster's pre-emption sends SIGTERM; Ctrl-C sends SIGINT (a second Ctrl-C stops at once, as Python does). Long
training steps (a MAMBA/MAG iteration) poll :meth:`~lightning_mbmarl.algorithms.base.MultiAgentAlgorithm.
stop_requested` between their parts, so the stop comes within seconds. Under DDP the request is shared by all ranks
at those points. The handlers replace Lightning's SIGTERM handler for the training loop.

In a SLURM batch job the requeue signal (SIGUSR1 unless the run's ``SLURMEnvironment`` says otherwise) does the same
and then requeues the job; the requeued job resumes from ``last.ckpt`` in its own folder (:mod:`lightning_mbmarl.
slurm`). This replaces Lightning's requeue handler, which saves a checkpoint from inside the signal handler, in the
middle of a step.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from lightning_mbmarl.slurm import requeue, requeue_signal, slurm_job

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class GracefulStop(L.Callback):
    """See the module docstring. ``signal_received`` holds the signal number once the run stopped on one."""

    def __init__(self) -> None:
        self.signal_received: int | None = None
        self._module: Any = None
        self._previous: dict[int, Any] = {}
        self._requeue_signal: int | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After Lightning installed its own SIGTERM handler, which would end the run at the next step with a
        # SystemExit of status 0 and no checkpoint: this one replaces it.
        self._module = pl_module
        self._requeue_signal = requeue_signal(trainer.strategy)
        for signum in SIGNALS + ((self._requeue_signal,) if self._requeue_signal is not None else ()):
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if getattr(self._module, "_stop_signal", None) is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        name = signal.Signals(signum).name
        then = (
            "requeueing the SLURM job, which resumes from it"
            if signum == self._requeue_signal
            else "stopping (resume with --ckpt_path .../checkpoints/last.ckpt)"
        )
        print(
            f"\nlightning_mbmarl: {name} received: saving last.ckpt at the next step boundary, then {then}",
            file=sys.stderr,
            flush=True,
        )
        self._module._stop_signal = signum

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not pl_module.stop_requested():
            return
        path = last_checkpoint_path(trainer)
        trainer.save_checkpoint(path)
        trainer.should_stop = True
        self.signal_received = pl_module._stop_signal or signal.SIGTERM  # another rank's signal: report SIGTERM
        rank_zero_info(f"lightning_mbmarl: stopped on {signal.Signals(self.signal_received).name}; saved {path}")
        if self.signal_received == self._requeue_signal and trainer.is_global_zero:
            requeue(slurm_job())

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}


def last_checkpoint_path(trainer: L.Trainer) -> Path:
    """Where ``last.ckpt`` goes: the checkpoint callback's folder, else ``<run folder>/checkpoints``."""
    callback = trainer.checkpoint_callback
    folder = getattr(callback, "dirpath", None) or Path(trainer.default_root_dir) / "checkpoints"
    return Path(folder) / "last.ckpt"
