"""A saved model carries its reference's preprocessing: plain arrays (``.npz``) and JSON, never pickle.

With them a loaded model can take a new experiment's raw counts and project them into the space it was trained in
(:func:`scmatch.tl.match_modalities` with ``model=``, or ``scmatch.pp.recipe_*(query, reference=model)``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from anndata import AnnData

from ..pp._project import RecipeState

#: the two files of a model folder that hold the preprocessing (listed, with checksums, in config.json)
PREPROCESSING_JSON, PREPROCESSING_NPZ = "preprocessing.json", "preprocessing.npz"


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


def read_states(path: str | Path, files: dict) -> tuple:
    """The preprocessing saved with a model (checksums already verified), or ``(None, None)`` when none was."""
    path = Path(path)
    if PREPROCESSING_JSON not in files:
        return None, None
    try:
        meta = json.loads((path / PREPROCESSING_JSON).read_text())
        with np.load(path / PREPROCESSING_NPZ, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        states = []
        for m, item in enumerate(meta["modalities"], start=1):
            prefix = f"mod{m}_"
            parts = {name[len(prefix) :]: value for name, value in arrays.items() if name.startswith(prefix)}
            states.append(None if item is None else RecipeState.from_files(item, parts))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"The preprocessing saved in {str(path)!r} cannot be read ({err}); save the model again."
        ) from err
    return tuple(states)
