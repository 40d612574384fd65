"""Benchmark datasets: load, preprocess and split, per ../shared/BENCHMARKS.md.

Two preprocessings: ``"joint"`` fits each modality's recipe (PCA/LSI) on reference + query cells together, as the
2021 challenge allowed; ``"mapping"`` fits it on the reference cells alone and projects the query cells into that
space with the recipe's ``reference=`` (nothing refitted on the query), as a user mapping new cells onto a trained
reference would.

A :class:`MatchingSplit` holds the reference pairs (``X1_train[i]`` pairs with ``X2_train[i]``) and the query in
its *paired* order. :meth:`MatchingSplit.shuffled` hides the query pairing the way the challenge does: the mod2
rows are permuted with a seeded permutation and ``truth[i]`` is the column of row ``i``'s partner.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:  # run from a source tree without an install
    sys.path.insert(0, str(REPO / "src"))

# name -> (file, mod1, mod2, kind of mod2, train batches, test batches); None = first / second in sorted order
Batches = str | tuple[str, ...] | None
DATASETS: dict[str, tuple[str | None, str, str, str, Batches, Batches]] = {
    "cite": ("bmmc_cite_starter.h5mu", "rna", "adt", "protein", "s1d1", "s1d2"),
    "multiome": ("bmmc_multiome_starter.h5mu", "rna", "atac", "atac", "s1d1", "s1d2"),
    "totalvi": ("totalvi_sln_340.h5mu", "rna", "adt", "protein", None, None),
    "snareseq": ("snareseq_cellmix_1047.h5mu", "rna_pca", "atac_features", "features", None, None),
    "simulated": (None, "rna", "atac", "atac", "batch0", "batch1"),
    # the simulator's single-nucleus ATAC setting (25,000 peaks, about 100 non-zero per cell)
    "simulated_sparse": (None, "rna", "atac", "atac", "batch0", "batch1"),
    # SNARE-seq2 mouse cortex, split by sequencing library: real sparse single-nucleus ATAC, both directions
    "snare2": ("snare2_mop_5232.h5mu", "rna", "atac", "atac", ("09A", "09B", "09C"), ("09D", "09E", "09F")),
    "snare2_rev": ("snare2_mop_5232.h5mu", "rna", "atac", "atac", ("09D", "09E", "09F"), ("09A", "09B", "09C")),
    # 10x PBMC CITE-seq with a 17-protein panel (3 isotype controls); no batches, no labels: seeded random halves
    "pbmc_protein": ("pbmc_1k_protein_v3.h5mu", "rna", "adt", "protein", None, None),
    # 10x PBMC multiome (dense ATAC), 45 marker genes and the 174 peaks near them, with Cell Ranger ARC's gene
    # intervals; no labels: seeded random halves; the nuclei with no counts in either modality are left out
    "pbmc_multiome": ("pbmc_multiome_1k_markers.h5mu", "rna", "atac", "atac", None, None),
}
#: sets without batches, split into seeded random halves (reference, query)
RANDOM_HALVES = ("snareseq", "pbmc_protein", "pbmc_multiome")
#: labels that the source gives to cells without a cell type (SNARE-seq2: "Mis", its unassigned group, SOURCES.md)
UNASSIGNED: dict[str, tuple[str, ...]] = {"snare2": ("Mis",), "snare2_rev": ("Mis",)}


_FEATURES = {
    "rna": "recipe_rna X_pca",
    "atac": "recipe_atac X_lsi",
    "protein": "recipe_protein X_pca",
    "features": "as provided",
}


def _as_tuple(batches: str | tuple[str, ...]) -> tuple[str, ...]:
    return (batches,) if isinstance(batches, str) else tuple(batches)


def data_dir() -> Path:
    """``$SCMATCH_DATA`` if set, else ``../shared/data`` relative to the repository root."""
    return Path(os.environ.get("SCMATCH_DATA", REPO / ".." / "shared" / "data")).resolve()


@dataclass
class MatchingSplit:
    """Reference pairs and a query; query arrays are in paired order until :meth:`shuffled` is called."""

    name: str
    X1_train: np.ndarray
    X2_train: np.ndarray
    X1_test: np.ndarray
    X2_test: np.ndarray
    labels_train: np.ndarray
    labels_rows: np.ndarray
    labels_cols: np.ndarray
    truth: np.ndarray
    meta: str = "{}"  # JSON: how the features were made (modalities, recipes, sizes)
    # each cell's values on the protein-gene links (scmatch.links.linked_values); 0 columns without links
    L1_train: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    L2_train: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    L1_test: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    L2_test: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    # each cell's log1p total count per modality (scmatch.tl._depth.log_depth); empty without counts
    D1_train: np.ndarray = field(default_factory=lambda: np.zeros(0))
    D2_train: np.ndarray = field(default_factory=lambda: np.zeros(0))
    D1_test: np.ndarray = field(default_factory=lambda: np.zeros(0))
    D2_test: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # the query cells' batch (library) labels, rows (mod1) and columns (mod2); empty for a single-batch query
    batch_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))
    batch_cols: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))

    @property
    def n_train(self) -> int:
        return self.X1_train.shape[0]

    @property
    def n_test(self) -> int:
        return self.X1_test.shape[0]

    def shuffled(self, seed: int) -> MatchingSplit:
        """Permute the query's mod2 rows with a seeded permutation (never the identity); set ``truth``."""
        n = self.n_test
        rng = np.random.default_rng([seed, 20211206])
        perm = rng.permutation(n)
        while n > 1 and np.array_equal(perm, np.arange(n)):
            perm = rng.permutation(n)
        # column j holds query cell perm[j]; row i's partner is the column j with perm[j] == i
        return replace(
            self,
            X2_test=self.X2_test[perm],
            L2_test=self.L2_test[perm] if len(self.L2_test) else self.L2_test,
            D2_test=self.D2_test[perm] if len(self.D2_test) else self.D2_test,
            labels_cols=self.labels_cols[perm],
            batch_cols=self.batch_cols[perm] if len(self.batch_cols) else self.batch_cols,
            truth=np.argsort(perm).astype(np.int64),
        )

    def save(self, path: str | Path) -> None:
        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}
        np.savez(path, **{k: a.astype(str) if a.dtype == object else a for k, a in arrays.items()})

    @classmethod
    def load(cls, path: str | Path) -> MatchingSplit:
        with np.load(path, allow_pickle=False) as z:
            kw = {f.name: z[f.name] for f in fields(cls) if f.name in z.files}
        kw["name"], kw["meta"] = str(kw["name"]), str(kw["meta"])
        return cls(**kw)


PREPROCESSINGS = (
    "joint", "mapping", "joint_knn_basis", "mapping_knn_basis",
    "joint_rna_scale", "mapping_rna_scale", "joint_rna_noscale", "mapping_rna_noscale",
)  # fmt: skip
#: ``recipe_atac(basis_neighbors=...)`` of the ``*_knn_basis`` preprocessings (scanpy's default neighbour count)
KNN_BASIS_NEIGHBORS = 15


def _preprocess(
    adata,
    kind: str,
    *,
    n_comps: int,
    random_state: int,
    reference=None,
    basis_neighbors: int | None = None,
    rna_scale: bool | None = None,
) -> np.ndarray:
    """Run the scmatch recipe of a modality on ``adata`` (or project it onto ``reference``); return the embedding.

    Without ``reference`` the recipe is fitted on every cell of ``adata``; ``n_comps`` (RNA and protein; ATAC
    takes ``recipe_atac``'s defaults) is capped by its size. With
    ``reference`` (an AnnData this function processed), the cells are projected into the reference's space.
    """
    import scmatch.pp

    if kind == "features":  # already preprocessed (SNARE-seq): use as is
        X = adata.X
        return np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float32)
    recipes = {"rna": scmatch.pp.recipe_rna, "atac": scmatch.pp.recipe_atac, "protein": scmatch.pp.recipe_protein}
    if kind not in recipes:
        raise ValueError(f"unknown modality kind {kind!r}")
    key = "X_lsi" if kind == "atac" else "X_pca"
    if reference is not None:
        recipes[kind](adata, reference=reference)
        return np.asarray(adata.obsm[key], dtype=np.float32)
    n_comps = int(min(n_comps, adata.n_obs - 1, adata.n_vars - 1))
    kw = {"n_top_genes": min(2000, adata.n_vars)} if kind == "rna" else {}
    if kind == "rna" and rna_scale is not None:  # else the recipe's default
        kw["scale"] = rna_scale
    if kind != "atac":  # ATAC: the recipe's own defaults (its number of components among them)
        kw["n_comps"] = n_comps
    elif basis_neighbors is not None:
        kw["basis_neighbors"] = basis_neighbors
    recipes[kind](adata, random_state=random_state, **kw)
    return np.asarray(adata.obsm[key], dtype=np.float32)


def _embed(adata, kind: str, is_train: np.ndarray, is_test: np.ndarray, preprocessing: str, **kw):
    """Reference and query embeddings of one modality: fitted on all cells (joint) or on the reference (mapping)."""
    if preprocessing.endswith("_knn_basis"):
        preprocessing, kw = preprocessing.removesuffix("_knn_basis"), {**kw, "basis_neighbors": KNN_BASIS_NEIGHBORS}
    for suffix, scale in (("_rna_scale", True), ("_rna_noscale", False)):
        if preprocessing.endswith(suffix):
            preprocessing, kw = preprocessing.removesuffix(suffix), {**kw, "rna_scale": scale}
    if preprocessing == "joint":
        X = _preprocess(adata, kind, **kw)
        return X[is_train], X[is_test]
    ref, qry = adata[is_train].copy(), adata[is_test].copy()
    X_ref = _preprocess(ref, kind, **kw)
    return X_ref, _preprocess(qry, kind, reference=ref, **kw)


def _read(name: str, *, n_sim_cells: int):
    if name in ("simulated", "simulated_sparse"):
        import scmatch.datasets

        sparsity = {"atac_sparsity": "single_nucleus"} if name == "simulated_sparse" else {}
        return scmatch.datasets.simulate_multiome(n_sim_cells, n_batches=2, random_state=0, **sparsity)
    import mudata

    path = data_dir() / DATASETS[name][0]
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; set SCMATCH_DATA to the folder holding the shared data.")
    mdata = mudata.read_h5mu(path)
    if name == "pbmc_multiome":  # 19 nuclei have no counts on these 174 peaks: TF-IDF is undefined for them
        empty = [np.asarray(mdata[m].X.sum(axis=1)).ravel() == 0 for m in ("rna", "atac")]
        mdata = mdata[~(empty[0] | empty[1])].copy()
    return mdata


def load_split(
    name: str,
    *,
    n_comps: int = 50,
    n_sim_cells: int = 6000,
    random_state: int = 0,
    preprocessing: str = "joint",
    gene_annotation: str | None = None,
) -> MatchingSplit:
    """Load dataset ``name``, preprocess it and split it into reference and query (query kept in paired order).

    ``preprocessing="joint"`` fits each modality's recipe on every cell of the file (reference + query);
    ``"mapping"`` fits it on the reference cells alone (``n_comps`` capped by the reference's size) and projects the
    query cells with ``reference=``. ``"joint_knn_basis"`` and ``"mapping_knn_basis"`` are the same with the ATAC
    loadings fitted on neighbour-averaged profiles (``recipe_atac(basis_neighbors=15)``).
    The split, the query order, its labels and truth are the same in both, so a seed
    shuffles the query identically. For a dataset of ready-made features (SNARE-seq) nothing is fitted: the two
    give the same arrays. ``n_sim_cells`` is the total number of simulated cells (two batches: reference and query).
    ``gene_annotation`` (a BED or GTF path, or ``"var"`` for the genes' own ``var`` coordinates) gives an RNA +
    ATAC set peak-gene links (``scmatch.links.peak_gene_links`` at its default distance), whose linked values fill
    ``L1_*``/``L2_*``.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}")
    if preprocessing not in PREPROCESSINGS:
        raise ValueError(f"unknown preprocessing {preprocessing!r}; choose from {PREPROCESSINGS}")
    _, mod1, mod2, kind2, train_batch, test_batch = DATASETS[name]
    mdata = _read(name, n_sim_cells=n_sim_cells)
    a1, a2 = mdata.mod[mod1], mdata.mod[mod2]
    if not np.array_equal(a1.obs_names, a2.obs_names):
        raise ValueError(f"{name}: {mod1} and {mod2} obs_names differ; the pairing is lost.")
    kind1 = "features" if kind2 == "features" else "rna"

    if name in RANDOM_HALVES:  # no batches: a seeded random half is the reference
        labels = a1.obs["cell_line"].astype(str).to_numpy() if name == "snareseq" else np.full(a1.n_obs, "none")
        order = np.random.default_rng(random_state).permutation(a1.n_obs)
        is_train = np.zeros(a1.n_obs, dtype=bool)
        is_train[order[: a1.n_obs // 2]] = True
        is_test = ~is_train
        batch = None
    else:
        obs = mdata.obs if {"batch", "cell_type"} <= set(mdata.obs.columns) else a1.obs
        batch = obs["batch"].astype(str).to_numpy()
        labels = obs["cell_type"].astype(str).to_numpy()
        if train_batch is None:
            batches = sorted(set(batch))
            train_batch, test_batch = batches[0], batches[1]
        is_train = np.isin(batch, _as_tuple(train_batch))
        is_test = np.isin(batch, _as_tuple(test_batch))  # only the batches of the protocol
        if not is_train.any() or not is_test.any():
            raise ValueError(f"{name}: batches {train_batch!r}/{test_batch!r} not found in {sorted(set(batch))}")
    kw = {"n_comps": n_comps, "random_state": random_state}
    if kind1 == "rna":  # recipe_rna(scale="auto") on the MuData: scaled when the partner is chromatin
        from scmatch.pp._partner import is_chromatin

        kw["rna_scale"] = is_chromatin(mod2, a2)
    links = None  # from the counts, before the recipes
    if kind2 == "protein":
        links = _linked(a1, a2)
    elif kind2 == "atac" and gene_annotation is not None:
        links = _peak_linked(a1, a2, gene_annotation)
    depths = _depths(a1, a2) if kind2 != "features" else None  # from the counts, before the recipes
    X1_train, X1_test = _embed(a1, kind1, is_train, is_test, preprocessing, **kw)
    X2_train, X2_test = _embed(a2, kind2, is_train, is_test, preprocessing, **kw)
    meta = {
        "mod1": mod1,
        "mod2": mod2,
        "features": [_FEATURES[kind1], _FEATURES[kind2]],
        "n_comps": n_comps,
        "preprocessing": preprocessing,
    }
    if "rna" in (kind1, kind2):
        scaled = {"_rna_scale": True, "_rna_noscale": False}
        given = next((v for k, v in scaled.items() if preprocessing.endswith(k)), "auto")
        meta["rna_recipe"] = {"scale": given, "scale_used": kw["rna_scale"] if given == "auto" else given}
    if "atac" in (kind1, kind2):
        import scmatch.pp._recipes as recipes

        meta["atac_recipe"] = {
            "n_comps": recipes.ATAC_N_COMPS,
            "min_cells": recipes.ATAC_MIN_CELLS,
            "basis_neighbors": KNN_BASIS_NEIGHBORS if preprocessing.endswith("_knn_basis") else None,
        }
    if name in ("simulated", "simulated_sparse"):
        meta["n_sim_cells"] = n_sim_cells
    n_test = int(is_test.sum())
    query_batch = batch[is_test] if batch is not None and len(set(batch[is_test])) > 1 else np.zeros(0, dtype=str)
    return MatchingSplit(
        name=name,
        X1_train=X1_train,
        X2_train=X2_train,
        X1_test=X1_test,
        X2_test=X2_test,
        labels_train=labels[is_train],
        labels_rows=labels[is_test],
        labels_cols=labels[is_test],
        truth=np.arange(n_test, dtype=np.int64),
        batch_rows=query_batch,
        batch_cols=query_batch,
        meta=json.dumps({
            **meta, "n_links": 0 if links is None else links[0].shape[1],
            **({} if gene_annotation is None else {"gene_annotation": _annotation_id(gene_annotation)}),
        }),
        **({} if links is None else {
            "L1_train": links[0][is_train], "L2_train": links[1][is_train],
            "L1_test": links[0][is_test], "L2_test": links[1][is_test],
        }),
        **({} if depths is None else {
            "D1_train": depths[0][is_train], "D2_train": depths[1][is_train],
            "D1_test": depths[0][is_test], "D2_test": depths[1][is_test],
        }),
    )  # fmt: skip


def _depths(a1, a2) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's log1p total count in both modalities, as tl.match_modalities(depth=...) reads it."""
    from scmatch.tl._depth import log_depth

    return log_depth(a1, what="mod1"), log_depth(a2, what="mod2")


def _peak_linked(rna, atac, annotation: str) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's RNA and ATAC gene activity on the genes linked to peaks within the default distance."""
    import scmatch.links

    table = scmatch.links.peak_gene_links(rna, atac, annotation=None if annotation == "var" else annotation)
    return scmatch.links.peak_linked_values(rna, atac, table)


def _annotation_id(path: str) -> dict:
    """The annotation file's name and sha256, so a record says which one it used."""
    import hashlib

    if path == "var":
        return {"file": None, "source": "the RNA var's own coordinates"}
    return {"file": Path(path).name, "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}


def _linked(rna, protein) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's values on the protein-gene links found by name (scmatch.links), from the counts."""
    import scmatch.links

    table = scmatch.links.protein_gene_links(protein.var_names, rna.var_names)
    return scmatch.links.linked_values(rna, protein, table)
