"""Neighbour-averaged profiles, on which :func:`scmatch.pp.lsi` can fit its loadings (``n_neighbors``).

Single-nucleus ATAC has about a hundred non-zero peaks per cell out of tens of thousands. A truncated SVD of such
a matrix fits each cell's own noise: with the loadings of the plain SVD, the cells it was fitted on get
coordinates far longer than the same loadings give new cells, and reference mapping loses about half of the
match score on SNARE-seq2 mouse cortex (benchmarks/README.md, *Mapping defaults*). Averaging each cell's profile
with those of its nearest cells before the SVD makes the loadings follow what neighbouring cells share instead of
what one sparse profile holds. Every cell is then placed by projecting its own profile on those loadings, the
projection a query gets from ``recipe_atac(query, reference=...)``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors

from .._utils import logger


def validate_neighbors(value: int | None, *, name: str = "n_neighbors") -> None:
    """Refuse anything but ``None`` or a positive integer, naming the argument ``name``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1):
        raise ValueError(f"`{name}` must be a positive integer or None, got {value!r}.")


def _check_neighbors(n_neighbors: int | None, n_cells: int) -> int:
    """``n_neighbors`` as an int (1 for ``None``), checked against the number of cells."""
    validate_neighbors(n_neighbors)
    if n_neighbors is None:
        return 1
    if n_neighbors > n_cells:
        logger.info("lsi: n_neighbors=%d is more than the %d cells; using %d.", n_neighbors, n_cells, n_cells)
        return int(n_cells)
    return int(n_neighbors)


def neighbour_average(X, coords: np.ndarray, *, n_neighbors: int) -> sp.csr_matrix | np.ndarray:
    """Each row of ``X`` averaged with the rows of its ``n_neighbors - 1`` nearest cells in ``coords``.

    Neighbours are found by cosine distance (Euclidean on unit-length rows of ``coords``), each cell counting as
    its own nearest. The result is sparse when ``X`` is; it holds at most ``n_neighbors`` times ``X``'s non-zeros.
    """
    norms = np.linalg.norm(coords, axis=1, keepdims=True)
    unit = np.divide(coords, norms, out=np.zeros_like(coords, dtype=np.float64), where=norms > 0)
    index = NearestNeighbors(n_neighbors=n_neighbors).fit(unit).kneighbors(unit, return_distance=False)
    n = X.shape[0]
    rows = np.repeat(np.arange(n), n_neighbors)
    own = np.arange(n)
    missing = ~(index == own[:, None]).any(axis=1)  # a cell tied with duplicates of itself may be left out
    index[missing, -1] = own[missing]
    W = sp.csr_matrix((np.full(rows.size, 1.0 / n_neighbors), (rows, index.ravel())), shape=(n, n))
    W.sum_duplicates()
    return W @ X
