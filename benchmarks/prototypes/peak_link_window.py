"""How far from a gene should its peaks be linked? The linked correlation of the reference pairs, per window.

``scmatch.links.peak_gene_links(distance=...)`` links a gene to the peaks within ``distance`` bases of it. What a
window is worth to the prior is what ``links.choose_weight`` tests before anything else: the correlation of a
nucleus's gene activity with its own RNA over the linked genes (``links.profiles``, standardised within each
library), its mean over every pair and its t statistic, against random pairs (about 0). This needs no training, so
every window is scored on the same data in seconds. One record per dataset and window::

    python benchmarks/prototypes/peak_link_window.py \
        --dataset snare2=/path/mm10_tss_info.bed multiome=/path/hg38_tss_info.bed pbmc_markers= \
        --out benchmarks/results/peak_link_window

``pbmc_markers=`` (no path) uses the genes' own ``var['interval']`` (Cell Ranger ARC's).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

from _data import data_dir  # noqa: E402
from _provenance import git_state  # noqa: E402

FILES = {
    "snare2": "snare2_mop_5232.h5mu",
    "multiome": "bmmc_multiome_starter.h5mu",
    "pbmc_markers": "pbmc_multiome_1k_markers.h5mu",
}
DISTANCES = [0, 2_000, 10_000, 50_000, 100_000, 200_000]


def score(name: str, annotation: str | None, distance: int) -> dict:
    import mudata

    import scmatch.links as links

    mdata = mudata.read_h5mu(data_dir() / FILES[name])
    rna, atac = mdata["rna"], mdata["atac"]
    counts = [np.asarray(a.X.sum(axis=1)).ravel() for a in (rna, atac)]
    keep = (counts[0] > 0) & (counts[1] > 0)
    rna, atac = rna[keep].copy(), atac[keep].copy()
    obs = mdata.obs[keep] if "batch" in mdata.obs else rna.obs
    batch = obs["batch"].astype(str).to_numpy() if "batch" in obs else None
    table = links.peak_gene_links(rna, atac, annotation=annotation, distance=distance)
    v1, v2 = links.peak_linked_values(rna, atac, table)
    z1, z2 = links.profiles(v1, groups=batch), links.profiles(v2, groups=batch)
    paired = np.einsum("ij,ij->i", z1, z2, dtype=np.float64)
    shuffled = np.einsum("ij,ij->i", z1, z2[np.random.default_rng(0).permutation(len(z2))], dtype=np.float64)
    return {
        "dataset": name,
        "method": "pair_correlation",
        "distance": distance,
        "annotation": None if not annotation else {
            "file": Path(annotation).name, "sha256": hashlib.sha256(Path(annotation).read_bytes()).hexdigest(),
        },
        "n_cells": int(keep.sum()),
        "n_genes": int(rna.n_vars),
        "n_peaks": int(atac.n_vars),
        "n_genes_linked": int(table["gene"].nunique()),
        "n_peaks_linked": int(table["peak"].nunique()),
        "n_links": len(table),
        "pair_correlation": float(paired.mean()),
        "pair_correlation_t": float(paired.mean() / (paired.std(ddof=1) / np.sqrt(len(paired)))),
        "random_correlation": float(shuffled.mean()),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", nargs="+", required=True, metavar="NAME=ANNOTATION")
    p.add_argument("--distances", nargs="+", type=int, default=DISTANCES)
    p.add_argument("--out", type=Path, default=HERE.parent / "results" / "peak_link_window")
    args = p.parse_args(argv)
    command = "python benchmarks/prototypes/peak_link_window.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for item in args.dataset:
        name, _, annotation = item.partition("=")
        for distance in args.distances:
            record = score(name, annotation or None, distance)
            record.update(git_state(), command=command, python=platform.python_version())
            record["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{name}__{distance}.json").write_text(json.dumps(record, indent=1) + "\n")
            print(
                f"{name:>12} {distance:>7} bp: genes {record['n_genes_linked']:>5} peaks {record['n_peaks_linked']:>6}"
                f" corr {record['pair_correlation']:.4f} t {record['pair_correlation_t']:.1f}"
                f" (random {record['random_correlation']:+.4f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
