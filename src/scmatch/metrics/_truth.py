"""Ground truth of a matching: one partner column per row, and input checks shared by the metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from scmatch._utils import _check_finite


def truth_from_solution(sol: Any) -> np.ndarray:
    """Turn a 0/1 solution matrix into the partner index of every row.

    Parameters
    ----------
    sol
        ``n x m`` matrix, dense or sparse, with ``sol[i, j] = 1`` when row ``i``
        (a mod1 cell) pairs with column ``j`` (a mod2 cell), as in the ``X`` of
        the NeurIPS 2021 challenge's ``*_sol.h5ad`` files. Every row must hold
        exactly one 1 and zeros elsewhere.

    Returns
    -------
    Integer array ``truth`` of length ``n`` with ``truth[i]`` the column of row ``i``'s partner.

    Examples
    --------
    >>> import numpy as np
    >>> truth_from_solution(np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]]))
    array([1, 2, 0])

    """
    if sp.issparse(sol):
        csr = sp.csr_matrix(sol, copy=True)
        csr.sum_duplicates()
        csr.eliminate_zeros()
    else:
        arr = np.asarray(sol)
        if arr.ndim != 2:
            raise ValueError(f"The solution must be a 2-D matrix (rows x columns), got {arr.ndim} dimension(s).")
        if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
            raise TypeError(f"The solution must be numeric 0/1, got dtype {arr.dtype}.")
        csr = sp.csr_matrix(arr)
    _check_finite(csr, what="The solution matrix")
    if csr.nnz and not np.all(csr.data == 1):
        raise ValueError(
            "The solution matrix must hold only 0 and 1; found other values. "
            "Pass the X of a challenge `*_sol.h5ad` file (or binarize your matrix first)."
        )
    per_row = np.diff(csr.indptr)
    bad = np.flatnonzero(per_row != 1)
    if bad.size:
        raise ValueError(
            f"Every row of the solution must hold exactly one 1, but {bad.size} row(s) do not "
            f"(first: row {bad[0]} has {per_row[bad[0]]}). Check that you passed the solution matrix, "
            "rows = mod1 cells, columns = mod2 cells."
        )
    return csr.indices.astype(np.int64)


def _check_truth(truth: Any, n_rows: int, n_cols: int) -> np.ndarray:
    """Validate a partner-index array against a matrix of shape ``(n_rows, n_cols)``."""
    arr = np.asarray(truth)
    if arr.ndim != 1:
        raise ValueError(
            f"`truth` must be a 1-D array of partner column indices, got shape {arr.shape}. "
            "Use scmatch.metrics.truth_from_solution to convert a 0/1 solution matrix."
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(arr == np.round(arr)):
            raise TypeError(f"`truth` must hold integer column indices, got dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    if arr.size != n_rows:
        raise ValueError(f"`truth` has {arr.size} entries but the matrix has {n_rows} rows; they must be equal.")
    if arr.size and (arr.min() < 0 or arr.max() >= n_cols):
        raise ValueError(f"`truth` holds indices outside [0, {n_cols}); every entry must be a column of the matrix.")
    return arr


def _check_matrix(P: Any, *, what: str = "P") -> np.ndarray | sp.csr_matrix:
    """Return ``P`` as a 2-D float ndarray or a canonical CSR matrix (duplicates summed), checked finite."""
    if sp.issparse(P):
        out = sp.csr_matrix(P)
        if not out.has_canonical_format:
            out = out.copy()
            out.sum_duplicates()
        if not np.issubdtype(out.dtype, np.floating):
            out = out.astype(np.float64)
    else:
        out = np.asarray(P)
        if out.ndim != 2:
            raise ValueError(f"{what} must be a 2-D matrix (mod1 cells x mod2 cells), got {out.ndim} dimension(s).")
        if not (np.issubdtype(out.dtype, np.number) or out.dtype == bool):
            raise TypeError(f"{what} must be numeric, got dtype {out.dtype}.")
        if not np.issubdtype(out.dtype, np.floating):
            out = out.astype(np.float64)
    _check_finite(out, what=what)
    return out


def _is_permutation(truth: np.ndarray, n_cols: int) -> bool:
    return truth.size == n_cols and np.array_equal(np.sort(truth), np.arange(n_cols))


def _partner_scores(P: np.ndarray | sp.csr_matrix, truth: np.ndarray) -> np.ndarray:
    """``P[i, truth[i]]`` for every row, as float64 (entries not stored in a sparse ``P`` are 0)."""
    rows = np.arange(truth.size)
    if sp.issparse(P):
        return np.asarray(P[rows, truth], dtype=np.float64).ravel()
    return np.asarray(P[rows, truth], dtype=np.float64)
