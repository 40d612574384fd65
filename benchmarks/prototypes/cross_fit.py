"""Mapping with the network trained on cross-fitted reference coordinates (issue 29, a prototype).

    python benchmarks/prototypes/cross_fit.py --datasets cite --seeds 0 1 2 3 4 5 6 7 \
        --out benchmarks/results/cross_fit

The question: does the mapping path lose to the joint path because the reference's own coordinates are
in-sample for its recipes while the query's are projected? A PCA fitted on a few hundred cells also fits those
cells' noise, so a reference cell's coordinates are longer than a projected query cell's (on the CITE starter's
RNA, 13.7 against 10.6 on average). Here the reference cells are given out-of-fold coordinates instead: the
reference is cut in ``--folds`` seeded folds; for each fold, the recipe's transformed values of the other folds
are centred and their top components (as many as the recipe's) fitted by SVD; the fold's cells are projected on
that subspace, reconstructed, and placed in the reference recipe's own space (its centre and loadings). Every
reference coordinate so comes from a basis that never saw the cell, as a query's does, in the space the query is
projected into. The query is the mapping split's, unchanged, and ``run_matching.run_one`` fits, matches and
scores as everywhere else (method ``scmatch_links`` by default, what ``tl.match_modalities`` does on CITE-seq).
A record's ``preprocessing`` is ``mapping_cross_fit``; the mapping path itself is the ``mapping_none`` rows of
*Query re-standardisation* (same seeds, same code path). The genes and proteins entering the recipes are the full
reference's (chosen once, on all of its cells): only the components are cross-fitted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

BENCH = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(BENCH)]
import _data  # noqa: E402
import run_matching  # noqa: E402


def out_of_fold(adata, kind: str, *, folds: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference recipe's own embedding of ``adata`` and its cells' out-of-fold coordinates in that space."""
    from scmatch.pp._project import RecipeState

    raw = adata.copy()
    X_ref = _data._preprocess(adata, kind, n_comps=50, random_state=0)
    state = RecipeState.from_adata(adata)
    projection = state.project(raw.X, raw.var_names)
    if not np.allclose(projection.embedding, X_ref, atol=1e-3):
        raise RuntimeError("the reference's projection does not reproduce its embedding")
    used = state.vectors["used"] > 0
    values = projection.X[:, used]
    values = np.asarray(values.toarray() if sp.issparse(values) else values, dtype=np.float64)
    loadings = state.loadings[used]
    centre = state.vectors.get("mean", np.zeros(len(used)))[used]
    d = loadings.shape[1]
    fold = np.random.default_rng(seed).permutation(len(values)) % folds
    oof = np.zeros(X_ref.shape, dtype=np.float64)
    for k in range(folds):
        train, held = fold != k, fold == k
        mean = values[train].mean(axis=0)
        basis = np.linalg.svd(values[train] - mean, full_matrices=False)[2][:d].T
        rebuilt = mean + (values[held] - mean) @ basis @ basis.T
        oof[held] = (rebuilt - centre) @ loadings
    return X_ref, oof.astype(np.float32)


def cross_fitted(split, name: str, *, folds: int, seed: int):
    """The mapping split with its reference coordinates replaced by out-of-fold ones."""
    _, mod1, mod2, kind2, train_batch, _ = _data.DATASETS[name]
    if kind2 != "protein":
        raise ValueError(f"{name}: only RNA + protein sets are supported (got {kind2!r})")
    mdata = _data._read(name, n_sim_cells=0)
    obs = mdata.obs if {"batch", "cell_type"} <= set(mdata.obs.columns) else mdata.mod[mod1].obs
    batch = obs["batch"].astype(str).to_numpy()
    if train_batch is None:  # as _data.load_split: the first batch is the reference
        train_batch = sorted(set(batch))[0]
    is_train = np.isin(batch, _data._as_tuple(train_batch))
    new = {}
    for m, (mod, kind) in {"1": (mod1, "rna"), "2": (mod2, kind2)}.items():
        X_ref, oof = out_of_fold(mdata.mod[mod][is_train].copy(), kind, folds=folds, seed=seed)
        if not np.allclose(X_ref, getattr(split, f"X{m}_train"), atol=1e-3):
            raise RuntimeError(f"{name}: the reference embedding of {mod} differs from the mapping split's")
        new[f"X{m}_train"] = oof
    meta = {**json.loads(split.meta), "preprocessing": "mapping_cross_fit", "cross_fit_folds": folds}
    return dataclasses.replace(split, meta=json.dumps(meta), **new)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["cite"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--method", default="scmatch_links", choices=run_matching.METHODS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=BENCH / "results" / "cross_fit")
    args = p.parse_args(argv)
    command = "python benchmarks/prototypes/cross_fit.py " + " ".join(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            load = _data.load_split(dataset, preprocessing="mapping")
            split = cross_fitted(load, dataset, folds=args.folds, seed=0)
            norms = [float(np.linalg.norm(a, axis=1).mean()) for a in (load.X1_train, split.X1_train, load.X1_test)]
            print(f"{dataset}: RNA norm: reference {norms[0]:.2f}, cross-fitted {norms[1]:.2f}, query {norms[2]:.2f}")
            cache = str(Path(tmp) / f"{dataset}.npz")
            split.save(cache)
            for seed in args.seeds:
                out = args.out / f"{dataset}__{args.method}__mapping_cross_fit__seed{seed}.json"
                rec = run_matching._run_subprocess(cache, dataset, args.method, seed, str(out), command, args.threads)
                score = f"match {rec['match_score']:.4f} ct-mass {rec['celltype_mass']:.3f}" if rec else "FAILED"
                print(f"{dataset} cross-fit seed {seed}: {score}", flush=True)


if __name__ == "__main__":
    main()
