"""Linked profiles: each cell's values on the linked features, standardised so that a dot product is a correlation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .._utils import _check_counts

#: RNA counts are scaled to this many per cell before log1p (scanpy's normalize_total target used by recipe_rna)
TARGET_SUM = 1e4


def counts_of(adata: AnnData, *, what: str) -> np.ndarray | sp.spmatrix:
    """The raw counts of ``adata``: ``.layers['counts']`` if present (the recipes keep them there), else ``.X``."""
    X = adata.layers["counts"] if "counts" in adata.layers else adata.X
    where = f"{what}.layers['counts']" if "counts" in adata.layers else f"{what}.X"
    _check_counts(X, what=where)
    return X


def _columns(X, positions: list[list[int]]) -> np.ndarray:
    """Cells x links: the sum of each link's columns of ``X``."""
    out = np.zeros((X.shape[0], len(positions)))
    for k, cols in enumerate(positions):
        block = X[:, cols]
        out[:, k] = np.asarray(block.sum(axis=1)).ravel()
    return out


def linked_values(
    rna: AnnData, protein: AnnData, links: pd.DataFrame, *, what: tuple[str, str] = ("rna", "protein")
) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's values on the linked features, from counts.

    RNA: the linked genes' counts (summed where a protein has several genes) per ``TARGET_SUM`` counts of the
    cell, then ``log1p``. Protein: the centred log-ratio of ``log1p`` counts over all of the cell's proteins, as
    :func:`scmatch.pp.clr` computes it.

    Returns
    -------
    Two float arrays, cells x links, in the order of the rows of ``links``.
    """
    counts1, counts2 = counts_of(rna, what=what[0]), counts_of(protein, what=what[1])
    genes = rna.var_names
    positions1 = [[genes.get_loc(g) for g in str(names).split(";")] for names in links["genes"]]
    positions2 = [[protein.var_names.get_loc(p)] for p in links["protein"]]
    totals = np.asarray(counts1.sum(axis=1)).ravel().astype(float)
    totals[totals == 0] = 1.0
    v1 = np.log1p(_columns(counts1, positions1) / totals[:, None] * TARGET_SUM)
    log2 = np.log1p(counts2.toarray() if sp.issparse(counts2) else np.asarray(counts2, dtype=float))
    v2 = (log2 - log2.mean(axis=1, keepdims=True))[:, [p[0] for p in positions2]]
    return v1, v2


def profiles(values: np.ndarray, *, groups: Sequence | None = None) -> np.ndarray:
    """Unit-length profiles: each linked feature z-scored within each group of cells, then each cell centred.

    Z-scoring within the cells being matched (a batch of the query, or of the held-out pairs) removes the level
    and scale of each feature in that batch, which differ between modalities and between batches; the dot
    product of two profiles is then the Pearson correlation of the two cells across the linked features. A cell
    with no variation across them gets a zero profile (no opinion).
    """
    values = np.asarray(values, dtype=float)
    labels = np.zeros(len(values), dtype=int) if groups is None else pd.factorize(np.asarray(groups))[0]
    z = np.zeros_like(values)
    for label in np.unique(labels):
        block = values[labels == label]
        sd = block.std(axis=0)
        sd[sd == 0] = 1.0
        z[labels == label] = (block - block.mean(axis=0)) / sd
    z -= z.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(z, axis=1, keepdims=True)
    norm[norm == 0] = 1.0
    return (z / norm).astype(np.float32)
