"""Tuning check of ``scmatch.datasets.simulate_multiome``: how hard is matching on it? Prints numbers; not a test.

Protocol (../shared/BENCHMARKS.md, the ``linear`` baseline), self-contained so that it does not depend on the
rest of scmatch: simulate two batches; RNA normalize_total + log1p + PCA(50) and ATAC TF-IDF + truncated SVD
(51 components, the first dropped) fitted on both batches jointly; ridge regression RNA PCA -> ATAC LSI on the
reference batch (alpha by CV); row softmax of the cosine similarity with the temperature that minimises the NLL
of the true partner on a held-out 20% of the reference; scored on the query batch.

Also printed: data statistics (sparsity, depth), 15-NN cell-type accuracy of each embedding on the query, and a
latent oracle (the same cosine + softmax recipe on the true per-modality latent states ``obsm['X_latent']``),
which shows what is achievable without measurement noise.

Usage::

    python benchmarks/simulator_check.py                  # 2000 cells (1000-cell query), seeds 0 1 2
    python benchmarks/simulator_check.py --n-cells 6000 --seeds 0
    python benchmarks/simulator_check.py --time-100k      # time and peak RSS of simulate_multiome(100_000)
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:  # run from a source tree without an install
    sys.path.insert(0, str(REPO / "src"))

TAU_GRID = np.logspace(-3, 0.5, 36)


def rna_pca(X: sp.csr_matrix, n_comps: int, seed: int) -> np.ndarray:
    import anndata as ad
    import scanpy as sc

    adata = ad.AnnData(X.copy())
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=n_comps, random_state=seed)
    return adata.obsm["X_pca"]


def atac_lsi(X: sp.csr_matrix, n_comps: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import TruncatedSVD

    X = sp.csr_matrix(X, dtype=np.float64)
    tf = sp.diags(1 / np.maximum(np.asarray(X.sum(axis=1)).ravel(), 1)) @ X
    idf = X.shape[0] / np.maximum(np.asarray(X.sum(axis=0)).ravel(), 1)
    tfidf = (tf @ sp.diags(idf)).tocsr()
    tfidf.data = np.log1p(tfidf.data * 1e4)
    svd = TruncatedSVD(n_components=n_comps + 1, random_state=seed).fit(tfidf)
    return svd.transform(tfidf)[:, 1:]


def cosine(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    A = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)
    B = B / np.maximum(np.linalg.norm(B, axis=1, keepdims=True), 1e-12)
    return A @ B.T


def choose_tau(S: np.ndarray) -> float:
    nll = [np.mean(logsumexp(S / t, axis=1) - np.diag(S) / t) for t in TAU_GRID]
    return float(TAU_GRID[int(np.argmin(nll))])


def softmax(S: np.ndarray, tau: float) -> np.ndarray:
    return np.exp(S / tau - logsumexp(S / tau, axis=1, keepdims=True))


def scores(P: np.ndarray, S: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Query in paired order: the partner of row i is column i."""
    n = len(P)
    diag = np.diag(S)
    rank = (S > diag[:, None]).sum(axis=1)
    rank_t = (S > diag[None, :]).sum(axis=0)
    same = labels[:, None] == labels[None, :]
    return {
        "match": float(np.mean(np.diag(P))),
        "top1": float(np.mean(rank < 1)),
        "top5": float(np.mean(rank < 5)),
        "top10": float(np.mean(rank < 10)),
        "foscttm": float((rank.mean() + rank_t.mean()) / 2 / (n - 1)),
        "ct_mass": float(np.mean((P * same).sum(axis=1))),
    }


def knn_accuracy(E: np.ndarray, labels: np.ndarray, k: int = 15) -> float:
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    return float(cross_val_score(KNeighborsClassifier(k), E, labels, cv=5).mean())


def linear(X1r, X2r, X1q, X2q, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import RidgeCV

    alphas = np.logspace(-2, 5, 15)
    order = np.random.default_rng([seed, 1]).permutation(len(X1r))
    hold, fit = order[: len(order) // 5], order[len(order) // 5 :]
    tau = choose_tau(cosine(RidgeCV(alphas=alphas).fit(X1r[fit], X2r[fit]).predict(X1r[hold]), X2r[hold]))
    S = cosine(RidgeCV(alphas=alphas).fit(X1r, X2r).predict(X1q), X2q)
    return softmax(S, tau), S


def oracle(Zr, Zq, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine of the centred true latent states, temperature from the reference."""
    mu = Zr[0].mean(axis=0), Zr[1].mean(axis=0)
    tau = choose_tau(cosine(Zr[0] - mu[0], Zr[1] - mu[1]))
    S = cosine(Zq[0] - mu[0], Zq[1] - mu[1])
    return softmax(S, tau), S


def check(n_cells: int, seed: int, n_comps: int = 50, **kwargs) -> dict[str, dict[str, float]]:
    from scmatch.datasets._simulate import simulate_multiome

    t0 = time.perf_counter()
    mdata = simulate_multiome(n_cells, n_batches=2, random_state=seed, **kwargs)
    t_sim = time.perf_counter() - t0
    rna, atac = mdata.mod["rna"], mdata.mod["atac"]
    lib = np.asarray(rna.X.sum(axis=1)).ravel()
    frac = np.diff(atac.X.indptr) / atac.n_vars
    vals = np.bincount(atac.X.data.astype(np.int64))
    print(
        f"seed {seed}: simulated {n_cells} cells in {t_sim:.1f}s | rna nnz {rna.X.nnz / np.prod(rna.shape):.3f}, "
        f"median lib {np.median(lib):.0f} | atac nnz/cell median {np.median(frac):.3f} "
        f"[5%-95%: {np.quantile(frac, 0.05):.3f}-{np.quantile(frac, 0.95):.3f}], "
        f"share of counts in {{1,2}}: {vals[1:3].sum() / vals[1:].sum():.3f}"
    )
    E1 = rna_pca(rna.X, n_comps, seed)
    E2 = atac_lsi(atac.X, n_comps, seed)
    batch = mdata.obs["batch"].astype(str).to_numpy()
    labels = mdata.obs["cell_type"].astype(str).to_numpy()
    ref, qry = batch == "batch0", batch == "batch1"
    lq = labels[qry]
    chance_ct = float(np.sum((np.unique(lq, return_counts=True)[1] / qry.sum()) ** 2))
    print(
        f"  query {qry.sum()} cells: chance match {1 / qry.sum():.4f}, chance ct_mass {chance_ct:.3f}; "
        f"15-NN cell-type acc: rna PCA {knn_accuracy(E1[qry], lq):.3f}, atac LSI {knn_accuracy(E2[qry], lq):.3f}"
    )
    out = {}
    for name, (P, S) in {
        "linear": linear(E1[ref], E2[ref], E1[qry], E2[qry], seed),
        "latent oracle": oracle(
            (rna.obsm["X_latent"][ref], atac.obsm["X_latent"][ref]),
            (rna.obsm["X_latent"][qry], atac.obsm["X_latent"][qry]),
            seed,
        ),
    }.items():
        out[name] = s = scores(P, S, lq)
        print(f"  {name:14s} " + " ".join(f"{k} {v:.4f}" for k, v in s.items()))
    return out


def time_100k() -> None:
    from scmatch.datasets._simulate import simulate_multiome

    t0, c0 = time.perf_counter(), time.process_time()
    mdata = simulate_multiome(100_000, random_state=0)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rna, atac = mdata.mod["rna"].X, mdata.mod["atac"].X
    mb = sum(x.data.nbytes + x.indices.nbytes + x.indptr.nbytes for x in (rna, atac)) / 2**20
    print(
        f"simulate_multiome(100_000): wall {wall:.1f}s, cpu {cpu:.1f}s, peak RSS {rss:.0f} MB; "
        f"nnz rna {rna.nnz:,} atac {atac.nnz:,} (CSR {mb:.0f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-cells", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--time-100k", action="store_true", help="only time simulate_multiome(100_000)")
    parser.add_argument("--set", nargs="*", default=[], help="simulator overrides, e.g. within_type_sd=0.5")
    args = parser.parse_args()
    if args.time_100k:
        time_100k()
        return
    kwargs = {k: float(v) for k, v in (kv.split("=") for kv in args.set)}
    runs = [check(args.n_cells, seed, **kwargs) for seed in args.seeds]
    print(f"mean +- sd over seeds {args.seeds}:")
    for name in runs[0]:
        cells = [
            f"{k} {np.mean([r[name][k] for r in runs]):.4f}+-{np.std([r[name][k] for r in runs]):.4f}"
            for k in runs[0][name]
        ]
        print(f"  {name:14s} " + " ".join(cells))


if __name__ == "__main__":
    main()
