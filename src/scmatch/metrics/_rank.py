"""Where a reference value ranks within each row of a dense or sparse score matrix."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

Ties = Literal["expected", "optimistic", "pessimistic"]
_TIES = ("expected", "optimistic", "pessimistic")

# Rows handled per block for dense input, to bound the temporary boolean arrays.
_BLOCK = 1024


def _check_ties(ties: str) -> None:
    if ties not in _TIES:
        raise ValueError(f"`ties` must be one of {_TIES}, got {ties!r}.")


def _rank_counts(S: np.ndarray | sp.spmatrix, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Count, per row ``i``, the entries of ``S[i]`` above ``ref[i]`` and those equal to it.

    Entries not stored in a sparse ``S`` count as 0. ``ref[i]`` is assumed to be
    one of the row's own entries (the true partner's score), so the equal count
    includes that entry itself; callers subtract it.

    Returns
    -------
    ``(greater, equal)``, two int64 arrays of length ``S.shape[0]``.

    """
    n_rows, n_cols = S.shape
    if sp.issparse(S):
        csr = sp.csr_matrix(S)
        if not csr.has_canonical_format:
            csr = csr.copy()
            csr.sum_duplicates()
        nnz_row = np.diff(csr.indptr)
        row_of = np.repeat(np.arange(n_rows), nnz_row)
        ref_rep = ref[row_of]
        greater = np.bincount(row_of, weights=csr.data > ref_rep, minlength=n_rows).astype(np.int64)
        equal = np.bincount(row_of, weights=csr.data == ref_rep, minlength=n_rows).astype(np.int64)
        implicit = n_cols - nnz_row
        greater += np.where(ref < 0, implicit, 0)
        equal += np.where(ref == 0, implicit, 0)
        return greater, equal
    greater = np.empty(n_rows, dtype=np.int64)
    equal = np.empty(n_rows, dtype=np.int64)
    for start in range(0, n_rows, _BLOCK):
        block = np.asarray(S[start : start + _BLOCK])
        r = ref[start : start + _BLOCK, None]
        greater[start : start + _BLOCK] = np.count_nonzero(block > r, axis=1)
        equal[start : start + _BLOCK] = np.count_nonzero(block == r, axis=1)
    return greater, equal
