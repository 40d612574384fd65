"""tl.transfer_labels and tl.transfer_features: from a match to labels and features on the other modality."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData

from .._utils import _check_finite, _get_matrix, logger
from . import _held_out
from ._evaluate import checked_match
from ._held_out import enough, held_out_vote
from ._vote import (
    choose_feature_temperature,
    choose_temperature,
    choose_temperature_held_out,
    label_masses,
    normalise_rows,
    soften,
)

#: the label of target cells whose top label's confidence is below ``min_confidence``
UNASSIGNED = "unassigned"
#: features per chunk of :func:`transfer_features`: bounds the dense intermediate to (n_target x CHUNK)
FEATURE_CHUNK = 1024


@dataclass
class _Weights:
    """The match block of the target's query cells (rows) over the source's query cells, raw and row-normalised."""

    W: sp.csr_matrix  # n_target_query x n_source_query, rows sum to 1 (0 for a target cell without matches)
    B: sp.csr_matrix  # the same block of P before normalisation
    target_names: pd.Index  # obs names of the target's query cells (rows of W)
    source_names: pd.Index  # obs names of the source's query cells (columns of W)
    has_match: np.ndarray  # bool per row of W


def _match_weights(mdata: MuData, *, key: str, source: str, target: str) -> _Weights:
    """Check the match and the two modalities; return the target x source weights.

    Rows are mod1 cells and columns mod2 cells in ``obsp``: a target of ``mod2`` reads the columns of ``P``, each
    normalised to sum to one (a Sinkhorn plan's columns nearly do already; a softmax's need it).
    """
    if source == target:
        raise ValueError(
            f"`source` and `target` are both {source!r}: transfer goes from one modality to the other; pass the "
            "annotated modality as `source=` and the one to annotate as `target=`."
        )
    info, P, rows, cols = checked_match(mdata, key=key)
    mods = (info["params"]["mod1"], info["params"]["mod2"])
    for name, mod in (("source", source), ("target", target)):
        if mod not in mods:
            raise ValueError(f"`{name}={mod!r}` is not a modality of the match {key!r}, which matched {list(mods)}.")
    if target == mods[0]:  # target cells are the rows
        W, target_pos, source_pos = P, rows, cols
    else:
        W, target_pos, source_pos = sp.csr_matrix(P.T), cols, rows
    B = sp.csr_matrix(W, dtype=np.float64)
    B.eliminate_zeros()
    has_match = np.diff(B.indptr) > 0
    return _Weights(normalise_rows(B), B, mdata.obs_names[target_pos], mdata.obs_names[source_pos], has_match)


def _source_labels(mdata: MuData, labels_key: str, source: str, names: pd.Index) -> pd.Series:
    obs = mdata[source].obs
    if labels_key not in obs:
        raise ValueError(
            f"`labels_key={labels_key!r}` is not a column of mdata[{source!r}].obs; it has {list(obs.columns)}."
        )
    labels = obs[labels_key]
    if labels.isna().any():
        missing = labels.index[labels.isna().to_numpy()]
        raise ValueError(
            f"mdata[{source!r}].obs[{labels_key!r}] has {len(missing)} missing labels (e.g. {list(missing[:3])}). "
            "Give those cells a label of their own (e.g. 'unknown') or remove them before matching."
        )
    return labels.reindex(names).astype(str)


def transfer_labels(
    mdata: MuData,
    labels_key: str,
    *,
    source: str,
    target: str,
    key: str = "match",
    key_added: str | None = None,
    min_confidence: float | None = None,
    temperature: float | str = "auto",
    copy: bool = False,
) -> MuData | None:
    """Label the ``target`` cells with the labels of the ``source`` cells they match.

    For each target cell, the match probabilities over the source cells (its row of ``P`` when the target is the
    match's ``mod1``; its column of ``P`` when it is ``mod2``), softened to ``P ** (1 / temperature)`` and
    normalised to sum to one, are summed per source label; the label with the largest mass is transferred and
    that mass is its confidence, the estimated probability that the label is right. Where the match was made
    within batches, ``P`` is block-diagonal and each cell takes labels only from its own batch.

    Why soften: the matching's temperature is calibrated for finding each cell's own partner, which makes ``P``
    sharp (a few candidates carry most of a row). A label vote does better over more of the candidates: on the
    benchmark sets the sharp ``P`` gave masses far above the share of right labels (overconfident) and, on most
    of them, lower accuracy (benchmarks/README.md, Transfer). ``temperature="auto"`` chooses the softening on
    labelled cells where the match has them: the reference pairs that :func:`~scmatch.tl.match_modalities` held
    out of training (``mdata.obsp[f"{key}_held_out"]``, matched by the networks that never saw them; the true label
    of a held-out target cell is its partner's). With at least 50 of them (``tl._held_out.MIN_HELD_OUT_PAIRS``),
    the temperature of the grid (1, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50) with the smallest negative
    log-likelihood of their true labels is used (``uns[key_added]["calibration"] == "held_out"``). With
    fewer (a very small reference, or a match by a loaded model, which keeps no held-out pairs) it is chosen from
    the source labels alone, by a round trip: each source cell's labels are voted by the source cells its target
    cells match (its own share left out), and the temperature with the smallest negative log-likelihood of the
    cells' own labels is used (``"round_trip"``); a warning on the ``scmatch`` logger then says that no labelled
    cell checked the confidence.

    What the confidence means: the share of the softened match's probability that falls on the label, meant as
    the probability that the label is right. On the benchmark sets (benchmarks/README.md, Transfer; 3 seeds) the
    held-out rule gave a higher accuracy and a better log-likelihood of the query's true labels than the round
    trip on every set, the small ones included (66 to 93 held-out pairs): on the multiome starter 0.297 against
    0.270 right, NLL 2.233 against 2.643. Its expected calibration error (10 bins) is 0.034 on SNARE-seq2 (786
    held-out pairs; 0.089 by the round trip), 0.128 on totalVI's 103 cells (0.086 if calibrated,
    :func:`scmatch.metrics.ece_under_calibration`) and 0.170 on the multiome starter, where the confidence is too
    high: its ATAC cells sit confidently among RNA cells of other types, and a few dozen held-out pairs from the
    reference's own donor show only some of it (a round trip over the source labels shows none of it: 0.296). On
    the CITE-seq starter it is 0.125, with a confidence too low (mean 0.600 against 0.683 right), where the round
    trip's was within the noise. A softer vote also favours the common types: the balanced accuracy fell on CITE
    and the multiome starter as the temperature rose. Check the reliability diagram
    (:func:`scmatch.pl.confidence`) on annotated paired data of your kind before choosing ``min_confidence`` or a
    temperature.

    Only the cells of the match take part: the query cells of both modalities (every cell with
    ``reference=None``). To take labels from a saved model's reference cells, put the annotated reference cells
    in the source modality of the MuData you match with the fitted model (``match_modalities(mdata,
    model=MatchModel.load(...))`` matches every cell of both modalities). A saved model keeps weights and
    preprocessing, not the reference's cells or labels, so they cannot be read from the model itself.

    Parameters
    ----------
    mdata
        MuData on which :func:`~scmatch.tl.match_modalities` ran.
    labels_key
        Column of ``mdata[source].obs`` with the labels; it must have no missing values.
    source, target
        The annotated modality and the modality to annotate: the two modalities of the match, either way round.
    key
        ``key_added`` of the match.
    key_added
        Column written in ``mdata[target].obs``; default ``f"{labels_key}_transferred"``.
    min_confidence
        Cells whose confidence is below this get the label ``"unassigned"``; choose it from
        :func:`scmatch.pl.confidence`. ``None`` assigns every matched cell.
    temperature
        ``"auto"`` (chosen on the held-out pairs or by the round trip, above) or a number >= 1 dividing the
        exponent of the match probabilities; ``1`` votes with ``P`` as it is.
    copy
        Return a modified copy instead of writing into ``mdata``.

    Returns
    -------
    ``None``, or a copy of ``mdata`` if ``copy=True``. Written to ``mdata[target]``:

    - ``.obs[key_added]``: categorical, the transferred label (``"unassigned"`` below ``min_confidence`` or
      without any match; missing for target cells outside the match, e.g. reference cells);
    - ``.obs[f"{key_added}_confidence"]``: the mass on that label, in [0, 1] (missing outside the match; see
      above for how far it is a probability);
    - ``.obsm[f"{key_added}_probabilities"]``: DataFrame of the mass on every source label (rows of cells
      outside the match are NaN);
    - ``.uns[key_added]``: ``params`` (labels_key, source, target, key, min_confidence, temperature), the
      ``temperature`` used and, with ``"auto"``, ``calibration`` (``"held_out"`` or ``"round_trip"``) with
      ``held_out`` (the ``grid``, each temperature's ``held_out_nll`` and ``n_cells``) or ``round_trip`` (the
      ``grid`` and each temperature's ``round_trip_nll``; ``held_out_pairs`` when there were too few).

    Examples
    --------
    >>> import scmatch as scm
    >>> mdata = scm.datasets.simulate_multiome(400, n_genes=200, n_peaks=400, random_state=0)
    >>> scm.pp.recipe_rna(mdata, mod="rna", n_top_genes=150, n_comps=15)
    >>> scm.pp.recipe_atac(mdata, mod="atac", n_comps=15)
    >>> model = scm.model.MatchModel(epochs=5, n_models=1, progress_bar=False)
    >>> scm.tl.match_modalities(mdata, batch_key="batch", model=model)
    >>> scm.tl.transfer_labels(mdata, "cell_type", source="rna", target="atac", min_confidence=0.5)
    >>> mdata["atac"].obs[["cell_type_transferred", "cell_type_transferred_confidence"]].shape
    (400, 2)
    """
    if min_confidence is not None and not (0.0 <= float(min_confidence) <= 1.0):
        raise ValueError(f"`min_confidence` must be in [0, 1] or None, got {min_confidence!r}.")
    _check_temperature(temperature)
    weights = _match_weights(mdata, key=key, source=source, target=target)
    labels = _source_labels(mdata, labels_key, source, weights.source_names)
    key_added = f"{labels_key}_transferred" if key_added is None else key_added
    chosen = _auto_temperature(mdata, weights, labels, key=key, source=source, target=target, labels_key=labels_key)
    used = chosen["temperature"] if temperature == "auto" else float(temperature)
    if temperature == "auto" and chosen["record"]["calibration"] == "round_trip":
        _warn_unchecked(chosen["record"].get("held_out_pairs", 0), target=target)
    masses = label_masses(soften(weights.B, used), labels.to_numpy())
    best = masses.to_numpy().argmax(axis=1)
    confidence = np.clip(masses.to_numpy().max(axis=1), 0.0, 1.0)
    assigned = masses.columns.to_numpy()[best].astype(object)
    low = ~weights.has_match
    if min_confidence is not None:
        low |= confidence < min_confidence
    assigned[low] = UNASSIGNED
    categories = [*masses.columns, UNASSIGNED]

    # every check passed and everything is computed: only now write
    out = mdata.copy() if copy else mdata
    adata = out[target]
    column = pd.Series(pd.Categorical(assigned, categories=categories), index=weights.target_names)
    adata.obs[key_added] = column.reindex(adata.obs_names).cat.remove_unused_categories()
    adata.obs[f"{key_added}_confidence"] = pd.Series(confidence, index=weights.target_names).reindex(adata.obs_names)
    masses.index = weights.target_names
    adata.obsm[f"{key_added}_probabilities"] = masses.reindex(adata.obs_names)
    adata.uns[key_added] = {
        "params": {
            "labels_key": labels_key,
            "source": source,
            "target": target,
            "key": key,
            "min_confidence": min_confidence,
            "temperature": temperature,
        },
        "temperature": used,
        **(chosen["record"] if temperature == "auto" else {}),
    }
    return out if copy else None


def _auto_temperature(mdata, weights: _Weights, labels: pd.Series, *, key, source, target, labels_key) -> dict:
    """The vote's temperature for ``"auto"``: on the match's held-out pairs when enough, else by the round trip.

    Returns ``{"temperature", "record"}``; ``record`` is what ``uns[key_added]`` keeps of the choice.
    """
    vote = held_out_vote(mdata, key=key, source=source, target=target, labels_key=labels_key)
    if enough(vote):
        chosen = choose_temperature_held_out(vote.B, vote.source_labels, vote.truth)
        record = {"calibration": "held_out", "held_out": {k: chosen[k] for k in ("grid", "held_out_nll", "n_cells")}}
    else:
        chosen = choose_temperature(weights.B, labels.to_numpy())
        record = {"calibration": "round_trip", "round_trip": {k: chosen[k] for k in ("grid", "round_trip_nll")}}
        if vote is not None:
            record["held_out_pairs"] = len(vote.truth)  # too few (tl._held_out.MIN_HELD_OUT_PAIRS)
    return {"temperature": chosen["temperature"], "record": record}


def _warn_unchecked(n_held_out: int, *, target: str) -> None:
    """Say that the confidence was calibrated without any labelled cell, and what to do about it."""
    logger.warning(
        "transfer_labels: the confidence of the labels on %r was calibrated by the round trip, without labelled "
        "cells: the match holds %d held-out reference pairs, fewer than the %d needed to calibrate on them (a "
        "loaded model keeps none). It can be too high, most where the target is ATAC and the reference small. "
        "Check it with scm.pl.confidence on annotated paired data of your kind before choosing `min_confidence`, "
        "or match with a larger reference.",
        target,
        n_held_out,
        _held_out.MIN_HELD_OUT_PAIRS,
    )


def _check_temperature(temperature: float | str) -> None:
    if isinstance(temperature, str):
        if temperature != "auto":
            raise ValueError(f"`temperature` must be 'auto' or a number >= 1, got {temperature!r}.")
        return
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not temperature >= 1:
        raise ValueError(f"`temperature` must be 'auto' or a number >= 1, got {temperature!r}.")


def _features(adata, *, layer: str | None, features: Sequence[str] | None, source: str) -> tuple[object, pd.Index]:
    X = _get_matrix(adata, layer=layer)
    names = adata.var_names
    if features is not None:
        features = pd.Index([str(f) for f in features])
        if len(features) == 0:
            raise ValueError("`features` is empty; pass at least one feature name, or None for all.")
        missing = features[~features.isin(names)]
        if len(missing):
            raise ValueError(
                f"{len(missing)} of `features` are not in mdata[{source!r}].var_names (e.g. {list(missing[:5])})."
            )
        X = X[:, names.get_indexer(features)]
        names = features
    _check_finite(X, what=f"mdata[{source!r}]" + (f".layers[{layer!r}]" if layer else ".X"))
    return X, pd.Index(names.astype(str))


def weighted_mean_std(W: sp.spmatrix, X, *, chunk: int = FEATURE_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and standard deviation of the rows of ``X`` under each row of ``W``.

    Parameters
    ----------
    W
        ``n_target x n_source`` weights, rows summing to one (or zero).
    X
        ``n_source x n_features`` values, dense or sparse.
    chunk
        Features per step: memory beyond the result is bounded by ``n_target x chunk``.

    Returns
    -------
    ``mean = W @ X`` and ``std = sqrt(W @ X**2 - mean**2)``, dense float32 ``n_target x n_features``.
    """
    W = sp.csr_matrix(W, dtype=np.float64)
    n_features = X.shape[1]
    mean = np.empty((W.shape[0], n_features), dtype=np.float32)
    std = np.empty_like(mean)
    for start in range(0, n_features, chunk):
        block = X[:, start : start + chunk]
        block = block.toarray() if sp.issparse(block) else np.asarray(block)
        block = block.astype(np.float64)
        m = np.asarray(W @ block)
        m2 = np.asarray(W @ (block * block))
        mean[:, start : start + chunk] = m
        std[:, start : start + chunk] = np.sqrt(np.clip(m2 - m * m, 0.0, None))
    return mean, std


def transfer_features(
    mdata: MuData,
    *,
    source: str,
    target: str,
    layer: str | None = None,
    features: Sequence[str] | None = None,
    key: str = "match",
    key_added: str | None = None,
    temperature: float | str = "auto",
    copy: bool = False,
) -> MuData | None:
    """Give each ``target`` cell the ``source`` features of the cells it matches, weighted by probability.

    Protein levels for RNA cells, gene expression for ATAC cells: each target cell gets the probability-weighted
    mean of its matched source cells' values (its row of ``P``, or its column when the target is the match's
    ``mod2``, softened to ``P ** (1 / temperature)`` and normalised to sum to one) and, as uncertainty, their
    weighted standard deviation. Use normalised values (e.g. the CLR of proteins, log-normalised expression):
    the mean is taken on the scale given.

    As for labels (:func:`transfer_labels`), a sharp ``P`` averages too few cells: ``temperature="auto"``
    predicts each source cell's own values from the source cells its target cells match (a round trip, its own
    share left out) and keeps the temperature of the grid (1, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50) with the
    largest mean per-feature Pearson correlation, scored on the 200 most variable features transferred. On the
    CITE-seq benchmark sets this raised the proteins' mean Pearson from 0.69 to 0.75 (CITE starter; ridge
    regression: 0.64) and from 0.76 to 0.77 (totalVI; ridge: 0.49) (benchmarks/README.md, Transfer).

    Parameters
    ----------
    mdata
        MuData on which :func:`~scmatch.tl.match_modalities` ran.
    source, target
        The modality whose features are transferred and the modality that receives them.
    layer
        Layer of ``mdata[source]`` to read; ``None`` reads ``.X``.
    features
        Names of the source features to transfer (default all). The result is dense (target cells x features),
        so pass a selection (e.g. highly variable genes) for 20,000 genes; the computation runs in chunks of
        1,024 features, so only the result grows with the number of features.
    key
        ``key_added`` of the match.
    key_added
        ``.obsm`` key written in ``mdata[target]``; default ``f"{source}_transferred"``.
    temperature
        ``"auto"`` (chosen by the round trip above) or a number >= 1; ``1`` averages with ``P`` as it is.
    copy
        Return a modified copy instead of writing into ``mdata``.

    Returns
    -------
    ``None``, or a copy of ``mdata`` if ``copy=True``. Written to ``mdata[target]``:

    - ``.obsm[key_added]``: DataFrame (target cells x features, the feature names as columns), the weighted
      mean; rows of target cells outside the match (e.g. reference cells) or without matches are NaN;
    - ``.obsm[f"{key_added}_std"]``: the same shape, the weighted standard deviation of the matched cells'
      values, per feature;
    - ``.uns[key_added]``: ``params`` (source, target, layer, key, n_features, temperature), the
      ``temperature`` used and, with ``"auto"``, ``round_trip`` (``grid``, ``round_trip_pearson``, ``n_features``).

    Examples
    --------
    >>> import scmatch as scm
    >>> mdata = scm.datasets.simulate_multiome(400, n_genes=200, n_peaks=400, random_state=0)
    >>> scm.pp.recipe_rna(mdata, mod="rna", n_top_genes=150, n_comps=15)
    >>> scm.pp.recipe_atac(mdata, mod="atac", n_comps=15)
    >>> model = scm.model.MatchModel(epochs=5, n_models=1, progress_bar=False)
    >>> scm.tl.match_modalities(mdata, batch_key="batch", model=model)
    >>> scm.tl.transfer_features(mdata, source="rna", target="atac", features=mdata["rna"].var_names[:20])
    >>> mdata["atac"].obsm["rna_transferred"].shape
    (400, 20)
    """
    _check_temperature(temperature)
    weights = _match_weights(mdata, key=key, source=source, target=target)
    X, names = _features(mdata[source], layer=layer, features=features, source=source)
    X = X[mdata[source].obs_names.get_indexer(weights.source_names)]
    chosen = choose_feature_temperature(weights.B, X) if temperature == "auto" else None
    used = chosen["temperature"] if chosen is not None else float(temperature)
    mean, std = weighted_mean_std(soften(weights.B, used), X)
    mean[~weights.has_match] = np.nan
    std[~weights.has_match] = np.nan
    key_added = f"{source}_transferred" if key_added is None else key_added

    out = mdata.copy() if copy else mdata
    adata = out[target]
    adata.obsm[key_added] = pd.DataFrame(mean, index=weights.target_names, columns=names).reindex(adata.obs_names)
    adata.obsm[f"{key_added}_std"] = pd.DataFrame(std, index=weights.target_names, columns=names).reindex(
        adata.obs_names
    )
    adata.uns[key_added] = {
        "params": {
            "source": source,
            "target": target,
            "layer": layer,
            "key": key,
            "n_features": len(names),
            "temperature": temperature,
        },
        "temperature": used,
        **({"round_trip": {k: v for k, v in chosen.items() if k != "temperature"}} if chosen is not None else {}),
    }
    return out if copy else None
