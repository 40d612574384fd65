"""A saved model carries its reference's preprocessing: plain arrays (``.npz``) and JSON, never pickle.

With them a loaded model can take a new experiment's raw counts and project them into the space it was trained in
(:func:`scmatch.tl.match_modalities` with ``model=``, or ``scmatch.pp.recipe_*(query, reference=model)``).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from anndata import AnnData

from .._errors import InvalidFileError
from ..io._h5 import MAX_EXPANSION, SLACK_BYTES
from ..pp._project import COLUMNS, OPTIONAL_COLUMNS, RECIPES, SCALARS, RecipeState
from ._manifest import read_json

#: the two files of a model folder that hold the preprocessing (listed, with checksums, in config.json)
PREPROCESSING_JSON, PREPROCESSING_NPZ = "preprocessing.json", "preprocessing.npz"
#: preprocessing.json describes two modalities in a few hundred bytes
MAX_META_BYTES = 1 << 20
#: the preprocessing's arrays, all together, hold at most this many bytes (a million peaks x 500 components)
MAX_ARRAY_BYTES = 4 << 30
#: the values the recipes' numeric settings may take (the booleans any value of their type)
_ANY = lambda v: True
_DOMAINS = {"target_sum": lambda v: v > 0, "scale_factor": lambda v: v > 0, "axis": lambda v: v in (0, 1)}


def states_from_adatas(preprocessing: Any, *, n_features: tuple[int, int], fingerprints: tuple) -> tuple:
    """The recipe states of a ``(mod1 AnnData, mod2 AnnData)`` pair, checked against the fitted model."""
    if not (isinstance(preprocessing, tuple | list) and len(preprocessing) == 2):
        raise TypeError(
            "`preprocessing` must be a pair (mod1, mod2) of AnnData processed by the scmatch.pp recipes (the "
            f"reference the model was trained on), e.g. (ref['rna'], ref['adt']); got {type(preprocessing).__name__}."
        )
    states = []
    for m, (adata, n, expected) in enumerate(zip(preprocessing, n_features, fingerprints, strict=True), start=1):
        if adata is None:
            states.append(None)
            continue
        if not isinstance(adata, AnnData):
            raise TypeError(f"`preprocessing[{m - 1}]` must be an AnnData or None, got {type(adata).__name__}.")
        state = RecipeState.from_adata(adata, what=f"`preprocessing[{m - 1}]`")
        if state.n_comps != n:
            raise ValueError(
                f"`preprocessing[{m - 1}]` makes {state.n_comps}-dimensional embeddings but the model's mod{m} input "
                f"has {n} features; pass the reference the model was trained on."
            )
        if expected is not None and state.fingerprint != expected:
            raise ValueError(
                f"`preprocessing[{m - 1}]` is not the fit the model was trained on (fingerprint {state.fingerprint}, "
                f"expected {expected}); pass the reference the model was trained on."
            )
        states.append(state)
    return tuple(states)


def writer(states: tuple):
    """An ``extra_files`` writer for :func:`scmatch.model._persist.save_model`; None when there is nothing to write."""
    if all(state is None for state in states):
        return None

    def write(folder: Path) -> list[str]:
        metas, arrays = [], {}
        for m, state in enumerate(states, start=1):
            if state is None:
                metas.append(None)
                continue
            meta, parts = state.to_files()
            metas.append(meta)
            arrays |= {f"mod{m}_{name}": value for name, value in parts.items()}
        (folder / PREPROCESSING_JSON).write_text(json.dumps({"format_version": 1, "modalities": metas}, indent=2))
        with open(folder / PREPROCESSING_NPZ, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return [PREPROCESSING_JSON, PREPROCESSING_NPZ]

    return write


def read_states(path: str | Path, files: list[str], *, n_features: tuple[int, int], fingerprints: tuple) -> tuple:
    """The preprocessing saved with a model (checksums already verified), or ``(None, None)`` when none was.

    Its structure is checked against the model before any state is built: two modalities (each described or
    None), a known recipe with its settings, exactly the arrays that recipe keeps, with consistent shapes, the
    right dtypes and finite values, as many components as the model's input has features, and the fingerprint the
    model was trained on.

    Raises
    ------
    InvalidFileError
        Naming the file and what is wrong with it.
    """
    folder = Path(path)
    if PREPROCESSING_JSON not in files and PREPROCESSING_NPZ not in files:
        return None, None
    if not {PREPROCESSING_JSON, PREPROCESSING_NPZ} <= set(files):
        raise _refuse(folder, PREPROCESSING_JSON, f"comes without {PREPROCESSING_NPZ} (or the reverse)")
    meta = read_json(folder / PREPROCESSING_JSON, max_bytes=MAX_META_BYTES, folder=folder)
    items = meta.get("modalities") if isinstance(meta, dict) else None
    if not isinstance(items, list) or len(items) != 2 or meta.get("format_version") != 1:
        raise _refuse(folder, PREPROCESSING_JSON, "must describe two modalities (format 1), one per model input")
    arrays = read_npz(folder / PREPROCESSING_NPZ, folder=folder)
    states, expected = [], set()
    for m, item in enumerate(items, start=1):
        if item is None:
            states.append(None)
            continue
        parts = _check_item(item, arrays, m=m, n_comps=n_features[m - 1], folder=folder)
        expected |= {f"mod{m}_{name}" for name in parts}
        try:
            state = RecipeState.from_files(item, parts)
        except (ValueError, KeyError, TypeError) as err:
            raise _refuse(folder, PREPROCESSING_NPZ, f"does not match {PREPROCESSING_JSON} for mod{m} ({err})") from err
        if fingerprints[m - 1] is not None and state.fingerprint != fingerprints[m - 1]:
            raise _refuse(
                folder,
                PREPROCESSING_JSON,
                f"holds the mod{m} preprocessing of another fit (fingerprint {state.fingerprint}) than the one the "
                f"model was trained on ({fingerprints[m - 1]})",
            )
        states.append(state)
    unexpected = sorted(set(arrays) - expected)
    if unexpected:
        raise _refuse(folder, PREPROCESSING_NPZ, f"holds arrays no modality describes: {unexpected[:5]}")
    return tuple(states)


def _refuse(folder: Path, file: str, problem: str) -> InvalidFileError:
    return InvalidFileError(
        f"{file} in {str(folder)!r} {problem}; it was edited or damaged. Save the model again.", path=folder / file
    )


def _check_item(item: Any, arrays: dict[str, np.ndarray], *, m: int, n_comps: int, folder: Path) -> dict:
    """The arrays of modality ``m``'s recipe, checked: names, dtypes, shapes (``n_comps`` components), finite."""
    recipe = item.get("recipe") if isinstance(item, dict) else None
    if (
        recipe not in RECIPES
        or not isinstance(item.get("obsm_key"), str)
        or not isinstance(item.get("fingerprint"), str)
    ):
        raise _refuse(folder, PREPROCESSING_JSON, f"has an invalid mod{m} entry (recipe {recipe!r})")
    scalars = item.get("scalars")
    if not isinstance(scalars, dict) or set(scalars) != set(SCALARS[recipe]):
        raise _refuse(folder, PREPROCESSING_JSON, f"has invalid mod{m} settings for recipe_{recipe}")
    for name, kind in SCALARS[recipe].items():
        value = scalars[name]
        valid = (
            isinstance(value, bool) if kind is bool else isinstance(value, int | float) and not isinstance(value, bool)
        )
        if not valid or (kind is not bool and not np.isfinite(value)) or not _DOMAINS.get(name, _ANY)(value):
            raise _refuse(folder, PREPROCESSING_JSON, f"has an invalid mod{m} setting {name}={value!r}")
    names = ["features", "loadings", *(f"vector_{k}" for k in COLUMNS[recipe])]
    parts = {name: arrays.get(f"mod{m}_{name}") for name in names}
    features = parts["features"]
    for k in OPTIONAL_COLUMNS:  # a model saved before the vector existed: zeros, as RecipeState reads it
        if f"vector_{k}" in parts and parts[f"vector_{k}"] is None and features is not None and features.ndim == 1:
            parts[f"vector_{k}"] = np.zeros(features.shape[0])
    missing = [f"mod{m}_{name}" for name, value in parts.items() if value is None]
    if missing:
        raise _refuse(folder, PREPROCESSING_NPZ, f"lacks the arrays {missing} of recipe_{recipe}")
    features = parts["features"]
    n = features.shape[0] if features.ndim == 1 else -1
    if features.dtype.kind != "U" or n < 1:
        raise _refuse(folder, PREPROCESSING_NPZ, f"holds invalid mod{m} feature names (dtype {features.dtype})")
    shapes = {name: (n, n_comps) if name == "loadings" else (n,) for name in names[1:]}
    for name, shape in shapes.items():
        value = parts[name]
        if value.dtype != np.float64 or value.shape != shape or not np.isfinite(value).all():
            raise _refuse(
                folder,
                PREPROCESSING_NPZ,
                f"holds mod{m}_{name} of shape {value.shape} and dtype {value.dtype}, but the model needs finite "
                f"float64 of shape {shape} ({n} features, {n_comps} components: the model's mod{m} input)",
            )
    return parts


def read_npz(path: Path, *, folder: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz``, each one's header checked before it is read.

    Plain dtypes only (no objects, never unpickled), and no more bytes than its entry holds
    (:data:`MAX_ARRAY_BYTES` in all), so nothing allocates without bound.
    """
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as handle:
                    version = np.lib.format.read_magic(handle)
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(handle)
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                total += nbytes
                if dtype.hasobject or nbytes > info.file_size or total > MAX_ARRAY_BYTES:
                    raise ValueError(f"entry {info.filename!r} claims {nbytes} bytes of dtype {dtype}")
                if info.file_size > MAX_EXPANSION * info.compress_size + SLACK_BYTES:
                    raise ValueError(f"entry {info.filename!r} claims {info.file_size} bytes in {info.compress_size}")
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except Exception as err:  # zipfile, numpy's header parser and zlib raise many types for a damaged file
        raise _refuse(folder, path.name, f"cannot be read as plain arrays ({type(err).__name__}: {err})") from err
