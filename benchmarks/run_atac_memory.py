"""Memory of the ATAC path at scale: 10,000 cells x 100,000 peaks, preprocessed and trained, one JSON record.

    python benchmarks/run_atac_memory.py                      # single-nucleus depth (about 400 peaks per cell)
    python benchmarks/run_atac_memory.py --atac-depth 2000    # a denser 10x Multiome-like depth

The simulator draws 10,000 paired cells (two batches) with 100,000 peaks; ``recipe_rna`` and ``recipe_atac`` run
with their defaults on all of them, and the default :class:`~scmatch.model.MatchModel` is fitted on ``batch0``'s
pairs. Every stage's wall seconds and peak resident memory (sampled from /proc every 20 ms) go to
``benchmarks/results/atac_memory/``; the whole process's peak (``ru_maxrss``) is recorded too. The issue's bound:
preprocessing and training within 4 GB.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]
from _rss import StagePeaks, max_rss_mb  # noqa: E402
from run_atac import _git  # noqa: E402

RESULTS = HERE / "results" / "atac_memory"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-cells", type=int, default=10_000)
    p.add_argument("--n-peaks", type=int, default=100_000)
    p.add_argument("--atac-depth", type=float, default=400.0, help="median ATAC counts per cell")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    import torch
    from threadpoolctl import threadpool_limits

    import scmatch
    from scmatch.model import MatchModel, TrainingPlan

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    peaks = StagePeaks()
    with peaks.stage("simulate"):
        mdata = scmatch.datasets.simulate_multiome(
            args.n_cells, n_peaks=args.n_peaks, atac_depth=args.atac_depth, atac_sparsity="single_nucleus"
        )
    atac = mdata["atac"]
    nnz_per_cell = float(np.mean(np.diff(atac.X.indptr)))
    with peaks.stage("recipe_rna"):
        scmatch.pp.recipe_rna(mdata, mod="rna")
    with peaks.stage("recipe_atac"):
        scmatch.pp.recipe_atac(mdata, mod="atac")
    ref = (mdata.obs["batch"] == "batch0").to_numpy()
    X1 = np.asarray(mdata["rna"].obsm["X_pca"], dtype=np.float32)
    X2 = np.asarray(mdata["atac"].obsm["X_lsi"], dtype=np.float32)
    with peaks.stage("fit"):
        MatchModel().fit(X1[ref], X2[ref], plan=TrainingPlan(progress_bar=False), random_state=0)
    peaks.close()
    record = {
        "n_cells": args.n_cells,
        "n_peaks": args.n_peaks,
        "atac_depth": args.atac_depth,
        "nnz_per_cell": nnz_per_cell,
        "n_peaks_used": int(mdata["atac"].uns["scmatch_recipe"]["n_peaks_used"]),
        "n_reference_pairs": int(ref.sum()),
        "seconds": peaks.seconds,
        "peak_mb": peaks.peak_mb,
        "start_mb": peaks.start_mb,
        "process_peak_mb": max_rss_mb(),
        "threads": args.threads,
        **_git(),
        "command": "python benchmarks/run_atac_memory.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "python": platform.python_version(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out = args.out / f"simulated_{args.n_cells}x{args.n_peaks}_depth{int(args.atac_depth)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: record[k] for k in ("nnz_per_cell", "seconds", "peak_mb", "process_peak_mb")}, indent=1))


if __name__ == "__main__":
    main()
