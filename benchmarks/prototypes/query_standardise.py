"""Query-aware mapping by re-standardising the projected query on its own statistics (issue 29, a prototype).

    python benchmarks/prototypes/query_standardise.py --datasets cite --seeds 0 1 2 3 4 5 6 7 \
        --variants centre scale --out benchmarks/results/query_standardise

The split is ``_data.load_split(preprocessing="mapping")``: each modality's recipe fitted on the reference alone
and the query projected with ``reference=``. The projected query's coordinates are then moved onto the
reference's statistics, per modality and per dimension, before ``run_matching.run_one`` fits, matches and scores
as everywhere else (method ``scmatch_links``, what ``tl.match_modalities`` does by default):

- ``centre``: ``X_query - mean(X_query) + mean(X_reference)``, the per-batch centring some 2021 entries used;
- ``scale``: the same, and each dimension rescaled to the reference's standard deviation;
- ``none``: the query as projected (the mapping path itself, for a table of its own).

Nothing is refitted: the recipes, the reference's embedding and the model are those of the mapping path. A
record's ``preprocessing`` is ``mapping_{variant}``; the joint path is the ``scmatch_links`` rows of *Feature links*
(whose mapped rows ``none`` reproduces: same seeds, same code path, identical scores).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(BENCH)]
import run_matching  # noqa: E402
from _data import load_split  # noqa: E402

VARIANTS = ("none", "centre", "scale")


def restandardised(split, variant: str):
    """The split with its query coordinates moved onto the reference's mean (and standard deviation)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    new = {}
    for m in ("1", "2") if variant != "none" else ():
        ref, query = getattr(split, f"X{m}_train"), getattr(split, f"X{m}_test")
        centred = query - query.mean(axis=0)
        if variant == "scale":
            centred = centred / np.maximum(query.std(axis=0), 1e-8) * ref.std(axis=0)
        new[f"X{m}_test"] = (centred + ref.mean(axis=0)).astype(np.float32)
    meta = {**json.loads(split.meta), "preprocessing": f"mapping_{variant}"}
    return dataclasses.replace(split, meta=json.dumps(meta), **new)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["cite"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=["centre", "scale"], choices=VARIANTS)
    p.add_argument("--method", default="scmatch_links", choices=run_matching.METHODS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=BENCH / "results" / "query_standardise")
    args = p.parse_args(argv)
    command = "python benchmarks/prototypes/query_standardise.py " + " ".join(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            split = load_split(dataset, preprocessing="mapping")
            for variant in args.variants:
                cache = str(Path(tmp) / f"{dataset}__{variant}.npz")
                restandardised(split, variant).save(cache)
                for seed in args.seeds:
                    out = args.out / f"{dataset}__{args.method}__mapping_{variant}__seed{seed}.json"
                    rec = run_matching._run_subprocess(
                        cache, dataset, args.method, seed, str(out), command, args.threads
                    )
                    score = f"match {rec['match_score']:.4f} ct-mass {rec['celltype_mass']:.3f}" if rec else "FAILED"
                    print(f"{dataset} {variant} seed {seed}: {score}", flush=True)


if __name__ == "__main__":
    main()
