"""Saving and loading models: a JSON config plus a torch state_dict, never pickled objects, under a manifest.

A model folder holds ``model.pt`` (the weights), ``config.json`` (settings, calibration, history), any further
files (the reference's preprocessing) and ``manifest.json`` (:mod:`scmatch.model._manifest`): scmatch's marker
and the size and sha256 of every other file. Loading verifies the manifest, then bounds every field of
``config.json`` and compares it with the weights (:mod:`scmatch.model._checks`) before anything is built.

Folders saved before manifests (format 1: checksums of ``model.pt`` and of the further files inside
``config.json``) still load: those checksums are verified, and ``config.json``, which has none, gets the same
bounds and shape checks; a note is logged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from .._atomic import atomic_dir
from .._errors import InvalidFileError
from .._utils import logger
from ._checks import CONFIG, WEIGHTS, check_config, read_weights
from ._manifest import MANIFEST, file_sha256, has_marker, listed_files, read_json, read_manifest, write_manifest

#: format of config.json: 2 with a manifest beside it, 1 for legacy folders (checksums inside config.json)
FORMAT_VERSION, LEGACY_VERSION = 2, 1
#: config.json field of legacy folders with the sha256 of each further file
FILES = "files_sha256"
#: a config.json holds settings, a training history and a small projection: far less than this
MAX_CONFIG_BYTES = 64 << 20
_REQUIRED = {"format_version", "params", "n_features", "temperature", "history", "feature_names"}


def save_model(
    path: str | Path,
    *,
    params: dict,
    state: dict,
    extra: dict,
    version: str,
    overwrite: bool = False,
    extra_files: Callable[[Path], Iterable[str]] | None = None,
) -> None:
    """Write a model folder at ``path`` in one step: ``model.pt``, any further files, ``config.json``, the manifest.

    Every file is written into a new temporary folder beside ``path``, which takes the place of ``path`` only
    once it is complete (:func:`scmatch._atomic.atomic_dir`): a save that is interrupted or fails leaves
    ``path`` as it was (a previous model there still loads), and no temporary folder behind.

    Parameters
    ----------
    path
        The model folder. It may not exist yet (missing parent folders are created), be an empty folder, or,
        with ``overwrite=True``, hold a model saved with a manifest and nothing else. Any other folder is refused,
        so a save never mixes its files with others or deletes them.
    params
        The model's settings, stored as ``config.json["params"]``.
    state
        The ``state_dict``, written to ``model.pt`` (tensors moved to the CPU).
    extra
        Further ``config.json`` fields (JSON-serialisable).
    version
        The scmatch version, recorded in the manifest.
    overwrite
        Replace a model saved at ``path``. The swap takes two renames (see :func:`scmatch._atomic.atomic_dir`):
        a process killed between them leaves the old model complete in a hidden ``.{name}.old-<random>``
        folder beside ``path``.
    extra_files
        Writer of further files of the model (e.g. preprocessing): called with the temporary folder once
        ``model.pt`` is in it, it writes its files directly into that folder and returns their names, which the
        manifest lists with their checksums. Every file it writes must be named; ``config.json``, ``model.pt``
        and ``manifest.json`` are reserved.

    Raises
    ------
    ValueError
        ``path`` exists and is not a folder; holds a saved model and ``overwrite=False``; or is a non-empty
        folder that is not (only) a model saved with a manifest. Nothing is written then.
    """
    path = Path(path)
    check_target(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(path, overwrite=overwrite) as tmp:
        torch.save({k: v.detach().cpu() for k, v in state.items()}, tmp / WEIGHTS)
        names = _written(tmp, extra_files(tmp)) if extra_files is not None else []
        config = {"format_version": FORMAT_VERSION, "params": params, **extra}
        (tmp / CONFIG).write_text(json.dumps(config, indent=2))
        write_manifest(tmp, [WEIGHTS, CONFIG, *names], version=version)


def check_target(path: Path, *, overwrite: bool) -> None:
    """Refuse, before anything is written, a ``path`` that :func:`save_model` must not write or replace."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{str(path)!r} exists and is not a directory; choose a directory path.")
    if not path.is_dir():
        return
    contents = sorted(item.name for item in path.iterdir())
    if not contents:
        return
    if not has_marker(path):
        raise ValueError(_unmarked(path, contents))
    if not overwrite:
        raise ValueError(f"A model is already saved in {str(path)!r}; pass `overwrite=True` to replace it.")
    others = [name for name in contents if name not in listed_files(path) | {MANIFEST}]
    if others:
        raise ValueError(
            f"{str(path)!r} is a folder that holds files other than a saved scmatch model (e.g. {others[:5]}); "
            "choose another path (a new or empty folder), so that no file is mixed in or deleted."
        )


def _unmarked(path: Path, contents: list[str]) -> str:
    """Why a non-empty folder without scmatch's marker is never written into or replaced, and what it holds."""
    shown = contents[:10] + ([f"... {len(contents) - 10} more"] if len(contents) > 10 else [])
    legacy = ""
    if {CONFIG, WEIGHTS} <= set(contents):
        legacy = (
            " It may be a model saved by an older scmatch (before manifests): load it with MatchModel.load and save "
            "it to a new folder, or delete the folder yourself if you mean to replace it."
        )
    return (
        f"{str(path)!r} is a folder that holds files other than a saved scmatch model (it has no {MANIFEST} with "
        f"scmatch's marker; found {shown}); choose another path (a new or empty folder), so that no file is mixed "
        f"in or deleted.{legacy}"
    )


def _written(folder: Path, names: Iterable[str]) -> list[str]:
    """The names of the files an ``extra_files`` writer wrote into ``folder``, checked against the folder."""
    names = [str(name) for name in names]
    bad = [name for name in names if name in (CONFIG, WEIGHTS, MANIFEST) or Path(name).name != name]
    if bad:
        raise ValueError(
            f"`extra_files` returned {bad}: names of files directly in the folder, other than {CONFIG}, {WEIGHTS} "
            f"and {MANIFEST}."
        )
    missing = [name for name in names if not (folder / name).is_file()]
    unnamed = sorted(item.name for item in folder.iterdir() if item.name not in {WEIGHTS, *names})
    if missing or unnamed:
        raise ValueError(
            f"`extra_files` must return the name of every file it writes: named but not written {missing}, written "
            f"but not named {unnamed}."
        )
    return sorted(names)


def load_model(path: str | Path) -> tuple[dict, dict, dict]:
    """Read and verify a saved model; returns (params, state_dict, extra).

    ``extra`` holds the other ``config.json`` fields and ``"files"``, the names of the further files (verified
    like the others). Nothing is built here: the caller compares the settings with the weights
    (:func:`scmatch.model._checks.check_weights`) first.

    Raises
    ------
    InvalidFileError
        (a ValueError) Naming the file and what is wrong: a folder without a model, a manifest or checksum that
        does not match, a config.json field of the wrong shape or out of bounds, weights that cannot be read.
    """
    folder = Path(path)
    if not folder.is_dir() or not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
        found = sorted(item.name for item in folder.iterdir())[:10] if folder.is_dir() else None
        raise InvalidFileError(
            f"{str(folder)!r} is not a saved scmatch model: it needs {CONFIG} and {WEIGHTS}"
            f"{'' if found is None else f' (found {found})'}.",
            path=folder,
        )
    if (folder / MANIFEST).exists():
        manifest = read_manifest(folder, required=(CONFIG, WEIGHTS))
        files = sorted(set(manifest["files"]) - {CONFIG, WEIGHTS})
        config = _read_config(folder, version=FORMAT_VERSION)
    else:
        config = _read_config(folder, version=LEGACY_VERSION)
        files = _verify_legacy(config, folder)
        logger.info(
            "%s was saved by an older scmatch, without a manifest: the checksums of its weights and files are "
            "verified; config.json has none, so only its bounds and its fit with the weights are. Save the model "
            "again to add a manifest.",
            folder,
        )
    state = read_weights(folder)
    extra = {k: v for k, v in config.items() if k not in {"format_version", "params", "weights_sha256", FILES}}
    return config["params"], state, {**extra, "files": files}


def _read_config(folder: Path, *, version: int) -> dict:
    config = read_json(folder / CONFIG, max_bytes=MAX_CONFIG_BYTES, folder=folder)
    found = config.get("format_version") if isinstance(config, dict) else None
    if version == LEGACY_VERSION and found == FORMAT_VERSION:
        raise InvalidFileError(
            f"{MANIFEST} is missing from the model folder {str(folder)!r} (its {CONFIG} is of format {found}, which is "
            f"saved with one): the folder was copied incompletely or edited. Copy the whole folder, or save the model "
            "again.",
            path=folder / MANIFEST,
        )
    if isinstance(config, dict) and "format_version" in config and found != version:
        kind = "with" if version == FORMAT_VERSION else "without"
        raise InvalidFileError(
            f"Model format {found!r} is not supported in a folder {kind} {MANIFEST} (expected {version}); save the "
            "model again with this version of scmatch.",
            path=folder / CONFIG,
        )
    required = _REQUIRED | ({"weights_sha256"} if version == LEGACY_VERSION else set())
    check_config(config, folder, required=required)
    return config


def _verify_legacy(config: dict, folder: Path) -> list[str]:
    """Verify the checksums a legacy config.json holds; returns the names of the further files."""
    listed = config.get(FILES, {})
    valid = isinstance(listed, dict) and all(
        isinstance(name, str)
        and Path(name).name == name
        and name not in (CONFIG, WEIGHTS, MANIFEST, "", ".", "..")
        and isinstance(digest, str)
        for name, digest in listed.items()
    )
    if not valid or not isinstance(config["weights_sha256"], str):
        raise InvalidFileError(
            f"{CONFIG} in {str(folder)!r} has invalid fields ['{FILES}']; it was edited or damaged. Save the model "
            "again.",
            path=folder / CONFIG,
        )
    for name, digest in {WEIGHTS: config["weights_sha256"], **listed}.items():
        if not (folder / name).is_file() or file_sha256(folder / name) != digest:
            raise InvalidFileError(
                f"{name} in {str(folder)!r} is missing or does not match the checksum in {CONFIG}: the file was "
                "changed or corrupted. Save the model again.",
                path=folder / name,
            )
    return sorted(listed)
