"""Select peaks by how often they are accessible."""

from __future__ import annotations

import numpy as np
from anndata import AnnData
from mudata import MuData

from .._utils import _check_finite, _get_matrix, _get_modality, logger
from ._utils import _check_fraction, _check_int, _nonzero_per_column, _target, _where


def select_peaks(
    data: AnnData | MuData,
    *,
    mod: str | None = "atac",
    min_frac: float = 0.01,
    max_frac: float | None = None,
    n_top: int | None = None,
    min_cells: int | None = None,
    layer: str | None = None,
    subset: bool = False,
    copy: bool = False,
) -> AnnData | MuData | None:
    """Select peaks by the fraction of cells in which they are accessible.

    The frequency of a peak is the fraction of cells with a non-zero value for it. A peak is selected when its
    frequency is at least ``min_frac`` and at most ``max_frac``, and (if ``min_cells`` is given) it is non-zero in
    at least ``min_cells`` cells; ``n_top`` then keeps only the most frequent of those (ties broken by peak
    order). This is the frequency filter of Signac's ``FindTopFeatures`` and of the
    ATAC preprocessing in muon's tutorials; it works on counts or on TF-IDF values alike.

    Parameters
    ----------
    data
        AnnData of peaks, or a MuData whose modality ``mod`` holds them.
    mod
        Modality to use when ``data`` is a MuData; ignored for an AnnData.
    min_frac
        Smallest fraction of cells (between 0 and 1) in which a selected peak is non-zero.
    max_frac
        Largest fraction of cells in which a selected peak is non-zero (``None``: no upper bound).
    n_top
        Keep at most this many peaks, the most frequent ones (``None``: no limit).
    min_cells
        Smallest number of cells in which a selected peak is non-zero (``None``: no such bound). A count, unlike
        ``min_frac``, does not grow with the number of cells: on sparse single-nucleus ATAC (about 100 non-zero
        peaks per cell) a 1% frequency bound discards most peaks.
    layer
        Count non-zeros in ``.layers[layer]`` instead of ``.X``.
    subset
        Drop the peaks that are not selected (in a MuData, the MuData's ``.var`` is updated too).
    copy
        Return a modified copy (of the whole MuData, if one was given) instead of writing in place.

    Returns
    -------
    ``None`` in place, else the modified copy. Written to the AnnData (the modality):

    - ``.var['frac_cells']``: fraction of cells in which each peak is non-zero;
    - ``.var['highly_accessible']``: boolean, the selected peaks (pass ``mask_var='highly_accessible'`` to
      :func:`scmatch.pp.lsi`);
    - ``.uns['select_peaks']['params']``: the arguments and ``n_selected``.

    Raises
    ------
    ValueError
        If the bounds are not fractions, ``max_frac < min_frac``, or no peak passes; nothing is written.

    Examples
    --------
    >>> import scmatch as sm
    >>> sm.pp.select_peaks(mdata, mod="atac")  # the BMMC multiome starter  # doctest: +SKIP
    >>> int(mdata.mod["atac"].var["highly_accessible"].sum())  # doctest: +SKIP
    526

    """
    adata = _get_modality(data, mod)
    X = _get_matrix(adata, layer=layer)
    _check_fraction(min_frac, name="min_frac")
    _check_fraction(max_frac, name="max_frac", allow_none=True)
    _check_int(n_top, name="n_top", allow_none=True)
    _check_int(min_cells, name="min_cells", allow_none=True)
    if max_frac is not None and max_frac < min_frac:
        raise ValueError(f"`max_frac` ({max_frac}) is below `min_frac` ({min_frac}); pass max_frac >= min_frac.")
    _check_finite(X, what=f"The matrix in {_where(layer)}")
    if adata.n_obs == 0:
        raise ValueError("The data have no cells; peak frequencies are undefined.")

    n_cells = _nonzero_per_column(X)
    frac = n_cells / adata.n_obs
    selected = frac >= min_frac
    if min_cells is not None:
        selected &= n_cells >= min_cells
    if max_frac is not None:
        selected &= frac <= max_frac
    if n_top is not None and selected.sum() > n_top:
        candidates = np.flatnonzero(selected)
        keep = candidates[np.argsort(-frac[candidates], kind="stable")[:n_top]]
        selected = np.zeros_like(selected)
        selected[keep] = True
    n_selected = int(selected.sum())
    if n_selected == 0:
        bounds = f"at least {min_frac}" + ("" if max_frac is None else f" and at most {max_frac}")
        if min_cells is not None:
            bounds += f" of the cells and in at least {min_cells}"
        raise ValueError(
            f"No peak is non-zero in {bounds} of the cells (peak frequencies range from {frac.min():.4f} to "
            f"{frac.max():.4f}, {int(n_cells.max())} cells at most); lower `min_frac` or `min_cells`, or raise "
            "`max_frac`."
        )
    logger.info("select_peaks: %d of %d peaks selected.", n_selected, adata.n_vars)

    returned, adata = _target(data, mod, copy)
    adata.var["frac_cells"] = frac
    adata.var["highly_accessible"] = selected
    adata.uns["select_peaks"] = {
        "params": {
            "min_frac": float(min_frac),
            "max_frac": None if max_frac is None else float(max_frac),
            "n_top": None if n_top is None else int(n_top),
            "min_cells": None if min_cells is None else int(min_cells),
            "layer": layer,
            "subset": bool(subset),
            "n_selected": n_selected,
        }
    }
    if subset:
        adata._inplace_subset_var(selected)
        container = returned if copy else data
        if isinstance(container, MuData):
            container.update()
    return returned
