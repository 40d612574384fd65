"""Per-cell confidence of a match, from how concentrated each cell's match probabilities are."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def _rows(W: sp.spmatrix) -> sp.csr_matrix:
    """CSR with every non-empty row scaled to sum to one."""
    W = sp.csr_matrix(W, dtype=np.float64)
    mass = np.asarray(W.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(np.divide(1.0, mass, out=np.zeros_like(mass), where=mass > 0)) @ W)


def top_probability(W: sp.spmatrix) -> np.ndarray:
    """Largest probability of each row (rows normalised to sum to one); 0 for an empty row."""
    W = _rows(W)
    return np.asarray(W.max(axis=1).todense()).ravel() if W.nnz else np.zeros(W.shape[0])


def entropy_confidence(W: sp.spmatrix) -> np.ndarray:
    """``1 - H(row) / log(non-zeros of the row)``: 1 for a single match, 0 for uniform weights; 0 if empty."""
    W = _rows(W)
    plogp = W.copy()
    plogp.data = np.where(W.data > 0, W.data * np.log(np.where(W.data > 0, W.data, 1.0)), 0.0)
    H = -np.asarray(plogp.sum(axis=1)).ravel()
    nnz = np.diff(W.indptr)
    out = np.zeros(W.shape[0])
    many = nnz > 1
    out[many] = 1.0 - H[many] / np.log(nnz[many])
    out[nnz == 1] = 1.0
    return np.clip(out, 0.0, 1.0)


def match_confidence(P: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell confidence of a match: of each row (mod1 cells) and of each normalised column (mod2 cells)."""
    P = sp.csr_matrix(P)
    return top_probability(P), top_probability(P.T)
