"""Cell-similarity benchmark of ``scmatch.experimental.learn_metric``: Euclidean vs Wasserstein-1 losses.

    python benchmarks/run_metric_learning.py --datasets totalvi cite simulated --seeds 0 1 2

Within one modality (RNA, ``X_pca`` of the scmatch recipe, fitted on both batches), a metric is learned from the
cell-type labels of the reference batch only (the splits of ../shared/BENCHMARKS.md) and evaluated on the held-out
query batch: ``precision_at_10`` = share of a held-out cell's 10 nearest held-out neighbours with its cell type;
``knn_accuracy`` = held-out cells classified by majority of their 10 nearest reference cells. ``pca`` is the input
space itself (no learning). Distances: Euclidean for ``pca`` and the ``e*`` losses, Manhattan on the written
cumulative histograms (= W1) for the ``w*`` losses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]
from _data import MatchingSplit, load_split  # noqa: E402

RESULTS = HERE / "results" / "metric_learning"
METHODS = ("pca", "etriplet", "econtrastive", "wtriplet", "wcontrastive")


def _scores(emb: np.ndarray, labels: np.ndarray, train: np.ndarray, metric: str, k: int = 10) -> dict:
    from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

    test = ~train
    nn = NearestNeighbors(n_neighbors=k + 1, metric=metric).fit(emb[test])
    idx = nn.kneighbors(emb[test], return_distance=False)[:, 1:]
    lt = labels[test]
    precision = float((lt[idx] == lt[:, None]).mean())
    clf = KNeighborsClassifier(n_neighbors=k, metric=metric).fit(emb[train], labels[train])
    return {"precision_at_10": precision, "knn_accuracy": float(clf.score(emb[test], lt))}


def run(split: MatchingSplit, method: str, seed: int, epochs: int) -> dict:
    import anndata as ad
    import pandas as pd

    import scmatch as scm

    X = np.concatenate([split.X1_train, split.X1_test])
    labels = np.concatenate([split.labels_train, split.labels_rows]).astype(str)
    train = np.arange(len(X)) < split.n_train
    adata = ad.AnnData(obs=pd.DataFrame({"cell_type": labels, "train": train}, index=[f"c{i}" for i in range(len(X))]))
    adata.obsm["X_pca"] = X
    t0 = time.perf_counter()
    if method == "pca":
        emb, metric = X, "euclidean"
    else:
        scm.experimental.learn_metric(
            adata, labels_key="cell_type", loss=method, train_key="train", epochs=epochs, random_state=seed
        )
        emb, metric = adata.obsm["X_metric"], adata.uns["metric"]["neighbors_metric"]
    fit = time.perf_counter() - t0
    return {
        "dataset": split.name,
        "method": method,
        "seed": seed,
        "n_train": int(train.sum()),
        "n_test": int((~train).sum()),
        "n_types": len(set(labels)),
        **_scores(emb, labels, train, metric),
        "fit_seconds": fit,
        "neighbors_metric": metric,
        "epochs": epochs,
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["totalvi", "cite", "simulated"])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--sim-cells", type=int, default=6000)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    command = "python benchmarks/run_metric_learning.py " + " ".join(argv)
    for dataset in args.datasets:
        split = load_split(dataset, n_sim_cells=args.sim_cells)
        for method in args.methods:
            for seed in args.seeds:
                rec = run(split, method, seed, args.epochs)
                rec.update(command=command, n_cores=os.cpu_count(), timestamp=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
                out = args.out / f"{dataset}__{method}__seed{seed}.json"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(rec, indent=1) + "\n")
                print(
                    f"{dataset} {method} seed {seed}: precision@10 {rec['precision_at_10']:.3f}"
                    f" kNN acc {rec['knn_accuracy']:.3f} fit {rec['fit_seconds']:.1f}s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
