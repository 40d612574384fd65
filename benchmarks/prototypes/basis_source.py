"""Which cells the RNA components are fitted on, in the mapping path (issue 29, a prototype).

    python benchmarks/prototypes/basis_source.py --datasets cite --seeds 0 1 2 3 4 5 6 7 \
        --out benchmarks/results/basis_source

The question: what does the mapped CITE query lose? Earlier prototypes ruled out the query's centre and scale
(*Query re-standardisation*) and the in-sample length of the reference's coordinates (*Cross-fitted reference*).
Here everything is the mapping path's (recipes fitted on the reference; the query projected; the protein side as
it is) except the RNA components: the reference recipe's transformed values (its genes, normalisation and log) of
every cell are centred on the recipe's own centre and projected on the top components (as many as the recipe's) of
the values of ``reference`` cells (the recipe's own basis, refitted here by SVD), of ``joint`` (reference and query
cells) or of ``query`` cells. ``run_matching.run_one`` then fits, matches and scores as everywhere else. A record's
``preprocessing`` is ``mapping_basis_<source>``. Fitting components on the query's cells is not something a saved
model can do without retraining: this measures where the loss lies, not a method.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

BENCH = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(BENCH)]
import _data  # noqa: E402
import run_matching  # noqa: E402

SOURCES = ("reference", "joint", "query")


def rna_values(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The reference RNA recipe's transformed values of reference and query cells, its centre, its loadings."""
    from scmatch.pp._project import RecipeState

    _, mod1, _, _, train_batch, test_batch = _data.DATASETS[name]
    mdata = _data._read(name, n_sim_cells=0)
    obs = mdata.obs if {"batch", "cell_type"} <= set(mdata.obs.columns) else mdata.mod[mod1].obs
    batch = obs["batch"].astype(str).to_numpy()
    if train_batch is None or test_batch is None:
        raise ValueError(f"{name}: only sets split by batch are supported")
    is_train, is_test = np.isin(batch, _data._as_tuple(train_batch)), np.isin(batch, _data._as_tuple(test_batch))
    rna = mdata.mod[mod1]
    ref, qry = rna[is_train].copy(), rna[is_test].copy()
    raw_ref, raw_qry = ref.copy(), qry.copy()
    _data._preprocess(ref, "rna", n_comps=50, random_state=0)
    state = RecipeState.from_adata(ref)
    used = state.vectors["used"] > 0
    out = []
    for raw in (raw_ref, raw_qry):
        values = state.project(raw.X, raw.var_names).X[:, used]
        out.append(np.asarray(values.toarray() if sp.issparse(values) else values, dtype=np.float64))
    centre = state.vectors.get("mean", np.zeros(len(used)))[used]
    return out[0], out[1], centre, state.loadings[used], state.loadings.shape[1]


def with_basis(split, values_ref, values_qry, centre, n_comps: int, source: str):
    rows = {"reference": values_ref, "query": values_qry, "joint": np.vstack([values_ref, values_qry])}[source]
    basis = np.linalg.svd(rows - rows.mean(axis=0), full_matrices=False)[2][:n_comps].T
    meta = {**json.loads(split.meta), "preprocessing": f"mapping_basis_{source}"}
    return dataclasses.replace(
        split,
        X1_train=((values_ref - centre) @ basis).astype(np.float32),
        X1_test=((values_qry - centre) @ basis).astype(np.float32),
        meta=json.dumps(meta),
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["cite"])
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--method", default="scmatch", choices=run_matching.METHODS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=BENCH / "results" / "basis_source")
    args = p.parse_args(argv)
    command = "python benchmarks/prototypes/basis_source.py " + " ".join(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            load = _data.load_split(dataset, preprocessing="mapping")
            values_ref, values_qry, centre, loadings, n_comps = rna_values(dataset)
            recipe = ((values_ref - centre) @ loadings).astype(np.float32)
            if not np.allclose(recipe, load.X1_train, atol=1e-3):
                raise RuntimeError(f"{dataset}: the recipe's values do not reproduce the mapping split's RNA")
            for source in args.sources:
                split = with_basis(load, values_ref, values_qry, centre, n_comps, source)
                cache = str(Path(tmp) / f"{dataset}_{source}.npz")
                split.save(cache)
                for seed in args.seeds:
                    out = args.out / f"{dataset}__{args.method}__mapping_basis_{source}__seed{seed}.json"
                    rec = run_matching._run_subprocess(
                        cache, dataset, args.method, seed, str(out), command, args.threads
                    )
                    score = f"match {rec['match_score']:.4f} ct-mass {rec['celltype_mass']:.3f}" if rec else "FAILED"
                    print(f"{dataset} basis {source} seed {seed}: {score}", flush=True)


if __name__ == "__main__":
    main()
