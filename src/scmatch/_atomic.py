"""Writes that cannot half-happen: build a file or a folder under a hidden temporary name, then move it into place.

A writer that is interrupted (an exception, KeyboardInterrupt, a killed process) part-way through leaves the
target as it was: the new content only takes the target's name, with :func:`os.replace` / :func:`os.rename`,
once it is complete and flushed to disk. The temporary name is a sibling of the target (same folder, so the
same file system, where a rename is atomic) and starts with a dot: ``.{name}.tmp-<random>``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

#: random tries for a free temporary name before giving up (a clash among 2**32 names is already unlikely)
_TRIES = 100


def _sibling(path: Path, kind: str) -> Path:
    """A hidden name beside ``path`` that nothing holds yet: ``.{name}.{kind}-<8 hex digits>``."""
    for _ in range(_TRIES):
        candidate = path.with_name(f".{path.name}.{kind}-{secrets.token_hex(4)}")
        if not os.path.lexists(candidate):
            return candidate
    raise FileExistsError(f"No free temporary name beside {path} after {_TRIES} tries; clean up its folder.")


def _fsync(path: Path) -> None:
    """Flush a file to disk, so that a rename cannot reach the disk before the data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Flush a folder's list of entries (a rename) to disk; best effort (POSIX, where the file system allows it)."""
    if os.name == "posix":
        with contextlib.suppress(OSError):
            _fsync(path)


def _remove(path: Path) -> None:
    """Remove a temporary file or folder if it exists (cleanup after a failure: never raises)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Write a file in one step: the block writes a temporary file, which replaces ``path`` only on success.

    Parameters
    ----------
    path
        The file to write; its folder must exist. If ``path`` is a symbolic link, the file it points to is
        replaced (as writing through the link would).

    Yields
    ------
    A temporary path beside ``path`` (``.{name}.tmp-<random>``), created empty for the block to write over.
    When the block exits without error the file is flushed to disk and moved onto ``path`` with
    :func:`os.replace` (atomic on POSIX and Windows: a reader sees the old file or the new one, never a mix); it
    keeps the permission bits of the file it replaces. When the block raises (any exception, KeyboardInterrupt included)
    the temporary file is removed and ``path`` is left as it was.

    Examples
    --------
    >>> with atomic_file("prediction.h5ad") as tmp:  # doctest: +SKIP
    ...     adata.write_h5ad(tmp)
    """
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    tmp = _sibling(path, "tmp")
    # O_EXCL: the name is ours alone; mode 0o666 (less the umask) gives the permissions of a plain new file
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        _fsync(tmp)
        if path.is_file():
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, overwrite: bool) -> Iterator[Path]:
    """Write a folder in one step: the block fills a fresh temporary folder, which takes the place of ``path``.

    The caller decides what may be replaced (:func:`scmatch.model._persist.save_model` lets ``overwrite=True``
    reach this function only for a folder that holds a saved model and nothing else); this function refuses,
    before the block runs and again just before the move, a ``path`` that is not a folder, and a non-empty
    folder unless ``overwrite=True``.

    Parameters
    ----------
    path
        The folder to write; its parent folder must exist.
    overwrite
        Replace an existing non-empty folder at ``path``.

    Yields
    ------
    A new, empty temporary folder beside ``path`` (``.{name}.tmp-<random>``). When the block exits without
    error, every file in it is flushed to disk and it is moved into place:

    - ``path`` does not exist: it is renamed to ``path`` (atomic).
    - ``path`` is an empty folder: that folder is removed, then the new one is renamed to ``path``.
    - ``path`` is a non-empty folder and ``overwrite=True``: the swap takes two renames. The old folder is
      renamed aside to ``.{name}.old-<random>``, the new one is renamed to ``path``, then the old one is
      deleted. If the second rename fails, the old folder is renamed back. A process killed between the two
      renames leaves no folder at ``path`` and the old content, complete, in ``.{name}.old-<random>`` beside
      it: rename that folder back to recover it.

    When the block raises (any exception, KeyboardInterrupt included) the temporary folder is removed and
    ``path`` is left as it was.

    Raises
    ------
    FileExistsError
        ``path`` exists and is not a folder, or is a non-empty folder and ``overwrite=False``.

    Examples
    --------
    >>> with atomic_dir("model", overwrite=False) as tmp:  # doctest: +SKIP
    ...     (tmp / "config.json").write_text("{}")
    """
    path = Path(path)
    _check_target(path, overwrite=overwrite)
    tmp = _sibling(path, "tmp")
    tmp.mkdir()  # mode 0o777 less the umask: the permissions of a plain new folder
    emptied = False
    try:
        yield tmp
        for item in tmp.rglob("*"):
            if item.is_file():
                _fsync(item)
        _fsync_dir(tmp)
        _check_target(path, overwrite=overwrite)  # the target may have changed while the block ran
        if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()
            emptied = True
        if os.path.lexists(path):
            _swap(tmp, path)
        else:
            os.rename(tmp, path)
    except BaseException:
        _remove(tmp)
        if emptied:
            with contextlib.suppress(OSError):
                path.mkdir()  # the empty folder the failed move removed
        raise
    _fsync_dir(path.parent)


def _check_target(path: Path, *, overwrite: bool) -> None:
    if os.path.lexists(path) and not path.is_dir():
        raise FileExistsError(f"{str(path)!r} exists and is not a folder; nothing was written.")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(f"The folder {str(path)!r} is not empty; nothing was written.")


def _swap(new: Path, path: Path) -> None:
    """Put folder ``new`` in the place of the existing folder ``path`` (two renames), then delete the old one."""
    aside = _sibling(path, "old")
    os.rename(path, aside)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(aside, path)
        raise
    _remove(aside)
