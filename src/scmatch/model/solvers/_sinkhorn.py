"""The iterations of the sparse Sinkhorn: scaling vectors and sparse matrix-vector products, absorbed when needed.

:func:`scmatch.model.solvers._matching.sinkhorn_sparse` solves entropic optimal transport on a candidate support. In the
log domain every half-iteration is a segment log-sum-exp over all stored entries: a gather, a maximum, an
``exp`` and a sum per entry. Here the same iterates are computed in the scaling domain, where a half-iteration is
one sparse matrix-vector product (``torch.sparse_csr_tensor``) and a division, about 3x less time per iteration
on CPU at 10^6 entries (benchmarks/README.md, Speed). The potentials are kept as ``f_i + log2 u_i`` and
``g_j + log2 v_j``: ``f``, ``g`` absorbed into a stored kernel ``K_ij = 2^(L_ij + f_i + g_j)``, and ``u``, ``v``
multiplicative updates. This is the stabilised scaling algorithm of Schmitzer (2019, "Stabilized sparse scaling
algorithms for entropy regularized transport problems"):

- the kernel is rebuilt with each row's largest entry at 1, so no row sum can underflow or overflow;
- whenever a new scaling vector has an entry that is zero, infinite or beyond ``2^±ABSORB``, that half-iteration
  is redone exactly in the log domain, its potentials are absorbed into the kernel and the kernel is rebuilt.

The iterates are those of the log-domain algorithm, up to float64 rounding.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

#: absorb the scaling vectors into the kernel once an entry leaves [2^-ABSORB, 2^ABSORB]
ABSORB = 200.0


def _segment_log2sumexp2(x: torch.Tensor, segment: torch.Tensor, n: int) -> torch.Tensor:
    """``log2 sum 2^x`` per segment (``-inf`` for an empty one), stably."""
    peak = torch.full((n,), -torch.inf, dtype=x.dtype).scatter_reduce_(0, segment, x, "amax")
    shift = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = torch.zeros(n, dtype=x.dtype).scatter_add_(0, segment, torch.exp2(x - shift[segment]))
    return total.log2_().add_(shift)


def _csr(indptr: torch.Tensor, index: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": matrix-vector products are all we use
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(indptr, index, values, size=shape, check_invariants=False)


class ScaledSinkhorn:
    """Sinkhorn iterations on a fixed support with log-kernel ``L`` (in units of ``log 2``).

    Parameters
    ----------
    sim
        The support in CSR order (its ``data`` is only used for the layout).
    logk
        ``L`` for the entries of ``sim``, in CSR order (float64).
    log_a, log_b
        Target log2 mass of every live row and every live column.
    """

    def __init__(self, sim: sp.csr_matrix, logk: torch.Tensor, *, log_a: float, log_b: float) -> None:
        n1, n2 = sim.shape
        self.shape = (n1, n2)
        self.log_a, self.log_b = log_a, log_b
        self.a, self.b = 2.0**log_a, 2.0**log_b
        indptr = torch.from_numpy(sim.indptr.astype(np.int64))
        self.cols = torch.from_numpy(sim.indices.astype(np.int64))
        self.rows = torch.repeat_interleave(torch.arange(n1), indptr.diff(), output_size=sim.nnz)
        # the same entries grouped by column: a stable sort of the CSR entries by column
        self.order = torch.from_numpy(np.argsort(sim.indices, kind="stable").astype(np.int64))
        self.rows_by_col = self.rows.index_select(0, self.order)
        col_counts = torch.bincount(self.cols, minlength=n2)
        col_indptr = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(col_counts, 0)])
        self.dead_rows, self.dead_cols = indptr.diff() == 0, col_counts == 0
        # every row with the same number of entries (predict_proba's candidates): row maxima of a dense view
        self.width = int(sim.indptr[1]) if n1 and bool((indptr.diff() == sim.indptr[1]).all()) else None
        # the sparse products: int32 indices where they fit (2.7x faster than int64 on CPU at 10^6 entries)
        small = max(n1, n2, sim.nnz) < 2**31
        dtype = torch.int32 if small else torch.int64
        self._layout = (indptr.to(dtype), self.cols.to(dtype), col_indptr.to(dtype), self.rows_by_col.to(dtype))
        self.logk = logk
        self.g = torch.zeros(n2, dtype=torch.float64)
        self.v = torch.ones(n2, dtype=torch.float64)
        self._rebuild()

    # ------------------------------------------------------------------ the kernel
    def scale_kernel(self, factor: float) -> None:
        """Multiply the log-kernel and the column potentials by ``factor`` (a temperature divided by it)."""
        self.absorb_columns()
        self.logk = self.logk * factor
        self.g.mul_(factor)
        self._rebuild()

    def absorb_columns(self) -> None:
        """Move ``log2 v`` into ``g``."""
        live = ~self.dead_cols
        self.g[live] += torch.log2(self.v[live])
        self.v.fill_(1.0)

    def _rebuild(self) -> None:
        """Kernel ``2^(L + f + g)`` with ``f`` setting each row's largest entry to 1 (its row sum in [1, k])."""
        n1, n2 = self.shape
        x = self.logk + self.g.index_select(0, self.cols)
        if self.width is not None:
            peak = x.view(n1, self.width).amax(1) if self.width else torch.zeros(n1, dtype=torch.float64)
        else:
            peak = torch.full((n1,), -torch.inf, dtype=torch.float64).scatter_reduce_(0, self.rows, x, "amax")
        self.f = torch.where(self.dead_rows, torch.zeros_like(peak), -peak)
        values = x.add_(self.f.index_select(0, self.rows)).exp2_()
        indptr, cols, col_indptr, rows_by_col = self._layout
        self.K = _csr(indptr, cols, values, (n1, n2))
        self.KT = _csr(col_indptr, rows_by_col, values.index_select(0, self.order), (n2, n1))

    # ------------------------------------------------------------------ the half-iterations
    def row_sums(self) -> torch.Tensor:
        """``sum_j K_ij v_j`` (1 for rows without support, so their scaling stays finite and is never read)."""
        return torch.mv(self.K, self.v).masked_fill_(self.dead_rows, 1.0)

    def row_update(self, sums: torch.Tensor) -> torch.Tensor:
        """The row scaling ``u = a / (K v)`` from :meth:`row_sums`; redone in the log domain where out of range."""
        u = torch.div(self.a, sums)
        if not _in_range(u):
            # exact row potentials F = log_a - log2 sum_j 2^(L_ij + g_j + log2 v_j); then u relative to the kernel
            # rebuilt around g + log2 v
            self.absorb_columns()
            x = self.logk + self.g.index_select(0, self.cols)
            F = self.log_a - _segment_log2sumexp2(x, self.rows, self.shape[0])
            self._rebuild()
            u = torch.exp2(torch.where(self.dead_rows, torch.zeros_like(F), F - self.f))
        return u

    def column_update(self, u: torch.Tensor) -> torch.Tensor:
        """``v = b / (K^T u)``; redone in the log domain, absorbed and rebuilt where out of range.

        Returns ``u`` relative to the kernel after the update (changed only where the kernel was rebuilt).
        """
        sums = torch.mv(self.KT, u).masked_fill_(self.dead_cols, 1.0)
        v = torch.div(self.b, sums)
        if _in_range(v):
            self.v = v
            return u
        F = self.f + torch.log2(u)  # the rows' exact potentials
        x = (self.logk + F.index_select(0, self.rows)).index_select(0, self.order)
        G = self.log_b - _segment_log2sumexp2(x, self.cols.index_select(0, self.order), self.shape[1])
        self.g = torch.where(self.dead_cols, torch.zeros_like(G), G)
        self.v = torch.ones_like(self.v)
        self._rebuild()
        return torch.exp2(torch.where(self.dead_rows, torch.zeros_like(F), F - self.f))

    def potentials(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Row potentials ``h`` with ``P_ij = 2^(L_ij + G_j - h_i)`` normalised per row, and ``G = g + log2 v``."""
        self.absorb_columns()
        h = _segment_log2sumexp2(self.logk + self.g.index_select(0, self.cols), self.rows, self.shape[0])
        return h, self.g


def _in_range(x: torch.Tensor) -> bool:
    """Every entry finite, positive and within [2^-ABSORB, 2^ABSORB] (true for no entries)."""
    if not x.numel():
        return True
    low, high = torch.aminmax(x)
    return bool(low >= 2.0**-ABSORB) and bool(high <= 2.0**ABSORB)
