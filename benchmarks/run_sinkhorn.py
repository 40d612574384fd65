"""Sparse Sinkhorn benchmark: the torch ``sinkhorn_sparse`` against the previous NumPy implementation.

    python benchmarks/run_sinkhorn.py --sizes 10000 100000
    python benchmarks/run_sinkhorn.py --sizes 10000 --support random --reductions

Synthetic candidate supports with n1 = n2 = N rows and ``--k`` candidates per row (the shape ``MatchModel``
builds with ``n_candidates=100``): ``knn`` (the realistic one) takes unit vectors around 20 cluster centres in 16
dimensions for both sides and keeps each row's k largest cosine similarities, so popular columns get many
candidates and others few or none; ``random`` draws k distinct columns per row uniformly and similarities from
N(0, 0.1^2). Both solvers run on the same support at the same ``--temperature``, ``n_iter`` and ``tol`` (the
``sinkhorn_sparse`` defaults), with one torch and one BLAS thread. Reported per size: seconds (the fastest of
``--repeats`` runs), iterations and final row-marginal error of each, the speed-up (old / new seconds) and the
largest absolute difference of the returned probabilities. ``--reductions`` also times one column half-iteration:
the log-domain log-sum-exp in two layouts (CSR order with scatters by column index, a column ordering with
``torch.segment_reduce``) against the sparse matrix-vector product that ``sinkhorn_sparse`` runs in the scaling
domain, and torch's float64 ``exp`` against ``exp2`` on nnz values. One JSON record per size and support goes to
``results/sinkhorn/`` and is printed. Timings on a shared machine are noisy: compare within one record.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO / "src") not in sys.path:  # run from a source tree without an install
    sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))
from run_scale import _git  # noqa: E402

RESULTS = HERE / "results" / "sinkhorn"


def knn_support(n: int, k: int, *, seed: int = 0, dim: int = 16, n_clusters: int = 20) -> sp.csr_matrix:
    """Each row's ``k`` largest cosine similarities between two clustered point clouds of ``n`` unit vectors."""
    import torch

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))

    def cloud() -> torch.Tensor:
        x = centres[rng.integers(0, n_clusters, n)] + 0.7 * rng.normal(size=(n, dim))
        return torch.from_numpy(x / np.linalg.norm(x, axis=1, keepdims=True)).float()

    x1, x2 = cloud(), cloud()
    idx, val = np.empty((n, k), dtype=np.int64), np.empty((n, k), dtype=np.float32)
    for start in range(0, n, 1024):
        top = torch.topk(x1[start : start + 1024] @ x2.T, k, dim=1)
        idx[start : start + 1024], val[start : start + 1024] = top.indices.numpy(), top.values.numpy()
    return sp.csr_matrix((val.ravel(), idx.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))


def random_support(n: int, k: int, *, seed: int = 0, scale: float = 0.1) -> sp.csr_matrix:
    """``k`` distinct uniformly random columns per row, similarities drawn from N(0, scale^2)."""
    rng = np.random.default_rng(seed)
    cols = np.stack([rng.choice(n, k, replace=False) for _ in range(n)])
    data = scale * rng.normal(size=n * k)
    return sp.csr_matrix((data, cols.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))


def _best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def time_reductions(sim: sp.csr_matrix, temperature: float, repeats: int = 20) -> dict:
    """Milliseconds of one column half-iteration per form, and of exp vs exp2.

    Two layouts compute the log-domain column reduction ``log2 sum_i 2^(logk_ij + f_i)`` (segment maximum, then
    the sum of ``2^(x - max)``): ``scatter`` (entries in CSR order, scatters by column index) and
    ``segment_reduce`` (a precomputed column ordering, contiguous segments). ``csr_matvec`` is what
    ``sinkhorn_sparse`` runs instead, in the scaling domain: one product of the stored kernel (a
    ``torch.sparse_csr_tensor`` of the transposed support) with the row scalings. Fastest of ``repeats``.
    """
    import torch

    from scmatch.model.solvers._sinkhorn import _csr

    n1, n2 = sim.shape
    cols = torch.from_numpy(sim.indices.astype(np.int64))
    rows = torch.repeat_interleave(torch.arange(n1), torch.from_numpy(np.diff(sim.indptr)))
    logk = torch.from_numpy(sim.data.astype(np.float64)) / temperature / np.log(2.0)
    f = torch.randn(n1, dtype=torch.float64)
    counts = torch.bincount(cols, minlength=n2)

    def scatter() -> torch.Tensor:
        values = f.index_select(0, rows).add_(logk)
        peak = torch.full((n2,), -torch.inf, dtype=torch.float64).scatter_reduce_(0, cols, values, "amax")
        peak.nan_to_num_(neginf=0.0)
        values.sub_(peak.index_select(0, cols)).exp2_()
        return torch.zeros(n2, dtype=torch.float64).scatter_add_(0, cols, values).log2_().add_(peak)

    order = torch.argsort(cols, stable=True)
    rows_by_col, logk_by_col = rows[order], logk[order]

    def segment_reduce() -> torch.Tensor:
        values = f.index_select(0, rows_by_col).add_(logk_by_col)
        peak = torch.segment_reduce(values, "max", lengths=counts).nan_to_num_(neginf=0.0)
        values.sub_(peak.repeat_interleave(counts, output_size=len(values))).exp2_()
        return torch.segment_reduce(values, "sum", lengths=counts).log2_().add_(peak)

    live = counts > 0
    reference = scatter()[live]
    out = {}
    for name, fn in (("scatter", scatter), ("segment_reduce", segment_reduce)):
        seconds, value = _best_of(fn, repeats)
        out[name] = {"ms": 1e3 * seconds, "max_abs_diff_to_scatter": float((value[live] - reference).abs().max())}
    by_col = sim.tocsc()
    kernel = _csr(
        torch.from_numpy(by_col.indptr.astype(np.int64)),
        torch.from_numpy(by_col.indices.astype(np.int64)),
        torch.exp2(torch.from_numpy(by_col.data.astype(np.float64)) / temperature / np.log(2.0) / 64),
        (n2, n1),
    )
    scalings = torch.exp2(f)
    out["csr_matvec"] = {"ms": 1e3 * _best_of(lambda: torch.mv(kernel, scalings), repeats)[0]}
    x, buffer = -60 * torch.rand(sim.nnz, dtype=torch.float64), torch.empty(sim.nnz, dtype=torch.float64)
    for name, fn in (("exp", torch.exp), ("exp2", torch.exp2)):
        out[f"{name}_float64"] = {"ms": 1e3 * _best_of(lambda fn=fn: fn(x, out=buffer), repeats)[0]}
    return out


def _numpy_reference():
    """The NumPy sparse Sinkhorn the torch one replaced: a test-side reference (tests/model/solvers)."""
    import importlib.util

    path = REPO / "tests" / "model" / "solvers" / "sinkhorn_reference.py"
    spec = importlib.util.spec_from_file_location("sinkhorn_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.sinkhorn_sparse_numpy


def run(n: int, args: argparse.Namespace, command: str) -> dict:
    """Build one support, time both solvers on it, write and return the JSON record."""
    import torch
    from threadpoolctl import threadpool_limits

    from scmatch.model.solvers._matching import sinkhorn_sparse

    _sinkhorn_sparse_numpy = _numpy_reference()

    torch.set_num_threads(1)
    threadpool_limits(1)
    start = time.perf_counter()
    make = knn_support if args.support == "knn" else random_support
    sim = make(n, args.k, seed=args.seed)
    build_seconds = time.perf_counter() - start
    col_counts = np.bincount(sim.indices, minlength=n)
    settings = {"temperature": args.temperature, "n_iter": args.n_iter, "tol": args.tol}
    old_info, new_info = {}, {}
    old_seconds, P_old = _best_of(lambda: _sinkhorn_sparse_numpy(sim, **settings, info=old_info), args.repeats)
    new_seconds, P_new = _best_of(lambda: sinkhorn_sparse(sim, **settings, info=new_info), args.repeats)
    record = {
        "support": args.support,
        "n1": n,
        "n2": n,
        "k": args.k,
        "nnz": int(sim.nnz),
        "column_candidates": {
            "max": int(col_counts.max()),
            "median": float(np.median(col_counts)),
            "columns_without": int((col_counts == 0).sum()),
        },
        **settings,
        "old_numpy": {"seconds": old_seconds, **old_info},
        "new_torch": {"seconds": new_seconds, **new_info},
        "speedup": old_seconds / new_seconds,
        "max_abs_diff": float(abs(P_new - P_old).max()),
        "repeats": args.repeats,
        "seed": args.seed,
        "build_support_seconds": build_seconds,
        "torch_threads": torch.get_num_threads(),
        "n_cores": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__},
        "command": command,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **_git(),
    }
    if args.reductions:
        record["column_reduction_ms"] = time_reductions(sim, args.temperature)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.support}_{n}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000])
    p.add_argument("--support", choices=["knn", "random"], default="knn")
    p.add_argument("--k", type=int, default=100, help="candidates per row")
    p.add_argument("--temperature", type=float, default=0.03)
    p.add_argument("--n-iter", type=int, default=200)
    p.add_argument("--tol", type=float, default=1e-6)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reductions", action="store_true", help="also time one column log-sum-exp per layout")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    command = "python benchmarks/run_sinkhorn.py " + " ".join(argv)
    for n in args.sizes:
        print(json.dumps(run(n, args, command), indent=1), flush=True)


if __name__ == "__main__":
    main()
