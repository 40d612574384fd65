"""Finding and opening the files of the challenge's match-modality format."""

from __future__ import annotations

import os
from pathlib import Path

import anndata as ad

from ._h5 import read_h5ad_checked

TRAIN_ROLES = ("train_mod1", "train_mod2", "train_sol")
TEST_ROLES = ("test_mod1", "test_mod2")
ROLES = (*TRAIN_ROLES, *TEST_ROLES, "test_sol")

PathLike = str | os.PathLike


def _find_in_dir(directory: Path, role: str) -> Path | None:
    """``<dir>/<role>.h5ad``, or the one file ending in ``.<role>.h5ad`` (the challenge's own naming)."""
    exact = directory / f"{role}.h5ad"
    if exact.is_file():
        return exact
    found = sorted(p for p in directory.glob(f"*{role}.h5ad") if p.name[: -len(f"{role}.h5ad")][-1:] in ("", ".", "_"))
    if len(found) > 1:
        raise ValueError(
            f"Found several {role} files in {directory}: {[p.name for p in found]}. "
            f"Pass the one to use explicitly, e.g. `{role}=...`."
        )
    return found[0] if found else None


def _resolve_files(path: PathLike | None, explicit: dict[str, PathLike | None], test_sol: object) -> dict[str, Path]:
    """Map each role to an existing file, from a directory and/or explicit paths; check the groups are complete."""
    directory = None
    if path is not None:
        directory = Path(path)
        if not directory.is_dir():
            raise FileNotFoundError(
                f"{directory} is not a directory. Pass the folder holding train_mod1.h5ad, train_mod2.h5ad, "
                "train_sol.h5ad, test_mod1.h5ad and test_mod2.h5ad, or give the files as keyword arguments."
            )
    files: dict[str, Path] = {}
    for role in (*TRAIN_ROLES, *TEST_ROLES):
        if explicit.get(role) is not None:
            files[role] = Path(explicit[role])  # type: ignore[arg-type]
        elif directory is not None:
            found = _find_in_dir(directory, role)
            if found is None:
                raise FileNotFoundError(f"No {role}.h5ad (or *.{role}.h5ad) in {directory}; pass `{role}=` explicitly.")
            files[role] = found
    if isinstance(test_sol, str | os.PathLike) and test_sol != "auto":
        files["test_sol"] = Path(test_sol)
    elif test_sol is True or test_sol == "auto":
        found = _find_in_dir(directory, "test_sol") if directory is not None else None
        if found is not None:
            files["test_sol"] = found
        elif test_sol is True:
            where = f"in {directory}" if directory is not None else "without a directory `path`"
            raise FileNotFoundError(f"test_sol=True but no test_sol.h5ad found {where}; pass its path as `test_sol=`.")
    elif test_sol not in (False, None):
        raise TypeError(f"`test_sol` must be True, False, None, 'auto' or a path, got {test_sol!r}.")
    for group in (TRAIN_ROLES, TEST_ROLES):
        given = [role for role in group if role in files]
        if given and len(given) != len(group):
            missing = [role for role in group if role not in files]
            raise ValueError(f"Got {given} but not {missing}; pass all of {list(group)} or none of them.")
    if not any(role in files for role in (*TRAIN_ROLES, *TEST_ROLES)):
        raise ValueError("No input files: pass a directory as `path` or the files as keyword arguments.")
    if "test_sol" in files and "test_mod1" not in files:
        raise ValueError("`test_sol` was given without test_mod1/test_mod2; pass those too.")
    for role, file in files.items():
        if not file.is_file():
            raise FileNotFoundError(f"The {role} file {file} does not exist.")
    return files


def _read_h5ad(file: Path, *, label: str | None = None) -> ad.AnnData:
    """Read an .h5ad after checking that it is one and that it is not damaged (:mod:`scmatch.io._h5`).

    Any failure is an :class:`~scmatch._errors.InvalidFileError` naming the file (or ``label``) and the fix.
    """
    return read_h5ad_checked(file, label=label)
