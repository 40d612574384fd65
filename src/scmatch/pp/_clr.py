"""Centred log-ratio transform of protein (ADT) counts."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from .._utils import _check_finite, _get_matrix, _get_modality
from ._utils import _check_axis, _check_nonnegative, _target, _where


def clr(
    data: AnnData | MuData,
    *,
    mod: str | None = "adt",
    axis: Literal[0, 1] = 1,
    layer: str | None = None,
    copy: bool = False,
) -> AnnData | MuData | None:
    r"""Centred log-ratio (CLR) transform of protein counts, as for CITE-seq ADT.

    Seurat's CLR (and ``flavor='seurat'`` of :func:`muon.prot.pp.clr`), which uses :math:`\log(1 + \cdot)`
    throughout so that zeros stay zero and sparse input stays sparse:

    .. math::
        \mathrm{clr}(x_{ij}) = \log\left(1 + \frac{x_{ij}}{g}\right), \qquad
        g = \exp\Big(\operatorname{mean}\,\log(1 + x)\Big),

    where the mean runs along ``axis``, with the convention of numpy and of :func:`muon.prot.pp.clr`:

    - ``axis=1`` (default): across the proteins of each cell, a per-cell normalisation (Seurat
      ``NormalizeData(normalization.method='CLR', margin=2)``). It removes differences in total ADT counts between
      cells, and is how the ADT matrices of the NeurIPS 2021 challenge were normalised.
    - ``axis=0``: across the cells for each protein (Seurat ``margin=1``, muon's default).

    With the same ``axis`` the result equals ``muon.prot.pp.clr(adata, axis=axis)``. A cell (or protein) with
    no counts stays all zero.

    Parameters
    ----------
    data
        AnnData of protein counts, or a MuData whose modality ``mod`` holds them.
    mod
        Modality to use when ``data`` is a MuData; ignored for an AnnData.
    axis
        ``1``: per cell, across proteins; ``0``: per protein, across cells.
    layer
        Read the counts from ``.layers[layer]`` and write the result back into that layer. ``None`` uses
        (and overwrites) ``.X``.
    copy
        Return a modified copy (of the whole MuData, if one was given) instead of writing in place.

    Returns
    -------
    ``None`` in place, else the modified copy. Written to the AnnData (the modality):

    - ``.X`` (or ``.layers[layer]``): float32 CLR values, sparse (CSR) if the counts were sparse;
    - ``.uns['clr']['params']``: ``axis`` and ``layer``.

    Raises
    ------
    ValueError
        If ``axis`` is not 0 or 1, or the counts are negative or hold NaN; nothing is written.

    Examples
    --------
    >>> import scmatch as sm
    >>> sm.pp.clr(mdata, mod="adt")  # doctest: +SKIP

    """
    adata = _get_modality(data, mod)
    X = _get_matrix(adata, layer=layer)
    _check_axis(axis)
    where = _where(layer)
    _check_finite(X, what=f"The matrix in {where}")
    _check_nonnegative(X, what=f"The matrix in {where}")

    result = _clr_values(X, axis=axis)

    returned, adata = _target(data, mod, copy)
    if layer is None:
        adata.X = result
    else:
        adata.layers[layer] = result
    adata.uns["clr"] = {"params": {"axis": int(axis), "layer": layer}}
    return returned


def _clr_values(X: np.ndarray | sp.spmatrix, *, axis: int, geo: np.ndarray | None = None) -> np.ndarray | sp.csr_matrix:
    """CLR values of ``X`` (float32; CSR if ``X`` is sparse).

    ``geo`` gives the geometric means to divide by (one per cell for ``axis=1``, one per protein for ``axis=0``);
    ``None`` computes them from ``X``. The projection of new cells onto a reference passes the reference's
    per-protein means for ``axis=0``.
    """
    if sp.issparse(X):
        # CSR for per-row scaling (axis=1), CSC for per-column scaling (axis=0); a copy in both cases.
        Y = (
            sp.csr_matrix(X, dtype=np.float64, copy=True)
            if axis == 1
            else sp.csc_matrix(X, dtype=np.float64, copy=True)
        )
        Y.eliminate_zeros()
        if geo is None:
            geo = _geo_means(Y, axis=axis)
        Y.data /= np.repeat(geo, np.diff(Y.indptr))
        np.log1p(Y.data, out=Y.data)
        return sp.csr_matrix(Y, dtype=np.float32)
    D = np.asarray(X, dtype=np.float64)
    if geo is None:
        geo = _geo_means(D, axis=axis)
    shape = (-1, 1) if axis == 1 else (1, -1)
    return np.log1p(D / np.reshape(geo, shape)).astype(np.float32)


def _geo_means(X: np.ndarray | sp.spmatrix, *, axis: int) -> np.ndarray:
    """``exp(mean(log(1 + x)))`` along ``axis`` (float64, flat)."""
    if sp.issparse(X):
        return np.exp(np.asarray(X.log1p().mean(axis=axis), dtype=np.float64).ravel())
    return np.exp(np.log1p(np.asarray(X, dtype=np.float64)).mean(axis=axis))
