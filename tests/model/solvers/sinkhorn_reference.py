"""The NumPy sparse Sinkhorn that the torch one replaced, as a reference (not shipped in the package).

Used by test_sinkhorn.py and benchmarks/run_sinkhorn.py.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from scmatch.model.solvers._matching import _segment_logsumexp, normalize_rows


def sinkhorn_sparse_numpy(
    sim: sp.csr_matrix, *, temperature: float, n_iter: int = 200, tol: float = 1e-6, info: dict | None = None
) -> sp.csr_matrix:
    """The previous NumPy implementation of :func:`sinkhorn_sparse`, kept as a reference.

    Unchanged except that ``info`` (if a dict) receives ``n_iter`` and ``marginal_error`` as in
    :func:`sinkhorn_sparse`.
    """
    sim = sp.csr_matrix(sim)
    n1, n2 = sim.shape
    counts = np.diff(sim.indptr)
    rows = np.repeat(np.arange(n1), counts)
    cols = sim.indices
    logk = sim.data.astype(np.float64) / temperature
    order = np.argsort(cols, kind="stable")
    col_counts = np.bincount(cols, minlength=n2)
    col_indptr = np.concatenate([[0], np.cumsum(col_counts)])
    live_rows, live_cols = counts > 0, col_counts > 0
    log_a = np.where(live_rows, -np.log(max(live_rows.sum(), 1)), 0.0)
    log_b = np.where(live_cols, -np.log(max(live_cols.sum(), 1)), 0.0)
    f, g = np.zeros(n1), np.zeros(n2)
    done, error = 0, np.nan
    for _ in range(n_iter):
        f = np.where(live_rows, log_a - _segment_logsumexp(logk + g[cols], sim.indptr), 0.0)
        col_lse = _segment_logsumexp((logk + f[rows])[order], col_indptr)
        g = np.where(live_cols, log_b - col_lse, 0.0)
        row_mass = np.exp(_segment_logsumexp(logk + f[rows] + g[cols], sim.indptr))
        done += 1
        error = float(np.max(np.abs(row_mass[live_rows] - np.exp(log_a[live_rows])), initial=0.0))
        if error < tol / max(n1, 1):
            break
    if info is not None:
        info.update(n_iter=done, marginal_error=error)
    data = np.exp(logk + f[rows] + g[cols])
    return normalize_rows(sp.csr_matrix((data, cols.copy(), sim.indptr.copy()), shape=sim.shape))
