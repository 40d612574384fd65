"""Label-stratified coresets for learning a metric from cell-type labels (:func:`scmatch.experimental.learn_metric`).

With labels, many cells of one type teach the model the same thing, so a small weighted subset per type can
stand in for all of them. Each label receives a share of the budget proportional to its size (at least one
cell, so rare types are never dropped). Within a label, cells are chosen by greedy facility location (see
:mod:`scmatch.model.solvers._coreset`) on the similarity ``s(i, j) = d_max - d(i, j)`` of a dense dissimilarity ``d``
(CRAIG's form; ``d_max`` is the largest dissimilarity of the block):

- ``"wasserstein"``: ``d`` is the Wasserstein-1 distance between the cells' embedding histograms
  ``softmax(z / T)`` over the ordered dimensions (the design's equation 6), computed as the Manhattan distance
  between their cumulative histograms;
- ``"craig"``: ``d`` is the Euclidean distance between per-cell gradient proxies, the gradient of the loss with
  respect to the cell's embedding (Mirzasoleiman et al. 2020).

Each chosen cell is weighted by the number of cells of its block whose nearest chosen cell (under ``d``) it is,
so the weights of a label sum to its number of cells. Labels larger than ``chunk_size`` are split into random
blocks with proportional budgets, which bounds the dense block at ``chunk_size**2`` entries.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from ..model.solvers._coreset import _budgets, greedy_facility_location

#: selection name -> distance between selection features (scipy ``cdist`` metric)
LABEL_CORESETS = {"wasserstein": "cityblock", "craig": "euclidean"}


def _block_coreset(F: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Facility location on ``d_max - d`` within one block; local indices (pick order) and weights."""
    if k >= len(F):
        return np.arange(len(F)), np.ones(len(F))
    D = cdist(F, F, metric=metric)
    chosen = greedy_facility_location(D.max() - D, k)
    nearest = np.argmin(D[:, chosen], axis=1)
    return chosen, np.bincount(nearest, minlength=len(chosen)).astype(float)


def stratified_coreset(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    fraction: float,
    method: str = "wasserstein",
    chunk_size: int = 1000,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (sorted) and weights of a label-stratified coreset of the rows of ``features``.

    Parameters
    ----------
    features
        Selection space, cells x dimensions: cumulative embedding histograms for ``"wasserstein"``, gradient
        proxies for ``"craig"``.
    labels
        Integer label of each row.
    fraction
        Share of the rows to keep, in (0, 1]; every label keeps at least one row.
    method
        ``"wasserstein"`` or ``"craig"`` (the distance used, see the module docstring).
    chunk_size
        Largest block of one label whose dense dissimilarity is formed.
    rng
        Random generator for the split of large labels.

    Returns
    -------
    Row indices in increasing order and their weights; the weights of each label sum to its number of rows.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labels = np.r_[np.zeros(990, int), np.ones(10, int)]
    >>> idx, w = stratified_coreset(rng.normal(size=(1000, 4)), labels, fraction=0.01, rng=rng)
    >>> len(idx), int((labels[idx] == 1).sum()), float(w.sum())
    (11, 1, 1000.0)
    """
    if method not in LABEL_CORESETS:
        raise ValueError(f"Unknown coreset method {method!r}; use one of {tuple(LABEL_CORESETS)}.")
    if not 0 < fraction <= 1:
        raise ValueError(f"`fraction` must be in (0, 1], got {fraction}.")
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    groups = [np.flatnonzero(labels == lab) for lab in np.unique(labels)]
    total = max(len(groups), round(fraction * len(labels)))
    picked, weights = [], []
    for rows, budget in zip(groups, _budgets([len(g) for g in groups], total), strict=True):
        blocks = np.array_split(rng.permutation(rows), max(1, int(np.ceil(len(rows) / chunk_size))))
        for block, k in zip(blocks, _budgets([len(b) for b in blocks], int(budget)), strict=True):
            local, w = _block_coreset(features[block], int(k), LABEL_CORESETS[method])
            picked.append(block[local])
            weights.append(w)
    idx, w = np.concatenate(picked), np.concatenate(weights)
    order = np.argsort(idx)
    return idx[order], w[order]
