"""Running one experiment of the package through its command line, as the benchmarks here do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from lightning_mbmarl.sweeps.code_state import code_commit  # noqa: F401 (re-exported)
from lightning_mbmarl.sweeps.results import append_row, evaluation_curve, metric_rows, read_results  # noqa: F401 (re-exported)


def run_experiment(config: str, experiment: str, output_dir: Path, *overrides: str) -> tuple[Path, float]:
    """``python -m lightning_mbmarl fit --config CONFIG`` in a fresh one-thread process, in its own run folder
    ``output_dir/experiment/version_<k>``; returns that folder and the wall-clock seconds. Raises with the end of
    stderr if the run fails."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("LIGHTNING_MBMARL_RUN_DIR", None)
    command = [
        sys.executable,
        "-m",
        "lightning_mbmarl",
        "fit",
        "--config",
        config,
        f"--experiment={experiment}",
        f"--output_dir={output_dir}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        *overrides,
    ]
    commit, start = code_commit(), time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    run_dir = latest_run(output_dir, experiment)
    marker = {"command": command[1:], "seconds": seconds, "commit": commit}
    (run_dir / FINISHED_MARKER).write_text(json.dumps(marker, indent=1))
    return run_dir, seconds


#: written into a run folder once its command exited cleanly: benchmarks reuse only runs that have it
FINISHED_MARKER = "benchmark_run.json"


def run_folders(output_dir: Path, experiment: str) -> list[Path]:
    """The ``version_<k>`` folders of ``experiment``, oldest first."""
    return sorted((Path(output_dir) / experiment).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))


def finished_run(output_dir: Path, experiment: str) -> Path | None:
    """The newest run folder of ``experiment`` whose command ran to its end (it has the marker), if any: what a
    benchmark's ``--reuse`` reads; runs interrupted part-way are not."""
    return next(
        (run for run in reversed(run_folders(output_dir, experiment)) if (run / FINISHED_MARKER).exists()), None
    )


def latest_run(output_dir: Path, experiment: str) -> Path:
    """The newest ``version_<k>`` folder of ``experiment``."""
    return run_folders(output_dir, experiment)[-1]


def append_result(path: Path, row: dict[str, object], run_dir: Path) -> None:
    """Append one finished run to a results file (CSV; header written with the first row) with its wall-clock
    seconds and the commit its benchmark ran, both from the run's marker (commit ``unrecorded`` for runs made before
    markers held it), and the time: a record kept in the repository, so results outlive the machine their runs
    were on."""
    marker = json.loads((run_dir / FINISHED_MARKER).read_text())
    row = {
        **row,
        "seconds": round(marker["seconds"]),
        "commit": marker.get("commit", "unrecorded"),
        "recorded": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ"),
    }
    append_row(path, row)
