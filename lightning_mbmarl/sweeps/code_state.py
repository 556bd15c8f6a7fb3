"""Which code a recorded run ran: the package's git commit, and when the package or its configs had uncommitted
changes, those changes themselves, so that a results row from a work in progress can still be reproduced.

A clean checkout is named by its commit (``c573826``); a checkout with uncommitted changes under ``lightning_mbmarl/``
or ``conf/`` (edited, added, deleted or new files) by its commit and a hash of the changes (``c573826+dirty.1a2b3c4d``),
and :func:`save_code_state` writes the changes as a patch named after that label, which ``git apply`` puts back on
the commit. The code is named when each attempt of a run starts, as its process imports it: a tree changed later,
while the run goes, does not change the label.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

#: the checkout holding the package
PACKAGE_REPO = Path(__file__).resolve().parents[2]
#: the folders whose code decides what a run does (the rest of the checkout - docs, tests, results - does not)
CODE_PATHS = ("lightning_mbmarl", "conf")


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True, env=env).stdout


def uncommitted_changes(repo: Path = PACKAGE_REPO) -> str:
    """The changes under :data:`CODE_PATHS` against ``HEAD`` as a binary-safe patch, untracked files (not ignored
    ones) included; ``""`` when there are none. Built in a temporary index: the checkout's own index is untouched."""
    paths = [p for p in CODE_PATHS if (repo / p).exists() or _git(repo, "ls-tree", "HEAD", "--", p)]
    if not paths:
        return ""
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _git(repo, "read-tree", "HEAD", env=env)
        _git(repo, "add", "--all", "--", *paths, env=env)
        return _git(repo, "diff", "--cached", "--binary", "HEAD", "--", *paths, env=env)


def code_label(commit: str, changes: str) -> str:
    """``commit``, or ``commit+dirty.<first 8 hex digits of the changes' SHA-256>`` when there are changes."""
    if not changes:
        return commit
    return f"{commit}+dirty.{hashlib.sha256(changes.encode()).hexdigest()[:8]}"


def code_commit(repo: Path = PACKAGE_REPO) -> str:
    """The label of the code in ``repo`` now (see :func:`code_label`), or ``unknown`` outside a git checkout."""
    return save_code_state(None, repo)


def save_code_state(directory: Path | None, repo: Path = PACKAGE_REPO) -> str:
    """The label of the code in ``repo`` now; with uncommitted changes and a ``directory``, the changes are also
    written to ``directory/<label>.diff`` (the same changes, the same file). ``unknown`` outside a git checkout."""
    try:
        commit = _git(repo, "rev-parse", "--short", "HEAD").strip()
        changes = uncommitted_changes(repo)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    label = code_label(commit, changes)
    if changes and directory is not None:
        patch = Path(directory) / f"{label}.diff"
        if not patch.exists():
            patch.parent.mkdir(parents=True, exist_ok=True)
            temporary = patch.with_suffix(".diff.tmp")
            temporary.write_text(changes)
            temporary.replace(patch)
    return label


def attempts_code(labels: list[str]) -> str:
    """One label for a run whose attempts (a first one, then resumptions) started on ``labels``: the distinct ones in
    order, joined by `` then ``."""
    return " then ".join(dict.fromkeys(labels)) or "unknown"
