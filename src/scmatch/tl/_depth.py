"""Each cell's sequencing depth as one more input of the networks (``tl.match_modalities(depth=...)``).

In a co-assay both profiles come from one cell or nucleus, and how much each assay captured from it goes together:
a large, well-lysed nucleus gives many RNA molecules *and* many ATAC fragments. The recipes normalise depth away
(counts per cell, TF-IDF, and the ATAC component that tracks depth is dropped), so the networks cannot use it. Here
each modality's input gets one more column, the cell's log total count, standardised among the cells of its own set
(the reference pairs on theirs, the query on its own, so that an experiment sequenced deeper is not out of range)
and scaled like an average input feature. The networks learn from the reference pairs how much to trust it.

``depth="auto"`` adds it when one modality holds chromatin accessibility and the reference pairs' log depths
correlate at least :data:`MIN_DEPTH_CORRELATION`. Where they do not (cells measured apart, or totals that say little
of the cell) the column would be noise; and on CITE-seq the relation seen on the reference did not hold for another
donor's cells, so protein counts are left out (docs/atac.md, benchmarks/README.md, Depth). The model keeps what it
was trained with (``model.depth_``, saved by :meth:`~scmatch.model.MatchModel.save`), and a fitted or loaded model
trained with it reads the depth of every cell it matches from the counts (``.layers['counts']``, else ``.X``).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from mudata import MuData

from .._utils import logger
from ..links._peaks import is_peaks
from ..links._profiles import counts_of

#: smallest correlation of the reference pairs' log depths with which ``depth="auto"`` uses them: Cohen's
#: conventional "small" effect size for a correlation, not tuned on the benchmark sets
MIN_DEPTH_CORRELATION = 0.1
#: the name of the depth column where the inputs' columns are named
DEPTH_FEATURE = "log_depth"
#: fewest cells whose own depth statistics standardise a set; smaller queries use the reference's
MIN_CELLS_FOR_STATS = 10


def log_depth(adata, *, what: str) -> np.ndarray:
    """Each cell's ``log1p`` total count, from ``.layers['counts']`` if present, else ``.X`` (checked as counts)."""
    X = counts_of(adata, what=what)
    return np.log1p(np.asarray(X.sum(axis=1, dtype=np.float64)).ravel())


def plan_depth(setting, mdata: MuData, inputs, *, mods: tuple[str, str], model):
    """The inputs with the depth column added where it is used, and the report for ``uns[key]["depth"]``.

    Decides (and refuses) before any training. For a model trained in this call the decision is recorded on it
    (``model.depth_`` is set by :func:`record_depth` once it is fitted).
    """
    if setting not in ("auto", True, False, None):
        raise TypeError(f"`depth` must be 'auto', True, False or None, got {setting!r}.")
    fitted = model.module_ is not None
    carried = getattr(model, "depth_", None) if fitted else None
    if fitted:
        if carried is None:
            if setting is True:
                raise ValueError(
                    "`depth=True` needs a model trained with the depth column, and this fitted model was trained "
                    "without it. Pass `depth='auto'` (or None), or an unfitted model."
                )
            return inputs, {"used": False, "reason": "the fitted model was trained without it"}
        if setting is False or setting is None:
            raise ValueError(
                "This fitted model reads each cell's sequencing depth as one of its inputs (`model.depth_`), so "
                "`depth` cannot be switched off for it. Pass `depth='auto'`, or train a model with `depth=None`."
            )
    elif setting is False or setting is None:
        return inputs, {"used": False, "reason": f"depth={setting}"}
    if setting == "auto" and carried is None and not any(_is_chromatin(mdata[mod]) for mod in mods):
        return inputs, {"used": False, "reason": "no chromatin modality"}
    depths = _depths(mdata, inputs, mods=mods, required=setting is True or carried is not None)
    if depths is None:
        return inputs, {"used": False, "reason": "no raw counts in one of the modalities"}
    ref_depth, full_depth = depths
    correlation = pair_correlation(*ref_depth)
    if carried is None and setting == "auto" and not correlation >= MIN_DEPTH_CORRELATION:
        logger.info(
            "depth: the reference pairs' log depths correlate %.3f (< %.2f); not used", correlation,
            MIN_DEPTH_CORRELATION,
        )  # fmt: skip
        return inputs, {"used": False, "reason": "weak correlation", "correlation": correlation}
    scales = (
        tuple(carried["scale"]) if carried is not None else (feature_scale(inputs.ref1), feature_scale(inputs.ref2))
    )
    augmented, centres, spreads = _augmented(inputs, ref_depth, full_depth, scales, carried)
    logger.info("depth: the reference pairs' log depths correlate %.3f; each cell's depth is an input", correlation)
    report = {
        "used": True,
        "correlation": correlation,
        "scale": [float(s) for s in scales],
        "reference_mean": centres,
        "reference_sd": spreads,
    }
    if carried is not None:
        report["source"] = "model"
    return augmented, report


def record_depth(model, report: dict) -> None:
    """Keep on a model trained in this call what its depth column was; a model trained without it keeps None."""
    if report.get("used") and report.get("source") != "model":
        model.depth_ = {key: report[key] for key in ("scale", "correlation", "reference_mean", "reference_sd")}


def strip_depth(model, names: list[str] | None, n_fitted: int) -> tuple[list[str] | None, int]:
    """The fitted model's representation columns without its depth column, if it has one."""
    if getattr(model, "depth_", None) is None:
        return names, n_fitted
    return (names[:-1] if names is not None else None), n_fitted - 1


def _depths(mdata: MuData, inputs, *, mods: tuple[str, str], required: bool):
    """The reference pairs' log depths and every matched cell's, per modality; None where counts are missing."""
    ref_depth, full_depth = [], []
    pairs = inputs.ref_pairs
    for k, mod in enumerate(mods):
        try:
            full = log_depth(mdata[mod], what=f"mdata[{mod!r}]")
            ref_ad = inputs.ref_adatas[k]
            ref = full if ref_ad is mdata[mod] else log_depth(ref_ad, what=f"reference[{mod!r}]")
        except ValueError as err:
            if required:
                raise ValueError(
                    f"The depth column needs each cell's raw counts: {err} Keep the counts in "
                    "`.layers['counts']` (the scmatch.pp recipes do), or pass `depth=None`."
                ) from err
            logger.info("depth: not used (%s)", err)
            return None
        ref_depth.append(ref[pairs[k]])
        full_depth.append(full)
    return tuple(ref_depth), tuple(full_depth)


def _is_chromatin(adata) -> bool:
    """Whether ``adata`` holds chromatin accessibility: preprocessed by ``recipe_atac``, or features named as peaks."""
    recipe = adata.uns.get("scmatch_recipe")
    return (isinstance(recipe, dict) and recipe.get("recipe") == "atac") or is_peaks(adata)


def pair_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """The Pearson correlation of the pairs' log depths (0 for fewer than 3 pairs or a constant side)."""
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def feature_scale(X) -> float:
    """The root mean variance of the representation's columns: the depth column gets that standard deviation."""
    X = np.asarray(X, dtype=np.float64)
    return float(np.sqrt(max(np.mean(X.var(axis=0)), 1e-12)))


def centre_spread(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation (1 where the values do not vary)."""
    sd = float(values.std()) if len(values) else 0.0
    return (float(values.mean()) if len(values) else 0.0), (sd if sd > 0 else 1.0)


def _augmented(inputs, ref_depth, full_depth, scales, carried) -> tuple:
    """``inputs`` with one more column per modality, and the reference's centre and spread of each log depth.

    The column is the standardised log depth times the modality's scale.
    """
    new, centres, spreads = {}, [], []
    for k, side in enumerate((1, 2)):
        if len(ref_depth[k]) >= MIN_CELLS_FOR_STATS or carried is None:
            centre, spread = centre_spread(ref_depth[k])
        else:  # a fitted model matching with few or no reference pairs: the statistics of its training pairs
            centre, spread = carried["reference_mean"][k], carried["reference_sd"][k]
        mask = inputs.query_masks[k]
        query = full_depth[k][mask]
        q_centre, q_spread = centre_spread(query) if len(query) >= MIN_CELLS_FOR_STATS else (centre, spread)
        column = (full_depth[k] - centre) / spread  # cells outside the query: the reference's statistics
        column[mask] = (query - q_centre) / q_spread
        full = _with_column(getattr(inputs, f"full{side}"), column * scales[k])
        new[f"full{side}"], new[f"query{side}"] = full, full[mask]
        new[f"ref{side}"] = _with_column(getattr(inputs, f"ref{side}"), (ref_depth[k] - centre) / spread * scales[k])
        names = getattr(inputs, f"names{side}")
        new[f"names{side}"] = None if names is None else [*names, DEPTH_FEATURE]
        centres.append(centre)
        spreads.append(spread)
    return dataclasses.replace(inputs, **new), centres, spreads


def _with_column(X, column: np.ndarray) -> np.ndarray:
    X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
    return np.hstack([X, column[:, None].astype(X.dtype if X.dtype.kind == "f" else np.float32)])
