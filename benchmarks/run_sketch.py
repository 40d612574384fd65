"""Sketching: ``scmatch.tl.select_coreset`` against uniform sampling and geometric sketching (geosketch).

    python benchmarks/run_sketch.py --seeds 0 1 2
    python benchmarks/make_table.py sketch

A sketch keeps a share (``--fractions``: 1%, 5%, 10%) of the cells of one modality (RNA ``X_pca``: the scmatch
recipe; for the ``simulated_50k*`` sets, the cached simulations of ``run_label_coreset.py``, both batches: 50,000
cells, 24 types, 4 of them rare; in ``simulated_50k`` the types overlap in ``X_pca``, in the ``_separated`` sets
they stand apart, and in ``_rarest`` the rare types have 10 to 100 cells). Measures:

- ``types_retained``: share of the cell types with at least one cell in the sketch;
- ``rare_types_retained``: the same over the rare types, those with at most 0.5% of the cells (``n_rare_types``
  of them; empty where a set has none);
- ``hausdorff``: the largest distance from a cell to its nearest sketched cell in ``X_pca`` (the Hausdorff
  distance between the full data and the sketch, as the sketch is a subset), and ``mean_distance``, its mean;
- ``seconds``: wall time of the selection.

Methods: ``scmatch_kcenter`` (``tl.select_coreset`` with its defaults: greedy k-center), ``scmatch_craig``
(``method="craig"``: facility location on the adaptive kNN kernel), ``scmatch_craig_global`` (the same with
``kernel="global"``, one distance scale for all cells), ``uniform`` (a uniform random subset) and
``geosketch`` (``geosketch.gs(X_pca, n, replace=False)``, Hie et al. 2019), which runs in the peers' virtual
environment (``benchmarks/peers/.venv``, set up by ``benchmarks/peers/setup_venv.sh``), never in scmatch's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]
from _data import DATASETS, data_dir  # noqa: E402
from run_label_coreset import RARE_SHARE, SIMULATIONS, git_info, simulated_50k  # noqa: E402

RESULTS = HERE / "results" / "sketch"
DATASETS_RUN = [*SIMULATIONS, "cite", "multiome", "totalvi"]
METHODS = ["scmatch_kcenter", "scmatch_craig", "scmatch_craig_global", "uniform", "geosketch"]
PEERS_PYTHON = HERE / "peers" / ".venv" / "bin" / "python"
GEOSKETCH = """
import sys, time, numpy as np
from geosketch import gs
X = np.load(sys.argv[1]); n = int(sys.argv[2]); seed = int(sys.argv[3])
t0 = time.perf_counter()
idx = np.asarray(gs(X, n, replace=False, seed=seed), dtype=np.int64)
np.save(sys.argv[4], np.r_[idx, int(1e6 * (time.perf_counter() - t0))])
"""


def load(name: str, cache: Path):
    """RNA AnnData with ``X_pca`` and ``obs['cell_type']``."""
    if name in SIMULATIONS:
        return simulated_50k(cache, name)
    import mudata

    import scmatch as scm

    rna = mudata.read_h5mu(data_dir() / DATASETS[name][0])["rna"]
    scm.pp.recipe_rna(rna)
    return rna


def sketch(X: np.ndarray, method: str, n: int, seed: int, python: Path) -> tuple[np.ndarray, float]:
    """Indices of the sketch and the seconds the selection took."""
    if method == "uniform":
        t0 = time.perf_counter()
        idx = np.random.default_rng(seed).choice(len(X), size=n, replace=False)
        return idx, time.perf_counter() - t0
    if method == "geosketch":
        with tempfile.TemporaryDirectory() as tmp:
            np.save(f"{tmp}/X.npy", X)
            env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            cmd = [str(python), "-c", GEOSKETCH, f"{tmp}/X.npy", str(n), str(seed), f"{tmp}/idx.npy"]
            subprocess.run(cmd, check=True, env=env)
            out = np.load(f"{tmp}/idx.npy")
        return out[:-1], out[-1] / 1e6
    import anndata as ad

    import scmatch as scm

    adata = ad.AnnData(obsm={"X_pca": X})
    name, _, kernel = method.removeprefix("scmatch_").partition("_")
    t0 = time.perf_counter()
    scm.tl.select_coreset(adata, fraction=n / len(X), method=name, kernel=kernel or "adaptive", random_state=seed)
    return np.flatnonzero(adata.obs["coreset_selected"].to_numpy()), time.perf_counter() - t0


def measures(X: np.ndarray, labels: np.ndarray, idx: np.ndarray) -> dict:
    from sklearn.neighbors import NearestNeighbors

    types, counts = np.unique(labels, return_counts=True)
    kept = np.isin(types, labels[idx])
    rare = counts <= RARE_SHARE * len(labels)
    dist = NearestNeighbors(n_neighbors=1).fit(X[idx]).kneighbors(X)[0][:, 0]
    return {
        "types_retained": float(kept.mean()),
        "rare_types_retained": float(kept[rare].mean()) if rare.any() else float("nan"),
        "n_rare_types": int(rare.sum()),
        "n_types": len(types),
        "hausdorff": float(dist.max()),
        "mean_distance": float(dist.mean()),
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=DATASETS_RUN)
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--fractions", nargs="+", type=float, default=[0.01, 0.05, 0.1])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "scmatch_label_coreset")
    p.add_argument("--venv-python", type=Path, default=PEERS_PYTHON)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    command = "python benchmarks/run_sketch.py " + " ".join(argv)
    git = git_info()
    for dataset in args.datasets:
        adata = load(dataset, args.cache)
        X = np.ascontiguousarray(adata.obsm["X_pca"], dtype=np.float32)
        labels = adata.obs["cell_type"].astype(str).to_numpy()
        for fraction in args.fractions:
            n = max(1, round(fraction * len(X)))
            for method in args.methods:
                for seed in args.seeds:
                    idx, seconds = sketch(X, method, n, seed, args.venv_python)
                    rec = {
                        "dataset": dataset,
                        "method": f"{method}_{fraction:g}",
                        "seed": seed,
                        "fraction": fraction,
                        "n_cells": len(X),
                        "n_selected": len(idx),
                        **measures(X, labels, idx),
                        "seconds": seconds,
                        "command": command,
                        "n_cores": os.cpu_count(),
                        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        **git,
                    }
                    out = args.out / f"{dataset}__{rec['method']}__seed{seed}.json"
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(json.dumps(rec, indent=1) + "\n")
                    print(
                        f"{dataset} {rec['method']} seed {seed}: types {rec['types_retained']:.3f}"
                        f" rare {rec['rare_types_retained']:.3f} hausdorff {rec['hausdorff']:.2f}"
                        f" mean {rec['mean_distance']:.2f} {seconds:.1f}s",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
