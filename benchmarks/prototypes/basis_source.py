"""Which cells the RNA components are fitted on, in the mapping path (issue 29, a prototype).

    python benchmarks/prototypes/basis_source.py --datasets cite --seeds 0 1 2 3 4 5 6 7 \
        --out benchmarks/results/basis_source

The question: what does the mapped CITE query lose? Earlier prototypes ruled out the query's centre and scale
(*Query re-standardisation*) and the in-sample length of the reference's coordinates (*Cross-fitted reference*).
Here everything is the mapping path's (recipes fitted on the reference; the query projected; the protein side as
it is) except the RNA components: the reference recipe's transformed values (its genes, normalisation and log) of
every cell are centred on the recipe's own centre and projected on the top components (as many as the recipe's) of
the values of ``reference`` cells (the recipe's own basis, refitted here by SVD), of ``joint`` (reference and query
cells) or of ``query`` cells; ``augmented`` keeps the recipe's own components and adds as many again: the principal
axes of the query's values left after projecting them on the reference's components. ``run_matching.run_one``
then fits, matches and scores as everywhere else. A record's
``preprocessing`` is ``mapping_basis_<source>``. Fitting components on the query's cells is not something a saved
model can do without retraining: this measures where the loss lies, not a method.

``--modality 2`` does the same for the second modality's components (records ``mapping_basis2_<source>``): on
SNARE-seq2 the ATAC LSI, refitted as the recipe fits it (a truncated SVD of the TF-IDF values, uncentred, its first
component dropped as the recipe's was), with the IDF of the reference. ``--modality both`` refits both
(``mapping_basis12_<source>``).
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

SOURCES = ("reference", "joint", "query", "augmented")


def recipe_values(name: str, side: str):
    """The reference recipe of one modality (``side`` ``"1"`` or ``"2"``) applied to reference and query cells.

    Returns the transformed values of the features that enter the embedding (reference rows, query rows), the
    recipe's centre and loadings over them, and its state.
    """
    from scmatch.pp._partner import is_chromatin
    from scmatch.pp._project import RecipeState, clip_columns

    _, mod1, mod2, kind2, train_batch, test_batch = _data.DATASETS[name]
    mod, kind = (mod1, "rna") if side == "1" else (mod2, kind2)
    mdata = _data._read(name, n_sim_cells=0)
    obs = mdata.obs if {"batch", "cell_type"} <= set(mdata.obs.columns) else mdata.mod[mod1].obs
    batch = obs["batch"].astype(str).to_numpy()
    if train_batch is None or test_batch is None:
        raise ValueError(f"{name}: only sets split by batch are supported")
    is_train, is_test = np.isin(batch, _data._as_tuple(train_batch)), np.isin(batch, _data._as_tuple(test_batch))
    adata = mdata.mod[mod]
    ref, qry = adata[is_train].copy(), adata[is_test].copy()
    raw_ref, raw_qry = ref.copy(), qry.copy()
    # the RNA scaled as load_split scales it (recipe_rna(scale="auto"): beside chromatin)
    scale = is_chromatin(mod2, mdata.mod[mod2]) if kind == "rna" else None
    _data._preprocess(ref, kind, n_comps=50, random_state=0, rna_scale=scale)
    state = RecipeState.from_adata(ref)
    used = state.vectors["used"] > 0
    ceiling = state.vectors.get("ceiling", np.zeros(len(used)))[used]
    out = []
    for raw in (raw_ref, raw_qry):
        values = state.project(raw.X, raw.var_names).X[:, used]
        values = clip_columns(values, ceiling) if ceiling.any() else values  # as the projection clips
        out.append(sp.csr_matrix(values, dtype=np.float64) if sp.issparse(values) else np.asarray(values, np.float64))
    centre = state.vectors.get("mean", np.zeros(len(used)))[used]
    return out[0], out[1], centre, state.loadings[used], state


def fitted_basis(rows, n_comps: int, state) -> np.ndarray:
    """Features x ``n_comps`` components of ``rows``, fitted as the recipe fits its own (PCA, or LSI's SVD)."""
    if state.recipe == "protein":
        raise ValueError("the protein recipe keeps every component: its basis is a rotation, nothing to refit")
    if state.recipe != "atac":  # PCA: centred rows
        dense = rows.toarray() if sp.issparse(rows) else rows
        return np.linalg.svd(dense - dense.mean(axis=0), full_matrices=False)[2][:n_comps].T
    from scipy.sparse.linalg import svds

    drop = bool(state.scalars.get("drop_first", False))
    k = n_comps + int(drop)
    _, sigma, vt = svds(sp.csr_matrix(rows), k=k, random_state=0)
    vt = vt[np.argsort(sigma)[::-1]]  # largest first, as the recipe
    return vt[int(drop) :].T


def augmented_basis(values_qry, centre, loadings, n_comps: int) -> np.ndarray:
    """The recipe's own loadings and, beside them, the top components of what they leave of the query's values.

    The query's centred values minus their projection on the (orthonormal) loadings; its principal axes are the
    directions the query varies along that the reference's components miss.
    """
    dense = values_qry.toarray() if sp.issparse(values_qry) else np.asarray(values_qry)
    basis = np.linalg.qr(loadings)[0]
    centred = dense - centre
    residual = centred - (centred @ basis) @ basis.T
    extra = np.linalg.svd(residual - residual.mean(axis=0), full_matrices=False)[2][:n_comps].T
    return np.hstack([loadings, extra])


def with_basis(split, side: str, values_ref, values_qry, centre, state, source: str):
    n_comps = state.loadings.shape[1]
    if source == "augmented" and state.recipe != "rna":
        raise ValueError("--sources augmented is written for the RNA PCA (--modality 1)")
    if source == "reference":
        rows = values_ref
    elif source == "query":
        rows = values_qry
    else:
        rows = sp.vstack([values_ref, values_qry]) if sp.issparse(values_ref) else np.vstack([values_ref, values_qry])
    basis = (
        augmented_basis(values_qry, centre, state.loadings[state.vectors["used"] > 0], n_comps)
        if source == "augmented"
        else fitted_basis(rows, n_comps, state)
    )
    kind = "mapping_basis" if side == "1" else "mapping_basis2"
    meta = {**json.loads(split.meta), "preprocessing": f"{kind}_{source}"}
    embed = {
        f"X{side}_train": np.asarray(values_ref @ basis - centre @ basis, dtype=np.float32),
        f"X{side}_test": np.asarray(values_qry @ basis - centre @ basis, dtype=np.float32),
    }
    return dataclasses.replace(split, meta=json.dumps(meta), **embed)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["cite"])
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument(
        "--modality", default="1", choices=["1", "2", "both"], help="whose components: mod1 (RNA), mod2 or both"
    )
    p.add_argument("--method", default="scmatch", choices=run_matching.METHODS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=BENCH / "results" / "basis_source")
    args = p.parse_args(argv)
    command = "python benchmarks/prototypes/basis_source.py " + " ".join(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            load = _data.load_split(dataset, preprocessing="mapping")
            sides = ["1", "2"] if args.modality == "both" else [args.modality]
            fitted = {side: recipe_values(dataset, side) for side in sides}
            for side, (values_ref, _, centre, loadings, _) in fitted.items():
                recipe = np.asarray(values_ref @ loadings - centre @ loadings, dtype=np.float32)
                if not np.allclose(recipe, getattr(load, f"X{side}_train"), atol=1e-3):
                    raise RuntimeError(f"{dataset}: the recipe's values do not reproduce the mapping split's X{side}")
            for source in args.sources:
                split = load
                for side, (values_ref, values_qry, centre, _, state) in fitted.items():
                    split = with_basis(split, side, values_ref, values_qry, centre, state, source)
                if args.modality == "both":
                    meta = {**json.loads(split.meta), "preprocessing": f"mapping_basis12_{source}"}
                    split = dataclasses.replace(split, meta=json.dumps(meta))
                cache = str(Path(tmp) / f"{dataset}_{source}.npz")
                split.save(cache)
                for seed in args.seeds:
                    out = args.out / f"{dataset}__{args.method}__mapping_basis_{source}__seed{seed}.json"
                    if args.modality != "1":
                        tag = "mapping_basis2" if args.modality == "2" else "mapping_basis12"
                        out = out.with_name(out.name.replace("mapping_basis", tag))
                    rec = run_matching._run_subprocess(
                        cache, dataset, args.method, seed, str(out), command, args.threads
                    )
                    score = f"match {rec['match_score']:.4f} ct-mass {rec['celltype_mass']:.3f}" if rec else "FAILED"
                    print(f"{dataset} basis {source} seed {seed}: {score}", flush=True)


if __name__ == "__main__":
    main()
