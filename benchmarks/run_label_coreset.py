"""Coreset training of ``scmatch.experimental.learn_metric`` (cell-type labels) against full data and random subsets.

    python benchmarks/run_label_coreset.py --datasets simulated_50k --seeds 0 1 2
    python benchmarks/run_label_coreset.py --plot

A metric is learned on the RNA ``X_pca`` of a reference batch from its cell-type labels and evaluated on a held-out
batch (as in ``run_metric_learning.py``): ``precision_at_10`` = share of a held-out cell's 10 nearest held-out
neighbours with its type; ``knn_accuracy`` = held-out cells classified by their 10 nearest reference cells;
``precision_at_10_rare`` = the precision of the held-out cells of rare types (at most 0.5% of all cells);
``precision_at_10_macro`` = the precision averaged over types.

Methods (``--methods``; ``E`` = ``--epochs``, ``F`` a fraction of the reference):

- ``full_eN``: every reference cell, N epochs (``full_eE`` is the full-data reference; fewer epochs is a control);
- ``wasserstein_F`` / ``craig_F``: the label-stratified coreset (facility location on the Wasserstein distance of
  the embeddings, or on the gradient proxies), re-selected every 5 epochs, E epochs;
- ``random_F``: one uniform random subset, drawn once, E epochs (control);
- ``rs_F``: a uniform random subset re-drawn every epoch, E epochs (control).

``simulated_50k``: ``scmatch.datasets.simulate_multiome`` with 50,000 cells in two batches and 24 types, 4 of them
rare (0.5%, 0.4%, 0.3%, 0.3% of cells; the other 20 share the rest by a Dirichlet draw); ``batch0`` is the reference.
Real sets: ``totalvi`` and ``cite`` (the splits of ../shared/BENCHMARKS.md; about 500 reference cells each).
Fit time is the training loop of ``learn_metric`` (``uns['metric']['fit_seconds']``, coreset selection included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]
from _data import load_split  # noqa: E402
from _provenance import git_state as git_info  # noqa: E402

RESULTS = HERE / "results" / "label_coreset"
FIGURE = HERE / "label_coreset.png"
RARE_SHARE = 0.005
DEFAULT_METHODS = [
    "full_e20",
    "full_e1",
    "full_e2",
    "full_e4",
    "wasserstein_0.1",
    "craig_0.1",
    "random_0.1",
    "rs_0.1",
    "wasserstein_0.05",
    "rs_0.05",
]


#: the 50k simulations: name -> (simulator settings, the 4 rare types' shares)
SIMULATIONS = {
    "simulated_50k": ({}, [0.005, 0.004, 0.003, 0.003]),
    "simulated_50k_separated": ({"within_type_sd": 0.4, "rna_depth": 3000.0}, [0.005, 0.004, 0.003, 0.003]),
    "simulated_50k_separated_rarest": ({"within_type_sd": 0.4, "rna_depth": 3000.0}, [0.002, 0.001, 0.0005, 0.0002]),
}


def simulated_50k(cache: Path, name: str = "simulated_50k"):
    """RNA of a 50k labelled simulation (``SIMULATIONS``), preprocessed with the scmatch recipe (cached as h5ad).

    24 types: 20 share the cells left by the 4 rare ones (a Dirichlet draw). ``_separated``: tighter types
    (``within_type_sd=0.4`` instead of 0.75) and deeper RNA (3,000 counts instead of 1,000), so that the types,
    rare ones included, stand apart in ``X_pca`` (10-NN type purity 0.92 against 0.66). ``_rarest``: rare types of
    0.2%, 0.1%, 0.05% and 0.02% of the cells (100, 50, 25 and 10 cells) instead of 0.5% to 0.3%.
    """
    import anndata as ad

    import scmatch as scm

    path = cache / f"{name}_rna.h5ad"
    if path.exists():
        return ad.read_h5ad(path)
    settings, rare = SIMULATIONS[name]
    props = np.r_[np.random.default_rng(1).dirichlet(np.full(20, 4.0)) * (1 - sum(rare)), rare]
    mdata = scm.datasets.simulate_multiome(50_000, n_cell_types=24, type_proportions=props, n_peaks=500, **settings)
    rna = mdata["rna"]
    scm.pp.recipe_rna(rna)
    rna.obs["train"] = (rna.obs["batch"] == "batch0").to_numpy()
    cache.mkdir(parents=True, exist_ok=True)
    rna.write_h5ad(path)
    return rna


def real(name: str):
    import anndata as ad
    import pandas as pd

    split = load_split(name)
    X = np.concatenate([split.X1_train, split.X1_test])
    labels = np.concatenate([split.labels_train, split.labels_rows]).astype(str)
    train = np.arange(len(X)) < split.n_train
    adata = ad.AnnData(obs=pd.DataFrame({"cell_type": labels, "train": train}, index=[f"c{i}" for i in range(len(X))]))
    adata.obsm["X_pca"] = X
    return adata


def scores(emb: np.ndarray, labels: np.ndarray, train: np.ndarray, metric: str, k: int = 10) -> dict:
    from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

    test = ~train
    lt = labels[test]
    idx = NearestNeighbors(n_neighbors=k + 1, metric=metric).fit(emb[test]).kneighbors(emb[test])[1][:, 1:]
    hit = (lt[idx] == lt[:, None]).mean(1)
    types, counts = np.unique(labels, return_counts=True)
    rare = np.isin(lt, types[counts <= RARE_SHARE * len(labels)])
    clf = KNeighborsClassifier(n_neighbors=k, metric=metric).fit(emb[train], labels[train])
    return {
        "precision_at_10": float(hit.mean()),
        "precision_at_10_macro": float(np.mean([hit[lt == t].mean() for t in np.unique(lt)])),
        "precision_at_10_rare": float(hit[rare].mean()) if rare.any() else float("nan"),
        "knn_accuracy": float(clf.score(emb[test], lt)),
        "n_rare_test": int(rare.sum()),
    }


def settings(method: str, epochs: int) -> dict:
    kind, value = method.rsplit("_", 1)
    if kind == "full":
        return {"epochs": int(value.lstrip("e"))}
    fraction = float(value)
    every = {"wasserstein": 5, "craig": 5, "random": epochs, "rs": 1}[kind]
    coreset = {"rs": "random"}.get(kind, kind)
    return {"epochs": epochs, "coreset": coreset, "coreset_fraction": fraction, "coreset_every": every}


def run(adata, dataset: str, method: str, seed: int, epochs: int, loss: str) -> dict:
    import scmatch as scm

    kw = settings(method, epochs)
    t0 = time.perf_counter()
    scm.experimental.learn_metric(
        adata, labels_key="cell_type", train_key="train", loss=loss, random_state=seed, progress_bar=False, **kw
    )
    wall = time.perf_counter() - t0
    uns = adata.uns["metric"]
    labels = adata.obs["cell_type"].astype(str).to_numpy()
    train = adata.obs["train"].to_numpy()
    return {
        "dataset": dataset,
        "method": method,
        "seed": seed,
        "loss": loss,
        **scores(adata.obsm["X_metric"], labels, train, uns["neighbors_metric"]),
        "fit_seconds": float(uns["fit_seconds"]),
        "wall_seconds": wall,
        "coreset_seconds": float(uns.get("coreset_seconds", 0.0)),
        "n_steps": int(uns["n_steps"]),
        "epochs": kw["epochs"],
        "coreset_fraction": kw.get("coreset_fraction", 1.0),
        "n_train": int(train.sum()),
        "n_test": int((~train).sum()),
        "n_types": len(set(labels)),
    }


def plot(results: Path = RESULTS, out: Path = FIGURE) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    datasets = sorted({r["dataset"] for r in records}, key=lambda d: (not d.startswith("simulated"), d))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), 4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        by_method: dict[str, list[dict]] = {}
        for r in records:
            if r["dataset"] == dataset and r["loss"] == "etriplet":
                by_method.setdefault(r["method"], []).append(r)
        full = sorted((m for m in by_method if m.startswith("full_")), key=lambda m: int(m.split("_e")[1]))
        t = [np.mean([r["fit_seconds"] for r in by_method[m]]) for m in full]
        p = [np.mean([r["precision_at_10"] for r in by_method[m]]) for m in full]
        ax.plot(t, p, "k-o", label="full data, 1 .. E epochs")
        markers = {"wasserstein": "s", "craig": "D", "random": "v", "rs": "^"}
        for m in sorted(set(by_method) - set(full)):
            rs = by_method[m]
            x, y = [r["fit_seconds"] for r in rs], [r["precision_at_10"] for r in rs]
            ax.errorbar(np.mean(x), np.mean(y), yerr=np.std(y), fmt=markers[m.split("_")[0]], label=m, capsize=3)
        if full:
            ax.axhline(0.95 * p[-1], color="grey", ls="--", lw=0.8, label="95% of full data")
        ax.set_xscale("log")
        ax.set_xlabel("fit seconds (log)")
        ax.set_ylabel("precision@10 (held-out batch)")
        ax.set_title(dataset)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["simulated_50k", "totalvi", "cite"])
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--loss", default="etriplet")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "scmatch_label_coreset")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--plot", action="store_true", help="only draw the figure from the records in --out")
    args = p.parse_args(argv)
    if args.plot:
        plot(args.out)
        return
    import torch

    torch.set_num_threads(1)
    command = "python benchmarks/run_label_coreset.py " + " ".join(argv)
    git = git_info()
    for dataset in args.datasets:
        if dataset in SIMULATIONS:
            adata = simulated_50k(args.cache, dataset)
        else:
            adata = real(dataset)
        for seed in args.seeds:
            for method in args.methods:
                rec = run(adata, dataset, method, seed, args.epochs, args.loss)
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                rec.update(command=command, n_cores=os.cpu_count(), timestamp=stamp, **git)
                suffix = "" if args.loss == "etriplet" else f"__{args.loss}"
                out = args.out / f"{dataset}__{method}{suffix}__seed{seed}.json"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(rec, indent=1) + "\n")
                print(
                    f"{dataset} {method} {args.loss} seed {seed}: p@10 {rec['precision_at_10']:.3f}"
                    f" rare {rec['precision_at_10_rare']:.3f} kNN {rec['knn_accuracy']:.3f}"
                    f" fit {rec['fit_seconds']:.1f}s steps {rec['n_steps']}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
