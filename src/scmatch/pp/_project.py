"""What a recipe learned, and how to apply it to new cells: the reference-mapping half of :mod:`scmatch.pp`.

A recipe fitted on reference cells (``recipe_rna``, ``recipe_atac``, ``recipe_protein``) learns a few constants:
the feature list, the normalisation target, the highly variable genes, the PCA centre and loadings, the IDF of every
peak, the LSI loadings. :class:`RecipeState` holds them, writes them next to the recipe's outputs
(``.uns['scmatch_recipe']`` and ``.varm['scmatch_recipe']``), reads them back (also after ``write_h5mu`` /
``read_h5mu``), fingerprints them, and projects the counts of new cells into the reference's space without
refitting anything. The fingerprint (a hash of the fitted state) travels with every embedding, so the matching
code can tell whether two embeddings come from the same fit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from .._utils import _get_modality, logger
from ._clr import _clr_values
from ._tfidf import _tfidf_values
from ._utils import _sums

#: ``.uns`` and ``.varm`` key of the recipe record and of its per-feature state
RECIPE_KEY = "scmatch_recipe"
#: a query must have at least this share of the reference features that enter the embedding
MIN_FEATURE_FRACTION = 0.5
#: above this share of missing features a warning is logged (below it, an info message)
WARN_MISSING_FRACTION = 0.1
#: the per-feature vectors each recipe keeps (the columns of ``.varm['scmatch_recipe']``), and its loadings
COLUMNS = {"rna": ("used", "mean", "ceiling"), "atac": ("used", "idf"), "protein": ("used", "mean", "geo")}
#: per-feature vectors that older states lack: read as zeros (their meaning: nothing to apply) and, while all zero,
#: left out of the fingerprint, so a state fitted before they existed keeps its fingerprint
OPTIONAL_COLUMNS = ("ceiling",)
LOADINGS = {"rna": "PCs", "atac": "LSI", "protein": "PCs"}
#: the scalar settings each recipe keeps, with their types (JSON and h5mu round trips change numpy types)
SCALARS: dict[str, dict[str, type]] = {
    "rna": {"target_sum": float},
    "atac": {"log_tf": bool, "log_idf": bool, "log_tfidf": bool, "scale_factor": float, "drop_first": bool},
    "protein": {"axis": int},
}
RECIPES = tuple(COLUMNS)


def _canonical(value: Any, kind: type) -> Any:
    return kind(value.item() if isinstance(value, np.generic) else value)


@dataclass
class RecipeState:
    """The fitted state of one recipe on one modality: everything needed to project new cells.

    Attributes
    ----------
    recipe
        ``'rna'``, ``'atac'`` or ``'protein'``.
    obsm_key
        The ``.obsm`` key of the embedding the recipe writes.
    features
        The reference's feature names (all of them, in order).
    scalars
        Fitted settings (see :data:`SCALARS`): the normalisation target, TF-IDF flags, CLR axis.
    vectors
        Per-feature float64 vectors (see :data:`COLUMNS`): ``used`` (1 where the feature enters the embedding),
        ``mean`` (the PCA centre), ``ceiling`` (RNA: the largest log-normalised value a gene keeps before the
        PCA, :func:`~scmatch.pp.recipe_rna`'s ``scale``; 0 where nothing is clipped), ``idf`` (the reference's
        IDF), ``geo`` (per-protein geometric means, CLR ``axis=0`` only; ones otherwise).
    loadings
        Features x components: the PCA or LSI loadings (zero rows for unused features).
    """

    recipe: str
    obsm_key: str
    features: np.ndarray
    scalars: dict[str, Any]
    vectors: dict[str, np.ndarray]
    loadings: np.ndarray
    modality: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features).astype(str)
        self.scalars = {k: _canonical(self.scalars[k], t) for k, t in SCALARS[self.recipe].items()}
        absent = np.zeros(len(self.features))  # an optional vector an older state lacks
        self.vectors = {
            k: np.asarray(absent if k in OPTIONAL_COLUMNS and k not in self.vectors else self.vectors[k], np.float64)
            for k in COLUMNS[self.recipe]
        }
        self.loadings = np.asarray(self.loadings, dtype=np.float64)

    # ------------------------------------------------------------------ identity
    @property
    def fingerprint(self) -> str:
        """A hash of the fitted state (16 hex digits): equal fingerprints mean the same embedding space."""
        h = hashlib.sha256()
        h.update(json.dumps([self.recipe, self.obsm_key, self.scalars], sort_keys=True).encode())
        h.update("\x00".join(self.features.tolist()).encode())
        for name in COLUMNS[self.recipe]:
            if name in OPTIONAL_COLUMNS and not self.vectors[name].any():
                continue
            h.update(np.ascontiguousarray(self.vectors[name], dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(self.loadings, dtype="<f8").tobytes())
        h.update(str(self.loadings.shape).encode())
        return h.hexdigest()[:16]

    @property
    def n_comps(self) -> int:
        """Number of embedding dimensions."""
        return int(self.loadings.shape[1])

    # ------------------------------------------------------------------ AnnData
    def write(self, adata: AnnData) -> None:
        """Store the per-feature state in ``.varm['scmatch_recipe']`` and the rest in ``.uns['scmatch_recipe']``.

        The loadings stay where the recipe put them (``.varm['PCs']`` or ``.varm['LSI']``); ``.uns`` must already
        hold the recipe record.
        """
        adata.varm[RECIPE_KEY] = np.column_stack([self.vectors[k] for k in COLUMNS[self.recipe]])
        record = adata.uns[RECIPE_KEY]
        columns = list(COLUMNS[self.recipe])
        record["state"] = {**self.scalars, "varm_columns": columns, "loadings_key": LOADINGS[self.recipe]}
        record["fingerprint"] = self.fingerprint

    @classmethod
    def from_adata(cls, adata: AnnData, *, recipe: str | None = None, what: str = "the reference") -> RecipeState:
        """Read and verify the state a recipe stored in ``adata``; a clear error when there is none.

        Parameters
        ----------
        adata
            An AnnData processed by one of the recipes (without ``reference=``).
        recipe
            The recipe expected (``'rna'``, ``'atac'``, ``'protein'``); ``None`` accepts any.
        what
            How ``adata`` is named in error messages.
        """
        record = adata.uns.get(RECIPE_KEY)
        expected = f"scmatch.pp.recipe_{recipe}" if recipe else "a scmatch.pp recipe"
        if not isinstance(record, dict) or "recipe" not in record:
            raise ValueError(
                f"{what} was not processed by {expected}: it has no `.uns[{RECIPE_KEY!r}]`. Run {expected} on the "
                "reference first, then pass it as `reference=`."
            )
        if recipe is not None and record["recipe"] != recipe:
            raise ValueError(
                f"{what} was processed by scmatch.pp.recipe_{record['recipe']}, not {expected}; pass a reference "
                "processed by the same recipe (for a MuData, check `mod=`)."
            )
        if "projected" in record:
            raise ValueError(
                f"{what} was itself projected onto a reference (fingerprint {record.get('fingerprint')}); it holds no "
                "fitted state. Pass the original reference instead."
            )
        if "state" not in record or RECIPE_KEY not in adata.varm:
            raise ValueError(
                f"{what} was processed by an older scmatch that did not store the recipe's fitted state; run "
                f"{expected} on it again."
            )
        kind = str(record["recipe"])
        stored = record["state"]
        loadings_key = str(stored.get("loadings_key", LOADINGS[kind]))
        columns = [str(c) for c in np.asarray(stored.get("varm_columns", ())).tolist()]
        legacy = [c for c in COLUMNS[kind] if c not in OPTIONAL_COLUMNS]
        if columns not in (list(COLUMNS[kind]), legacy) or loadings_key not in adata.varm:
            raise ValueError(f"{what}: the recipe's stored state is incomplete; run {expected} on it again.")
        table = np.asarray(adata.varm[RECIPE_KEY], dtype=np.float64)
        state = cls(
            recipe=kind,
            obsm_key=str(record["obsm_key"]),
            features=np.asarray(adata.var_names),
            scalars={k: stored[k] for k in SCALARS[kind]},
            vectors={name: table[:, i] for i, name in enumerate(columns)},
            loadings=np.asarray(adata.varm[loadings_key]),
        )
        if state.fingerprint != record.get("fingerprint"):
            raise ValueError(
                f"{what}: the recipe's fitted state no longer matches its fingerprint: its features, "
                f"`.varm[{loadings_key!r}]` or `.varm[{RECIPE_KEY!r}]` were changed after {expected} ran (e.g. by "
                f"subsetting genes or re-running PCA). Run {expected} on the reference again."
            )
        return state

    # ------------------------------------------------------------------ files
    def to_files(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """A JSON-serialisable description and plain arrays (no objects), for a saved model."""
        meta = {
            "recipe": self.recipe,
            "obsm_key": self.obsm_key,
            "modality": self.modality,
            "scalars": self.scalars,
            "fingerprint": self.fingerprint,
        }
        arrays = {"features": self.features.astype("U"), "loadings": self.loadings}
        arrays |= {f"vector_{k}": v for k, v in self.vectors.items()}
        return meta, arrays

    @classmethod
    def from_files(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> RecipeState:
        """Rebuild a state written by :meth:`to_files`; a ValueError if it does not match its fingerprint."""
        kind = meta["recipe"]
        if kind not in RECIPES:
            raise ValueError(f"unknown recipe {kind!r}")
        state = cls(
            recipe=kind,
            obsm_key=meta["obsm_key"],
            features=arrays["features"],
            scalars=meta["scalars"],
            vectors={k: arrays[f"vector_{k}"] for k in COLUMNS[kind] if f"vector_{k}" in arrays},
            loadings=arrays["loadings"],
            modality=meta.get("modality"),
        )
        if state.fingerprint != meta["fingerprint"]:
            raise ValueError("the preprocessing state does not match its fingerprint")
        return state

    # ------------------------------------------------------------------ projection
    def project(self, counts: np.ndarray | sp.spmatrix, feature_names: Any, *, what: str = "the query") -> Projection:
        """Transform new cells' raw counts with this state and project them into the reference's space.

        The query's features are aligned to the reference's by name: reference features the query lacks count as
        zeros, query features the reference lacks are left out of the embedding. A query holding fewer than
        :data:`MIN_FEATURE_FRACTION` of the features that enter the embedding is refused.
        """
        names = np.asarray(feature_names).astype(str)
        if len(set(names.tolist())) != len(names):
            raise ValueError(f"{what} has duplicate feature names; make them unique (`var_names_make_unique()`).")
        position = _index(self.features).get_indexer(names)
        present = position >= 0
        used = self.vectors["used"] > 0
        found = np.zeros(len(self.features), dtype=bool)
        found[position[present]] = True
        n_used, n_found = int(used.sum()), int((found & used).sum())
        if n_found < MIN_FEATURE_FRACTION * n_used:
            missing = self.features[used & ~found][:5].tolist()
            raise ValueError(
                f"{what} has only {n_found} of the {n_used} reference features that enter the embedding "
                f"(e.g. missing {missing}); at least {MIN_FEATURE_FRACTION:.0%} are needed. Check that the query "
                "uses the same feature names (gene symbols vs. IDs, peak coordinates) as the reference."
            )
        n_missing = n_used - n_found
        if n_missing:
            level = logger.warning if n_missing > WARN_MISSING_FRACTION * n_used else logger.info
            level(
                "%s lacks %d of the %d reference features that enter the embedding; they are counted as zeros.",
                what,
                n_missing,
                n_used,
            )
        counts = sp.csr_matrix(counts, dtype=np.float64) if sp.issparse(counts) else np.asarray(counts, np.float64)
        totals = _sums(counts[:, np.flatnonzero(present)], axis=1)
        X = self._transform(counts, totals, position, present, what=what)
        # embedding: (x - mean) @ loadings over every used reference feature; an absent feature is 0 after the
        # transform, so it contributes -mean @ loadings like any zero. RNA values above a gene's ceiling (scale=True)
        # are clipped for the embedding only; X keeps them, as the reference's .X does
        weights = np.zeros((len(names), self.n_comps))
        weights[present] = self.loadings[position[present]] * used[position[present], None]
        centre = (self.vectors.get("mean", np.zeros(len(self.features))) * used) @ self.loadings
        ceiling = np.where(present, self.vectors.get("ceiling", np.zeros(len(self.features)))[position], 0.0)
        embedding = np.asarray((clip_columns(X, ceiling) if ceiling.any() else X) @ weights) - centre
        return Projection(
            X=X,
            embedding=embedding,
            used=np.where(present, used[np.clip(position, 0, None)], False),
            report={
                "fingerprint": self.fingerprint,
                "n_reference_features": n_used,
                "n_missing_features": n_missing,
                "n_ignored_features": int((~present).sum()),
            },
        )

    def _transform(self, counts, totals, position, present, *, what) -> np.ndarray | sp.csr_matrix:
        """The recipe's transformation of the query's counts (query features), with the reference's constants."""
        if self.recipe == "rna":
            scale = np.divide(
                self.scalars["target_sum"], totals, out=np.zeros_like(totals), where=totals > 0
            )  # scanpy leaves cells without counts at zero
            X = sp.csr_matrix(counts.multiply(scale[:, None])) if sp.issparse(counts) else counts * scale[:, None]
            return (X.log1p() if sp.issparse(X) else np.log1p(X)).astype(np.float32)
        if self.recipe == "atac":
            if np.any(totals == 0):
                n_empty = int((totals == 0).sum())
                raise ValueError(
                    f"{n_empty} cells of {what} have no counts in the reference's peaks; their term frequency is "
                    "undefined. Remove them first, e.g. `sc.pp.filter_cells(adata, min_counts=1)`."
                )
            idf = np.where(present, self.vectors["idf"][np.clip(position, 0, None)], 0.0)
            s = self.scalars
            return _tfidf_values(
                counts, totals, idf, log_tf=s["log_tf"], log_tfidf=s["log_tfidf"], scale_factor=s["scale_factor"]
            )
        axis = self.scalars["axis"]
        if axis == 1:  # per-cell geometric mean over the reference's proteins (absent ones count as zeros)
            used_counts = counts[:, np.flatnonzero(present)]
            logs = used_counts.log1p().sum(axis=1) if sp.issparse(used_counts) else np.log1p(used_counts).sum(axis=1)
            geo = np.exp(np.asarray(logs, dtype=np.float64).ravel() / len(self.features))
        else:  # the reference's per-protein geometric means; proteins it lacks get 1 (they are left out anyway)
            geo = np.where(present, self.vectors["geo"][np.clip(position, 0, None)], 1.0)
        return _clr_values(counts, axis=axis, geo=geo)


def clip_columns(X: np.ndarray | sp.spmatrix, ceiling: np.ndarray) -> np.ndarray | sp.csr_matrix:
    """``X`` with each column's values above its ``ceiling`` lowered to it; a ceiling of 0 leaves the column alone."""
    cap = np.where(ceiling > 0, ceiling, np.inf).astype(np.float32)
    if sp.issparse(X):
        X = sp.csr_matrix(X, copy=True)
        X.data = np.minimum(X.data, cap[X.indices])
        return X
    return np.minimum(X, cap[None, :])


@dataclass
class Projection:
    """New cells projected onto a reference: transformed values, embedding, and what was aligned."""

    X: np.ndarray | sp.csr_matrix
    embedding: np.ndarray
    used: np.ndarray
    report: dict[str, Any]


def _index(names: np.ndarray):
    import pandas as pd

    return pd.Index(names)


def resolve_reference(reference: Any, *, recipe: str, mod: str | None) -> RecipeState:
    """The fitted state to project onto, from an AnnData, a MuData (modality ``mod``) or a fitted MatchModel.

    A model is recognised by its ``preprocessing_`` (the states it carries), so preprocessing does not import the
    model package, which imports preprocessing's :class:`RecipeState`.
    """
    carried = getattr(reference, "preprocessing_", None)
    if isinstance(carried, tuple) and not isinstance(reference, AnnData | MuData):  # a MatchModel
        states = [s for s in carried if s is not None and s.recipe == recipe]
        if len(states) > 1 and mod is not None:
            states = [s for s in states if s.modality == mod] or states
        if not states:
            raise ValueError(
                f"The model carries no recipe_{recipe} preprocessing. Fit it with scmatch.tl.match_modalities on a "
                "reference processed by the scmatch.pp recipes (or pass `preprocessing=` to `MatchModel.save`), or "
                f"pass the reference AnnData/MuData as `reference=`."
            )
        return states[0]
    if isinstance(reference, MuData):
        return RecipeState.from_adata(
            _get_modality(reference, mod), recipe=recipe, what=f"the reference MuData's modality {mod!r}"
        )
    if isinstance(reference, AnnData):
        return RecipeState.from_adata(reference, recipe=recipe)
    raise TypeError(
        "`reference` must be an AnnData, a MuData or a fitted scmatch.model.MatchModel, "
        f"got {type(reference).__name__}."
    )


def recorded_fingerprint(adata: AnnData, obsm_key: str) -> str | None:
    """The fingerprint of the recipe fit behind ``adata.obsm[obsm_key]``, or None for a representation of the user's."""
    record = adata.uns.get(RECIPE_KEY)
    if isinstance(record, dict) and record.get("obsm_key") == obsm_key and "fingerprint" in record:
        return str(record["fingerprint"])
    return None
