"""How well a joint embedding mixes the two modalities, and how well it keeps cell types apart."""

from __future__ import annotations

from typing import Any

import numpy as np


def _pooled_neighbours(emb1: Any, emb2: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pooled cell's ``k`` nearest other cells (Euclidean) and the modality (0 or 1) of every pooled cell."""
    from sklearn.neighbors import NearestNeighbors

    X1, X2 = np.asarray(emb1, dtype=np.float64), np.asarray(emb2, dtype=np.float64)
    if X1.ndim != 2 or X2.ndim != 2 or X1.shape[1] != X2.shape[1]:
        raise ValueError(
            f"`emb1` and `emb2` must be 2-D with the same number of columns (one joint space), got shapes "
            f"{X1.shape} and {X2.shape}."
        )
    if not (np.isfinite(X1).all() and np.isfinite(X2).all()):
        raise ValueError("The embeddings contain NaN or infinite values.")
    pooled = np.vstack([X1, X2])
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k < len(pooled):
        raise ValueError(f"`k` must be an integer between 1 and {len(pooled) - 1} (cells - 1), got {k!r}.")
    modality = np.r_[np.zeros(len(X1), dtype=int), np.ones(len(X2), dtype=int)]
    # k + 1 neighbours: the first is the cell itself (ties at distance 0 are dropped by position below)
    index = NearestNeighbors(n_neighbors=k + 1).fit(pooled)
    neighbours = index.kneighbors(pooled, return_distance=False)
    own = np.arange(len(pooled))[:, None]
    keep = np.array([row[row != i][:k] for row, i in zip(neighbours, own[:, 0], strict=True)])
    return keep, modality


def modality_mixing(emb1: Any, emb2: Any, *, k: int = 15) -> float:
    """Share of each cell's ``k`` nearest neighbours in the joint space that come from the other modality.

    Both modalities' embeddings are pooled (e.g. ``X_match`` of the RNA cells and of the protein cells); for every
    cell the ``k`` nearest other cells are found (Euclidean), and the share of them from the other modality is
    averaged over all cells. For equal-sized modalities, 0.5 is perfect mixing and 0 means the two modalities form
    separate clouds.

    Parameters
    ----------
    emb1, emb2
        Cells x dimensions embeddings of the two modalities in one joint space.
    k
        Neighbours per cell.

    Returns
    -------
    The mean share, between 0 and 1.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> round(modality_mixing(rng.normal(size=(200, 5)), rng.normal(size=(200, 5))), 1)
    0.5
    """
    neighbours, modality = _pooled_neighbours(emb1, emb2, k)
    other = modality[neighbours] != modality[:, None]
    return float(other.mean())


def celltype_knn_purity(emb1: Any, emb2: Any, labels1: Any, labels2: Any, *, k: int = 15) -> float:
    """Share of each cell's ``k`` nearest neighbours in the joint space that have its cell type.

    The neighbours are found as in :func:`modality_mixing`, among both modalities pooled, so a cell's neighbours
    of the other modality count too.

    Parameters
    ----------
    emb1, emb2
        Cells x dimensions embeddings of the two modalities in one joint space.
    labels1, labels2
        Cell-type label of every cell of each modality (used only here, to score).
    k
        Neighbours per cell.

    Returns
    -------
    The mean share, between 0 and 1.

    Examples
    --------
    >>> import numpy as np
    >>> emb = np.r_[np.zeros((10, 2)), np.ones((10, 2))] + 0.01 * np.arange(20)[:, None]
    >>> labels = np.r_[["a"] * 10, ["b"] * 10]
    >>> celltype_knn_purity(emb, emb, labels, labels, k=5)
    1.0
    """
    neighbours, _ = _pooled_neighbours(emb1, emb2, k)
    labels = np.r_[np.asarray(labels1).astype(str), np.asarray(labels2).astype(str)]
    if len(labels) != len(neighbours):
        raise ValueError(
            f"Got {len(labels)} labels for {len(neighbours)} cells; pass one label per row of `emb1` and `emb2`."
        )
    return float((labels[neighbours] == labels[:, None]).mean())
