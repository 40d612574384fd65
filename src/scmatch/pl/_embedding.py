"""pl.embedding: the cells of both modalities in the learned joint space."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from mudata import MuData

from .._utils import _rng, logger
from ._common import (
    MISSING_COLOR,
    MODALITY_COLORS,
    MatchView,
    categories,
    finish,
    is_categorical,
    match_view,
    new_axes,
    obs_values,
    palette,
)
from ._layout import joint_coordinates

if TYPE_CHECKING:
    from matplotlib.axes import Axes

CELLS = ("all", "query", "reference")
SPECIAL = ("modality", "confidence")
SPACES = ("joint", "match")


def embedding(
    mdata: MuData,
    *,
    key: str = "match",
    color: str = "modality",
    space: Literal["joint", "match"] = "joint",
    basis: Literal["umap", "pca"] = "umap",
    cells: Literal["all", "query", "reference"] = "all",
    n_pairs: int = 0,
    size: float | None = None,
    random_state: int | None = 0,
    title: str | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
) -> Axes | None:
    """Scatter plot of the cells of both modalities in the joint embedding learned by the match.

    Parameters
    ----------
    mdata
        MuData on which :func:`scmatch.tl.match_modalities` ran; the embedding is read from
        ``mdata[mod].obsm[uns[key]["embedding_key"]]`` of both modalities.
    key
        The ``key_added`` of that match.
    color
        ``"modality"``; ``"confidence"``, the largest match probability of each query cell (its row's maximum
        for mod1 cells, its column's for mod2 cells; reference cells in grey); or an ``.obs`` column of both
        modalities, e.g. ``"cell_type"``. Categorical columns take their colours from
        ``uns[f"{color}_colors"]`` (scanpy's convention) when present.
    space
        ``"joint"``: the shared projection of both modalities (``uns[key]["joint_embedding_key"]``, the
        directions in which the reference pairs' modalities vary together; cells of both modalities mix there);
        ``"match"``: the embedding matching scores (``uns[key]["embedding_key"]``), where each modality keeps
        directions of its own and forms its own cloud. A match without a shared projection (written by an older
        scmatch) is drawn in ``"match"`` space, with a logged note.
    basis
        ``"umap"``: a UMAP of the joint embedding computed with scanpy (cosine neighbours); ``"pca"``: its
        first two principal components (fast, deterministic).
    cells
        Draw ``"all"`` cells, only the ``"query"`` cells that were matched, or only the ``"reference"`` cells.
    n_pairs
        Join this many randomly chosen query mod1 cells to their most probable mod2 cell with a line: black when
        that cell is the true partner (same obs name), red when not, grey when the pairing is unknown.
    size
        Marker area in points^2; default scales with the number of cells.
    random_state
        Seed of the UMAP, of the drawing order and of the sample of pairs.
    title
        Title; default names the modalities and ``color``.
    ax
        Axes to draw in; default: a new figure.
    show
        Show the plot and return None; default: only under an interactive matplotlib backend.

    Returns
    -------
    The Axes, unless shown.

    Examples
    --------
    >>> import scmatch as scm
    >>> ax = scm.pl.embedding(mdata, color="cell_type", n_pairs=50, show=False)  # doctest: +SKIP
    """
    if cells not in CELLS:
        raise ValueError(f"`cells` must be one of {CELLS}, got {cells!r}.")
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, int | np.integer) or n_pairs < 0:
        raise ValueError(f"`n_pairs` must be a non-negative integer, got {n_pairs!r}.")
    if n_pairs and cells == "reference":
        raise ValueError("Matched pairs join query cells: use `cells='all'` or `'query'` with `n_pairs`.")
    if space not in SPACES:
        raise ValueError(f"`space` must be one of {SPACES}, got {space!r}.")
    view = match_view(mdata, key)
    emb_key = view.info["embedding_key"]
    if space == "joint":
        if "joint_embedding_key" in view.info:
            emb_key = view.info["joint_embedding_key"]
        else:
            logger.info("match %r has no shared projection (written by an older scmatch): drawing its embedding", key)
    mods = (view.mod1, view.mod2)
    for mod in mods:
        if emb_key not in mdata[mod].obsm:
            raise ValueError(f"`mdata[{mod!r}].obsm[{emb_key!r}]` is missing; rerun scmatch.tl.match_modalities.")
    if color not in SPECIAL:
        for mod in mods:
            obs_values(mdata, mod, color, mdata[mod].obs_names[:0])  # raises if the column is missing
    # cells drawn, per modality: obs names in modality order
    drawn = []
    for mod, query in zip(mods, (view.names1, view.names2), strict=True):
        names = mdata[mod].obs_names
        is_query = names.isin(query)
        keep = {"all": np.ones(names.size, bool), "query": is_query, "reference": ~is_query}[cells]
        drawn.append(names[keep])
    if drawn[0].size + drawn[1].size < 3:
        raise ValueError("Fewer than 3 cells to draw; choose other `cells=`.")
    parts = []
    for mod, names in zip(mods, drawn, strict=True):
        parts.append(_rows(mdata[mod].obsm[emb_key], mdata[mod].obs_names.get_indexer(names)))
    X = np.vstack(parts)
    xy, axis_labels = joint_coordinates(X, basis=basis, random_state=random_state)
    n1 = drawn[0].size
    own_figure = ax is None
    ax = new_axes(ax, figsize=(7.0, 5.5))
    rng = _rng(random_state)
    order = rng.permutation(xy.shape[0])  # neither modality hides the other
    if size is None:
        size = float(np.clip(12000 / xy.shape[0], 2.0, 40.0))
    handles, legend_title = _draw_points(ax, mdata, view, drawn, xy, order, color=color, size=size)
    if n_pairs:
        handles += _draw_pairs(ax, view, drawn, xy, n_pairs=n_pairs, rng=rng)
    if handles:
        ncol = _legend(ax, handles, legend_title, beside=legend_title is not None)
        if own_figure and legend_title is not None:  # room for the legend's columns beside a 5-inch plot
            ax.figure.set_figwidth(5.3 + 2.5 * ncol)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_xticks([])
    ax.set_yticks([])
    described = {"modality": "modality", "confidence": "match confidence"}.get(color, color)
    counts = f"{n1} {view.mod1} + {xy.shape[0] - n1} {view.mod2} cells"
    ax.set_title(title if title is not None else f"joint embedding by {described}\n{cells} cells: {counts}")
    return finish(ax, show)


def _rows(X, positions: np.ndarray) -> np.ndarray:
    return np.asarray(X.to_numpy() if hasattr(X, "to_numpy") else X)[positions]


def _legend(ax: Axes, handles: list, title: str | None, *, beside: bool) -> int:
    """One legend: beside the Axes for categories (two columns past 22 entries), else below it; returns ncol."""
    if beside:
        ncol = int(np.ceil(len(handles) / 22))
        ax.legend(handles=handles, title=title, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  fontsize=8 if ncol == 1 else 6.5, ncol=ncol, markerscale=1.5, borderaxespad=0.0)  # fmt: skip
        return ncol
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.06), frameon=False, fontsize=8,
              ncol=min(len(handles), 3), markerscale=1.5)  # fmt: skip
    return 0


def _draw_points(ax, mdata, view: MatchView, drawn, xy, order, *, color: str, size: float) -> tuple[list, str | None]:
    """Scatter the cells; returns the legend handles and title (None: a colour bar was drawn instead)."""
    from matplotlib.colors import LogNorm
    from matplotlib.lines import Line2D

    mods = (view.mod1, view.mod2)
    n1 = drawn[0].size
    if color == "modality":
        colors = mdata.uns.get("modality_colors", MODALITY_COLORS)
        values = np.repeat([0, 1], [n1, xy.shape[0] - n1])
        cmap = np.asarray([str(colors[0]), str(colors[1])])
        ax.scatter(*xy[order].T, c=cmap[values[order]], s=size, linewidths=0, rasterized=True)
        handles = [Line2D([], [], marker="o", linestyle="", color=cmap[k], label=f"{mods[k]} ({(values == k).sum()})")
                   for k in range(2)]  # fmt: skip
        return handles, "modality"
    if color == "confidence":
        P = view.P.tocsr()
        top1 = pd.Series(P.max(axis=1).toarray().ravel(), index=view.names1)
        top2 = pd.Series(P.tocsc().max(axis=0).toarray().ravel(), index=view.names2)
        values = np.concatenate([top1.reindex(drawn[0]).to_numpy(), top2.reindex(drawn[1]).to_numpy()])
        label = f"match confidence: largest match probability\n(log scale; chance 1/{P.shape[1]})"
        norm = LogNorm(vmin=1.0 / P.shape[1], vmax=1.0)
        what = "reference cells, not matched"
        return _continuous(ax, xy, order, values, size=size, norm=norm, label=label, what=what), None
    column = [obs_values(mdata, m, color, n) for m, n in zip(mods, drawn, strict=True)]
    values = pd.concat(column, ignore_index=True)
    if not is_categorical(values):
        return _continuous(ax, xy, order, values.to_numpy(dtype=float), size=size, norm=None, label=color), None
    cats = [c for c in categories(*column) if c in set(values.dropna().astype(str))]
    colors = palette(mdata, color, cats, mods)
    labels = values.astype(object).where(values.notna(), None)
    point_colors = np.array([MISSING_COLOR if v is None else colors[str(v)] for v in labels])
    ax.scatter(*xy[order].T, c=point_colors[order], s=size, linewidths=0, rasterized=True)
    counts = values.astype(str).value_counts()
    handles = [Line2D([], [], marker="o", linestyle="", color=colors[c], label=f"{c} ({counts[c]})") for c in cats]
    if values.isna().any():
        n_missing = int(values.isna().sum())
        handles.append(Line2D([], [], marker="o", linestyle="", color=MISSING_COLOR, label=f"no value ({n_missing})"))
    return handles, color


def _continuous(ax, xy, order, values, *, size, norm, label, what: str = "no value") -> list:
    handles = []
    missing = ~np.isfinite(values)
    if missing.any():
        handles.append(ax.scatter(*xy[missing].T, c=MISSING_COLOR, s=size, linewidths=0, rasterized=True,
                                  label=f"{what} ({int(missing.sum())})"))  # fmt: skip
    shown = order[~missing[order]]
    points = ax.scatter(*xy[shown].T, c=values[shown], s=size, cmap="viridis", norm=norm, linewidths=0,
                        rasterized=True)  # fmt: skip
    bar = ax.figure.colorbar(points, ax=ax, shrink=0.7, pad=0.02)
    bar.set_label(label)
    return handles


def _draw_pairs(ax, view: MatchView, drawn, xy, *, n_pairs: int, rng: np.random.Generator) -> list:
    """Lines from sampled query mod1 cells to their most probable mod2 cell; returns the legend handles."""
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    pos1 = pd.Index(drawn[0]).get_indexer(view.names1)
    pos2 = pd.Index(drawn[1]).get_indexer(view.names2)
    P = view.P.tocsr()
    chosen = rng.choice(P.shape[0], size=min(n_pairs, P.shape[0]), replace=False)
    best = np.asarray(P[chosen].argmax(axis=1)).ravel()
    start = xy[pos1[chosen]]
    end = xy[drawn[0].size + pos2[best]]
    paired = view.names2.get_indexer(view.names1) >= 0
    handles = []
    if paired.all():
        correct = view.names2[best] == view.names1[chosen]
        for mask, col, word in ((correct, "black", "true partner"), (~correct, "#d62728", "wrong partner")):
            if mask.any():
                ax.add_collection(LineCollection(np.stack([start[mask], end[mask]], 1), colors=col, linewidths=0.6,
                                                 alpha=0.8))  # fmt: skip
            handles.append(Line2D([], [], color=col, label=f"top match is the {word} ({int(mask.sum())})"))
    else:
        ax.add_collection(LineCollection(np.stack([start, end], 1), colors="0.3", linewidths=0.6, alpha=0.8))
        handles.append(Line2D([], [], color="0.3", label=f"top match ({chosen.size} pairs)"))
    return handles
