"""Run one peer (MaxFuse, moscot, Pamona) on one prepared query; runs inside ``benchmarks/peers/.venv``.

    benchmarks/peers/.venv/bin/python benchmarks/peers/peer_runner.py METHOD INPUTS.npz OUTPUT.npz --seed 0

Never imports scmatch: the peers' dependencies (JAX, igraph, leidenalg, numba, POT, ...) stay in their own virtual
environment. ``run_peers.py`` (scmatch's environment) writes ``INPUTS.npz`` and scores ``OUTPUT.npz``.

``INPUTS.npz`` holds what a peer may see: the reference pairs ``X1_train``/``X2_train`` and the query
``X1_test``/``X2_test`` (mod2 rows already shuffled), the same preprocessed embeddings scmatch gets (RNA PCA, ATAC
LSI or protein CLR-PCA), and for CITE-seq sets the linked features ``link_rna_*`` (log-normalised RNA of the genes
coding the measured proteins) and ``link_adt_*`` (the proteins' CLR values), one column per gene-protein pair,
with ``link_genes``/``link_proteins``; for RNA + ATAC sets given gene coordinates (``link_kind`` "peak") the same
keys hold each linked gene's RNA and its ATAC gene activity. Never the query's pairing or any label.

``OUTPUT.npz`` holds ``P`` (query mod1 x query mod2, CSR parts ``P_data``, ``P_indices``, ``P_indptr``,
``P_shape``: rows sum to one, at most 1000 non-zeros per row) and ``info`` (JSON: timings, memory, settings, what
the peer was given, warnings). A failure writes ``info`` with an ``error`` field instead of ``P``.

What each method turns into ``P`` (see ``METHODS``):

- MaxFuse: its CCA embedding of the query (``Fusor.get_embedding`` after pivot refinement and filtering); row
  softmax of the Pearson correlation between mod1 and mod2 cells, with the temperature chosen on reference cells
  embedded by the same fitted CCA (lowest mean NLL of the true partner over the baselines' grid). The query is
  all MaxFuse sees while fitting.
- moscot: the transport plan of ``TranslationProblem`` (query mod1 -> query mod2), rows normalised.
- Pamona: its partial-GW correspondence matrix (the query block), rows normalised.

Fit seconds are the peer's own work on the query (plus, where a variant uses one, fitting the ridge map);
match seconds turn its output into ``P``. With ``--repeat 2`` the whole fit runs twice in this process: the first
(``cold_fit_seconds``) pays the just-in-time compilation (numba for MaxFuse's neighbour search and UMAP parts, XLA
for moscot's JAX solvers), the second (``fit_seconds``) is warm.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import warnings

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # benchmarks/: _rss
from _rss import peak_since_reset_mb, reset_peak, status_mb

TAU_GRID = np.logspace(-3, 0.5, 36)  # the baselines' temperature grid (benchmarks/baselines.py)
RIDGE_ALPHAS = tuple(np.logspace(-2, 5, 15))  # the linear baseline's RidgeCV grid

# name -> (peer, settings). "given" says what the peer was given beyond the query embeddings.
METHODS: dict[str, tuple[str, dict]] = {
    # MaxFuse with its documented linkage: protein <-> coding gene (CITE-seq only)
    "maxfuse": ("maxfuse", {"shared": "linked"}),
    # MaxFuse with the shared features replaced by a ridge map mod1 -> mod2 learned on 80% of the reference
    "maxfuse_ridge": ("maxfuse", {"shared": "ridge"}),
    # moscot TranslationProblem, pure Gromov-Wasserstein as in its translation tutorial (alpha 1, epsilon 1e-3)
    "moscot_gw": ("moscot", {"alpha": 1.0, "epsilon": 1e-3, "joint": None}),
    # the same at moscot's default epsilon (1e-2)
    "moscot_gw_eps1e-2": ("moscot", {"alpha": 1.0, "epsilon": 1e-2, "joint": None}),
    # fused GW: linear term on the linked features (CITE-seq only)
    "moscot_fgw_linked": ("moscot", {"alpha": 0.5, "epsilon": 1e-2, "joint": "linked"}),
    # fused GW: linear term between ridge(mod1) and mod2, the ridge learned on the whole reference
    "moscot_fgw_ridge": ("moscot", {"alpha": 0.5, "epsilon": 1e-2, "joint": "ridge"}),
    # Pamona with its defaults (epsilon 1e-3, 10 neighbours, Lambda 1, 30 output dims), query only
    "pamona": ("pamona", {"reference": False}),
    # Pamona on reference + query cells, with the reference pairs as its prior (disagreement 0 on the pairs)
    "pamona_ref": ("pamona", {"reference": True}),
}


# --------------------------------------------------------------------------------------------------------------
# memory and helpers


def _unit_rows(A: np.ndarray) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    return A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)


def _pearson(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Pearson correlation between the rows of A and the rows of B (MaxFuse scores its matches this way)."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    return _unit_rows(A - A.mean(1, keepdims=True)) @ _unit_rows(B - B.mean(1, keepdims=True)).T


def _choose_tau(S: np.ndarray) -> tuple[float, float]:
    """Temperature on TAU_GRID with the lowest mean NLL of the diagonal (true partner) under a row softmax."""
    from scipy.special import logsumexp

    diag = np.diag(S)
    nll = [float(np.mean(logsumexp(S / t, axis=1) - diag / t)) for t in TAU_GRID]
    best = int(np.argmin(nll))
    return float(TAU_GRID[best]), nll[best]


def _softmax_topk(S: np.ndarray, tau: float, top_k: int = 1000) -> sp.csr_matrix:
    return _rows_topk(np.exp((S - S.max(axis=1, keepdims=True)) / tau), top_k)


def _rows_topk(W: np.ndarray, top_k: int = 1000) -> sp.csr_matrix:
    """Keep each row's ``top_k`` largest non-negative weights and normalise the row to sum to one.

    A row with no positive weight (a transport plan that sent a cell nowhere) becomes uniform over its candidates.
    """
    W = np.nan_to_num(np.asarray(W, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    W = np.maximum(W, 0.0)
    n1, n2 = W.shape
    k = min(int(top_k), n2)
    if k < n2:
        idx = np.argpartition(-W, k - 1, axis=1)[:, :k]
    else:
        idx = np.tile(np.arange(n2), (n1, 1))
    vals = np.take_along_axis(W, idx, axis=1)
    sums = vals.sum(axis=1, keepdims=True)
    empty = sums[:, 0] <= 0
    vals[empty] = 1.0
    sums[empty] = k
    P = sp.csr_matrix(((vals / sums).ravel(), idx.ravel(), np.arange(0, n1 * k + 1, k)), shape=(n1, n2))
    P.sort_indices()
    return P


def _holdout(n: int, seed: int, frac: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng([seed, 1]).permutation(n)
    n_hold = max(2, round(frac * n))
    return order[n_hold:], order[:n_hold]


def _ridge(X1: np.ndarray, X2: np.ndarray):
    from sklearn.linear_model import RidgeCV

    return RidgeCV(alphas=RIDGE_ALPHAS).fit(X1, X2)


def _standardise(A: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    ref = A if ref is None else ref
    return (A - ref.mean(0)) / np.maximum(ref.std(0), 1e-12)


def _linked(d: dict, part: str) -> tuple[np.ndarray, np.ndarray]:
    if "link_rna_test" not in d:
        raise ValueError("no linked features for this dataset (MaxFuse/moscot 'linked' variants need CITE-seq)")
    return np.asarray(d[f"link_rna_{part}"], np.float64), np.asarray(d[f"link_adt_{part}"], np.float64)


def _what_linked(d: dict) -> str:
    if str(d.get("link_kind", "protein")) == "peak":
        return "linked genes (RNA log-normalised, ATAC gene activity of the peaks near each gene, log-normalised)"
    return "linked gene-protein pairs (RNA log-normalised, protein CLR)"


def _cap(k: int, *dims: int) -> int | None:
    """An SVD/CCA size MaxFuse accepts: ``k`` if every array has more columns, else None (no reduction)."""
    return k if all(k < d for d in dims) else None


# --------------------------------------------------------------------------------------------------------------
# MaxFuse


def run_maxfuse(d: dict, s: dict, seed: int):
    from maxfuse.model import Fusor

    X1, X2 = np.asarray(d["X1_test"], np.float64), np.asarray(d["X2_test"], np.float64)
    info: dict = {}
    if s["shared"] == "linked":
        L1, L2 = _linked(d, "test")
        # MaxFuse's recipe: drop (near-)static shared features, then standardise each shared column
        keep = (L1.std(0) > 0.1) & (L2.std(0) > 0.1)
        info["given"] = (
            f"query embeddings + {L1.shape[1]} {_what_linked(d)}; "
            f"{int(keep.sum())} kept after MaxFuse's static-feature filter (sd > 0.1 in both)"
        )
        info["n_linked_pairs"], info["n_linked_pairs_kept"] = int(L1.shape[1]), int(keep.sum())
        tau_idx = np.arange(len(d["X1_train"]))  # the reference is not used to fit: every pair may set tau
        ds = int(keep.sum())
    else:
        fit_idx, tau_idx = _holdout(len(d["X1_train"]), seed)
        info["given"] = "query embeddings; shared features = ridge(mod1 -> mod2) fitted on 80% of the reference pairs"
        ds = X2.shape[1]
    if ds < 2:
        raise ValueError(f"MaxFuse needs at least 2 linked features; {ds} left after its static-feature filter")

    def shared() -> tuple[np.ndarray, np.ndarray]:
        if s["shared"] == "linked":
            return _standardise(L1[:, keep]), _standardise(L2[:, keep])
        ridge = _ridge(d["X1_train"][fit_idx], d["X2_train"][fit_idx])
        info["ridge_alpha"] = float(ridge.alpha_)
        return _standardise(ridge.predict(X1)), _standardise(X2)

    d1, d2 = X1.shape[1], X2.shape[1]
    n_cca = min(20, d1, d2)
    params = {
        "split_into_batches": {"max_outward_size": 5000, "matching_ratio": 1, "metacell_size": 1},
        "construct_graphs": {
            "n_neighbors1": 15,
            "n_neighbors2": 15,
            "svd_components1": _cap(30, d1),
            "svd_components2": None,
            "resolution1": 2,
            "resolution2": 2,
            "resolution_tol": 0.1,
            "leiden_runs": 1,
        },
        "find_initial_pivots": {
            "wt1": 0.7,
            "wt2": 0.7,
            "svd_components1": _cap(20, ds),
            "svd_components2": _cap(20, ds),
        },
        "refine_pivots": {"wt1": 0.7, "wt2": 0.7, "cca_components": n_cca, "filter_prop": 0.0, "n_iters": 3},
        "filter_bad_matches_pivot": 0.3,
        "propagate": {"wt1": 0.7, "wt2": 0.7, "svd_components1": _cap(30, d1)},
        "filter_bad_matches_propagated": 0.0,
    }
    info["settings"] = params

    def fit():
        np.random.seed(seed)  # noqa: NPY002 - MaxFuse draws from numpy's global generator
        S1, S2 = shared()
        fusor = Fusor(shared_arr1=S1, shared_arr2=S2, active_arr1=X1, active_arr2=X2, method="centroid_shrinkage")
        fusor.split_into_batches(**params["split_into_batches"], seed=seed, verbose=False)
        fusor.construct_graphs(**params["construct_graphs"], leiden_seed=seed, verbose=False)
        fusor.find_initial_pivots(**params["find_initial_pivots"], verbose=False)
        fusor.refine_pivots(**params["refine_pivots"], verbose=False)
        fusor.filter_bad_matches(target="pivot", filter_prop=params["filter_bad_matches_pivot"], verbose=False)
        fusor.propagate(**params["propagate"], verbose=False)
        fusor.filter_bad_matches(
            target="propagated", filter_prop=params["filter_bad_matches_propagated"], verbose=False
        )
        matching = fusor.get_matching(order=(2, 1), target="full_data")
        E1, E2 = fusor.get_embedding(active_arr1=fusor.active_arr1, active_arr2=fusor.active_arr2)
        # reference cells through the same fitted CCA, to choose the softmax temperature
        R1, R2 = fusor.get_embedding(
            active_arr1=np.asarray(d["X1_train"][tau_idx], np.float64),
            active_arr2=np.asarray(d["X2_train"][tau_idx], np.float64),
        )
        return {"E1": E1, "E2": E2, "R1": R1, "R2": R2, "n_matched_pairs": len(matching[0])}

    def to_p(out: dict) -> sp.csr_matrix:
        tau, nll = _choose_tau(_pearson(out["R1"], out["R2"]))
        info.update(tau=tau, tau_nll=nll, n_tau_cells=len(tau_idx), n_maxfuse_matched_pairs=out["n_matched_pairs"])
        return _softmax_topk(_pearson(out["E1"], out["E2"]), tau)

    return info, fit, to_p


# --------------------------------------------------------------------------------------------------------------
# moscot


def run_moscot(d: dict, s: dict, seed: int):
    import anndata as ad
    import jax
    from moscot.problems.cross_modality import TranslationProblem

    X1, X2 = np.asarray(d["X1_test"], np.float32), np.asarray(d["X2_test"], np.float32)
    info: dict = {"settings": {**s, "cost": "sq_euclidean", "scale_cost": "mean", "tau_a": 1.0, "tau_b": 1.0}}
    given = "query embeddings (src = mod1, tgt = mod2)"

    def joint() -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
        if s["joint"] == "linked":
            A, B = _linked(d, "test")
            keep = (A.std(0) > 0) & (B.std(0) > 0)
            return _standardise(A[:, keep]).astype(np.float32), _standardise(B[:, keep]).astype(np.float32)
        if s["joint"] == "ridge":
            ridge = _ridge(d["X1_train"], d["X2_train"])
            info["ridge_alpha"] = float(ridge.alpha_)
            return ridge.predict(X1).astype(np.float32), X2
        return None, None

    if s["joint"] == "linked":
        given += f"; linear term on {_linked(d, 'test')[0].shape[1]} {_what_linked(d)} (standardised)"
    elif s["joint"] == "ridge":
        given += "; linear term between ridge(mod1 -> mod2), fitted on all reference pairs, and mod2"
    info["given"] = given
    info["jax"] = {"version": jax.__version__, "backend": jax.default_backend()}

    def fit():
        J1, J2 = joint()
        src = ad.AnnData(np.zeros((len(X1), 1), np.float32))
        tgt = ad.AnnData(np.zeros((len(X2), 1), np.float32))
        src.obsm["emb"], tgt.obsm["emb"] = X1, X2
        if J1 is not None:
            src.obsm["joint"], tgt.obsm["joint"] = J1, J2
            info["joint_dims"] = int(J1.shape[1])
        tp = TranslationProblem(adata_src=src, adata_tgt=tgt)
        tp = tp.prepare(src_attr="emb", tgt_attr="emb", joint_attr="joint" if J1 is not None else None)
        tp = tp.solve(alpha=s["alpha"], epsilon=s["epsilon"])
        sol = tp.solutions[("src", "tgt")]
        T = np.asarray(sol.transport_matrix)
        return {"T": T, "converged": bool(sol.converged), "cost": float(sol.cost)}

    def to_p(out: dict) -> sp.csr_matrix:
        info.update(converged=out["converged"], ot_cost=out["cost"], plan_nan=int(np.isnan(out["T"]).sum()))
        return _rows_topk(out["T"])

    return info, fit, to_p


# --------------------------------------------------------------------------------------------------------------
# Pamona


def run_pamona(d: dict, s: dict, seed: int):
    import pamona.utils
    from pamona.Pamona import Pamona
    from sklearn.neighbors import kneighbors_graph

    # Pamona builds its kNN graphs with n_jobs=-1; force one thread like every other run here
    pamona.utils.kneighbors_graph = lambda *a, **kw: kneighbors_graph(*a, **{**kw, "n_jobs": 1})

    n_ref = len(d["X1_train"]) if s["reference"] else 0
    if s["reference"]:
        A = np.vstack([d["X1_train"], d["X1_test"]]).astype(np.float64)
        B = np.vstack([d["X2_train"], d["X2_test"]]).astype(np.float64)
        M = np.ones((len(A), len(B)))
        M[np.arange(n_ref), np.arange(n_ref)] = 0.0  # the known reference pairs: no disagreement
        given = "reference + query cells of each modality; prior M = 0 on the reference pairs, 1 elsewhere"
    else:
        A = np.asarray(d["X1_test"], np.float64)
        B = np.asarray(d["X2_test"], np.float64)
        M = None
        given = "query embeddings only"
    params = {"n_neighbors": 10, "epsilon": 1e-3, "Lambda": 1.0, "output_dim": 30, "max_iter": 1000, "tol": 1e-9}
    info: dict = {"given": given, "settings": {**params, "n_shared": "all cells (default)"}}

    def fit():
        pa = Pamona(M=None if M is None else [M], verbose=False, **params)
        _, T = pa.run_Pamona([A, B])
        return {"T": np.asarray(T[0])[: len(A), : len(B)]}

    def to_p(out: dict) -> sp.csr_matrix:
        T = out["T"][n_ref:, n_ref:]  # the query block
        info["plan_nan"] = int(np.isnan(T).sum())
        info["query_mass_on_reference_columns"] = float(
            out["T"][n_ref:, :n_ref].sum() / max(out["T"][n_ref:].sum(), 1e-300)
        )
        return _rows_topk(T)

    return info, fit, to_p


RUNNERS = {"maxfuse": run_maxfuse, "moscot": run_moscot, "pamona": run_pamona}


# --------------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("method", choices=METHODS)
    p.add_argument("inputs")
    p.add_argument("output")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=1, help="run the fit this many times; report first and last")
    args = p.parse_args(argv)

    peer, settings = METHODS[args.method]
    with np.load(args.inputs, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    info: dict = {"peer": peer, "method": args.method, "seed": args.seed}
    try:
        from importlib.metadata import version

        info["peer_version"] = version(peer)
        info["threads"] = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            extra, fit, to_p = RUNNERS[peer](d, settings, args.seed)
            info.update(extra)
            rss_before = status_mb("VmRSS") or 0.0
            source = reset_peak()
            fit_times = []
            for _ in range(max(1, args.repeat)):
                t0 = time.perf_counter()
                out = fit()
                fit_times.append(time.perf_counter() - t0)
            t1 = time.perf_counter()
            P = to_p(out)
            match_seconds = time.perf_counter() - t1
            info.update(extra)  # to_p adds what it chose (temperature, convergence)
            peak = peak_since_reset_mb(source)
        msgs = []
        for w in caught:
            text = f"{w.category.__name__}: {str(w.message).strip().splitlines()[0][:300]}"
            if text not in msgs:
                msgs.append(text)
        info.update(
            fit_seconds=fit_times[-1],
            cold_fit_seconds=fit_times[0],
            n_fit_runs=len(fit_times),
            match_seconds=match_seconds,
            peak_rss_mb=peak,
            rss_before_fit_mb=rss_before,
            peak_rss_delta_mb=peak - rss_before,
            peak_rss_source=source,
            warnings=msgs[:20],
        )
        np.savez(
            args.output,
            P_data=P.data,
            P_indices=P.indices,
            P_indptr=P.indptr,
            P_shape=np.asarray(P.shape),
            info=json.dumps(info, default=float),
        )
    except Exception as exc:  # a peer's failure is a result: record it
        info["error"] = f"{type(exc).__name__}: {exc}"
        info["traceback"] = traceback.format_exc()[-3000:]
        np.savez(args.output, info=json.dumps(info, default=float))
        print(info["traceback"], file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    main()
