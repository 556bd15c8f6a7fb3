"""Static checks of the whole tree with ruff, configured in pyproject.toml: its default lint rules (syntax errors,
import and statement errors, pyflakes' undefined names, unused imports and variables, redefinitions) and its
formatter (`ruff format`; run it to fix what the second test reports)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TREE = ["lightning_mbmarl", "tests", "benchmarks"]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed: pip install -e '.[test]'")
    return subprocess.run([ruff, *args, "--no-cache", *TREE], cwd=REPO, capture_output=True, text=True)


def test_ruff_finds_no_errors():
    result = _ruff("check", "--output-format", "concise")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_tree_is_formatted():
    result = _ruff("format", "--check")
    assert result.returncode == 0, "run `ruff format " + " ".join(TREE) + "`:\n" + result.stdout + result.stderr
