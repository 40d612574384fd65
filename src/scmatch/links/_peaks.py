"""Peak-to-gene links for RNA + ATAC: each gene linked to the peaks near it, from genomic coordinates.

A gene's *activity* in a nucleus is the sum of the ATAC counts of the peaks linked to it; it is the chromatin's
view of that gene, in the same feature space as the RNA. Matching uses it as it uses the protein-gene links of
CITE-seq: a prior whose weight is chosen on held-out reference pairs (:mod:`scmatch.tl._links`).

Coordinates come from the data where they exist (the RNA ``var['interval']`` that Cell Ranger ARC writes, or
``chrom``/``start``/``end`` columns; peaks from the same columns or from names such as ``chr1:100-200``,
``chr1-100-200`` or ``chr1_100_200``), else from an annotation the user gives: a BED file (chrom, start, end,
gene name) or a GTF file (its ``gene`` records and their ``gene_name``).
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ._profiles import TARGET_SUM, counts_of

#: a peak or gene is linked when they lie within this many bases of each other (the window of ArchR's gene scores)
DEFAULT_DISTANCE = 100_000
#: a feature name that is a genomic interval: chrom, then start and end, separated by ':', '-' or '_'
_INTERVAL = re.compile(r"^(?P<chrom>[^:_\-\s]+)[:_\-](?P<start>\d+)[_\-](?P<end>\d+)$")
#: how many of a modality's feature names must be intervals for it to count as peaks
PEAK_NAME_SHARE = 0.9


def _parse_intervals(values: Sequence[str]) -> pd.DataFrame:
    """chrom/start/end of each interval string; rows that do not parse are NaN."""
    parts = pd.Series(list(map(str, values))).str.extract(_INTERVAL)
    out = pd.DataFrame({"chrom": parts["chrom"]})
    out["start"] = pd.to_numeric(parts["start"])
    out["end"] = pd.to_numeric(parts["end"])
    return out


def _from_var(var: pd.DataFrame) -> pd.DataFrame | None:
    """chrom/start/end from a ``var`` table's own columns (``chrom``/``start``/``end`` or ``interval``), or None."""
    if {"chrom", "start", "end"} <= set(var.columns):
        out = pd.DataFrame(
            {
                "chrom": var["chrom"].astype(str).to_numpy(),
                "start": pd.to_numeric(var["start"], errors="coerce").to_numpy(),
                "end": pd.to_numeric(var["end"], errors="coerce").to_numpy(),
            }
        )
        out.loc[var["chrom"].isna().to_numpy(), "chrom"] = np.nan
        return out
    if "interval" in var.columns:
        return _parse_intervals(var["interval"].astype(str))
    return None


def peak_coordinates(atac: AnnData) -> pd.DataFrame:
    """The peaks' coordinates: ``chrom``, ``start``, ``end``, one row per feature of ``atac`` (index: its names).

    Read from ``var`` (``chrom``/``start``/``end`` or ``interval``), else parsed from the feature names
    (``chr1:100-200``, ``chr1-100-200``, ``chr1_100_200``). Raises a ValueError when none of these gives
    coordinates for most peaks.
    """
    table = _from_var(atac.var)
    if table is None or table["chrom"].isna().mean() > 1 - PEAK_NAME_SHARE:
        table = _parse_intervals(atac.var_names)
    if table["chrom"].isna().mean() > 1 - PEAK_NAME_SHARE:
        raise ValueError(
            "The ATAC features have no coordinates: give var columns 'chrom', 'start' and 'end' (or 'interval'), "
            "or name the peaks 'chr1:100-200'."
        )
    table.index = atac.var_names
    return table


def is_peaks(adata: AnnData) -> bool:
    """Whether most of ``adata``'s feature names are genomic intervals (an ATAC modality's peaks)."""
    names = adata.var_names[: min(adata.n_vars, 1000)]
    return bool(len(names)) and _parse_intervals(names)["chrom"].notna().mean() >= PEAK_NAME_SHARE


def _read_annotation(path: str | os.PathLike) -> pd.DataFrame:
    """Gene intervals from a BED (chrom, start, end, name, ...) or GTF file (its ``gene`` records), gzipped or not."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No gene annotation at {path!r}: give the path of a BED or GTF file.")
    opener = gzip.open if path.endswith(".gz") else open
    gtf = re.search(r"\.gtf(\.gz)?$|\.gff\d?(\.gz)?$", path) is not None
    rows = []
    with opener(path, "rt") as handle:
        for line in handle:
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.rstrip("\n").split("\t")
            if gtf:
                if len(fields) < 9 or fields[2] != "gene":
                    continue
                name = re.search(r'gene_name "([^"]+)"', fields[8]) or re.search(r'gene_id "([^"]+)"', fields[8])
                if name:
                    rows.append((fields[0], int(fields[3]) - 1, int(fields[4]), name.group(1)))
            elif len(fields) >= 4:
                try:
                    rows.append((fields[0], int(fields[1]), int(fields[2]), fields[3]))
                except ValueError:
                    continue
    if not rows:
        kind = "GTF 'gene' records with a gene_name" if gtf else "BED lines (chrom, start, end, gene name)"
        raise ValueError(f"{path!r} holds no {kind}.")
    return pd.DataFrame(rows, columns=["chrom", "start", "end", "gene"])


def gene_coordinates(rna: AnnData, annotation: str | os.PathLike | pd.DataFrame | None = None) -> pd.DataFrame:
    """Gene intervals (``gene``, ``chrom``, ``start``, ``end``; a gene may have several rows) for ``rna``'s genes.

    ``annotation`` is a BED or GTF path, or a DataFrame with those columns; without one they come from
    ``rna.var`` (``interval``, as Cell Ranger ARC writes it, or ``chrom``/``start``/``end``). Only genes among
    ``rna.var_names`` are kept.
    """
    if annotation is None:
        table = _from_var(rna.var)
        if table is None:
            raise ValueError(
                "The RNA genes have no coordinates: `rna.var` has no 'interval' (as Cell Ranger ARC writes it) nor "
                "'chrom'/'start'/'end' columns. Give a gene annotation: `annotation='genes.gtf'` (or a BED file of "
                "chrom, start, end, gene name) for the genome the peaks were called on."
            )
        table["gene"] = np.asarray(rna.var_names, dtype=str)
    elif isinstance(annotation, pd.DataFrame):
        missing = {"gene", "chrom", "start", "end"} - set(annotation.columns)
        if missing:
            raise ValueError(f"The gene annotation lacks the column(s) {sorted(missing)}.")
        table = annotation[["gene", "chrom", "start", "end"]].copy()
    else:
        table = _read_annotation(annotation)
    table = table.dropna(subset=["chrom", "start", "end"])
    table = table[table["gene"].astype(str).isin(set(map(str, rna.var_names)))]
    return table.astype({"gene": str, "chrom": str, "start": np.int64, "end": np.int64}).reset_index(drop=True)


def peak_gene_links(
    rna: AnnData,
    atac: AnnData,
    *,
    annotation: str | os.PathLike | pd.DataFrame | None = None,
    distance: int = DEFAULT_DISTANCE,
    genes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Link each gene of ``rna`` to the peaks of ``atac`` within ``distance`` bases of it.

    A peak is linked to a gene when the gap between the peak and the gene's interval (0 when they overlap) is at
    most ``distance``. With Cell Ranger ARC's ``var['interval']`` (the span of the gene's transcription start
    sites) or a BED of promoters, that is a window around the promoter; with a GTF it is the gene body and
    ``distance`` on either side. A peak can be linked to several genes.

    Parameters
    ----------
    rna
        The RNA modality.
    atac
        The ATAC modality; its peaks' coordinates are read by :func:`peak_coordinates`.
    annotation
        Gene coordinates: a BED or GTF path, or a DataFrame (``gene``, ``chrom``, ``start``, ``end``). Default:
        ``rna.var``'s own (``interval``, or ``chrom``/``start``/``end``); see :func:`gene_coordinates`.
    distance
        The largest gap, in bases, between a linked peak and its gene. The default, 100 kb, is the window of
        ArchR's gene scores; with about 100 open peaks per nucleus, more peaks per gene mean a less noisy
        activity.
    genes
        The genes to link. Default: the highly variable genes when ``rna.var['highly_variable']`` marks them
        (:func:`scmatch.pp.recipe_rna` does), else every gene with coordinates.

    Returns
    -------
    DataFrame with one row per link: ``gene``, ``peak`` (feature names) and ``distance`` (bases; 0: overlapping).

    Examples
    --------
    >>> import scmatch as scm
    >>> mdata = scm.datasets.simulate_multiome(200, random_state=0)  # doctest: +SKIP
    >>> links = scm.links.peak_gene_links(mdata["rna"], mdata["atac"], annotation="genes.gtf")  # doctest: +SKIP
    """
    if distance < 0:
        raise ValueError(f"`distance` must be >= 0 bases, got {distance}.")
    coords = gene_coordinates(rna, annotation)  # first: most RNA modalities carry none, and the error says so
    peaks = peak_coordinates(atac)
    if genes is None and "highly_variable" in rna.var.columns:
        genes = rna.var_names[rna.var["highly_variable"].to_numpy(dtype=bool)]
    if genes is not None:
        coords = coords[coords["gene"].isin(set(map(str, genes)))]
    peaks = peaks.dropna(subset=["chrom"])
    found = []
    for chrom, block in coords.groupby("chrom", sort=False):
        on = peaks[peaks["chrom"] == chrom]
        if on.empty:
            continue
        order = np.argsort(on["start"].to_numpy(), kind="stable")
        starts, ends = on["start"].to_numpy()[order], on["end"].to_numpy()[order]
        names = on.index.to_numpy()[order]
        longest = int((ends - starts).max())
        for gene, g_start, g_end in block[["gene", "start", "end"]].itertuples(index=False):
            lo = np.searchsorted(starts, g_start - distance - longest, side="left")
            hi = np.searchsorted(starts, g_end + distance, side="right")
            gap = np.maximum(0, np.maximum(g_start - ends[lo:hi], starts[lo:hi] - g_end))
            near = gap <= distance
            if near.any():
                found.append(pd.DataFrame({"gene": gene, "peak": names[lo:hi][near], "distance": gap[near]}))
    if not found:
        return pd.DataFrame({"gene": [], "peak": [], "distance": []}).astype({"distance": np.int64})
    links = pd.concat(found, ignore_index=True)
    # a gene with several intervals (transcripts, rows of a BED) keeps each peak once, at its smallest distance
    links = links.sort_values("distance", kind="stable").drop_duplicates(["gene", "peak"])
    return links.sort_values(["gene", "distance", "peak"], kind="stable").reset_index(drop=True)


def link_matrix(links: pd.DataFrame, peaks: Sequence[str]) -> tuple[list[str], sp.csr_matrix]:
    """The linked genes (in order of first appearance) and a genes x peaks 0/1 matrix over ``peaks``."""
    genes = list(dict.fromkeys(map(str, links["gene"])))
    rows = pd.Index(genes).get_indexer(links["gene"].astype(str))
    cols = pd.Index(list(map(str, peaks))).get_indexer(links["peak"].astype(str))
    if (cols < 0).any():
        missing = links["peak"][cols < 0].astype(str).unique()[:5].tolist()
        raise ValueError(f"The links name peaks that are not in the ATAC modality (e.g. {missing}).")
    G = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(genes), len(peaks)))
    G.data[:] = 1.0  # a link given twice counts once
    return genes, G


def gene_activity(atac: AnnData, links: pd.DataFrame) -> AnnData:
    """Each nucleus's ATAC counts summed over the peaks linked to each gene: a cells x genes AnnData of counts.

    Parameters
    ----------
    atac
        The ATAC modality, with raw counts in ``.layers['counts']`` (the recipes keep them there) or ``.X``.
    links
        Peak-gene links (:func:`peak_gene_links`): columns ``gene`` and ``peak``.

    Returns
    -------
    A new AnnData: ``X`` the summed counts (sparse), ``obs`` a copy of ``atac.obs``, ``var`` the linked genes
    with ``n_peaks``, the number of peaks linked to each. ``atac`` is not modified.
    """
    missing = {"gene", "peak"} - set(links.columns)
    if missing:
        raise ValueError(f"`links` lacks the column(s) {sorted(missing)}: build it with peak_gene_links.")
    counts = sp.csr_matrix(counts_of(atac, what="atac"))
    genes, G = link_matrix(links, atac.var_names)
    activity = (counts @ G.T).tocsr()
    var = pd.DataFrame({"n_peaks": np.diff(G.indptr).astype(np.int64)}, index=pd.Index(genes, name=None))
    return AnnData(activity, obs=atac.obs.copy(), var=var)


def peak_linked_values(
    rna: AnnData, atac: AnnData, links: pd.DataFrame, *, what: tuple[str, str] = ("rna", "atac")
) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's values on the linked genes: RNA expression and ATAC gene activity, both from counts.

    RNA: each linked gene's counts per ``TARGET_SUM`` counts of the cell, then ``log1p``. ATAC: the counts of the
    gene's linked peaks (:func:`gene_activity`) per ``TARGET_SUM`` of the nucleus's peak counts, then ``log1p``.

    Returns
    -------
    Two float arrays, cells x linked genes, in the order the genes first appear in ``links``.
    """
    counts1 = sp.csr_matrix(counts_of(rna, what=what[0]))
    counts2 = sp.csr_matrix(counts_of(atac, what=what[1]))
    genes, G = link_matrix(links, atac.var_names)
    positions = rna.var_names.get_indexer(genes)
    if (positions < 0).any():
        missing = [g for g, p in zip(genes, positions, strict=True) if p < 0][:5]
        raise ValueError(f"The links name genes that are not in {what[0]} (e.g. {missing}).")
    totals1 = np.asarray(counts1.sum(axis=1), dtype=float).ravel()
    totals2 = np.asarray(counts2.sum(axis=1), dtype=float).ravel()
    totals1[totals1 == 0], totals2[totals2 == 0] = 1.0, 1.0
    v1 = np.log1p(counts1[:, positions].toarray() / totals1[:, None] * TARGET_SUM)
    v2 = np.log1p((counts2 @ G.T).toarray() / totals2[:, None] * TARGET_SUM)
    return v1, v2
