"""Coreset selection: greedy facility location (CRAIG) on a kNN similarity graph, greedy k-center, and random.

Facility location: for a similarity ``s(i, j) >= 0`` between cells, choose ``S`` (|S| = k) maximising
``F(S) = sum_i max_{j in S} s(i, j)``. ``F`` is monotone submodular, so the greedy choice (add the cell with the
largest marginal gain, k times) reaches at least ``(1 - 1/e)`` of the optimum (Nemhauser et al. 1978); the lazy
form (stale gains are upper bounds, kept in a heap) gives the same selection with far fewer evaluations.
Each selected cell then stands for the cells closest to it: its weight is the number of cells assigned to it, so
weights sum to the number of cells (Mirzasoleiman et al. 2020, CRAIG).

Scale: a dense n x n similarity is 1.6 GB at n = 20,000 (float32). Instead, the cells are split into random
chunks of at most ``chunk_size`` cells; within each chunk, ``s(i, j) = exp(-d(i, j)^2 / (2 sigma^2))`` on the
``n_neighbors`` nearest neighbours of ``i`` (``sigma`` = median neighbour distance, ``s(i, i) = 1``) and 0
elsewhere, and the chunk receives a share of the budget proportional to its size. Cost O(n * chunk_size * dim)
for the neighbour search, O(n * n_neighbors) memory. Every cell is then assigned to its nearest selected cell of
its chunk (exact Euclidean search), which gives the weights.
"""

from __future__ import annotations

import heapq

import numpy as np
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors

from ..._utils import _rng

CORESETS = ("craig", "random")
#: methods of tl.select_coreset (sketching): the training coresets plus farthest-first traversal
SKETCHES = ("kcenter", *CORESETS)
KERNELS = ("global", "adaptive")


def greedy_facility_location(sim: np.ndarray | sp.spmatrix, k: int) -> np.ndarray:
    """Lazy greedy maximisation of the facility-location objective; returns the k chosen columns in pick order.

    Parameters
    ----------
    sim
        Non-negative similarities (n cells x m candidates), dense or sparse.
    k
        Number of candidates to choose (at most m).
    """
    if not sp.issparse(sim):
        return _greedy_dense(np.asarray(sim, dtype=np.float64), k)
    S = sp.csc_matrix(sim, dtype=np.float64)
    if S.nnz and S.data.min() < 0:
        raise ValueError("Facility location needs non-negative similarities; shift or clip them first.")
    n, m = S.shape
    k = int(min(k, m))
    cur = np.zeros(n)
    indptr, indices, data = S.indptr, S.indices, S.data
    gains = np.add.reduceat(data, indptr[:-1]) if S.nnz else np.zeros(m)
    gains[np.diff(indptr) == 0] = 0.0  # reduceat copies the next value for empty columns
    heap = [(-g, j) for j, g in enumerate(gains)]
    heapq.heapify(heap)
    chosen: list[int] = []
    while len(chosen) < k and heap:
        _, j = heapq.heappop(heap)
        rows, vals = indices[indptr[j] : indptr[j + 1]], data[indptr[j] : indptr[j + 1]]
        gain = float(np.maximum(vals - cur[rows], 0).sum())
        if not heap or gain >= -heap[0][0] - 1e-12:
            chosen.append(j)
            cur[rows] = np.maximum(cur[rows], vals)
        else:
            heapq.heappush(heap, (-gain, j))
    return np.asarray(chosen, dtype=np.int64)


def _greedy_dense(sim: np.ndarray, k: int) -> np.ndarray:
    """Lazy greedy on a dense similarity: the same rule as the sparse path, on whole columns."""
    if sim.size and sim.min() < 0:
        raise ValueError("Facility location needs non-negative similarities; shift or clip them first.")
    S = np.asfortranarray(sim)
    n, m = S.shape
    k = int(min(k, m))
    cur = np.zeros(n)
    heap = [(-g, j) for j, g in enumerate(S.sum(axis=0))]
    heapq.heapify(heap)
    chosen: list[int] = []
    while len(chosen) < k and heap:
        _, j = heapq.heappop(heap)
        column = S[:, j]
        gain = float(np.maximum(column - cur, 0).sum())
        if not heap or gain >= -heap[0][0] - 1e-12:
            chosen.append(j)
            np.maximum(cur, column, out=cur)
        else:
            heapq.heappush(heap, (-gain, j))
    return np.asarray(chosen, dtype=np.int64)


def knn_similarity(X: np.ndarray, *, n_neighbors: int = 30, kernel: str = "global") -> sp.csr_matrix:
    """Gaussian similarity on each row's ``n_neighbors`` nearest rows (itself included with similarity 1).

    ``kernel="global"``: ``exp(-d^2 / (2 sigma^2))`` with ``sigma`` the median neighbour distance of all rows.
    ``kernel="adaptive"``: ``exp(-d_ij^2 / (2 sigma_i sigma_j))`` with ``sigma_i`` the median distance of row
    ``i`` to its neighbours (local scaling, Zelnik-Manor and Perona 2004). With one global scale, cells in dense
    regions have the larger similarities and facility location spends its budget there; local scales give every
    neighbourhood a similar weight, so sparse regions (rare cell types) are covered too.
    """
    if kernel not in KERNELS:
        raise ValueError(f"Unknown kernel {kernel!r}; use one of {KERNELS}.")
    n = X.shape[0]
    k = min(n_neighbors + 1, n)
    dist, idx = NearestNeighbors(n_neighbors=k).fit(X).kneighbors(X)
    if kernel == "global":
        positive = dist[:, 1:][dist[:, 1:] > 0]
        sigma = float(np.median(positive)) if positive.size else 1.0
        sim = np.exp(-(dist**2) / (2 * sigma**2))
    else:
        local = np.median(dist[:, 1:], axis=1) if k > 1 else np.ones(n)
        positive = local[local > 0]
        local = np.where(local > 0, local, float(np.median(positive)) if positive.size else 1.0)
        sim = np.exp(-(dist**2) / (2 * local[:, None] * local[idx]))
    return sp.csr_matrix((sim.ravel(), idx.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))


def farthest_first(X: np.ndarray, k: int, *, start: int = 0) -> np.ndarray:
    """Greedy k-center (farthest-first traversal, Gonzalez 1985): each pick is the row farthest from those picked.

    The largest distance from a row to its nearest pick (the covering radius, i.e. the Hausdorff distance from
    all rows to the picks) is at most twice the optimum over all choices of ``k`` rows. Every separated group of
    rows, however small, is picked once the radius falls below its distance to the rest. O(n * k * dim) time.
    """
    X = np.asarray(X, dtype=np.float32)
    k = int(min(k, X.shape[0]))
    chosen = np.empty(k, dtype=np.int64)
    nearest = np.full(X.shape[0], np.inf, dtype=np.float32)
    j = int(start)
    for i in range(k):
        chosen[i] = j
        diff = X - X[j]
        np.minimum(nearest, np.einsum("ij,ij->i", diff, diff), out=nearest)
        j = int(np.argmax(nearest))
    return chosen


def _budgets(sizes: list[int], total: int) -> np.ndarray:
    """Split ``total`` over chunks proportionally to their sizes (largest remainders), at least 1 per chunk."""
    sizes_arr = np.asarray(sizes, dtype=float)
    share = sizes_arr / sizes_arr.sum() * total
    out = np.floor(share).astype(int)
    for i in np.argsort(-(share - out))[: total - out.sum()]:
        out[i] += 1
    return np.clip(out, 1, sizes_arr.astype(int))


def select_coreset_indices(
    X: np.ndarray,
    *,
    fraction: float,
    method: str = "craig",
    n_neighbors: int = 30,
    chunk_size: int = 5000,
    kernel: str = "global",
    random_state: int | np.random.Generator | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (sorted) and weights of a coreset of the rows of ``X``; weights sum to ``X.shape[0]``.

    ``method="craig"``: facility location per random chunk (see the module docstring) on the ``kernel``
    similarity of :func:`knn_similarity`, weight = number of cells nearest to each selected cell.
    ``method="kcenter"``: farthest-first traversal per random chunk (:func:`farthest_first`), weighted the same
    way. ``method="random"``: a uniform random subset with equal weights ``n / k``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(500, 5))
    >>> idx, w = select_coreset_indices(X, fraction=0.1)
    >>> len(idx), float(w.sum())
    (50, 500.0)
    """
    if method not in SKETCHES:
        raise ValueError(f"Unknown coreset method {method!r}; use one of {SKETCHES}.")
    if not 0 < fraction <= 1:
        raise ValueError(f"`fraction` must be in (0, 1], got {fraction}.")
    X = np.asarray(X, dtype=np.float32)
    n = X.shape[0]
    rng = _rng(random_state)
    k = max(1, round(fraction * n))
    if method == "random":
        idx = np.sort(rng.choice(n, size=k, replace=False))
        return idx, np.full(k, n / k)
    chunks = np.array_split(rng.permutation(n), max(1, int(np.ceil(n / chunk_size))))
    budgets = _budgets([len(c) for c in chunks], k)
    picked, weights = [], []
    for chunk, budget in zip(chunks, budgets, strict=True):
        Xc = X[chunk]
        if method == "kcenter":
            local = farthest_first(Xc, budget, start=int(rng.integers(len(Xc))))
        else:
            local = greedy_facility_location(knn_similarity(Xc, n_neighbors=n_neighbors, kernel=kernel), budget)
        nearest = NearestNeighbors(n_neighbors=1).fit(Xc[local]).kneighbors(Xc, return_distance=False)[:, 0]
        picked.append(chunk[local])
        weights.append(np.bincount(nearest, minlength=len(local)).astype(float))
    idx, w = np.concatenate(picked), np.concatenate(weights)
    order = np.argsort(idx)
    return idx[order], w[order]
