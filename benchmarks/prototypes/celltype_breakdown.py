"""Where each cell type's probability goes: the cell-type mass of one run broken down by type (issue 26).

    python benchmarks/prototypes/celltype_breakdown.py --datasets snare2 snare2_rev --seeds 0 \
        --out benchmarks/results/atac_types

The *ATAC* table's run on one seed (``run_atac.py``'s split, recipes, default model and matching), with the
query's probability mass aggregated into a cell-type confusion (``scmatch.pl`` computes the same one for its
heatmap: rows the RNA cells' types, columns the ATAC cells' types, each row the mean over its cells). A record
holds ``n_query`` (cells of each type in the query), ``own_mass`` (the confusion's diagonal), and ``confusion`` (the
whole table, ``confusion.ROW.COLUMN``), with the run's ``celltype_mass`` and ``match_score``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE)]
import run_atac  # noqa: E402
from _provenance import git_state  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["snare2"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=HERE / "results" / "atac_types")
    args = p.parse_args(argv)

    import torch
    from threadpoolctl import threadpool_limits

    import scmatch.metrics
    import scmatch.pl
    import scmatch.pp
    from scmatch.model import MatchModel, TrainingPlan

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    command = "python benchmarks/prototypes/celltype_breakdown.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for name in args.datasets:
        rna, atac, is_train, is_test, labels = run_atac._load(name, 6000)
        scmatch.pp.recipe_rna(rna, n_top_genes=min(2000, rna.n_vars))
        scmatch.pp.recipe_atac(atac)
        X1 = np.asarray(rna.obsm["X_pca"], dtype=np.float32)
        X2 = np.asarray(atac.obsm["X_lsi"], dtype=np.float32)
        for seed in args.seeds:
            model = MatchModel().fit(
                X1[is_train], X2[is_train], plan=TrainingPlan(progress_bar=False), random_state=seed
            )
            P = model.predict_proba(X1[is_test], X2[is_test], matching="sinkhorn", top_k=1000)
            lab = labels[is_test]
            confusion = scmatch.pl.celltype_confusion(P, lab, lab)
            types = [str(t) for t in confusion.index]
            record = {
                "dataset": name,
                "method": "scmatch",
                "seed": seed,
                "n_query": {t: int(np.sum(lab == t)) for t in types},
                "own_mass": {t: float(confusion.loc[t, t]) for t in types},
                "confusion": {t: {u: float(confusion.loc[t, u]) for u in confusion.columns} for t in types},
                "celltype_mass": scmatch.metrics.celltype_mass(P, lab, lab),
                "match_score": scmatch.metrics.match_score(P, np.arange(len(lab))),
                **git_state(),
                "command": command,
                "python": platform.python_version(),
                "threads": args.threads,
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{name}__scmatch__seed{seed}.json").write_text(json.dumps(record, indent=1) + "\n")
            print(name, seed, {t: round(v, 3) for t, v in record["own_mass"].items()}, flush=True)


if __name__ == "__main__":
    main()
