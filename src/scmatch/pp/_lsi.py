"""Latent semantic indexing: a seeded truncated SVD of a (TF-IDF) peak matrix."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData
from scipy.sparse.linalg import svds

from .._keys import Key
from .._utils import _check_finite, _get_matrix, _get_modality, _rng, logger
from ._knn_basis import _check_neighbors, neighbour_average
from ._utils import _check_int, _seed_record, _sums, _target, _where

#: ``drop_first="auto"`` drops the first component when its correlation with log depth is at least this, in size
DEPTH_CORR_DROP = 0.5


def _truncated_svd(
    X: np.ndarray | sp.spmatrix, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top ``k`` singular triplets of ``X`` (float64, descending, deterministic signs).

    ARPACK (:func:`scipy.sparse.linalg.svds`) with a starting vector drawn from ``rng``, so a seed fixes the result.
    Each component's sign is chosen so that its largest-magnitude loading is positive.
    """
    A = sp.csr_matrix(X, dtype=np.float64) if sp.issparse(X) else np.asarray(X, dtype=np.float64)
    v0 = rng.uniform(-1.0, 1.0, size=min(A.shape))
    u, s, vt = svds(A, k=k, v0=v0, solver="arpack")
    order = np.argsort(s)[::-1]
    u, s, vt = u[:, order], s[order], vt[order]
    signs = np.sign(vt[np.arange(k), np.argmax(np.abs(vt), axis=1)])
    signs[signs == 0] = 1.0
    return u * signs, s, vt * signs[:, None]


def _correlations(coords: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``coords`` with ``y`` (NaN where either is constant)."""
    xc = coords - coords.mean(axis=0)
    yc = y - y.mean()
    denom = np.sqrt((xc**2).sum(axis=0) * (yc**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, xc.T @ yc / denom, np.nan)


def lsi(
    data: AnnData | MuData,
    *,
    mod: str | None = "atac",
    n_comps: int = 50,
    drop_first: bool | Literal["auto"] = True,
    layer: str | None = None,
    mask_var: str | None = None,
    n_neighbors: int | None = None,
    random_state: int | np.random.Generator | None = 0,
    copy: bool = False,
) -> AnnData | MuData | None:
    r"""Latent semantic indexing: truncated SVD of a (TF-IDF normalised) peak matrix.

    The matrix :math:`X` (cells x peaks, usually the output of :func:`scmatch.pp.tfidf`) is factorised as
    :math:`X \approx U S V^T` without centring (centring would make a sparse matrix dense). The cell coordinates
    are :math:`U S` and the peak loadings :math:`V`. The first component of TF-IDF data mostly tracks sequencing
    depth; ``drop_first=True`` computes ``n_comps + 1`` components and leaves the first one out of the outputs,
    so the embedding always has ``n_comps`` columns. ``drop_first="auto"`` decides from the data: the first
    component is dropped when the size of its correlation with log depth is at least :data:`DEPTH_CORR_DROP`
    (0.5), and kept otherwise. ``uns['lsi']`` records how strongly every component correlates with depth, so
    the choice can be checked.

    The SVD is ARPACK (:func:`scipy.sparse.linalg.svds`) with a starting vector drawn from ``random_state``: the
    same seed gives the same result. Signs are fixed so that each component's largest-magnitude loading is
    positive. If more components are asked for than the matrix allows (at most ``min(n_cells, n_peaks) - 1``),
    ``n_comps`` is lowered and a message is logged.

    With ``n_neighbors``, the loadings are fitted on neighbour-averaged profiles: a first LSI finds each cell's
    ``n_neighbors`` nearest cells (itself included, cosine distance), the SVD of the matrix of their averaged
    profiles gives the loadings :math:`V`, and every cell's coordinates are its own profile projected on them,
    :math:`X V`, which is how reference mapping places a query's cells. Averaging makes the loadings follow what
    neighbouring cells share rather than what a single sparse profile holds; it is meant for a reference that
    queries will be mapped onto (benchmarks/README.md, *Mapping basis*).

    Parameters
    ----------
    data
        AnnData, or a MuData whose modality ``mod`` is used.
    mod
        Modality to use when ``data`` is a MuData; ignored for an AnnData.
    n_comps
        Number of components in the output (after dropping the first one, if ``drop_first``).
    drop_first
        Leave out the first (depth-related) component: ``True``, ``False``, or ``"auto"`` (only when it tracks
        depth, see above).
    layer
        Factorise ``.layers[layer]`` instead of ``.X``.
    mask_var
        Name of a boolean ``.var`` column (e.g. ``'highly_accessible'`` from :func:`scmatch.pp.select_peaks`):
        only those peaks enter the SVD; the others get zero loadings. ``None`` uses all peaks.
    n_neighbors
        Fit the loadings on profiles averaged over this many nearest cells (see above); ``None`` (the default) or
        1: the plain SVD.
    random_state
        Seed (or :class:`numpy.random.Generator`) of the SVD's starting vector.
    copy
        Return a modified copy (of the whole MuData, if one was given) instead of writing in place.

    Returns
    -------
    ``None`` in place, else the modified copy. Written to the AnnData (the modality):

    - ``.obsm['X_lsi']``: cell coordinates :math:`U S`, float64, cells x ``n_comps``;
    - ``.varm['LSI']``: peak loadings :math:`V`, peaks x ``n_comps`` (zero rows for peaks outside ``mask_var``);
    - ``.uns['lsi']``: ``params`` (the arguments, plus ``n_comps_used``), ``singular_values`` and ``stdev``
      (singular values over :math:`\sqrt{n_{cells} - 1}`, as muon; with ``n_neighbors``, those of the averaged
      matrix), ``depth_corr`` (Pearson correlation of each
      output component with depth), ``depth_source``, and with ``drop_first`` also ``dropped_component``: a dict
      with the ``singular_value`` and ``depth_corr`` of the component left out.

    Depth is :math:`\log(1 + \text{total counts})` per cell, from ``.layers['counts']`` when that layer exists
    (``depth_source='counts'``), else from the factorised matrix itself (``depth_source='input'``).

    Examples
    --------
    >>> import scmatch as sm
    >>> sm.pp.tfidf(mdata, mod="atac")  # doctest: +SKIP
    >>> sm.pp.lsi(mdata, mod="atac", n_comps=30)  # doctest: +SKIP
    >>> mdata.mod["atac"].obsm["X_lsi"].shape  # doctest: +SKIP
    (500, 30)

    """
    adata = _get_modality(data, mod)
    X = _get_matrix(adata, layer=layer)
    where = _where(layer)
    _check_int(n_comps, name="n_comps")
    _check_finite(X, what=f"The matrix in {where}")
    mask, X_used = _used_peaks(adata, X, mask_var)
    if (X_used.nnz if sp.issparse(X_used) else np.count_nonzero(X_used)) == 0:
        raise ValueError(
            f"The matrix in {where} is all zeros on the peaks used, so it has no components. "
            "Check that the counts are loaded and that the peak selection keeps accessible peaks."
        )
    auto, first, k = _n_components(X_used.shape, n_comps, drop_first)
    n_neighbors = _check_neighbors(n_neighbors, X_used.shape[0])

    if "counts" in adata.layers and adata.layers["counts"].shape == adata.shape:
        depth, depth_source = np.log1p(_sums(adata.layers["counts"], axis=1)), "counts"
    else:
        depth, depth_source = np.log1p(np.clip(_sums(X, axis=1), 0, None)), "input"

    rng = _rng(random_state)
    u, s, vt = _truncated_svd(X_used, k, rng)
    coords = u * s
    corr = _correlations(coords, depth)
    if n_neighbors > 1:  # loadings from neighbour-averaged profiles, found in this first LSI without depth
        drop = first if not auto else int(bool(abs(np.nan_to_num(corr[0])) >= DEPTH_CORR_DROP))
        averaged = neighbour_average(X_used, coords[:, drop:], n_neighbors=n_neighbors)
        u, s, vt = _truncated_svd(averaged, k, rng)
        coords = np.asarray(X_used @ vt.T)
        corr = _correlations(coords, depth)
    if auto:
        first = int(bool(abs(np.nan_to_num(corr[0])) >= DEPTH_CORR_DROP))
        if not first and k > n_comps:  # the first component stays; the extra one computed to replace it goes
            u, s, vt, coords, corr = u[:, :-1], s[:-1], vt[:-1], coords[:, :-1], corr[:-1]
            k -= 1

    loadings = np.zeros((adata.n_vars, k - first))
    loadings[mask] = vt[first:].T
    uns = {
        "params": {
            "n_comps": int(n_comps),
            "n_comps_used": int(k - first),
            "drop_first": "auto" if auto else bool(drop_first),
            "dropped_first": bool(first),
            "layer": layer,
            "mask_var": mask_var,
            "n_neighbors": None if n_neighbors <= 1 else int(n_neighbors),
            "random_state": _seed_record(random_state),
        },
        "singular_values": s[first:],
        "stdev": s[first:] / np.sqrt(max(adata.n_obs - 1, 1)),
        "depth_corr": corr[first:],
        "depth_source": depth_source,
    }
    if first:
        uns["dropped_component"] = {"singular_value": float(s[0]), "depth_corr": float(corr[0])}

    returned, adata = _target(data, mod, copy)
    adata.obsm[Key.lsi()] = coords[:, first:]
    adata.varm["LSI"] = loadings
    adata.uns["lsi"] = uns
    return returned


def _used_peaks(adata: AnnData, X, mask_var: str | None) -> tuple[np.ndarray, Any]:
    """The mask of the peaks LSI factorises (``.var[mask_var]``, or every peak) and the matrix on them."""
    if mask_var is None:
        return np.ones(adata.n_vars, dtype=bool), X
    if mask_var not in adata.var:
        raise ValueError(
            f"`.var[{mask_var!r}]` not found; available columns: {list(adata.var.columns)}. "
            "Run scmatch.pp.select_peaks first or pass `mask_var=None` to use all peaks."
        )
    mask = np.asarray(adata.var[mask_var])
    if mask.dtype != bool:
        raise ValueError(f"`.var[{mask_var!r}]` must be boolean, got dtype {mask.dtype}.")
    if not mask.any():
        raise ValueError(f"`.var[{mask_var!r}]` selects no peaks; select some or pass `mask_var=None`.")
    return mask, X[:, np.flatnonzero(mask)]


def _n_components(shape: tuple[int, int], n_comps: int, drop_first) -> tuple[bool, int, int]:
    """The number of components to compute, as ``(auto, first, k)``.

    ``auto``: whether ``drop_first`` is ``"auto"``; ``first``: the components that may be dropped in front; ``k``:
    ``n_comps`` plus those, at most what the matrix allows.
    """
    k_max = min(shape) - 1
    auto = isinstance(drop_first, str) and drop_first == "auto"
    if not (auto or isinstance(drop_first, bool | np.bool_)):
        raise ValueError(f"`drop_first` must be True, False or 'auto', got {drop_first!r}.")
    first = int(auto or bool(drop_first))
    if k_max < 1 + first:
        raise ValueError(
            f"The matrix to factorise is {shape[0]} x {shape[1]}; LSI needs at least "
            f"{2 + first} cells and {2 + first} peaks{' with drop_first=True' if first else ''}."
        )
    k = n_comps + first
    if k > k_max:
        logger.info(
            "lsi: %d components requested but a %d x %d matrix allows at most %d; using %d.",
            n_comps,
            *shape,
            k_max - first,
            k_max - first,
        )
        k = k_max
    return auto, first, k
