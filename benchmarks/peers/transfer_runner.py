"""moscot's annotation mapping and imputation on one prepared query; runs inside the peers' virtual environment.

    /work/peers-venv/bin/python benchmarks/peers/transfer_runner.py INPUTS.npz OUTPUT.npz

Never imports scmatch. ``run_transfer.py`` (scmatch's environment) writes ``INPUTS.npz``: the query embeddings
``X1``/``X2`` (the same RNA PCA and protein CLR-PCA / ATAC LSI scmatch matched), the reference pairs
``X1_train``/``X2_train`` (for the ridge map of the fused term), the labels of the mod1 (source) cells
``labels1``, the values of the features to transfer ``features`` and ``features_on`` (1: they belong to the mod1
cells and go to the mod2 cells; 2: the reverse). Never the query's pairing or the mod2 labels.

moscot (0.5) solves a ``TranslationProblem`` (src = query mod1, tgt = query mod2) with the fused
Gromov-Wasserstein setting that matched best in the peers table (``moscot_fgw_ridge``: alpha 0.5, epsilon 1e-2, a
linear term between ridge(mod1 -> mod2), fitted on the reference pairs, and mod2). Then

- labels: ``annotation_mapping(mapping_mode="sum", forward=True)``, the label with the largest transported mass
  (above a million cell pairs, the same rule on the transport matrix: the API call ran out of memory at
  2,611 x 2,621 cells);
- features: the plan applied to them with marginal scaling, as moscot's ``MappingProblem.impute`` does
  (``solution.pull(x, scale_by_marginals=True)`` for mod2 features, ``push`` for mod1 features; above a million
  cell pairs the same products written out on the transport matrix, ``T.T @ (x / a)`` and ``T @ (x / b)``).

``OUTPUT.npz`` holds ``labels`` (one per mod2 cell), ``features`` (one row per receiving cell) and ``info`` (JSON:
settings, seconds, convergence) or, on failure, ``info`` with an ``error``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_runner import _ridge

SETTINGS = {"alpha": 0.5, "epsilon": 1e-2, "joint": "ridge", "mapping_mode": "sum"}
#: above this many cell pairs, labels and features go through the transport matrix itself: moscot 0.5.2's
#: annotation_mapping and push asked for 71 and 46 GB at 2,611 x 2,621 cells; the rules are the same
MAX_API_PAIRS = 1_000_000


def run(d: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    import anndata as ad
    import pandas as pd
    from moscot.problems.cross_modality import TranslationProblem

    X1, X2 = np.asarray(d["X1"], np.float32), np.asarray(d["X2"], np.float32)
    t0 = time.perf_counter()
    ridge = _ridge(d["X1_train"], d["X2_train"])
    src = ad.AnnData(np.zeros((len(X1), 1), np.float32), obs=pd.DataFrame(index=[f"s{i}" for i in range(len(X1))]))
    tgt = ad.AnnData(np.zeros((len(X2), 1), np.float32), obs=pd.DataFrame(index=[f"t{i}" for i in range(len(X2))]))
    src.obs["label"] = pd.Categorical(d["labels1"].astype(str))
    src.obsm["emb"], tgt.obsm["emb"] = X1, X2
    src.obsm["joint"], tgt.obsm["joint"] = ridge.predict(X1).astype(np.float32), X2
    tp = TranslationProblem(adata_src=src, adata_tgt=tgt)
    tp = tp.prepare(src_attr="emb", tgt_attr="emb", joint_attr="joint")
    tp = tp.solve(alpha=SETTINGS["alpha"], epsilon=SETTINGS["epsilon"])
    t1 = time.perf_counter()
    sol = tp.solutions[("src", "tgt")]
    if len(X1) * len(X2) <= MAX_API_PAIRS:
        mapped = tp.annotation_mapping(mapping_mode="sum", annotation_label="label", forward=True)
        labels = np.asarray(mapped["label"].reindex(tgt.obs_names).astype(str).to_numpy(), dtype=str)
        how = "annotation_mapping(mapping_mode='sum')"
    else:  # the same rules on the plan itself: the API and push asked for 46-71 GB at 2,600 x 2,600 cells
        T = np.asarray(sol.transport_matrix, dtype=np.float64)
        codes, uniques = pd.factorize(src.obs["label"].astype(str), sort=True)
        labels = np.asarray(uniques[(T.T @ np.eye(len(uniques))[codes]).argmax(axis=1)], dtype=str)
        how = "the label with the most transported mass, from the transport matrix"
    F = np.asarray(d["features"], np.float32)
    forward = int(d["features_on"]) == 1
    if how.startswith("annotation_mapping"):
        features = np.asarray((sol.push if forward else sol.pull)(F, scale_by_marginals=True))
    else:  # push(x, scale_by_marginals=True) = T.T @ (x / a); pull = T @ (x / b), written out on the plan
        a, b = np.asarray(sol.a, np.float64), np.asarray(sol.b, np.float64)
        features = T.T @ (F / (a[:, None] + 1e-12)) if forward else T @ (F / (b[:, None] + 1e-12))
    info = {
        "settings": SETTINGS,
        "solve_seconds": t1 - t0,
        "transfer_seconds": time.perf_counter() - t1,
        "converged": bool(sol.converged),
        "ridge_alpha": float(ridge.alpha_),
        "labels_by": how,
    }
    return labels, features, info


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("inputs")
    p.add_argument("output")
    args = p.parse_args(argv)
    with np.load(args.inputs, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    try:
        from importlib.metadata import version

        labels, features, info = run(d)
        info["peer_version"] = version("moscot")
        np.savez(args.output, labels=labels, features=features, info=json.dumps(info, default=float))
    except Exception as exc:  # a peer's failure is a result: record it
        info = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
        np.savez(args.output, info=json.dumps(info))
        print(info["traceback"], file=sys.stderr)
        sys.exit(3)


if __name__ == "__main__":
    main()
