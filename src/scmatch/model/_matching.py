"""Turn similarities on a sparse candidate support into match probabilities.

Every function here takes and returns a ``scipy.sparse.csr_matrix`` of shape (n1, n2) holding similarities (or
probabilities) on the candidate support only; nothing dense of size n1 x n2 is built unless the support is
already full and small (``dense_limit``), where POT's dense solver is used.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

MATCHINGS = ("softmax", "sinkhorn", "assignment")


def _segment_max(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Maximum of ``values`` within each segment given by ``indptr``; -inf for empty segments."""
    out = np.full(len(indptr) - 1, -np.inf)
    nonempty = np.diff(indptr) > 0
    if values.size:
        out[nonempty] = np.maximum.reduceat(values, indptr[:-1][nonempty])
    return out


def _segment_logsumexp(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Log-sum-exp of ``values`` within each segment; -inf for empty segments."""
    peak = _segment_max(values, indptr)
    counts = np.diff(indptr)
    shifted = np.exp(values - np.repeat(np.where(np.isfinite(peak), peak, 0.0), counts))
    out = np.full(len(indptr) - 1, -np.inf)
    nonempty = counts > 0
    if values.size:
        out[nonempty] = peak[nonempty] + np.log(np.add.reduceat(shifted, indptr[:-1][nonempty]))
    return out


def row_softmax(sim: sp.csr_matrix, *, temperature: float) -> sp.csr_matrix:
    """Softmax of each row's stored similarities divided by ``temperature``."""
    sim = sp.csr_matrix(sim)
    logits = sim.data.astype(np.float64) / temperature
    lse = _segment_logsumexp(logits, sim.indptr)
    data = np.exp(logits - np.repeat(lse, np.diff(sim.indptr)))
    return sp.csr_matrix((data, sim.indices.copy(), sim.indptr.copy()), shape=sim.shape)


def sinkhorn_sparse(sim: sp.csr_matrix, *, temperature: float, n_iter: int = 200, tol: float = 1e-6) -> sp.csr_matrix:
    """Entropic optimal transport restricted to the stored support, in the log domain.

    Solves for the coupling ``P_ij = exp(f_i + S_ij / temperature + g_j)`` on the support with uniform row
    marginals and uniform column marginals over the columns that have any support (a column no row proposes
    cannot receive mass). With a full support this equals POT's ``ot.sinkhorn`` with cost ``-S`` and
    ``reg = temperature``. Returned rows are normalised to sum to one.
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
    # dead rows/columns (no support) keep potential 0; finite placeholders avoid inf - inf
    log_a = np.where(live_rows, -np.log(max(live_rows.sum(), 1)), 0.0)
    log_b = np.where(live_cols, -np.log(max(live_cols.sum(), 1)), 0.0)
    f, g = np.zeros(n1), np.zeros(n2)
    for _ in range(n_iter):
        f = np.where(live_rows, log_a - _segment_logsumexp(logk + g[cols], sim.indptr), 0.0)
        col_lse = _segment_logsumexp((logk + f[rows])[order], col_indptr)
        g = np.where(live_cols, log_b - col_lse, 0.0)
        # after the g update columns are exact; check the row marginals
        row_mass = np.exp(_segment_logsumexp(logk + f[rows] + g[cols], sim.indptr))
        if np.max(np.abs(row_mass[live_rows] - np.exp(log_a[live_rows])), initial=0.0) < tol / max(n1, 1):
            break
    data = np.exp(logk + f[rows] + g[cols])
    return normalize_rows(sp.csr_matrix((data, cols.copy(), sim.indptr.copy()), shape=sim.shape))


def sinkhorn_dense(sim: np.ndarray, *, temperature: float, n_iter: int = 1000, tol: float = 1e-9) -> np.ndarray:
    """POT's log-domain Sinkhorn on a full similarity block (cost ``-S``), rows normalised to one."""
    import ot
    import torch

    n1, n2 = sim.shape
    # torch tensors select POT's torch backend: same iterations, faster log-sum-exp than the numpy backend
    a, b = torch.full((n1,), 1.0 / n1, dtype=torch.float64), torch.full((n2,), 1.0 / n2, dtype=torch.float64)
    cost = -torch.as_tensor(np.asarray(sim, dtype=np.float64))
    plan = ot.sinkhorn(
        a, b, cost - cost.min(), reg=temperature, method="sinkhorn_log", numItermax=n_iter, stopThr=tol, warn=False
    ).numpy()
    return plan / plan.sum(axis=1, keepdims=True)


def assignment(sim: sp.csr_matrix, *, fallback: sp.csr_matrix) -> sp.csr_matrix:
    """One-to-one matching maximising total similarity on the support.

    Each matched row puts probability one on its partner. Rows left unmatched (more rows than columns, or no
    perfect matching on the support) keep their row of ``fallback``. Uses SciPy's sparse minimum-weight full
    bipartite matching, which scales with the support, not with n1 x n2.
    """
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    sim = sp.csr_matrix(sim)
    # positive costs: larger similarity -> smaller cost; stored zeros would be dropped, so shift by 1
    cost = sim.copy()
    cost.data = (sim.data.max(initial=0.0) - sim.data) + 1.0
    try:
        if sim.shape[0] <= sim.shape[1]:
            rows, cols = min_weight_full_bipartite_matching(cost)
        else:
            cols, rows = min_weight_full_bipartite_matching(cost.T.tocsr())
    except ValueError:
        rows, cols = _greedy_assignment(sim)
    keep = (rows >= 0) & (cols >= 0)
    rows, cols = rows[keep], cols[keep]
    hard = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=sim.shape)
    matched = np.zeros(sim.shape[0], dtype=bool)
    matched[rows] = True
    fallback = sp.csr_matrix(fallback)
    return sp.csr_matrix(hard + sp.diags((~matched).astype(float)) @ fallback)


def _greedy_assignment(sim: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one matching by descending similarity (used when no perfect matching exists)."""
    coo = sim.tocoo()
    order = np.argsort(-coo.data, kind="stable")
    used_rows, used_cols = np.zeros(sim.shape[0], bool), np.zeros(sim.shape[1], bool)
    rows, cols = [], []
    for r, c in zip(coo.row[order], coo.col[order], strict=True):
        if not used_rows[r] and not used_cols[c]:
            used_rows[r] = used_cols[c] = True
            rows.append(r)
            cols.append(c)
    return np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)


def normalize_rows(P: sp.csr_matrix) -> sp.csr_matrix:
    """Scale each non-empty row to sum to one."""
    sums = np.asarray(P.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return sp.csr_matrix(sp.diags(scale) @ P)


def keep_top_k(P: sp.csr_matrix, *, top_k: int) -> sp.csr_matrix:
    """Keep the ``top_k`` largest entries of each row (ties broken by column order) and renormalise."""
    P = sp.csr_matrix(P)
    P.sort_indices()
    counts = np.diff(P.indptr)
    if counts.max(initial=0) <= top_k:
        P.eliminate_zeros()
        return normalize_rows(P)
    keep = np.zeros(P.nnz, dtype=bool)
    for i in np.flatnonzero(counts > 0):
        start, stop = P.indptr[i], P.indptr[i + 1]
        row = P.data[start:stop]
        if len(row) <= top_k:
            keep[start:stop] = True
        else:
            best = np.argsort(-row, kind="stable")[:top_k]
            keep[start + best] = True
    rows = np.repeat(np.arange(P.shape[0]), counts)[keep]
    out = sp.csr_matrix((P.data[keep], (rows, P.indices[keep])), shape=P.shape)
    out.eliminate_zeros()
    return normalize_rows(out)


def match_block(
    sim: sp.csr_matrix, *, matching: str, temperature: float, top_k: int, dense_limit: int = 4_000_000
) -> sp.csr_matrix:
    """Probabilities for one block (one batch) of candidate similarities."""
    if matching not in MATCHINGS:
        raise ValueError(f"Unknown matching {matching!r}; use one of {MATCHINGS}.")
    sim = sp.csr_matrix(sim)
    n1, n2 = sim.shape
    full = sim.nnz == n1 * n2
    if matching == "softmax":
        P = row_softmax(sim, temperature=temperature)
    elif full and n1 * n2 <= dense_limit:
        P = sp.csr_matrix(sinkhorn_dense(sim.toarray(), temperature=temperature))
    else:
        P = sinkhorn_sparse(sim, temperature=temperature)
    if matching == "assignment":
        P = assignment(sim, fallback=P)
    return keep_top_k(P, top_k=top_k)
