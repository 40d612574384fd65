"""benchmarks/_provenance.py: a record's commit is dirty only when code that can change its numbers differed."""

import subprocess

import pytest
from _provenance import git_state


@pytest.fixture
def repo(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    for path in ("src/scmatch/a.py", "benchmarks/run_x.py", "benchmarks/README.md", "docs/page.md"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    return tmp_path


def test_results_tables_and_prose_leave_the_commit_clean(repo):
    state = git_state(repo)
    assert len(state["git_commit"]) == 40 and state["git_dirty"] is False
    (repo / "benchmarks" / "results" / "speed").mkdir(parents=True)
    (repo / "benchmarks" / "results" / "speed" / "r.json").write_text("{}")  # a record written by the same run
    (repo / "benchmarks" / "README.md").write_text("a regenerated table\n")
    (repo / "docs" / "page.md").write_text("prose\n")
    assert git_state(repo) == {"git_commit": state["git_commit"], "git_dirty": False}


def test_code_changes_make_it_dirty_and_are_named(repo):
    (repo / "src" / "scmatch" / "a.py").write_text("x = 2\n")
    (repo / "benchmarks" / "helper.py").write_text("y = 1\n")  # untracked code counts too
    state = git_state(repo)
    assert state["git_dirty"] is True
    assert state["git_dirty_paths"] == ["benchmarks/helper.py", "src/scmatch/a.py"]


def test_outside_a_checkout(tmp_path):
    assert git_state(tmp_path) == {"git_commit": None, "git_dirty": None}
