"""pl.match_heatmap: the match probabilities by cell type (a confusion matrix) or cell by cell."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from mudata import MuData

from ._aggregate import celltype_confusion
from ._common import MatchView, categories, finish, label_fontsize, match_view, new_axes, obs_values
from ._heatmap_cells import draw_cells

if TYPE_CHECKING:
    from matplotlib.axes import Axes

LEVELS = ("celltype", "cell")


def match_heatmap(
    mdata: MuData,
    *,
    key: str = "match",
    groupby: str = "cell_type",
    level: Literal["celltype", "cell"] = "celltype",
    n_cells: int = 100,
    annotate: bool | None = None,
    cmap: str = "Blues",
    random_state: int | None = 0,
    ax: Axes | None = None,
    show: bool | None = None,
) -> Axes | None:
    """Heatmap of the match probabilities of the query cells, by cell type or cell by cell.

    Parameters
    ----------
    mdata
        MuData on which :func:`scmatch.tl.match_modalities` ran.
    key
        The ``key_added`` of that match.
    groupby
        ``.obs`` column of both modalities with the cell types (labels are used only to draw).
    level
        ``"celltype"``: a confusion matrix whose entry (a, b) is the mean probability that a query mod1 cell of
        type a places on query mod2 cells of type b (see :func:`~scmatch.pl.celltype_confusion`); each row sums
        to 1, and a dominant diagonal means cells are matched within their type. ``"cell"``: the probabilities
        of ``n_cells`` sampled query mod1 cells (rows) against mod2 cells (columns), both sorted by type. When
        cells are paired by obs name, the columns are the rows' true partners in row order, so the true match
        is the diagonal; otherwise ``n_cells`` mod2 cells are sampled too.
    n_cells
        Cells drawn at ``level="cell"``.
    annotate
        Write the values in the cells of the cell-type matrix; default: when there are at most 12 types.
    cmap
        Colormap.
    random_state
        Seed of the cell sample (``level="cell"``).
    ax
        Axes to draw in; default: a new figure sized to the number of types or cells.
    show
        Show the plot and return None; default: only under an interactive matplotlib backend.

    Returns
    -------
    The heatmap's Axes, unless shown.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import scmatch as scm
    >>> ax = scm.pl.match_heatmap(mdata, groupby="cell_type", show=False)  # doctest: +SKIP
    >>> ax.figure.savefig("heatmap.png", dpi=100)  # doctest: +SKIP
    >>> plt.close(ax.figure)  # doctest: +SKIP
    """
    if level not in LEVELS:
        raise ValueError(f"`level` must be one of {LEVELS}, got {level!r}.")
    if isinstance(n_cells, bool) or not isinstance(n_cells, int | np.integer) or n_cells < 1:
        raise ValueError(f"`n_cells` must be a positive integer, got {n_cells!r}.")
    view = match_view(mdata, key)
    lab1 = obs_values(mdata, view.mod1, groupby, view.names1)
    lab2 = obs_values(mdata, view.mod2, groupby, view.names2)
    if lab1.isna().any() or lab2.isna().any():
        raise ValueError(f"Some query cells have no {groupby!r} label; fill the missing values first.")
    order = categories(lab1, lab2)
    present = set(lab1.astype(str)) | set(lab2.astype(str))
    order = [c for c in order if c in present]
    if level == "celltype":
        ax = _draw_celltype(view, lab1, lab2, order, groupby=groupby, annotate=annotate, cmap=cmap, ax=ax)
    else:
        ax = draw_cells(
            mdata, view, lab1, lab2, order, groupby=groupby, n_cells=int(n_cells), cmap=cmap,
            random_state=random_state, ax=ax,
        )  # fmt: skip
    return finish(ax, show)


def _draw_celltype(
    view: MatchView,
    lab1: pd.Series,
    lab2: pd.Series,
    order: list[str],
    *,
    groupby: str,
    annotate: bool | None,
    cmap: str,
    ax: Axes | None,
) -> Axes:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    conf = celltype_confusion(view.P, lab1.to_numpy(), lab2.to_numpy(), order=order)
    n = len(order)
    side = float(np.clip(2.5 + 0.18 * n, 4.0, 14.0))
    ax = new_axes(ax, figsize=(side + 1.2, side))
    colormap = plt.get_cmap(cmap).with_extremes(bad="#e8e8e8")  # types without query mod1 cells
    values = np.ma.masked_invalid(conf.to_numpy())
    image = ax.imshow(values, cmap=colormap, vmin=0.0, vmax=1.0, aspect="equal", interpolation="nearest")
    n1 = lab1.astype(str).value_counts().reindex(order, fill_value=0)
    n2 = lab2.astype(str).value_counts().reindex(order, fill_value=0)
    size = label_fontsize(n)
    ax.set_xticks(np.arange(n), [f"{c} ({n2[c]})" for c in order], rotation=90, fontsize=size)
    ax.set_yticks(np.arange(n), [f"{c} ({n1[c]})" for c in order], fontsize=size)
    ax.set_xlabel(f"{view.mod2} query cells: {groupby} (number of cells)")
    ax.set_ylabel(f"{view.mod1} query cells: {groupby} (number of cells)")
    counts = n1.to_numpy(dtype=float)
    diagonal = float(np.nansum(np.diag(conf.to_numpy()) * counts) / counts.sum())
    ax.set_title(
        f"{view.mod1} to {view.mod2} match probabilities by {groupby}\n"
        f"probability on the same type: {diagonal:.2f} (1 = every cell matched within its type)"
    )
    for k in range(n):  # outline the diagonal: the mass that stays within its type
        ax.add_patch(Rectangle((k - 0.5, k - 0.5), 1, 1, fill=False, edgecolor="0.35", linewidth=0.5))
    if annotate is None:
        annotate = n <= 12
    if annotate:
        for (i, j), v in np.ndenumerate(conf.to_numpy()):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=size * 0.8,
                        color="white" if v > 0.5 else "black")  # fmt: skip
    bar = ax.figure.colorbar(image, ax=ax, shrink=0.6, pad=0.02)
    bar.set_label(f"mean probability on the column's type\n(share of a {view.mod1} cell's match; rows sum to 1)")
    return ax
