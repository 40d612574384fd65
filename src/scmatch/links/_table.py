"""Which gene codes the protein each antibody binds: the shipped table and the matching of names."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from importlib import resources

import pandas as pd

#: antibody names are compared after these are removed and the name is upper-cased
_SEPARATORS = re.compile(r"[-_.\s]")
#: a panel's decorations around the antibody's own name: a modality prefix, a clone or barcode suffix, a note in
#: parentheses ("ADT_CD115(CSF-1R)_A0105", "CD3_TotalSeqB", "CD4-ADT")
_DECORATIONS = (
    re.compile(r"^(adt|ab|prot|protein)[_:-]", re.IGNORECASE),
    re.compile(r"[_-](totalseq[_-]?[abc]|a\d{4}|b\d{4}|c\d{4}|adt|protein)$", re.IGNORECASE),
    re.compile(r"\(.*?\)"),
)
#: names of isotype controls and hashtags, never linked
_CONTROLS = re.compile(r"(isotype|control|^igg\d|^hto|hashtag)", re.IGNORECASE)


def _key(name: str) -> str:
    return _SEPARATORS.sub("", name).upper()


def antibody_name(name: str) -> str:
    """The antibody's own name inside a panel's feature name (prefix, barcode suffix and parentheses removed)."""
    out = str(name)
    for pattern in _DECORATIONS:
        out = pattern.sub("", out)
    return out.strip("_- ") or str(name)


@functools.cache
def antibody_table() -> pd.DataFrame:
    """The shipped table: ``antibody``, ``human`` and ``mouse`` (gene symbols, ``;`` between several).

    Source and scope are in the file's header (``scmatch/links/antibody_genes.tsv``).
    """
    with resources.files(__package__).joinpath("antibody_genes.tsv").open() as handle:
        table = pd.read_csv(handle, sep="\t", comment="#", dtype=str, keep_default_na=False)
    return table


def protein_gene_links(proteins: Sequence[str], genes: Sequence[str]) -> pd.DataFrame:
    """Link each protein (antibody) to the genes coding it, among ``genes``.

    A protein is linked through the shipped table (:func:`antibody_table`; human or mouse symbols, whichever the
    gene names hold), else when its antibody name is itself a gene's name. Names are compared case-insensitively,
    with ``-``, ``_``, ``.`` and spaces ignored. Isotype controls and hashtags are never linked.

    Parameters
    ----------
    proteins
        The protein modality's feature names (``var_names``).
    genes
        The RNA modality's feature names.

    Returns
    -------
    DataFrame with one row per linked protein: ``protein`` (its feature name), ``genes`` (the linked gene names as
    in ``genes``, ``;`` between several) and ``source`` (``"table"`` or ``"name"``).
    """
    by_key: dict[str, str] = {}
    for gene in map(str, genes):
        by_key.setdefault(_key(gene), gene)
    table = antibody_table()
    symbols = {
        _key(row.antibody): [s for col in ("human", "mouse") for s in getattr(row, col).split(";") if s]
        for row in table.itertuples()
    }
    rows = []
    for protein in map(str, proteins):
        name = antibody_name(protein)
        if _CONTROLS.search(name):
            continue
        found, source = [], "table"
        for symbol in symbols.get(_key(name), []):
            gene = by_key.get(_key(symbol))
            if gene is not None and gene not in found:
                found.append(gene)
        if not found and _key(name) in by_key:
            found, source = [by_key[_key(name)]], "name"
        if found:
            rows.append({"protein": protein, "genes": ";".join(found), "source": source})
    return pd.DataFrame(rows, columns=["protein", "genes", "source"])
