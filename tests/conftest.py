"""Shared test helpers: running the real command line in a fresh process."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist every worker computes on one thread, as the command lines the tests start do: workers
    side by side with a thread per core each oversubscribe the cores (measured here beside other jobs, AORPO's Climb
    test: 110 s on one thread, 144 s on two)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def free_port() -> int:
    """A TCP port nobody listens on now (each DDP run gets its own rendezvous port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": str(free_port()), **(extra or {})}
    env.pop("LIGHTNING_MBMARL_RUN_DIR", None)
    return env


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m lightning_mbmarl ARGS`` in a fresh process (one thread, its own DDP port)."""
    return subprocess.run(
        [sys.executable, "-m", "lightning_mbmarl", *args],
        cwd=cwd or REPO,
        env=_cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """:func:`run_cli` started in the background (to be signalled), output captured; ``env``: extra variables."""
    return subprocess.Popen(
        [sys.executable, "-m", "lightning_mbmarl", *args],
        cwd=REPO,
        env=_cli_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def metrics(run_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(run_dir / "metrics.csv")))


def logged_values(run_dir: Path, key: str) -> list[float]:
    """Every logged value of a metric in a run folder, in logging order."""
    values = [float(r[key]) for r in metrics(run_dir) if r.get(key)]
    assert values, f"{key} was never logged in {run_dir}"
    return values


def last_value(run_dir: Path, key: str) -> float:
    return logged_values(run_dir, key)[-1]


@pytest.fixture
def cli():
    """:func:`run_cli`, for tests (tests/ is not a package, so helpers are handed out as fixtures)."""
    return run_cli


@pytest.fixture
def started_cli():
    """:func:`start_cli`: the command line in a background process."""
    return start_cli


@pytest.fixture
def read_metric():
    """:func:`last_value`: the last logged value of a metric in a run folder."""
    return last_value


@pytest.fixture
def read_metric_values():
    """:func:`logged_values`: every logged value of a metric in a run folder."""
    return logged_values


@pytest.fixture
def quiet_cli_args(tmp_path: Path) -> list[str]:
    """Options every CLI test passes: its own output folder, no progress bar."""
    return [
        f"--output_dir={tmp_path / 'outputs'}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
