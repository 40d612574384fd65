"""What the RNA will be matched with, read from the other modalities of the MuData it came in.

``recipe_rna(scale="auto")`` scales the genes when the RNA's partner is chromatin accessibility: with RNA + ATAC
scaling raised the match on three splits of four (the fourth level), with proteins it lowered it on every set
(``benchmarks/README.md``, *RNA scaling*).
"""

from __future__ import annotations

from anndata import AnnData
from mudata import MuData

from ..links._peaks import is_peaks

#: modality names that mean chromatin accessibility (muon's ``atac``; compared in lower case)
CHROMATIN_NAMES = ("atac", "peaks", "chromatin")
#: the ``var["feature_types"]`` value Cell Ranger ARC gives peaks
PEAK_FEATURE_TYPE = "Peaks"


def is_chromatin(name: str, adata: AnnData) -> bool:
    """Whether modality ``name`` holds chromatin accessibility.

    By its name (``atac``, ``peaks``, ``chromatin``), :func:`~scmatch.pp.recipe_atac` having processed it, its
    features' type (Cell Ranger ARC's ``feature_types == "Peaks"``) or its feature names (most of them genomic
    intervals, ``chr1:100-200``).
    """
    recipe = adata.uns.get("scmatch_recipe")
    if str(name).lower() in CHROMATIN_NAMES or (isinstance(recipe, dict) and recipe.get("recipe") == "atac"):
        return True
    types = adata.var.get("feature_types")
    if types is not None and len(types) and (types.astype(str) == PEAK_FEATURE_TYPE).all():
        return True
    return bool(is_peaks(adata))


def chromatin_partner(data: AnnData | MuData, mod: str | None) -> str | None:
    """The first modality of ``data`` other than ``mod`` that holds chromatin accessibility, or None.

    An AnnData alone has no partner to read: None.
    """
    if not isinstance(data, MuData):
        return None
    for name, adata in data.mod.items():
        if name != mod and is_chromatin(name, adata):
            return name
    return None
