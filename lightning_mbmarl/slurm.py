"""Runs that survive SLURM pre-emption: a job's run folder is named after the job, the requeue signal saves
``last.ckpt`` at the next step boundary and requeues the job, and the requeued job resumes from that checkpoint.

Submit with ``#SBATCH --signal=SIGUSR1@90`` (SIGUSR1 ninety seconds before the time limit) and
``#SBATCH --requeue``; the command line itself stays ``python -m lightning_mbmarl fit --config ...``. Every task of
the job (one per device under DDP) computes the same folder, ``<output_dir>/<experiment>/slurm_<job>``, so the tasks
agree without talking and a requeued job finds its run without being told.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


def slurm_job() -> str | None:
    """The SLURM job this process runs in (``<array job>_<task>`` for an array task), or None outside a batch job
    (an interactive ``srun --pty bash`` does not count, as in Lightning's :class:`SLURMEnvironment`)."""
    if not SLURMEnvironment.detect():
        return None
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None:
        return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ["SLURM_JOB_ID"]


def job_run_dir(experiment_dir: Path, job: str) -> tuple[Path, bool]:
    """The job's run folder ``<experiment_dir>/slurm_<job>`` and whether it resumes (a requeued job whose earlier
    attempt left ``last.ckpt``). An earlier attempt that died before its first checkpoint left nothing to resume:
    its folder is cleared so the logs do not mix two starts."""
    run = experiment_dir / f"slurm_{job}"
    if (run / LAST_CHECKPOINT).exists():
        rank_zero_info(f"lightning_mbmarl: SLURM job {job} restarted: resuming from {run / LAST_CHECKPOINT}")
        return run, True
    if run.exists() and os.environ.get("SLURM_PROCID", "0") == "0":
        rank_zero_warn(f"SLURM job {job} restarted, but its run folder {run} holds no checkpoint: starting afresh")
        shutil.rmtree(run)
    run.mkdir(parents=True, exist_ok=True)
    return run, False


def requeue_signal(strategy: object) -> signal.Signals | None:
    """The signal that asks this job to checkpoint and requeue: the one of the run's :class:`SLURMEnvironment`
    (SIGUSR1 unless set, None where its ``auto_requeue`` is off), or None outside a SLURM batch job."""
    environment = getattr(strategy, "cluster_environment", None)
    if isinstance(environment, SLURMEnvironment):
        return environment.requeue_signal if environment.auto_requeue else None
    return signal.SIGUSR1 if slurm_job() is not None else None


def requeue(job: str) -> bool:
    """``scontrol requeue <job>``; whether SLURM accepted it (said either way)."""
    try:
        status = subprocess.call(["scontrol", "requeue", job])
    except FileNotFoundError:
        rank_zero_warn(f"SLURM job {job} could not be requeued: no scontrol on this node's PATH")
        return False
    if status != 0:
        rank_zero_warn(f"SLURM job {job} could not be requeued: scontrol exited with status {status}")
    else:
        rank_zero_info(f"lightning_mbmarl: requeued SLURM job {job}")
    return status == 0
