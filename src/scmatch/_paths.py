"""Does an output path name an input? Paths compared after resolving symbolic links (and hard links, by inode)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ._errors import OutputIsInputError


def resolved(path: str | os.PathLike) -> Path:
    """``path`` made absolute with every symbolic link resolved (also for a path that does not exist yet)."""
    return Path(os.path.realpath(os.fspath(path)))


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file: the same resolved path, or (both existing) the same inode."""
    if resolved(a) == resolved(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): only the resolved paths could tell
        return False


def within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` is ``folder`` or lies somewhere below it, after resolving links."""
    path, folder = resolved(path), resolved(folder)
    return path == folder or folder in path.parents or same_file(path, folder)


def check_output(
    output: str | os.PathLike,
    inputs: Mapping[str, str | os.PathLike | None],
    *,
    what: str,
    folder: bool = False,
) -> None:
    """Refuse an ``output`` that names one of ``inputs`` (or, for a ``folder`` output, holds one).

    Parameters
    ----------
    output
        The path about to be written.
    inputs
        What the call reads or has read: a label (e.g. ``"--train-mod1"``) for each path; None values are skipped.
    what
        How ``output`` is named in the message, e.g. ``"--output"``.
    folder
        ``output`` is a folder that is written (or replaced) as a whole: an input anywhere inside it is refused too.

    Raises
    ------
    OutputIsInputError
        Naming the output, the input, and the fix. Nothing has been written then.
    """
    for label, path in inputs.items():
        if path is None:
            continue
        clash = within(path, output) if folder else same_file(output, path)
        if clash:
            where = "is" if same_file(output, path) else "holds"
            link = "" if resolved(output) == Path(os.path.abspath(output)) else f" (a link to {resolved(output)})"
            raise OutputIsInputError(
                f"{what} {os.fspath(output)}{link} {where} the input {label} ({os.fspath(path)}); writing it would "
                "destroy that input, so nothing was written. Choose another output path."
            )
