"""Preprocessing: TF-IDF, LSI and peak selection for ATAC, CLR for protein, and one-line recipes per modality."""

from ..links._peaks import gene_activity
from ._clr import clr
from ._lsi import lsi
from ._peaks import select_peaks
from ._recipes import RECIPE_OBSM_KEYS, recipe_atac, recipe_protein, recipe_rna
from ._tfidf import tfidf

__all__ = [
    "RECIPE_OBSM_KEYS",
    "clr",
    "gene_activity",
    "lsi",
    "recipe_atac",
    "recipe_protein",
    "recipe_rna",
    "select_peaks",
    "tfidf",
]
