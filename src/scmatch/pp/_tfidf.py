"""TF-IDF normalisation of peak counts."""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from .._utils import _check_counts, _get_matrix, _get_modality, logger
from ._utils import _sums, _target, _where


def _check_no_empty_cells(counts: np.ndarray | sp.spmatrix, adata: AnnData, *, where: str) -> np.ndarray:
    """Return the cell totals of ``counts``; raise a ValueError naming the cells that have none."""
    cell_totals = _sums(counts, axis=1)
    empty_cells = np.flatnonzero(cell_totals == 0)
    if empty_cells.size:
        names = list(adata.obs_names[empty_cells[:5]])
        raise ValueError(
            f"{empty_cells.size} cells have no counts in {where} (e.g. {names}); their term frequency is undefined. "
            "Remove them first, e.g. `sc.pp.filter_cells(adata, min_counts=1)`."
        )
    return cell_totals


def tfidf(
    data: AnnData | MuData,
    *,
    mod: str | None = "atac",
    layer: str | None = None,
    log_tf: bool = True,
    log_idf: bool = True,
    log_tfidf: bool = False,
    scale_factor: float | None = 1e4,
    copy: bool = False,
) -> AnnData | MuData | None:
    r"""Transform peak counts with TF-IDF (term frequency times inverse document frequency).

    With :math:`x_{ij}` the count of peak :math:`j` in cell :math:`i`, :math:`n` the number of cells and
    :math:`s` = ``scale_factor``:

    - term frequency :math:`\mathrm{tf}_{ij} = s \, x_{ij} / \sum_k x_{ik}` (counts over the cell's total,
      times the scale factor), replaced by :math:`\log(1 + \mathrm{tf}_{ij})` when ``log_tf``;
    - inverse document frequency :math:`\mathrm{idf}_j = n / \sum_i x_{ij}` (number of cells over the peak's
      total), replaced by :math:`\log(1 + \mathrm{idf}_j)` when ``log_idf``;
    - result :math:`\mathrm{tf}_{ij} \, \mathrm{idf}_j`, replaced by :math:`\log(1 + \cdot)` when ``log_tfidf``.

    These are the definitions of :func:`muon.atac.pp.tfidf`, and the defaults are muon's too
    (``log_tf=True, log_idf=True``, "log-TF" in Signac's ``RunTFIDF(method=3)``), so the same flags give the same
    numbers. With these defaults the first LSI component tracks sequencing depth, which is what
    :func:`scmatch.pp.lsi`'s ``drop_first`` assumes. Other common schemes: ``log_tf=False`` is Cusanovich et al.
    2018 (Signac ``method=2``, up to ``log1p`` for ``log``); ``log_tf=False, log_idf=False, log_tfidf=True`` is
    Signac's ``method=1``. Unlike muon, any combination of the three flags is allowed.

    Peaks with no counts in any cell get an all-zero column (their IDF would be infinite; the output is 0, as in
    muon). Cells with no counts at all have no term frequency and are refused: filter them first.

    Parameters
    ----------
    data
        AnnData of peak counts, or a MuData whose modality ``mod`` holds them.
    mod
        Modality to use when ``data`` is a MuData; ignored for an AnnData.
    layer
        Read the counts from ``.layers[layer]`` and write the result back into that layer. ``None`` uses
        (and overwrites) ``.X``.
    log_tf
        Use :math:`\log(1 + \mathrm{tf})`.
    log_idf
        Use :math:`\log(1 + \mathrm{idf})`.
    log_tfidf
        Take :math:`\log(1 + \cdot)` of the product.
    scale_factor
        Multiplier :math:`s` of the term frequency (``None`` means 1).
    copy
        Return a modified copy (of the whole MuData, if one was given) instead of writing in place.

    Returns
    -------
    ``None`` in place, else the modified copy. Written to the AnnData (the modality):

    - ``.X`` (or ``.layers[layer]``): the float32 TF-IDF matrix, sparse (CSR) if the counts were sparse;
    - ``.uns['tfidf']['params']``: ``log_tf``, ``log_idf``, ``log_tfidf``, ``scale_factor``, ``layer``.

    Raises
    ------
    ValueError
        If the counts are not non-negative integers, hold NaN, or some cell has no counts; nothing is written.

    Examples
    --------
    >>> import mudata as md
    >>> import scmatch as sm
    >>> mdata = md.read_h5mu("bmmc_multiome_starter.h5mu")  # doctest: +SKIP
    >>> mdata.mod["atac"].layers["counts"] = mdata.mod["atac"].X.copy()  # doctest: +SKIP
    >>> sm.pp.tfidf(mdata, mod="atac")  # doctest: +SKIP

    """
    adata = _get_modality(data, mod)
    counts = _get_matrix(adata, layer=layer)
    where = _where(layer)
    if scale_factor is None:
        scale_factor = 1.0
    if isinstance(scale_factor, bool) or not isinstance(scale_factor, numbers.Real) or not scale_factor > 0:
        raise ValueError(f"`scale_factor` must be a positive number (or None for 1), got {scale_factor!r}.")
    _check_counts(counts, what=f"The matrix in {where}")

    cell_totals = _check_no_empty_cells(counts, adata, where=where)
    idf = _idf(counts, log_idf=log_idf)
    result = _tfidf_values(counts, cell_totals, idf, log_tf=log_tf, log_tfidf=log_tfidf, scale_factor=scale_factor)

    params = {
        "log_tf": bool(log_tf),
        "log_idf": bool(log_idf),
        "log_tfidf": bool(log_tfidf),
        "scale_factor": float(scale_factor),
        "layer": layer,
    }
    returned, adata = _target(data, mod, copy)
    if layer is None:
        adata.X = result
    else:
        adata.layers[layer] = result
    adata.uns["tfidf"] = {"params": params}
    return returned


def _idf(counts: np.ndarray | sp.spmatrix, *, log_idf: bool) -> np.ndarray:
    """Inverse document frequency of every peak (float64; zero for peaks without counts)."""
    peak_totals = _sums(counts, axis=0)
    observed = peak_totals > 0
    idf = np.zeros_like(peak_totals)
    idf[observed] = counts.shape[0] / peak_totals[observed]
    if log_idf:
        idf = np.log1p(idf)
    if not observed.all():
        logger.info("tfidf: %d peaks have no counts; their TF-IDF columns are zero.", int((~observed).sum()))
    return idf


def _tfidf_values(
    counts: np.ndarray | sp.spmatrix,
    cell_totals: np.ndarray,
    idf: np.ndarray,
    *,
    log_tf: bool,
    log_tfidf: bool,
    scale_factor: float,
) -> np.ndarray | sp.csr_matrix:
    """TF-IDF of ``counts`` given each cell's total and each peak's IDF (float32; CSR if ``counts`` is sparse).

    Shared by :func:`tfidf` and the projection of new cells onto a reference (which brings its own ``idf``).
    """
    row_scale = scale_factor / cell_totals
    if sp.issparse(counts):
        tf = sp.csr_matrix(counts, dtype=np.float64, copy=True)  # never modifies counts
        tf.data *= np.repeat(row_scale, np.diff(tf.indptr))
        if log_tf:
            np.log1p(tf.data, out=tf.data)
        tf.data *= idf[tf.indices]
        if log_tfidf:
            np.log1p(tf.data, out=tf.data)
        tf.eliminate_zeros()
        return sp.csr_matrix(tf, dtype=np.float32)
    tf = np.asarray(counts, dtype=np.float64) * row_scale[:, None]
    if log_tf:
        tf = np.log1p(tf)
    tf = tf * idf[None, :]
    if log_tfidf:
        tf = np.log1p(tf)
    return tf.astype(np.float32)
