"""Saving and loading models: a JSON config plus a torch state_dict, never pickled objects."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from .._atomic import atomic_dir

FORMAT_VERSION = 1
CONFIG, WEIGHTS = "config.json", "model.pt"
#: config.json field with the sha256 of each further file of the model folder (written by ``extra_files``)
FILES = "files_sha256"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_model(
    path: str | Path,
    *,
    params: dict,
    state: dict,
    extra: dict,
    overwrite: bool = False,
    extra_files: Callable[[Path], Iterable[str]] | None = None,
) -> None:
    """Write a model folder at ``path`` in one step: ``model.pt``, any further files, and ``config.json``.

    Every file is written into a new temporary folder beside ``path``, which takes the place of ``path`` only
    once it is complete (:func:`scmatch._atomic.atomic_dir`): a save that is interrupted or fails leaves
    ``path`` as it was (a previous model there still loads), and no temporary folder behind.

    Parameters
    ----------
    path
        The model folder. It may not exist yet (missing parent folders are created), be an empty folder, or,
        with ``overwrite=True``, hold a saved model and nothing else. A folder holding other files is refused,
        so a save never mixes its files with others or deletes them.
    params
        The model's settings, stored as ``config.json["params"]``.
    state
        The ``state_dict``, written to ``model.pt`` (tensors moved to the CPU).
    extra
        Further ``config.json`` fields (JSON-serialisable).
    overwrite
        Replace a model saved at ``path``. The swap takes two renames (see :func:`scmatch._atomic.atomic_dir`):
        a process killed between them leaves the old model complete in a hidden ``.{name}.old-<random>``
        folder beside ``path``.
    extra_files
        Writer of further files of the model (e.g. preprocessing): called with the temporary folder once
        ``model.pt`` is in it, it writes its files directly into that folder and returns their names. Their
        sha256 checksums are stored as ``config.json["files_sha256"]`` (``{name: sha256}``) and verified by
        :func:`load_model`. Every file it writes must be named; ``config.json`` and ``model.pt`` are reserved.

    Raises
    ------
    ValueError
        ``path`` exists and is not a folder; holds a saved model and ``overwrite=False``; or is a non-empty
        folder that is not (only) a saved model. Nothing is written then.
    """
    path = Path(path)
    _check_target(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(path, overwrite=overwrite) as tmp:
        torch.save({k: v.detach().cpu() for k, v in state.items()}, tmp / WEIGHTS)
        config = {"format_version": FORMAT_VERSION, "params": params, "weights_sha256": _sha256(tmp / WEIGHTS)}
        if extra_files is not None:
            config[FILES] = _written(tmp, extra_files(tmp))
        config.update(extra)
        (tmp / CONFIG).write_text(json.dumps(config, indent=2))


def _check_target(path: Path, *, overwrite: bool) -> None:
    """Refuse, before anything is written, a ``path`` that :func:`save_model` must not write or replace."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{str(path)!r} exists and is not a directory; choose a directory path.")
    if not path.is_dir():
        return
    contents = sorted(item.name for item in path.iterdir())
    model = _model_files(path)
    if model is not None and not overwrite:
        raise ValueError(f"A model is already saved in {str(path)!r}; pass `overwrite=True` to replace it.")
    others = [name for name in contents if model is None or name not in model]
    if others:
        raise ValueError(
            f"{str(path)!r} is a folder that holds files other than a saved scmatch model (e.g. {others[:5]}); "
            "choose another path (a new or empty folder), so that no file is mixed in or deleted."
        )


def _model_files(path: Path) -> set[str] | None:
    """Names of the files of the model saved in folder ``path``; None when it holds no ``config.json``.

    These are ``config.json``, ``model.pt`` and the files listed in ``config.json["files_sha256"]`` (if the
    config can be read: a damaged model may still be replaced).
    """
    if not (path / CONFIG).is_file():
        return None
    try:
        config = json.loads((path / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        config = {}
    listed = config.get(FILES) if isinstance(config, dict) else None
    return {CONFIG, WEIGHTS} | (
        {name for name in listed if isinstance(name, str)} if isinstance(listed, dict) else set()
    )


def _written(folder: Path, names: Iterable[str]) -> dict[str, str]:
    """``{name: sha256}`` of the files an ``extra_files`` writer wrote into ``folder``, checked against the folder."""
    names = [str(name) for name in names]
    bad = [name for name in names if name in (CONFIG, WEIGHTS) or Path(name).name != name]
    if bad:
        raise ValueError(
            f"`extra_files` returned {bad}: names of files directly in the folder, other than {CONFIG} and {WEIGHTS}."
        )
    missing = [name for name in names if not (folder / name).is_file()]
    unnamed = sorted(item.name for item in folder.iterdir() if item.name not in {WEIGHTS, *names})
    if missing or unnamed:
        raise ValueError(
            f"`extra_files` must return the name of every file it writes: named but not written {missing}, written "
            f"but not named {unnamed}."
        )
    return {name: _sha256(folder / name) for name in sorted(names)}


def load_model(path: str | Path) -> tuple[dict, dict, dict]:
    """Read and verify a saved model; returns (params, state_dict, extra).

    ``extra`` holds the other ``config.json`` fields. The checksums of ``model.pt`` and of every file listed in
    ``config.json["files_sha256"]`` are verified.
    """
    path = Path(path)
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        raise ValueError(f"{str(path)!r} is not a saved scmatch model: it needs {CONFIG} and {WEIGHTS}.")
    try:
        config = json.loads((path / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{CONFIG} in {str(path)!r} is corrupted ({err}); save the model again.") from err
    required = {"format_version", "params", "weights_sha256", "n_features", "temperature", "history", "feature_names"}
    if not isinstance(config, dict) or not required <= set(config):
        raise ValueError(f"{CONFIG} in {str(path)!r} lacks required fields {sorted(required)}; save the model again.")
    if config["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"Model format {config['format_version']} is not supported (expected {FORMAT_VERSION}); save the model "
            "again with this version of scmatch."
        )
    if _sha256(path / WEIGHTS) != config["weights_sha256"]:
        raise ValueError(
            f"{WEIGHTS} in {str(path)!r} does not match the checksum in {CONFIG}: the file was changed or "
            "corrupted. Save the model again."
        )
    _check_fields(config, path)
    for name, digest in config.get(FILES, {}).items():
        if not (path / name).is_file() or _sha256(path / name) != digest:
            raise ValueError(
                f"{name} in {str(path)!r} is missing or does not match the checksum in {CONFIG}: the file was "
                "changed or corrupted. Save the model again."
            )
    try:
        state = torch.load(path / WEIGHTS, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for bad archives; its full message is chained
        raise ValueError(
            f"{WEIGHTS} in {str(path)!r} cannot be read as plain weights ({type(err).__name__}): it is damaged or "
            "holds other objects, which are never unpickled. Save the model again."
        ) from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{WEIGHTS} in {str(path)!r} does not hold a state_dict of tensors; save the model again.")
    extra = {k: v for k, v in config.items() if k not in {"format_version", "params", "weights_sha256"}}
    return config["params"], state, extra


def _check_fields(config: dict, path: Path) -> None:
    """Refuse a config.json whose fields have the wrong shape (edited by hand or damaged)."""

    def names(value) -> bool:
        return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))

    checks = {
        "params": isinstance(config["params"], dict),
        "n_features": isinstance(config["n_features"], list)
        and len(config["n_features"]) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in config["n_features"]),
        "temperature": isinstance(config["temperature"], dict)
        and {"softmax", "sinkhorn"} <= set(config["temperature"])
        and all(isinstance(t, int | float) and t > 0 for t in config["temperature"].values()),
        "history": isinstance(config["history"], dict),
        "feature_names": isinstance(config["feature_names"], list)
        and len(config["feature_names"]) == 2
        and all(names(v) for v in config["feature_names"]),
        FILES: isinstance(config.get(FILES, {}), dict)
        and all(
            isinstance(name, str)
            and Path(name).name == name
            and name not in (CONFIG, WEIGHTS)
            and isinstance(digest, str)
            for name, digest in config.get(FILES, {}).items()
        ),
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise ValueError(
            f"{CONFIG} in {str(path)!r} has invalid fields {bad}; it was edited or damaged. Save the model again."
        )
