"""Errors of scmatch's files: one class for every file that is damaged, edited, or of another kind."""

from __future__ import annotations

import os


class InvalidFileError(ValueError):
    """A file scmatch reads (a saved model, a prediction, an ``.h5ad``) is damaged, was edited, or is another kind.

    A :class:`ValueError`, so code that catches those keeps working. The message names the file, what is wrong
    with it, and the fix.

    Parameters
    ----------
    message
        What is wrong and how to fix it.
    path
        The file (or folder) concerned.
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        #: the file or folder concerned
        self.path = None if path is None else os.fspath(path)


class OutputIsInputError(ValueError):
    """An output path names a file the same call reads (or has read): writing it would destroy an input.

    Parameters
    ----------
    message
        Which output, which input, and the fix.
    """
