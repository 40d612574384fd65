"""tl.select_coreset: a small weighted subset of cells that covers or represents the whole (sketching)."""

from __future__ import annotations

import numpy as np
from anndata import AnnData
from mudata import MuData

from .._keys import Key
from .._utils import _check_finite, _dense, _get_matrix, _get_modality, logger
from ..model.solvers._coreset import KERNELS, SKETCHES, select_coreset_indices


def select_coreset(
    data: AnnData | MuData,
    *,
    mod: str | None = None,
    use_rep: str | None = "X_pca",
    layer: str | None = None,
    fraction: float = 0.1,
    method: str = "kcenter",
    n_neighbors: int = 30,
    chunk_size: int = 5000,
    kernel: str = "adaptive",
    random_state: int | None = 0,
    key_added: str = "coreset",
    copy: bool = False,
) -> AnnData | MuData | None:
    """Select a small weighted subset of cells (a sketch), for fast exploration, plotting or a smaller reference.

    - ``method="kcenter"`` (default): greedy k-center (farthest-first traversal): each pick is the cell farthest
      from those already picked, which keeps the largest distance from any cell to the subset (the Hausdorff
      distance) within twice its optimum. Every group of cells that stands apart, such as a rare cell type, is
      picked; so are outlying cells, so filter low-quality cells and doublets first.
    - ``method="craig"``: greedy facility location, ``max sum_i max_{j in S} s(i, j)`` on a kNN similarity
      graph: the subset follows the density of the cells (the smallest mean distance to the subset) and can miss
      small groups.
    - ``method="random"``: a uniform random subset.

    Both greedy methods run within random chunks of at most ``chunk_size`` cells, with budgets proportional to
    the chunks' sizes (see :mod:`scmatch.model.solvers._coreset`). Each selected cell is weighted by the number of cells
    nearest to it (``n / k`` for ``"random"``), so the weights sum to the number of cells.

    In the project's benchmark (``benchmarks/README.md``, Sketch), on 50,000 simulated cells of 24 types, 4 of
    them rare (10 to 250 cells), ``"kcenter"`` kept every rare type at 1%, 5% and 10% in every run; uniform
    sampling kept 2 to 3 of 4 at 1%, geometric sketching (geosketch) 2.3 to 4 of 4, ``"craig"`` 0 to 2.3 of 4.
    ``"kcenter"`` also had the smallest Hausdorff distance. ``"craig"`` had the smallest mean distance, and kept
    the most cell types on the small real sets (300 to 600 cells), where rare types are a few cells that do not
    stand apart.

    Parameters
    ----------
    data
        AnnData, or MuData with ``mod`` naming the modality to select on.
    mod
        Modality of a MuData.
    use_rep
        ``.obsm`` key of the representation (default ``"X_pca"``); ``None`` uses ``layer`` or ``.X``.
    layer
        Layer to use when ``use_rep=None``.
    fraction
        Share of the cells to select, in (0, 1].
    method
        ``"kcenter"``, ``"craig"`` or ``"random"``.
    n_neighbors
        Neighbours per cell in the similarity graph (``method="craig"``).
    chunk_size
        Largest number of cells whose neighbours are searched together (memory and time bound).
    kernel
        Similarity on the kNN graph (``method="craig"``): ``"adaptive"`` (default) scales each distance by the
        two cells' own neighbour distances, which gives sparse regions more weight than one global scale
        (``"global"``) does. See :func:`scmatch.model.solvers._coreset.knn_similarity`.
    random_state
        Seed of the chunking, of k-center's first pick and of the random subset.
    key_added
        Prefix of the written keys.
    copy
        Return a modified copy instead of writing into ``data``.

    Returns
    -------
    ``None``, or a copy of ``data`` if ``copy=True``. Written fields (in the modality's AnnData for a MuData):

    - ``.obs[f"{key_added}_selected"]``: bool, True for the cells in the coreset.
    - ``.obs[f"{key_added}_weight"]``: float, the number of cells each selected cell represents (0 elsewhere);
      sums to ``n_obs``.
    - ``.uns[key_added]``: ``params`` and ``n_selected``.

    Examples
    --------
    >>> import numpy as np, anndata as ad
    >>> import scmatch as scm
    >>> adata = ad.AnnData(obsm={"X_pca": np.random.default_rng(0).normal(size=(1000, 10))})
    >>> scm.tl.select_coreset(adata, fraction=0.1)
    >>> int(adata.obs["coreset_selected"].sum()), float(adata.obs["coreset_weight"].sum())
    (100, 1000.0)
    """
    adata = _get_modality(data, mod)
    if method not in SKETCHES:
        raise ValueError(f"Unknown method {method!r}; use one of {SKETCHES}.")
    if not 0 < fraction <= 1:
        raise ValueError(f"`fraction` must be in (0, 1], got {fraction}; e.g. 0.1 keeps a tenth of the cells.")
    if kernel not in KERNELS:
        raise ValueError(f"Unknown kernel {kernel!r}; use one of {KERNELS}.")
    if n_neighbors < 1 or chunk_size < 2:
        raise ValueError("`n_neighbors` must be >= 1 and `chunk_size` >= 2.")
    X = _get_matrix(adata, obsm=use_rep) if use_rep is not None else _get_matrix(adata, layer=layer)
    if X.shape[0] < 2:
        raise ValueError(f"Need at least 2 cells to select a coreset, got {X.shape[0]}.")
    _check_finite(X, what="the representation")
    idx, weight = select_coreset_indices(
        _dense(X),
        fraction=fraction,
        method=method,
        n_neighbors=n_neighbors,
        chunk_size=chunk_size,
        kernel=kernel,
        random_state=random_state,
    )
    selected = np.zeros(adata.n_obs, dtype=bool)
    selected[idx] = True
    weights = np.zeros(adata.n_obs)
    weights[idx] = weight

    target = data.copy() if copy else data
    out = _get_modality(target, mod)
    col_sel, col_w = Key.coreset(key_added)
    out.obs[col_sel] = selected
    out.obs[col_w] = weights
    out.uns[key_added] = {
        "params": {
            "use_rep": use_rep,
            "layer": layer,
            "fraction": fraction,
            "method": method,
            "n_neighbors": n_neighbors,
            "chunk_size": chunk_size,
            "kernel": kernel,
            "random_state": random_state,
        },
        "n_selected": len(idx),
    }
    logger.info("coreset: %d of %d cells (%s)", len(idx), adata.n_obs, method)
    return target if copy else None
