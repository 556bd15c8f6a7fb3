"""Static checks of the whole tree: syntax errors and pyflakes' findings (undefined names, unused imports and
variables, redefinitions) fail the suite."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_finds_no_errors():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed: pip install -e '.[test]'")
    result = subprocess.run([ruff, "check", "--select", "E9,F", "--output-format", "concise", "--no-cache",
                             "lightning_mbmarl", "tests", "benchmarks"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
