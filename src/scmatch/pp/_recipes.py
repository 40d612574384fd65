"""One-line preprocessing recipes per modality: counts in, one documented ``.obsm`` embedding out.

Every recipe works on a scratch AnnData built from the counts, so a failure half-way leaves the user's object
untouched; the results are copied over only at the end.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scanpy as sc
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from .._keys import Key
from .._utils import _check_counts, _check_finite, _get_matrix, _get_modality, logger
from ._clr import _geo_means, clr
from ._knn_basis import validate_neighbors
from ._lsi import lsi
from ._map import map_onto_reference
from ._partner import chromatin_partner
from ._peaks import select_peaks
from ._project import RecipeState, clip_columns
from ._tfidf import _check_no_empty_cells, _idf, tfidf
from ._utils import (
    _cap,
    _check_axis,
    _check_fraction,
    _check_int,
    _check_nonnegative,
    _scratch,
    _seed_record,
    _sums,
    _target,
    _where,
)

#: ``recipe_atac`` defaults (benchmarks/README.md, ATAC): LSI components, and the fewest cells a kept peak is seen in
ATAC_N_COMPS = 30
ATAC_MIN_CELLS = 3
#: ``recipe_rna(scale=True)`` clips a gene's values this many standard deviations above its mean (scanpy's and
#: Seurat's customary ``max_value=10``)
RNA_MAX_SD = 10.0

#: The ``.obsm`` key each recipe writes (also recorded in ``.uns['scmatch_recipe']['obsm_key']``).
RECIPE_OBSM_KEYS = {"rna": "X_pca", "atac": Key.lsi(), "protein": "X_pca"}


def _finish(
    data: AnnData | MuData,
    mod: str | None,
    copy: bool,
    counts: np.ndarray | sp.spmatrix,
    tmp: AnnData,
    recipe: dict[str, Any],
    state: RecipeState,
    *,
    var: tuple[str, ...] = (),
    obsm: tuple[str, ...] = (),
    varm: tuple[str, ...] = (),
    uns: tuple[str, ...] = (),
) -> AnnData | MuData | None:
    """Copy the named results from the scratch AnnData into the user's object (or a copy of it)."""
    returned, adata = _target(data, mod, copy)
    if "counts" not in adata.layers:
        adata.layers["counts"] = counts.copy()
    adata.X = tmp.X
    for key in var:
        adata.var[key] = tmp.var[key].to_numpy()
    for key in obsm:
        adata.obsm[key] = tmp.obsm[key]
    for key in varm:
        adata.varm[key] = tmp.varm[key]
    for key in uns:
        adata.uns[key] = tmp.uns[key]
    adata.uns["scmatch_recipe"] = recipe
    state.write(adata)
    return returned


def recipe_rna(
    data: AnnData | MuData,
    *,
    mod: str | None = "rna",
    n_top_genes: int = 2000,
    n_comps: int = 50,
    scale: bool | Literal["auto"] = "auto",
    layer: str | None = None,
    reference: AnnData | MuData | Any | None = None,
    random_state: int | None = 0,
    copy: bool = False,
) -> AnnData | MuData | None:
    """Preprocess RNA counts into a PCA embedding with scanpy, in one call.

    Steps (all scanpy): :func:`scanpy.pp.normalize_total` (each cell to the median total), :func:`scanpy.pp.log1p`,
    :func:`scanpy.pp.highly_variable_genes` (``flavor='seurat'`` on the log data, ``n_top_genes`` genes) and
    :func:`scanpy.pp.pca` on those genes. Parameters too large for the data are lowered with a logged message:
    ``n_top_genes`` to the number of genes with counts, ``n_comps`` to ``min(n_cells, n_hvg) - 1``.

    Parameters
    ----------
    data
        AnnData of RNA counts, or a MuData whose modality ``mod`` holds them.
    mod
        Modality to use when ``data`` is a MuData; ignored for an AnnData.
    n_top_genes
        Number of highly variable genes.
    n_comps
        Number of principal components.
    scale
        Give each highly variable gene unit variance over the fitted cells before the PCA, its values clipped
        :data:`RNA_MAX_SD` (10) standard deviations above its mean, as :func:`scanpy.pp.scale` with
        ``max_value=10`` before :func:`scanpy.pp.pca` (only the upper side is clipped, so sparse data stay sparse).
        The genes' standard deviations are folded into ``.varm['PCs']``: ``X_pca`` is the log-normalised values,
        clipped (``.varm['scmatch_recipe']``'s ``ceiling``) and centred, times ``.varm['PCs']``, and reference
        mapping applies the reference's clipping and scale. ``'auto'`` (the default) scales when ``data`` is a MuData
        that also holds chromatin accessibility (a modality named ``atac``, ``peaks`` or ``chromatin``, processed by
        :func:`recipe_atac`, or whose features are peaks: ``feature_types == 'Peaks'`` or names such as
        ``chr1:100-200``), and not otherwise (proteins, or an AnnData alone, whose partner the recipe cannot see): with
        RNA + ATAC scaling raised the match on three splits of four (the fourth level), with proteins it lowered it
        on every set (``benchmarks/README.md``, *RNA scaling*). ``uns['scmatch_recipe']['scale_used']`` records what
        was done.
    layer
        Read the raw counts from ``.layers[layer]`` instead of ``.X`` (e.g. ``'counts'`` to re-run the recipe).
    reference
        Project these cells into the space of a reference instead of fitting a new one: an AnnData (or a MuData whose
        modality ``mod`` is one) that this recipe processed, or a fitted :class:`~scmatch.model.MatchModel` that carries
        the reference's preprocessing. Nothing is refitted: the gene list, normalisation target, highly variable genes,
        PCA centre and loadings come from the reference, and the fitting parameters above are ignored. Features are
        aligned by name: reference features the query lacks count as zeros (their number is logged and recorded); at
        least half of the reference features that enter the embedding must be present. See the reference-mapping
        tutorial.
    random_state
        Seed of the PCA solver.
    copy
        Return a processed copy (of the whole MuData, if one was given) instead of writing in place.

    Returns
    -------
    ``None`` in place, else the processed copy. Written to the AnnData (the modality):

    - ``.layers['counts']``: the raw counts, unless that layer already exists;
    - ``.X``: log-normalised expression (float32, sparse if the counts were);
    - ``.var``: ``highly_variable``, ``means``, ``dispersions``, ``dispersions_norm`` (scanpy);
    - ``.obsm['X_pca']``, ``.varm['PCs']``, ``.uns['pca']``, ``.uns['hvg']``, ``.uns['log1p']`` (scanpy);
    - ``.uns['scmatch_recipe']``: ``recipe='rna'``, ``obsm_key='X_pca'``, ``params`` (the arguments) and the
      values used, ``n_top_genes_used``, ``n_comps_used`` and ``scale_used``, the fitted ``state`` and its
      ``fingerprint``;
    - ``.varm['scmatch_recipe']``: per-gene ``used`` (1 for HVGs), ``mean`` (the PCA centre) and ``ceiling``
      (genes scaled: the largest value a gene keeps for the PCA; 0 otherwise).

    With ``reference=``: ``.layers['counts']``, ``.X`` (normalised to the reference's target), ``.var
    ['highly_variable']`` (the reference's HVGs), ``.obsm['X_pca']`` (the projection), ``.varm['PCs']`` (the
    reference's loadings, aligned by gene name) and ``.uns['scmatch_recipe']`` with the reference's
    ``fingerprint`` and ``projected`` (counts of reference genes used, missing and ignored).

    Raises
    ------
    ValueError
        If the matrix is not non-negative integer counts or a parameter is invalid; nothing is written.

    Examples
    --------
    >>> import mudata as md
    >>> import scmatch as sm
    >>> mdata = md.read_h5mu("bmmc_cite_starter.h5mu")  # doctest: +SKIP
    >>> sm.pp.recipe_rna(mdata)  # doctest: +SKIP
    >>> mdata.mod["rna"].obsm["X_pca"].shape  # doctest: +SKIP
    (600, 50)

    """
    if reference is not None:
        return map_onto_reference(data, reference, recipe="rna", mod=mod, layer=layer, copy=copy)
    adata = _get_modality(data, mod)
    counts = _get_matrix(adata, layer=layer)
    _check_int(n_top_genes, name="n_top_genes")
    _check_int(n_comps, name="n_comps")
    if not (isinstance(scale, bool | np.bool_) or (isinstance(scale, str) and scale == "auto")):
        raise TypeError(f"`scale` must be True, False or 'auto', got {scale!r}.")
    _check_counts(counts, what=f"The matrix in {_where(layer)}")
    if adata.n_obs < 3 or adata.n_vars < 3:
        raise ValueError(f"recipe_rna needs at least 3 cells and 3 genes, got {adata.n_obs} x {adata.n_vars}.")

    n_expressed = int((_sums(counts, axis=0) > 0).sum())
    if n_expressed < 3:
        raise ValueError(f"Only {n_expressed} genes have counts; recipe_rna needs at least 3. Check `layer=`.")

    tmp = _scratch(adata, counts)
    totals = _sums(counts, axis=1)
    target_sum = float(np.median(totals[totals > 0]))  # scanpy's default, recorded to normalise new cells alike
    sc.pp.normalize_total(tmp, target_sum=target_sum)
    sc.pp.log1p(tmp)
    why = f"{n_expressed} of the {adata.n_vars} genes have counts"
    n_top = _cap(n_top_genes, n_expressed, what="recipe_rna n_top_genes", why=why)
    sc.pp.highly_variable_genes(tmp, flavor="seurat", n_top_genes=n_top)
    n_hvg = int(tmp.var["highly_variable"].sum())
    limit = min(adata.n_obs, n_hvg) - 1
    if limit < 1:
        raise ValueError(f"Only {n_hvg} highly variable genes were found; PCA needs at least 2. Raise `n_top_genes`.")
    n_pcs = _cap(n_comps, limit, what="recipe_rna n_comps", why=f"{adata.n_obs} cells x {n_hvg} HVGs allow {limit}")
    hvg = tmp.var["highly_variable"].to_numpy()
    scale_used = _resolve_scale(scale, data, mod)
    if scale_used:
        centre, ceiling = _scaled_pca(tmp, hvg, n_comps=n_pcs, random_state=random_state)
    else:
        sc.pp.pca(tmp, n_comps=n_pcs, mask_var="highly_variable", random_state=random_state)
        centre, ceiling = _column_means(tmp.X, hvg), np.zeros(adata.n_vars)

    recipe = {
        "recipe": "rna",
        "obsm_key": RECIPE_OBSM_KEYS["rna"],
        "params": {
            "n_top_genes": n_top_genes,
            "n_comps": n_comps,
            "scale": scale if isinstance(scale, str) else bool(scale),
            "layer": layer,
            "random_state": _seed_record(random_state),
        },
        "n_top_genes_used": n_hvg,
        "n_comps_used": n_pcs,
        "scale_used": scale_used,
    }
    state = RecipeState(
        recipe="rna",
        obsm_key=recipe["obsm_key"],
        features=adata.var_names,
        scalars={"target_sum": target_sum},
        vectors={"used": hvg, "mean": centre, "ceiling": ceiling},
        loadings=tmp.varm["PCs"],
    )
    return _finish(
        data,
        mod,
        copy,
        counts,
        tmp,
        recipe,
        state,
        var=("highly_variable", "means", "dispersions", "dispersions_norm"),
        obsm=("X_pca",),
        varm=("PCs",),
        uns=("pca", "hvg", "log1p"),
    )


def recipe_atac(
    data: AnnData | MuData,
    *,
    mod: str | None = "atac",
    n_comps: int = ATAC_N_COMPS,
    min_cells: int | None = ATAC_MIN_CELLS,
    min_frac: float = 0.0,
    max_frac: float | None = None,
    n_top: int | None = None,
    drop_first: bool | Literal["auto"] = "auto",
    basis_neighbors: int | None = None,
    layer: str | None = None,
    reference: AnnData | MuData | Any | None = None,
    random_state: int | None = 0,
    copy: bool = False,
) -> AnnData | MuData | None:
    """Preprocess ATAC peak counts into an LSI embedding, in one call.

    Steps: :func:`scmatch.pp.select_peaks` (every peak non-zero in at least ``min_cells`` cells),
    :func:`scmatch.pp.tfidf` on all peaks (its defaults, which are muon's: ``log_tf=True, log_idf=True``, scale
    factor 1e4) and :func:`scmatch.pp.lsi` on the selected peaks, as Signac does (TF-IDF on all peaks, SVD on the
    selected ones). ``n_comps`` is lowered with a logged message if the data allow fewer components. What was kept
    (peaks, components, whether the first component was dropped and its correlation with depth) is logged at
    INFO level and recorded in ``.uns['scmatch_recipe']``.

    The defaults follow from how sparse ATAC is. Single-nucleus ATAC has about 100 non-zero peaks per cell out of
    tens of thousands, so almost every peak is non-zero in fewer than 1% of the cells: a frequency bound (Signac's
    and muon's tutorials use 1%) keeps under a tenth of the peaks and most of the chromatin signal with them. A
    small count of cells instead keeps every peak that more than a couple of cells share, on sparse and dense data
    alike. Thirty components (after the depth component) carried more of the cell identity than fifty on sparse
    data and no less on dense data. The numbers behind these choices are in ``benchmarks/README.md`` (ATAC) and the
    ATAC page of the docs.

    Parameters
    ----------
    data
        AnnData of peak counts, or a MuData whose modality ``mod`` holds them.
    mod
        Modality to use when ``data`` is a MuData; ignored for an AnnData.
    n_comps
        Number of LSI components in ``.obsm['X_lsi']`` (after dropping the first one, if it is dropped).
    min_cells
        Keep the peaks non-zero in at least this many cells (``None``: no count bound).
    min_frac, max_frac, n_top
        Further peak selection by frequency, see :func:`scmatch.pp.select_peaks` (by default none: ``min_frac=0``).
        ``min_frac=0.01`` is the 1% rule of Signac's and muon's tutorials, fit for dense ATAC only.
    drop_first
        Leave out the first LSI component: ``"auto"`` (the default) drops it when it tracks sequencing depth
        (correlation with log depth at least 0.5 in size, :data:`scmatch.pp._lsi.DEPTH_CORR_DROP`), as it does on
        TF-IDF data; ``True`` or ``False`` decide without looking.
    basis_neighbors
        Fit the LSI loadings on profiles averaged over this many nearest cells, and place every cell by projecting
        its own profile on them (``n_neighbors`` of :func:`scmatch.pp.lsi`). Meant for a reference that query
        cells will be mapped onto with ``reference=``, on sparse ATAC. ``None`` (the default): the plain SVD. See
        the ATAC page of the docs for its numbers.
    layer
        Read the raw counts from ``.layers[layer]`` instead of ``.X`` (e.g. ``'counts'`` to re-run the recipe).
    reference
        Project these cells into the space of a reference instead of fitting a new one: an AnnData (or a MuData whose
        modality ``mod`` is one) that this recipe processed, or a fitted :class:`~scmatch.model.MatchModel` that carries
        the reference's preprocessing. Nothing is refitted: the peak list, the IDF of every peak, the selected peaks and
        the LSI loadings come from the reference, and the fitting parameters above are ignored. Features are aligned by
        name: reference features the query lacks count as zeros (their number is logged and recorded); at least half of
        the reference features that enter the embedding must be present. See the reference-mapping tutorial.
    random_state
        Seed of the SVD.
    copy
        Return a processed copy (of the whole MuData, if one was given) instead of writing in place.

    Returns
    -------
    ``None`` in place, else the processed copy. Written to the AnnData (the modality):

    - ``.layers['counts']``: the raw counts, unless that layer already exists;
    - ``.X``: TF-IDF values of all peaks (see :func:`scmatch.pp.tfidf`);
    - ``.var['frac_cells']``, ``.var['highly_accessible']``, ``.uns['select_peaks']``;
    - ``.obsm['X_lsi']``, ``.varm['LSI']``, ``.uns['lsi']``, ``.uns['tfidf']``;
    - ``.uns['scmatch_recipe']``: ``recipe='atac'``, ``obsm_key='X_lsi'``, ``params``, ``n_peaks_used``,
      ``n_comps_used``, ``dropped_first`` and ``first_depth_corr`` (whether the first LSI component was left out,
      and its correlation with log depth), the fitted ``state`` and its ``fingerprint``;
    - ``.varm['scmatch_recipe']``: per-peak ``used`` (1 for selected peaks) and ``idf``.

    With ``reference=``: ``.layers['counts']``, ``.X`` (TF-IDF with the reference's IDF), ``.var
    ['highly_accessible']``, ``.obsm['X_lsi']``, ``.varm['LSI']`` (the reference's loadings, aligned by peak
    name) and ``.uns['scmatch_recipe']`` with the reference's ``fingerprint`` and ``projected``.

    Raises
    ------
    ValueError
        If the matrix is not non-negative integer counts, a cell has no counts, no peak passes the selection or a
        parameter is invalid; nothing is written.

    Examples
    --------
    >>> import mudata as md
    >>> import scmatch as sm
    >>> mdata = md.read_h5mu("bmmc_multiome_starter.h5mu")  # doctest: +SKIP
    >>> sm.pp.recipe_atac(mdata)  # doctest: +SKIP
    >>> mdata.mod["atac"].obsm["X_lsi"].shape  # doctest: +SKIP
    (500, 30)

    """
    if reference is not None:
        return map_onto_reference(data, reference, recipe="atac", mod=mod, layer=layer, copy=copy)
    adata = _get_modality(data, mod)
    counts = _get_matrix(adata, layer=layer)
    _check_int(n_comps, name="n_comps")
    _check_fraction(min_frac, name="min_frac")
    _check_counts(counts, what=f"The matrix in {_where(layer)}")
    _check_no_empty_cells(counts, adata, where=_where(layer))
    if not (isinstance(drop_first, bool | np.bool_) or (isinstance(drop_first, str) and drop_first == "auto")):
        raise ValueError(f"`drop_first` must be True, False or 'auto', got {drop_first!r}.")
    validate_neighbors(basis_neighbors, name="basis_neighbors")

    tmp = _scratch(adata, counts)
    tmp.layers["counts"] = counts  # read only, for the depth correlations of lsi
    select_peaks(tmp, min_frac=min_frac, max_frac=max_frac, n_top=n_top, min_cells=min_cells)
    tfidf(tmp, log_tf=True, log_idf=True, log_tfidf=False)
    lsi(
        tmp,
        n_comps=n_comps,
        drop_first=drop_first,
        mask_var="highly_accessible",
        n_neighbors=basis_neighbors,
        random_state=random_state,
    )

    recipe = {
        "recipe": "atac",
        "obsm_key": RECIPE_OBSM_KEYS["atac"],
        "params": {
            "n_comps": n_comps,
            "min_frac": min_frac,
            "max_frac": max_frac,
            "n_top": n_top,
            "min_cells": min_cells,
            "drop_first": drop_first if isinstance(drop_first, str) else bool(drop_first),
            "basis_neighbors": tmp.uns["lsi"]["params"]["n_neighbors"],
            "layer": layer,
            "random_state": _seed_record(random_state),
        },
        "n_peaks_used": int(tmp.var["highly_accessible"].sum()),
        "n_comps_used": int(tmp.obsm[Key.lsi()].shape[1]),
        "dropped_first": bool(tmp.uns["lsi"]["params"]["dropped_first"]),
        "first_depth_corr": _first_depth_corr(tmp.uns["lsi"]),
    }
    _log_atac(recipe, adata.n_vars)
    state = RecipeState(
        recipe="atac",
        obsm_key=recipe["obsm_key"],
        features=adata.var_names,
        scalars={**tmp.uns["tfidf"]["params"], "drop_first": recipe["dropped_first"]},
        vectors={"used": tmp.var["highly_accessible"].to_numpy(), "idf": _idf(counts, log_idf=True)},
        loadings=tmp.varm["LSI"],
    )
    return _finish(
        data,
        mod,
        copy,
        counts,
        tmp,
        recipe,
        state,
        var=("frac_cells", "highly_accessible"),
        obsm=(Key.lsi(),),
        varm=("LSI",),
        uns=("select_peaks", "tfidf", "lsi"),
    )


def recipe_protein(
    data: AnnData | MuData,
    *,
    mod: str | None = "adt",
    n_comps: int | None = None,
    axis: Literal[0, 1] = 1,
    layer: str | None = None,
    reference: AnnData | MuData | Any | None = None,
    random_state: int | None = 0,
    copy: bool = False,
) -> AnnData | MuData | None:
    """Preprocess protein (ADT) counts into a PCA embedding of their CLR values, in one call.

    Steps: :func:`scmatch.pp.clr` (per cell across proteins by default), then :func:`scanpy.pp.pca` on all
    proteins. With ``n_comps=None`` all ``min(n_cells, n_proteins) - 1`` components are kept: protein panels are
    small, so the embedding is then a rotation of the centred CLR matrix that loses (almost) nothing. Like the
    other recipes it always writes one embedding, ``.obsm['X_pca']``, for the matching model to read.

    Parameters
    ----------
    data
        AnnData of protein counts, or a MuData whose modality ``mod`` holds them.
    mod
        Modality to use when ``data`` is a MuData; ignored for an AnnData.
    n_comps
        Number of principal components; ``None`` keeps all of them. Lowered, with a logged message, to
        ``min(n_cells, n_proteins) - 1``.
    axis
        CLR direction, see :func:`scmatch.pp.clr` (``1``: per cell across proteins).
    layer
        Read the raw counts from ``.layers[layer]`` instead of ``.X`` (e.g. ``'counts'`` to re-run the recipe).
    reference
        Project these cells into the space of a reference instead of fitting a new one: an AnnData (or a MuData whose
        modality ``mod`` is one) that this recipe processed, or a fitted :class:`~scmatch.model.MatchModel` that carries
        the reference's preprocessing. Nothing is refitted: the protein list, CLR constants, PCA centre and loadings
        come from the reference, and the fitting parameters above are ignored. Features are aligned by name: reference
        features the query lacks count as zeros (their number is logged and recorded); at least half of the reference
        features that enter the embedding must be present. See the reference-mapping tutorial.
    random_state
        Seed of the PCA solver.
    copy
        Return a processed copy (of the whole MuData, if one was given) instead of writing in place.

    Returns
    -------
    ``None`` in place, else the processed copy. Written to the AnnData (the modality):

    - ``.layers['counts']``: the raw counts, unless that layer already exists;
    - ``.X``: CLR values (float32, sparse if the counts were);
    - ``.obsm['X_pca']``, ``.varm['PCs']``, ``.uns['pca']`` (scanpy), ``.uns['clr']``;
    - ``.uns['scmatch_recipe']``: ``recipe='protein'``, ``obsm_key='X_pca'``, ``params`` and ``n_comps_used``,
      the fitted ``state`` and its ``fingerprint``;
    - ``.varm['scmatch_recipe']``: per-protein ``used``, ``mean`` (the PCA centre) and ``geo`` (geometric means
      for ``axis=0``, else ones).

    With ``reference=``: ``.layers['counts']``, ``.X`` (CLR with the reference's constants), ``.obsm['X_pca']``,
    ``.varm['PCs']`` and ``.uns['scmatch_recipe']`` with the reference's ``fingerprint`` and ``projected``.

    Raises
    ------
    ValueError
        If the counts are negative or hold NaN, or a parameter is invalid; nothing is written.

    Examples
    --------
    >>> import mudata as md
    >>> import scmatch as sm
    >>> mdata = md.read_h5mu("bmmc_cite_starter.h5mu")  # doctest: +SKIP
    >>> sm.pp.recipe_protein(mdata)  # doctest: +SKIP
    >>> mdata.mod["adt"].obsm["X_pca"].shape  # doctest: +SKIP
    (600, 133)

    """
    if reference is not None:
        return map_onto_reference(data, reference, recipe="protein", mod=mod, layer=layer, copy=copy)
    adata = _get_modality(data, mod)
    counts = _get_matrix(adata, layer=layer)
    _check_int(n_comps, name="n_comps", allow_none=True)
    _check_axis(axis)
    _check_finite(counts, what=f"The matrix in {_where(layer)}")
    _check_nonnegative(counts, what=f"The matrix in {_where(layer)}")
    if adata.n_obs < 3 or adata.n_vars < 3:
        raise ValueError(f"recipe_protein needs at least 3 cells and 3 proteins, got {adata.n_obs} x {adata.n_vars}.")

    tmp = _scratch(adata, counts)
    clr(tmp, axis=axis)
    limit = min(adata.n_obs, adata.n_vars) - 1
    why = f"{adata.n_obs} cells x {adata.n_vars} proteins allow {limit}"
    n_pcs = limit if n_comps is None else _cap(n_comps, limit, what="recipe_protein n_comps", why=why)
    sc.pp.pca(tmp, n_comps=n_pcs, mask_var=None, random_state=random_state)

    recipe = {
        "recipe": "protein",
        "obsm_key": RECIPE_OBSM_KEYS["protein"],
        "params": {
            "n_comps": n_comps,
            "axis": int(axis),
            "layer": layer,
            "random_state": _seed_record(random_state),
        },
        "n_comps_used": n_pcs,
    }
    every = np.ones(adata.n_vars, dtype=bool)
    geo = _geo_means(counts, axis=0) if axis == 0 else np.ones(adata.n_vars)
    state = RecipeState(
        recipe="protein",
        obsm_key=recipe["obsm_key"],
        features=adata.var_names,
        scalars={"axis": int(axis)},
        vectors={"used": every, "mean": _column_means(tmp.X, every), "geo": geo},
        loadings=tmp.varm["PCs"],
    )
    return _finish(data, mod, copy, counts, tmp, recipe, state, obsm=("X_pca",), varm=("PCs",), uns=("pca", "clr"))


def _resolve_scale(scale: bool | str, data: AnnData | MuData, mod: str | None) -> bool:
    """``recipe_rna``'s ``scale``: as given, or under ``'auto'`` whether ``data`` pairs the RNA with chromatin."""
    if not isinstance(scale, str):
        return bool(scale)
    partner = chromatin_partner(data, mod)
    if partner is None:
        logger.info("recipe_rna: genes not scaled (scale='auto': no chromatin modality beside the RNA)")
        return False
    logger.info(f"recipe_rna: genes scaled to unit variance (scale='auto': modality {partner!r} is chromatin)")
    return True


def _first_depth_corr(uns: dict[str, Any]) -> float:
    """Correlation of the first LSI component (dropped or kept) with log depth."""
    dropped = uns.get("dropped_component")
    return float(dropped["depth_corr"] if dropped else uns["depth_corr"][0])


def _log_atac(recipe: dict[str, Any], n_peaks: int) -> None:
    params = recipe["params"]
    rule = [f"non-zero in >= {params['min_cells']} cells"] if params["min_cells"] is not None else []
    rule += [f">= {params['min_frac']:g} of cells"] if params["min_frac"] > 0 else []
    logger.info(
        "recipe_atac: %d of %d peaks kept (%s); %d LSI components, first component %s (depth correlation %.2f).",
        recipe["n_peaks_used"],
        n_peaks,
        ", ".join(rule) or "every peak",
        recipe["n_comps_used"],
        "dropped" if recipe["dropped_first"] else "kept",
        recipe["first_depth_corr"],
    )


def _scaled_pca(tmp: AnnData, hvg: np.ndarray, *, n_comps: int, random_state: int | None) -> tuple:
    """The PCA of the HVGs scaled to unit variance, clipped at ``RNA_MAX_SD``; the spreads go in the loadings.

    With ``m`` and ``s`` each gene's mean and standard deviation, a value is clipped to ``m + RNA_MAX_SD * s`` (as
    :func:`scanpy.pp.scale` clips at ``max_value``; only the upper side, which keeps sparse data sparse) and
    divided by ``s``; scanpy centres implicitly. Since ``(Xc / s - c / s) @ P == (Xc - c) @ (P / s)`` for the
    clipped values ``Xc`` and their means ``c``, the loadings written are ``P / s``. Returns ``(c, ceiling)``.
    """
    X = tmp.X
    cols = np.flatnonzero(hvg)
    means = _column_means(X, hvg)
    squares = X.multiply(X) if sp.issparse(X) else np.square(X, dtype=np.float64)
    variance = np.zeros(X.shape[1])
    variance[cols] = _sums(squares[:, cols], axis=0) / X.shape[0] - means[cols] ** 2
    spread = np.sqrt(np.clip(variance, 0.0, None))
    spread[spread <= 0] = 1.0  # a constant gene (and every non-HVG) stays as it is
    ceiling = np.where(hvg & (variance > 0), means + RNA_MAX_SD * spread, 0.0)
    clipped = clip_columns(X, ceiling)
    inverse = (1.0 / spread).astype(np.float32)
    scaled = sp.csr_matrix(clipped.multiply(inverse[None, :])) if sp.issparse(clipped) else clipped * inverse
    work = AnnData(X=scaled.astype(np.float32), var=tmp.var[["highly_variable"]].copy())
    sc.pp.pca(work, n_comps=n_comps, mask_var="highly_variable", random_state=random_state)
    tmp.obsm["X_pca"] = work.obsm["X_pca"]
    tmp.varm["PCs"] = work.varm["PCs"] / spread[:, None]
    tmp.uns["pca"] = work.uns["pca"]
    return _column_means(clipped, hvg), ceiling


def _column_means(X: np.ndarray | sp.spmatrix, mask: np.ndarray) -> np.ndarray:
    """Float64 mean of each column where ``mask`` is True (the PCA centre), zero elsewhere."""
    means = np.zeros(X.shape[1])
    means[mask] = _sums(X[:, np.flatnonzero(mask)], axis=0) / X.shape[0]
    return means
