"""Sparse count samplers of the simulator: Poisson and negative binomial straight into CSR blocks."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# non-zero negative binomial entries with a larger mean are drawn by numpy (rejection), the others by inverse CDF
_LARGE_MEAN = 8.0


class CSRBuilder:
    """Collect CSR rows block by block in growable buffers (no final concatenation copy)."""

    def __init__(self, n_rows: int, n_cols: int) -> None:
        self.shape = (n_rows, n_cols)
        self.indptr = np.zeros(n_rows + 1, dtype=np.int64)
        self.indices = np.empty(0, dtype=np.int32)
        self.data = np.empty(0, dtype=np.float32)
        self.row = self.nnz = 0

    def append(self, counts_per_row: np.ndarray, cols: np.ndarray, counts: np.ndarray) -> None:
        n, end = len(counts_per_row), self.nnz + cols.size
        if end > self.data.size:  # grow to the rate seen so far, with 10% headroom
            rows_done = self.row + n
            size = max(end, int(1.1 * end * self.shape[0] / rows_done) + 1024)
            self.indices.resize(size, refcheck=False)
            self.data.resize(size, refcheck=False)
        self.indices[self.nnz : end] = cols
        self.data[self.nnz : end] = counts
        np.cumsum(counts_per_row, out=self.indptr[self.row + 1 : self.row + n + 1])
        self.indptr[self.row + 1 : self.row + n + 1] += self.nnz
        self.row, self.nnz = self.row + n, end

    def finish(self) -> sp.csr_matrix:
        self.indices.resize(self.nnz, refcheck=False)
        self.data.resize(self.nnz, refcheck=False)
        indptr = self.indptr.astype(np.int32) if self.nnz < np.iinfo(np.int32).max else self.indptr
        return sp.csr_matrix((self.data, self.indices, indptr), shape=self.shape)


def sample_poisson(
    rng: np.random.Generator, weights: np.ndarray, totals: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Independent Poisson counts with means ``totals[i] * weights[i, j] / weights[i].sum()``, sparsely.

    Exact, via the Poisson process: row ``i`` gets ``Poisson(totals[i])`` events placed uniformly on the
    cumulative weights of its row (a multinomial split of a Poisson total gives independent Poisson counts).
    The work is one cumulative sum over the block plus a search per event. Returns non-zeros per row, column
    indices (int32) and counts (float32) of the block, in CSR order.
    """
    n_rows, n_cols = weights.shape
    cum = np.cumsum(weights.ravel(), dtype=np.float64)
    row_end = cum[n_cols - 1 :: n_cols]
    row_start = np.concatenate([[0.0], row_end[:-1]])
    n_events = rng.poisson(totals)
    rows = np.repeat(np.arange(n_rows), n_events)
    pos = row_start[rows] + rng.random(rows.size) * (row_end - row_start)[rows]
    pos.sort()  # rows own disjoint increasing ranges, so `rows` still matches; sorted needles search faster
    flat = np.searchsorted(cum, pos, side="right")
    flat = np.clip(flat, rows * n_cols, rows * n_cols + n_cols - 1)  # guard rounding at row ends
    flat, counts = np.unique(flat, return_counts=True)
    rows, cols = np.divmod(flat, n_cols)
    return np.bincount(rows, minlength=n_rows), cols.astype(np.int32), counts.astype(np.float32)


def sample_nb(rng: np.random.Generator, mean: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Negative binomial counts of mean ``mean`` and variance ``mean + phi * mean**2`` (``phi`` per column).

    Inverse CDF with one uniform per entry: the zero test ``u >= P(0)`` runs on all entries in float32, the
    pmf recursion only on the non-zero ones, in float64. Non-zero entries with a mean above ``_LARGE_MEAN`` are
    drawn from numpy's sampler conditioned on being positive (rejection). Returns non-zeros per row, column
    indices (int32) and counts (float32) of the block, in CSR order.
    """
    n_rows, n_cols = mean.shape
    u = rng.random(mean.shape, dtype=np.float32)
    phi32 = phi.astype(np.float32)
    p0 = np.multiply(mean, phi32)
    np.log1p(p0, out=p0)
    p0 *= (-1 / phi).astype(np.float32)
    np.exp(p0, out=p0)
    flat = np.flatnonzero(u >= p0)
    del p0
    mu = mean.ravel()[flat].astype(np.float64)
    ph = phi[flat % n_cols]
    counts = np.zeros(flat.size, dtype=np.int64)
    large = mu > _LARGE_MEAN
    small = ~large
    mp = mu[small] * ph[small]
    theta = 1 / ph[small]
    p0_small = np.exp(-theta * np.log1p(mp))
    counts[small] = _inverse_cdf(u.ravel()[flat[small]].astype(np.float64), p0_small, mp / (1 + mp), theta)
    if large.any():
        theta = 1 / ph[large]
        p = theta / (theta + mu[large])
        draw = rng.negative_binomial(theta, p)
        while not (draw > 0).all():  # condition on a positive count
            zero = draw == 0
            draw[zero] = rng.negative_binomial(theta[zero], p[zero])
        counts[large] = draw
    keep = counts > 0  # float32 and float64 zero tests may disagree at the last bit
    rows, cols = np.divmod(flat[keep], n_cols)
    return np.bincount(rows, minlength=n_rows), cols.astype(np.int32), counts[keep].astype(np.float32)


def _inverse_cdf(u: np.ndarray, p0: np.ndarray, q: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Negative binomial inverse CDF: smallest ``k`` with ``CDF(k) > u``.

    The pmf recursion is ``p_k = p_{k-1} * q * (k - 1 + theta) / k`` with ``theta = 1 / phi`` and
    ``q = mu * phi / (1 + mu * phi)``. Entries leave the arrays as they finish, so the work is about the sum
    of the counts.
    """
    counts = np.zeros(u.size, dtype=np.int64)
    rest = u - p0  # u - CDF(k): the count is the first k where it turns negative
    pos = np.flatnonzero(rest >= 0)
    rest, pk, q, theta = rest[pos], p0[pos], q[pos], theta[pos]
    k = 0
    while pos.size:
        k += 1
        pk *= q * ((k - 1 + theta) / k)
        rest -= pk
        done = rest < 0
        counts[pos[done]] = k
        left = ~done
        pos, rest, pk, q, theta = pos[left], rest[left], pk[left], q[left], theta[left]
        if k > 100_000:  # pragma: no cover - needs a CDF that never reaches u
            raise RuntimeError("count sampling did not converge; lower `rna_dispersion` or the depths.")
    return counts
