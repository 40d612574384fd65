"""Each cell's neighbourhood as a second view of its profile (issue 26, a prototype).

    python benchmarks/prototypes/neighbour_view.py --datasets snare2 snare2_rev --seeds 0 1 2 \
        --variants atac both --out benchmarks/results/neighbour_view

A single-nucleus ATAC profile holds about 100 open peaks: its LSI vector is mostly sampling noise, and the network
sees one cell at a time, so it cannot average the noise away. Here each cell's representation gets a second
half: the mean of its 15 nearest cells' vectors (cosine distance on the same representation; 15 is scanpy's
default neighbour count, not tuned), searched among the cells of its own set (reference among reference, query
among query), so that a reference cell's input does not depend on the query. The network then reads both: the
neighbourhood for where the cell lies, its own vector for what sets it apart.

- ``atac``: the second modality (ATAC) gets the neighbourhood view;
- ``both``: both modalities do;
- ``none``: the split as is.

The split is ``_data.load_split`` (joint recipes); ``run_matching.run_one`` then fits, matches and scores as
everywhere else (default method ``scmatch_depth``, what ``tl.match_modalities`` does by default on RNA + ATAC). A
record's ``preprocessing`` is ``joint_nbr_{variant}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.neighbors import NearestNeighbors

BENCH = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(BENCH)]
import run_matching  # noqa: E402
from _data import load_split  # noqa: E402

VARIANTS = ("none", "atac", "both")
N_NEIGHBORS = 15


def neighbour_mean(X: np.ndarray, n_neighbors: int = N_NEIGHBORS) -> np.ndarray:
    """The mean of each row's ``n_neighbors`` nearest other rows (cosine distance)."""
    X = np.asarray(X, dtype=np.float32)
    k = min(n_neighbors + 1, X.shape[0])
    idx = NearestNeighbors(n_neighbors=k, metric="cosine").fit(X).kneighbors(X, return_distance=False)
    others = np.stack([row[row != i][: k - 1] for i, row in enumerate(idx)])
    return X[others].mean(axis=1)


def with_neighbours(split, variant: str):
    """The split with the neighbourhood view appended to the chosen modalities' representations."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    mods = {"none": (), "atac": ("2",), "both": ("1", "2")}[variant]
    new = {}
    for m in mods:
        for part in ("train", "test"):
            X = np.asarray(getattr(split, f"X{m}_{part}"), dtype=np.float32)
            new[f"X{m}_{part}"] = np.hstack([X, neighbour_mean(X)])
    meta = {**json.loads(split.meta), "preprocessing": f"joint_nbr_{variant}"}
    return dataclasses.replace(split, meta=json.dumps(meta), **new)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["snare2"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=["atac", "both"], choices=VARIANTS)
    p.add_argument("--method", default="scmatch_depth", choices=run_matching.METHODS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--gene-annotation", default=None, help="as run_matching.py's, for the links (pbmc_multiome=var)")
    p.add_argument("--out", type=Path, default=BENCH / "results" / "neighbour_view")
    args = p.parse_args(argv)
    command = "python benchmarks/prototypes/neighbour_view.py " + " ".join(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            annotation = dict(a.split("=", 1) for a in [args.gene_annotation] if a).get(dataset)
            split = load_split(dataset, preprocessing="joint", gene_annotation=annotation)
            for variant in args.variants:
                cache = str(Path(tmp) / f"{dataset}__{variant}.npz")
                with_neighbours(split, variant).save(cache)
                for seed in args.seeds:
                    out = args.out / f"{dataset}__{args.method}__joint_nbr_{variant}__seed{seed}.json"
                    rec = run_matching._run_subprocess(
                        cache, dataset, args.method, seed, str(out), command, args.threads
                    )
                    score = f"match {rec['match_score']:.4f} ct-mass {rec['celltype_mass']:.3f}" if rec else "FAILED"
                    print(f"{dataset} {variant} seed {seed}: {score}", flush=True)


if __name__ == "__main__":
    main()
