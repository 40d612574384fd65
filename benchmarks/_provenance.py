"""Where a benchmark record comes from: the commit it ran at, and whether the code that ran differed from it.

``git_dirty`` is true only when something that can change a number differed from the commit: the package, the
benchmark scripts, the project's settings, the tests' fixtures. What the benchmarks themselves write
(``benchmarks/results/``, the tables and figures) and the prose (``*.md``, ``docs/``, ``tutorials/``) do not count,
so a record written while earlier records of the same run sat uncommitted in ``benchmarks/results/`` still names a
clean commit. When the code did differ, ``git_dirty_paths`` lists what (at most 20 paths), so that the record says
which changes it ran with.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: changes that cannot change a record (git pathspecs, relative to the repository root)
IGNORED = ("benchmarks/results", "benchmarks/README.md", "benchmarks/*.png", "*.md", "docs", "tutorials")
MAX_PATHS = 20


def dirty_paths(repo: Path = REPO) -> list[str]:
    """Paths (tracked and modified, staged, deleted, or untracked) that differ from HEAD and can change a record."""
    spec = [".", *(f":(exclude,glob){p}" if "*" in p else f":(exclude){p}" for p in IGNORED)]
    out = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all", "--", *spec],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted({line[3:].split(" -> ")[-1] for line in out.splitlines() if line.strip()})


def git_state(repo: Path = REPO) -> dict:
    """``git_commit``, ``git_dirty`` and, when dirty, ``git_dirty_paths``; ``None`` outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        paths = dirty_paths(repo)
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": None, "git_dirty": None}
    state: dict = {"git_commit": commit, "git_dirty": bool(paths)}
    if paths:
        state["git_dirty_paths"] = paths[:MAX_PATHS] + (
            [f"... {len(paths) - MAX_PATHS} more"] if len(paths) > MAX_PATHS else []
        )
    return state
