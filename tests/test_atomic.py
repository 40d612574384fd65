"""scmatch._atomic: a file or folder is replaced completely or not at all, and no temporary name is left behind."""

from __future__ import annotations

import os
import stat

import pytest

from scmatch import _atomic
from scmatch._atomic import atomic_dir, atomic_file


def _listing(folder) -> dict[str, bytes | None]:
    """Every entry under ``folder`` (hidden ones included) with the bytes of files."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def test_atomic_file_replaces_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_file(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.txt.tmp-") and tmp.exists()
        assert target.read_text() == "old"  # untouched while the block runs
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert _listing(tmp_path) == {"out.txt": b"new"}


def test_atomic_file_creates_a_new_file(tmp_path):
    with atomic_file(tmp_path / "new.txt") as tmp:
        tmp.write_text("content")
    assert _listing(tmp_path) == {"new.txt": b"content"}


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_file_error_keeps_the_old_file(tmp_path, error):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(error), atomic_file(target) as tmp:
        tmp.write_text("half of the new")
        raise error
    assert _listing(tmp_path) == {"out.txt": b"old"}


def test_atomic_file_error_creates_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "new.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert _listing(tmp_path) == {}


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_file_keeps_the_permissions_it_replaces(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    target.chmod(0o640)
    with atomic_file(target) as tmp:
        tmp.write_text("new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    # a new file gets the permissions of any new file (0o666 less the umask), not a private 0o600
    with atomic_file(tmp_path / "fresh.txt") as tmp:
        tmp.write_text("x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "fresh.txt").stat().st_mode) == 0o666 & ~umask


def test_atomic_file_writes_through_a_symlink(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    (tmp_path / "link.txt").symlink_to(real)
    with atomic_file(tmp_path / "link.txt") as tmp:
        tmp.write_text("new")
    assert (tmp_path / "link.txt").is_symlink() and real.read_text() == "new"


def test_atomic_dir_new_and_empty_targets(tmp_path):
    with atomic_dir(tmp_path / "new", overwrite=False) as tmp:
        assert tmp.name.startswith(".new.tmp-") and list(tmp.iterdir()) == []
        (tmp / "a.txt").write_text("a")
    (tmp_path / "empty").mkdir()
    with atomic_dir(tmp_path / "empty", overwrite=False) as tmp:
        (tmp / "b.txt").write_text("b")
    assert _listing(tmp_path) == {"empty": None, "empty/b.txt": b"b", "new": None, "new/a.txt": b"a"}


def test_atomic_dir_swaps_a_full_folder_only_with_overwrite(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="is not empty; nothing was written"), atomic_dir(target, overwrite=False):
        pytest.fail("the block must not run")
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").read_text() == "old"  # untouched while the block runs
    assert _listing(tmp_path) == {"model": None, "model/new.txt": b"new"}


def test_atomic_dir_refuses_a_file(tmp_path):
    (tmp_path / "model").write_text("a file")
    with (
        pytest.raises(FileExistsError, match="exists and is not a folder"),
        atomic_dir(tmp_path / "model", overwrite=True),
    ):
        pytest.fail("the block must not run")
    assert _listing(tmp_path) == {"model": b"a file"}


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_dir_error_keeps_the_old_folder(tmp_path, error):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(error), atomic_dir(target, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
        raise error
    assert _listing(tmp_path) == {"model": None, "model/old.txt": b"old"}


def test_atomic_dir_failed_second_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    renames = []
    rename = os.rename

    def failing(src, dst):
        renames.append((os.path.basename(src), os.path.basename(dst)))
        if len(renames) == 2:  # the new folder into place
            raise OSError("simulated failure between the two renames")
        rename(src, dst)

    monkeypatch.setattr(_atomic.os, "rename", failing)
    with pytest.raises(OSError, match="simulated"), atomic_dir(target, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert renames[0][0] == "model" and renames[0][1].startswith(".model.old-")  # aside
    assert renames[1][0].startswith(".model.tmp-") and renames[1][1] == "model"
    assert renames[2] == (renames[0][1], "model")  # and back
    assert _listing(tmp_path) == {"model": None, "model/old.txt": b"old"}


def test_atomic_dir_target_appearing_during_the_block_is_not_replaced(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(FileExistsError, match="is not empty"), atomic_dir(target, overwrite=False) as tmp:
        (tmp / "new.txt").write_text("new")
        target.mkdir()
        (target / "theirs.txt").write_text("theirs")
    assert _listing(tmp_path) == {"model": None, "model/theirs.txt": b"theirs"}


def test_atomic_dir_failed_move_keeps_an_empty_target(tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()

    def failing(src, dst):
        raise OSError("simulated failure of the rename")

    monkeypatch.setattr(_atomic.os, "rename", failing)
    with pytest.raises(OSError, match="simulated"), atomic_dir(tmp_path / "model", overwrite=False) as tmp:
        (tmp / "new.txt").write_text("new")
    assert _listing(tmp_path) == {"model": None}
