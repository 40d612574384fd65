"""Do the reference, the model and the query live in the same embedding space? Checks and the one-call projection.

Each scmatch.pp recipe writes a fingerprint of its fitted state next to its ``.obsm`` key. A query whose
fingerprint differs from the reference's (or from the one the model was trained on) was preprocessed on its own:
its PCA/LSI axes are unrelated to the reference's, and matching it would give confident, meaningless probabilities.
These helpers refuse it with the fix, project raw counts through a model's bundled preprocessing, and attach the
reference's preprocessing to a model trained through :func:`scmatch.tl.match_modalities`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anndata import AnnData

from .._utils import _check_counts, _check_finite, _get_matrix, logger
from ..pp._map import write_projection
from ..pp._project import RECIPE_KEY, Projection, RecipeState, recorded_fingerprint
from ..pp._utils import _check_nonnegative


@dataclass
class PendingProjection:
    """Counts of one modality projected through a model's preprocessing, to be written with the results."""

    mod: str
    counts: Any
    state: RecipeState
    projection: Projection


def _fix(state_recipe: str | None, mod: str, source: str) -> str:
    recipe = f"scmatch.pp.recipe_{state_recipe}" if state_recipe else "the same scmatch.pp recipe"
    return f"{recipe}(mdata, mod={mod!r}, reference={source})"


def check_same_space(query: AnnData, key: str, expected: str | None, *, mod: str, against: str, source: str) -> None:
    """Refuse ``query.obsm[key]`` when its recipe fingerprint differs from ``expected`` (the reference's or model's).

    A representation without a fingerprint (the user's own) is accepted with a logged note; so is any query when
    ``expected`` is None (nothing to compare with).
    """
    found = recorded_fingerprint(query, key)
    if expected is None:
        return
    if found is None:
        logger.info(
            "mdata[%r].obsm[%r] carries no scmatch.pp fingerprint (a representation of your own): it is used as "
            "is, without checking that it lives in the space of %s.",
            mod,
            key,
            against,
        )
        return
    if found != expected:
        record = query.uns.get("scmatch_recipe", {})
        raise ValueError(
            f"mdata[{mod!r}].obsm[{key!r}] comes from a different fit of the preprocessing than {against} "
            f"(fingerprint {found}, expected {expected}): the query was preprocessed on its own, so its axes are "
            "unrelated to the reference's and any match would be meaningless. Project the query's counts into the "
            f"reference's space instead: {_fix(record.get('recipe'), mod, source)}."
        )


def verify_reference(adata: AnnData, key: str, *, mod: str) -> None:
    """Refuse a reference whose recipe state no longer matches its data, as ``recipe_*(..., reference=...)`` does.

    Comparing recorded fingerprints is not enough: a reference changed after its recipe ran (genes subset, PCA
    rerun, loadings edited) still carries the old fingerprint, which a query projected from it before the change
    matches. The reference's stored state is rebuilt from its data and checked against the fingerprint
    (:meth:`scmatch.pp._project.RecipeState.from_adata`). A representation of the user's own (no recipe record),
    a reference that was itself projected, or one that stores no state (an older scmatch) has nothing to check.
    """
    record = adata.uns.get(RECIPE_KEY)
    if recorded_fingerprint(adata, key) is None or not isinstance(record, dict):
        return
    if "projected" in record or "state" not in record:
        return
    recipe = str(record.get("recipe"))
    try:
        RecipeState.from_adata(adata, recipe=recipe, what=f"the reference's modality {mod!r}")
    except ValueError as err:
        raise ValueError(
            f"{err} Then project the query onto it again: {_fix(recipe, mod, 'reference')}; a query projected "
            "before the change lives in the old space."
        ) from err


def plan_projection(adata: AnnData, state: RecipeState, *, mod: str) -> PendingProjection:
    """Project the raw counts of a modality (``.layers['counts']`` if present, else ``.X``) through ``state``."""
    layer = "counts" if "counts" in adata.layers else None
    counts = _get_matrix(adata, layer=layer)
    where = ".layers['counts']" if layer else ".X"
    what = f"mdata[{mod!r}]'s counts ({where})"
    if state.recipe == "protein":
        _check_finite(counts, what=what)
        _check_nonnegative(counts, what=what)
    else:
        try:
            _check_counts(counts, what=what)
        except ValueError as err:
            raise ValueError(
                f"mdata[{mod!r}] has no `.obsm[{state.obsm_key!r}]`, so the model would preprocess its raw counts, "
                f"but {err} Keep the raw counts in `.X` or `.layers['counts']`."
            ) from err
    projection = state.project(counts, adata.var_names, what=f"mdata[{mod!r}]")
    logger.info("mdata[%r] has no .obsm[%r]: projecting its counts with the model's preprocessing", mod, state.obsm_key)
    return PendingProjection(mod=mod, counts=counts, state=state, projection=projection)


def write_pending(target, pending: list[PendingProjection]) -> None:
    """Write the projections planned for ``target`` (a MuData), as ``recipe_*(..., reference=model)`` would."""
    for item in pending:
        write_projection(target, item.mod, False, item.counts, item.state, item.projection)


def reference_state(adata: AnnData, key: str, *, mod: str) -> tuple[RecipeState | None, str | None]:
    """The recipe state and fingerprint behind a reference's ``.obsm[key]``; (None, fingerprint-or-None) if no state."""
    fingerprint = recorded_fingerprint(adata, key)
    if fingerprint is None:
        return None, None
    try:
        state = RecipeState.from_adata(adata, what=f"the reference's modality {mod!r}")
    except ValueError as err:
        logger.info("the model will not carry the preprocessing of modality %r: %s", mod, err)
        return None, fingerprint
    state.modality = mod
    return state, fingerprint
