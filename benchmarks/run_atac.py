"""ATAC preprocessing ablation: recipe settings x datasets x seeds, one JSON record each.

    python benchmarks/run_atac.py --datasets snare2 snare2_rev multiome simulated_sparse \
        --variants defaults today --seeds 0 1 2

For each dataset the RNA side is preprocessed once with ``recipe_rna``'s defaults; the ATAC side once per variant
(``recipe_atac`` keyword arguments, fitted on reference + query cells together, as the matching benchmark's
``joint`` preprocessing). Each record holds what the ATAC representation alone carries, the 15-nearest-neighbour
cell-type accuracy from the reference cells to the query cells (``knn15_euclidean`` on ``X_lsi`` as written,
``knn15_cosine`` on its rows scaled to unit length), and, unless ``--no-match``, what the default
:class:`~scmatch.model.MatchModel` makes of it: the protocol's match score, top-k, FOSCTTM, cell-type mass, fit
and match seconds, and ``knn15_match_atac``, the same classifier on the ATAC cells' matching embedding
(``MatchModel.transform(..., modality=2)``: the representation the learned metric gives the chromatin alone).
On sets whose source marks cells without a type (``_data.UNASSIGNED``: SNARE-seq2's ``Mis``), also
``celltype_mass_assigned``: the cell-type mass over the query cells with an assigned type, mass placed on unassigned
cells counting against them (``scmatch.metrics.celltype_mass(..., unassigned=...)``).
Runs go one after another in this process with ``--threads`` threads (default 2); compare rows within one run.

Datasets: ``snare2`` / ``snare2_rev`` (SNARE-seq2 mouse cortex, reference libraries 09A-09C and query 09D-09F, and
the reverse), ``multiome`` (the BMMC starter, 600 dense peaks), ``simulated`` (the simulator's default, 5,000 peaks
at a depth of 280) and ``simulated_sparse`` (the simulator's single-nucleus setting: 25,000 peaks at a depth of 100).
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

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]
from _data import DATASETS, UNASSIGNED, data_dir  # noqa: E402
from _provenance import git_state as _git  # noqa: E402

RESULTS = HERE / "results" / "atac"

#: recipe_atac keyword arguments per variant (``rna_*``: recipe_rna's): "defaults" is the recipes' defaults; "today"
#: their defaults before the sparse-ATAC work (commit 30fbb15, RNA genes not scaled); the others change one setting
VARIANTS: dict[str, dict] = {
    "defaults": {},
    "today": {"min_frac": 0.01, "min_cells": None, "n_comps": 50, "drop_first": True, "rna_scale": False},
    "min_cells1": {"min_cells": 1},
    "min_cells10": {"min_cells": 10},
    "comps15": {"n_comps": 15},
    "comps50": {"n_comps": 50},
    "comps100": {"n_comps": 100},
    "rna_comps30": {"rna_n_comps": 30},
}
SIMULATED = {
    "simulated": {},
    "simulated_sparse": {"atac_sparsity": "single_nucleus"},
}


def _load(name: str, n_sim_cells: int):
    """(rna AnnData, atac AnnData, is_train, is_test, labels) of a dataset, cells paired by position."""
    import mudata

    import scmatch.datasets

    if name in SIMULATED:
        mdata = scmatch.datasets.simulate_multiome(n_sim_cells, n_batches=2, random_state=0, **SIMULATED[name])
        train, test = ("batch0",), ("batch1",)
    else:
        file, _, _, _, train, test = DATASETS[name]
        mdata = mudata.read_h5mu(data_dir() / file)
        train, test = ((train,), (test,)) if isinstance(train, str) else (train, test)
    obs = mdata.obs if "batch" in mdata.obs else mdata["rna"].obs
    batch = obs["batch"].astype(str).to_numpy()
    labels = obs["cell_type"].astype(str).to_numpy()
    return mdata["rna"].copy(), mdata["atac"].copy(), np.isin(batch, train), np.isin(batch, test), labels


def _knn(X: np.ndarray, labels: np.ndarray, is_train: np.ndarray, is_test: np.ndarray, *, cosine: bool) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    X = np.asarray(X, dtype=np.float64)
    if cosine:
        X = X / np.clip(np.linalg.norm(X, axis=1, keepdims=True), 1e-12, None)
    clf = KNeighborsClassifier(n_neighbors=15).fit(X[is_train], labels[is_train])
    return float(np.mean(clf.predict(X[is_test]) == labels[is_test]))


def _match(X1: np.ndarray, X2: np.ndarray, labels, is_train, is_test, seed: int, unassigned=()) -> dict:
    import scmatch.metrics
    from scmatch.model import MatchModel, TrainingPlan

    rng = np.random.default_rng([seed, 20211206])
    perm = rng.permutation(int(is_test.sum()))
    t0 = time.perf_counter()
    plan = TrainingPlan(progress_bar=False)
    model = MatchModel().fit(X1[is_train], X2[is_train], plan=plan, random_state=seed)
    t1 = time.perf_counter()
    P = model.predict_proba(X1[is_test], X2[is_test][perm], matching="sinkhorn", top_k=1000)
    t2 = time.perf_counter()
    lab = labels[is_test]
    scores = scmatch.metrics.evaluate(P, np.argsort(perm), labels_rows=lab, labels_cols=lab[perm])
    if unassigned:  # the same mass over the cells the source assigned a type (mass on unassigned ones counts against)
        scores["celltype_mass_assigned"] = scmatch.metrics.celltype_mass(P, lab, lab[perm], unassigned=unassigned)
    # what the learned metric makes of the ATAC cells alone: their matching embedding (c0), reference to query
    emb = model.transform(X2, modality=2)
    return {
        **{k: float(v) for k, v in scores.items()},
        "knn15_match_atac": _knn(emb, labels, is_train, is_test, cosine=False),
        "fit_seconds": t1 - t0,
        "match_seconds": t2 - t1,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["snare2", "snare2_rev", "multiome", "simulated_sparse"])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--sim-cells", type=int, default=6000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-match", action="store_true", help="only the kNN accuracy of the representation")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    import mudata
    import torch
    from threadpoolctl import threadpool_limits

    import scmatch.pp

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    command = "python benchmarks/run_atac.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for name in args.datasets:
        rna, atac, is_train, is_test, labels = _load(name, args.sim_cells)
        for variant in args.variants:
            atac_kw = {k: v for k, v in VARIANTS[variant].items() if not k.startswith("rna_")}
            rna_kw = {k[4:]: v for k, v in VARIANTS[variant].items() if k.startswith("rna_")}
            pair = mudata.MuData({"rna": rna.copy(), "atac": atac})  # recipe_rna(scale="auto") sees the ATAC
            scmatch.pp.recipe_rna(pair, mod="rna", **{"n_top_genes": min(2000, rna.n_vars), **rna_kw})
            r = pair["rna"]
            X1 = np.asarray(r.obsm["X_pca"], dtype=np.float32)
            a = atac.copy()
            t0 = time.perf_counter()
            scmatch.pp.recipe_atac(a, **atac_kw)
            prep_seconds = time.perf_counter() - t0
            X2 = np.asarray(a.obsm["X_lsi"], dtype=np.float32)
            recipe = a.uns["scmatch_recipe"]
            base = {
                "dataset": name,
                "variant": variant,
                "recipe_kwargs": VARIANTS[variant],
                "rna_scale_used": bool(r.uns["scmatch_recipe"]["scale_used"]),
                "n_peaks": int(a.n_vars),
                "n_peaks_used": int(recipe["n_peaks_used"]),
                "n_comps_used": int(recipe["n_comps_used"]),
                "nnz_per_cell": float(np.mean(np.diff(a.layers["counts"].tocsr().indptr))),
                "prep_seconds": prep_seconds,
                "knn15_euclidean": _knn(X2, labels, is_train, is_test, cosine=False),
                "knn15_cosine": _knn(X2, labels, is_train, is_test, cosine=True),
                "knn15_rna": _knn(X1, labels, is_train, is_test, cosine=False),
                "n_train": int(is_train.sum()),
                "n_test": int(is_test.sum()),
            }
            seeds = [None] if args.no_match else args.seeds
            for seed in seeds:
                record = {**base, "seed": seed}
                if seed is not None:
                    record.update(_match(X1, X2, labels, is_train, is_test, seed, UNASSIGNED.get(name, ())))
                    if name in UNASSIGNED:
                        record["unassigned"] = list(UNASSIGNED[name])
                record.update(_git(), command=command, python=platform.python_version(), threads=args.threads)
                record["n_cores"] = os.cpu_count()
                record["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                tag = "knn" if seed is None else f"seed{seed}"
                out = args.out / f"{name}__{variant}__{tag}.json"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(record, indent=1) + "\n")
                scores = (
                    ""
                    if seed is None
                    else (
                        f" match {record['match_score']:.4f} ct {record['celltype_mass']:.3f}"
                        f" knn_match {record['knn15_match_atac']:.3f}"
                    )
                )
                print(
                    f"{name:>16} {variant:>14} seed {seed}: peaks {base['n_peaks_used']:>6} comps "
                    f"{base['n_comps_used']:>3} knn {base['knn15_euclidean']:.3f}/{base['knn15_cosine']:.3f}{scores}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
