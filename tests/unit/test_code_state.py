"""Which code a recorded run ran: a clean checkout is its commit; uncommitted changes to the package or its configs
get a label of their own and a patch that puts them back on the commit."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from lightning_mbmarl.sweeps.code_state import attempts_code, code_commit, save_code_state, uncommitted_changes


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A checkout with a package file, a config, a README and an ignored file, all committed but the last."""
    root = tmp_path / "repo"
    (root / "lightning_mbmarl").mkdir(parents=True)
    (root / "conf").mkdir()
    (root / "lightning_mbmarl" / "algo.py").write_text("LR = 0.1\n")
    (root / "conf" / "run.yaml").write_text("seed: 0\n")
    (root / "README.md").write_text("docs\n")
    (root / ".gitignore").write_text("__pycache__/\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    return root


def test_a_clean_checkout_is_its_commit_and_docs_or_ignored_files_do_not_count(repo, tmp_path):
    commit = git(repo, "rev-parse", "--short", "HEAD").strip()
    (repo / "README.md").write_text("other docs\n")
    (repo / "lightning_mbmarl" / "__pycache__").mkdir()
    (repo / "lightning_mbmarl" / "__pycache__" / "algo.pyc").write_bytes(b"\0")
    assert code_commit(repo) == commit
    assert save_code_state(tmp_path / "code", repo) == commit and not (tmp_path / "code").exists()


def test_uncommitted_changes_get_a_label_and_a_patch_that_reproduces_them(repo, tmp_path):
    commit = git(repo, "rev-parse", "--short", "HEAD").strip()
    (repo / "lightning_mbmarl" / "algo.py").write_text("LR = 0.2\n")  # edited
    (repo / "conf" / "new.yaml").write_text("seed: 1\n")  # new, untracked
    (repo / "conf" / "run.yaml").unlink()  # deleted
    status_before = git(repo, "status", "--porcelain")

    changes = uncommitted_changes(repo)
    label = save_code_state(tmp_path / "code", repo)
    assert label == f"{commit}+dirty.{hashlib.sha256(changes.encode()).hexdigest()[:8]}" == code_commit(repo)
    assert git(repo, "status", "--porcelain") == status_before  # the checkout's own index untouched

    copy = tmp_path / "copy"  # the commit plus the saved patch is the code that ran
    git(tmp_path, "clone", "-q", str(repo), str(copy))
    git(copy, "apply", str(tmp_path / "code" / f"{label}.diff"))
    assert (copy / "lightning_mbmarl" / "algo.py").read_text() == "LR = 0.2\n"
    assert (copy / "conf" / "new.yaml").read_text() == "seed: 1\n"
    assert not (copy / "conf" / "run.yaml").exists()

    (repo / "conf" / "new.yaml").write_text("seed: 2\n")  # other changes, another label
    assert save_code_state(tmp_path / "code", repo) not in (label, commit)
    assert len(list((tmp_path / "code").glob("*.diff"))) == 2


def test_outside_a_checkout_the_code_is_unknown(tmp_path):
    assert code_commit(tmp_path) == "unknown"


def test_a_resumed_run_names_each_distinct_code_its_attempts_ran_in_order():
    assert attempts_code(["a1", "a1"]) == "a1"
    assert attempts_code(["a1", "b2+dirty.0f", "a1"]) == "a1 then b2+dirty.0f"
    assert attempts_code([]) == "unknown"
