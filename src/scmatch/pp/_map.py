"""Apply a reference's fitted recipe to new cells: the ``reference=`` path of the recipes."""

from __future__ import annotations

from typing import Any

import numpy as np
from anndata import AnnData
from mudata import MuData

from .._utils import _check_counts, _check_finite, _get_matrix, _get_modality, logger
from ._project import LOADINGS, RECIPE_KEY, RecipeState, resolve_reference
from ._utils import _check_nonnegative, _target, _where

#: the ``.var`` column that marks the features entering the embedding, per recipe
USED_COLUMN = {"rna": "highly_variable", "atac": "highly_accessible"}


def map_onto_reference(
    data: AnnData | MuData,
    reference: Any,
    *,
    recipe: str,
    mod: str | None,
    layer: str | None,
    copy: bool,
) -> AnnData | MuData | None:
    """Project the counts of ``data`` (modality ``mod``) into the space a recipe fitted on ``reference``.

    Everything is computed before anything is written, so a refusal leaves ``data`` untouched.
    """
    adata = _get_modality(data, mod)
    state = resolve_reference(reference, recipe=recipe, mod=mod)
    counts = _get_matrix(adata, layer=layer)
    what = f"The matrix in {_where(layer)}"
    if recipe == "protein":
        _check_finite(counts, what=what)
        _check_nonnegative(counts, what=what)
    else:
        _check_counts(counts, what=what)
    projection = state.project(counts, adata.var_names, what="the query")
    return write_projection(data, mod, copy, counts, state, projection)


def write_projection(data, mod, copy, counts, state: RecipeState, projection) -> AnnData | MuData | None:
    """Write a projection into ``data`` (or a copy): counts layer, ``.X``, embedding, loadings and the record."""
    returned, adata = _target(data, mod, copy)
    if "counts" not in adata.layers:
        adata.layers["counts"] = counts.copy()
    adata.X = projection.X
    if state.recipe in USED_COLUMN:
        adata.var[USED_COLUMN[state.recipe]] = projection.used
    dtype = np.float64 if state.recipe == "atac" else np.float32
    adata.obsm[state.obsm_key] = projection.embedding.astype(dtype)
    position = state.features.tolist()
    index = {name: i for i, name in enumerate(position)}
    rows = np.array([index.get(str(name), -1) for name in adata.var_names])
    loadings = np.zeros((adata.n_vars, state.n_comps))
    loadings[rows >= 0] = state.loadings[rows[rows >= 0]]
    adata.varm[LOADINGS[state.recipe]] = loadings
    adata.varm.pop(RECIPE_KEY, None)  # a state of the query's own earlier fit would now be stale
    adata.uns[RECIPE_KEY] = {
        "recipe": state.recipe,
        "obsm_key": state.obsm_key,
        "fingerprint": state.fingerprint,
        "projected": {k: v for k, v in projection.report.items() if k != "fingerprint"},
    }
    logger.info(
        "projected %d cells onto the reference's %s space (fingerprint %s)",
        adata.n_obs,
        state.obsm_key,
        state.fingerprint,
    )
    return returned
