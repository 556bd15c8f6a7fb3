"""benchmarks/gpu_check.sh --dry-run: every correctness run and speed figure of the GPU check, on the CPU at tiny
sizes (compile mode ``default``, traced by dynamo and AOTAutograd and run without inductor's code generation: the
same code paths bar CUDA graphs and code generation), recorded to the results file it is given."""

import csv
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def dry_run(
    results: Path | None, *options: str, script: str = "gpu_check.sh", tree: Path = REPO, **env_vars: str
) -> subprocess.CompletedProcess:
    """``benchmarks/<script> --dry-run`` of the checkout ``tree`` with ``options`` (and ``results`` as ``--results``
    unless None) in an environment with ``env_vars``; it must exit cleanly."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env_vars}
    env.pop("LIGHTNING_MBMARL_RUN_DIR", None)
    recording = [f"--results={results}"] if results is not None else []
    done = subprocess.run(
        ["bash", f"benchmarks/{script}", "--dry-run", *recording, *options],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_gpu_check_dry_run_runs_every_check_and_records_every_figure(tmp_path):
    results = tmp_path / "gpu_check.csv"
    done = dry_run(results)
    rows = list(csv.DictReader(open(results)))
    figures = {row["figure"] for row in rows}
    for name in (
        "MOMA-PPO ICG unfavorable, 32-true",
        "MOMA-PPO ICG unfavorable, bf16-mixed",
        "AORPO Climb",
        "MAMBA ICG",
        "MAG ICG",
    ):
        assert any(f.startswith(name + " (") for f in figures), name
    assert {
        "MAMBA iteration, SMAX 2s3z, batch 2",
        "MAG/MAMBA iteration ratio",
        "ensemble training step, 7 x 4x1024, batch 256, float32",
        "ensemble training step, bf16 autocast",
        "same step in a Lightning fit loop (MOMA-PPO), float32",
    } <= figures
    failed = [row for row in rows if row["value"].startswith(("failed", "skipped"))]
    assert not failed, failed
    speed = [row for row in rows if row["unit"] != "score"]
    assert {row["path"] for row in speed} == {"eager", "compiled"} and all(float(r["value"]) > 0 for r in speed)
    assert all(row["device"] == "cpu" and row["torch"] and row["commit"] for row in rows)
    table = done.stdout[done.stdout.rindex("| figure |") :]  # the table comes last
    assert table.count("\n|") >= len(figures)


def test_gpu_check_budget_records_what_it_measured_and_marks_the_rest(tmp_path):
    """A check cut off by ``--budget``: every planned figure is in the results file, measured ones with their values,
    the one being measured as timed out and the ones after it as skipped; the table still comes last."""
    results = tmp_path / "gpu_check.csv"
    done = dry_run(results, "--skip-correctness", "--budget=4")
    rows = list(csv.DictReader(open(results)))
    assert {"MAMBA iteration, SMAX 2s3z, batch 2", "MAG/MAMBA iteration ratio"} <= {row["figure"] for row in rows}
    kinds = ["measured" if _is_number(row["value"]) else row["value"].split(":")[0] for row in rows]
    assert set(kinds) <= {"measured", "timed out", "skipped"} and "skipped" in kinds, kinds
    assert kinds.count("timed out") <= 2  # the one measurement running: a MAMBA run gives two figures
    assert "budget of 4 s spent" in done.stdout
    assert done.stdout.rstrip().splitlines()[-1].startswith("| ")  # the table comes last


def test_gpu_session_writes_the_figures_and_the_log_under_out(tmp_path):
    """The device run's command, in a copy of the tree without git history (as the GPU machine gets it): the check's
    figures and its whole output land in $OUT, whose files come back, labelled with the code ``gpu_wheels.sh`` saved
    beside the wheels."""
    tree = tmp_path / "tree"
    shutil.copytree(REPO, tree, ignore=shutil.ignore_patterns(".git", ".whl", "outputs", "__pycache__", "*.egg-info"))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "code_label").write_text("abc1234\n")
    out = tmp_path / "out"
    out.mkdir()
    dry_run(
        None,
        "--skip-correctness",
        "--budget=4",
        script="gpu_session.sh",
        tree=tree,
        OUT=str(out),
        GPU_WHEELS=str(wheels),
    )
    rows = list(csv.DictReader(open(out / "gpu_check.csv")))
    assert any(row["figure"] == "MAG/MAMBA iteration ratio" for row in rows)
    assert {row["commit"] for row in rows} == {"abc1234"}
    log = (out / "gpu_check.log").read_text()
    assert "gpu_check: torch" in log and log.rstrip().splitlines()[-1].startswith("| ")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
