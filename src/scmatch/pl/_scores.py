"""pl.match_scores: top-k accuracy against k, and the true partner's probability against the best other's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from mudata import MuData

from ._aggregate import partner_and_runner_up, top_k_curve
from ._common import categories, finish, label_fontsize, match_view, obs_values, resolve_truth

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PARTNER_COLOR, OTHER_COLOR = "#2ca02c", "#7f7f7f"


def score_ks(n_cols: int) -> np.ndarray:
    """Every k up to 1000 candidates, then a geometric grid; always k = 1, 5, 10 and ``n_cols``."""
    dense = np.arange(1, min(n_cols, 1000) + 1)
    sparse = np.unique(np.round(np.geomspace(1, n_cols, 200)).astype(np.int64))
    ks = np.union1d(dense, sparse)
    return ks[ks <= n_cols]


def match_scores(
    mdata: MuData,
    *,
    key: str = "match",
    truth: Any | None = None,
    groupby: str | None = None,
    show: bool | None = None,
) -> Figure | None:
    """How well the match ranks the true partners: top-k accuracy, and partner vs best other probability.

    Parameters
    ----------
    mdata
        MuData on which :func:`scmatch.tl.match_modalities` ran.
    key
        The ``key_added`` of that match.
    truth
        For each query mod1 cell, the position of its true partner among the query mod2 cells. Default: cells
        sharing an obs name are partners (a paired MuData).
    groupby
        ``.obs`` column of both modalities with cell types: adds a panel with, per type of the mod1 cell, the
        true partner's probability and the best other candidate's, cell by cell.
    show
        Show the figure and return None; default: only under an interactive matplotlib backend.

    Returns
    -------
    The Figure (a grid of two or three panels), unless shown. Panels: top-k accuracy (share of query mod1 cells
    whose partner is among their k most probable candidates, ties at random) against k with the chance line
    k/m; each cell's true partner probability against its best other candidate's (above the diagonal: the
    partner ranks first; cells whose partner got 0 are drawn on the bottom edge); and, with ``groupby``, the
    same two probabilities per cell type.

    Examples
    --------
    >>> import scmatch as scm
    >>> fig = scm.pl.match_scores(mdata, groupby="cell_type", show=False)  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    view = match_view(mdata, key)
    truth = resolve_truth(view, truth)
    n, m = view.P.shape
    if m < 2:
        raise ValueError("The match has a single mod2 query cell; there is nothing to rank.")
    partner, other = partner_and_runner_up(view.P, truth)
    labels = None
    if groupby is not None:
        lab1 = obs_values(mdata, view.mod1, groupby, view.names1)
        if lab1.isna().any():
            raise ValueError(f"Some query {view.mod1} cells have no {groupby!r} label; fill the missing values.")
        labels = lab1
    if labels is None:
        fig, axes = plt.subplots(1, 2, figsize=(10.0, 4.4), layout="constrained")
    else:
        n_types = labels.astype(str).nunique()
        height = float(np.clip(1.2 + 0.2 * n_types, 6.5, 14.0))
        fig = plt.figure(figsize=(12.0, height), layout="constrained")
        grid = fig.add_gridspec(2, 2, width_ratios=(1.0, 1.15))
        axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[:, 1])]
    _draw_topk(axes[0], view.P, truth, m)
    floor = _draw_partner_vs_other(axes[1], partner, other, m)
    if labels is not None:
        _draw_per_type(axes[2], partner, other, labels, floor=floor, groupby=groupby, mod1=view.mod1)
    fig.suptitle(f"{view.mod1} to {view.mod2} match ({key}): {n} query {view.mod1} cells, {m} {view.mod2} candidates")
    return finish(fig, show)


def _draw_topk(ax: Axes, P, truth: np.ndarray, m: int) -> None:
    ks = score_ks(m)
    acc = top_k_curve(P, truth, ks)
    ax.plot(ks, acc, color=PARTNER_COLOR, drawstyle="steps-post", label="top-k accuracy")
    ax.plot(ks, ks / m, color="0.5", linestyle="--", linewidth=1, label=f"chance (k / {m})")
    for k in (1, 5, 10):
        if k <= m:
            value = acc[ks == k][0]
            ax.plot(k, value, "o", color=PARTNER_COLOR, markersize=4)
            ax.annotate(f"top{k} = {value:.2f}", (k, value), textcoords="offset points", xytext=(6, -10),
                        fontsize=8)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlim(1, m)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"k (most probable {'candidate' if m == 1 else 'candidates'} considered, of {m})")
    ax.set_ylabel("top-k accuracy\n(share of cells with the true partner in the top k)")
    ax.set_title("top-k accuracy")
    ax.legend(loc="upper left", fontsize=8, frameon=False)


def _draw_partner_vs_other(ax: Axes, partner: np.ndarray, other: np.ndarray, m: int) -> float:
    """Log-log scatter; values below a floor (zeros included) are drawn on it. Returns the floor."""
    floor = 0.01 / m
    x, y = np.maximum(other, floor), np.maximum(partner, floor)
    first = partner > other
    ax.scatter(x[first], y[first], s=10, color=PARTNER_COLOR, alpha=0.6, linewidths=0,
               label=f"partner ranked first ({first.mean():.0%})")  # fmt: skip
    ax.scatter(x[~first], y[~first], s=10, color=OTHER_COLOR, alpha=0.6, linewidths=0,
               label=f"another cell ranked first ({(~first).mean():.0%})")  # fmt: skip
    ax.plot([floor, 1], [floor, 1], color="0.3", linewidth=0.8)
    ax.axhline(1.0 / m, color="0.6", linestyle=":", linewidth=0.8)
    ax.axvline(1.0 / m, color="0.6", linestyle=":", linewidth=0.8, label=f"chance (1/{m})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor / 1.5, 1.2)
    ax.set_ylim(floor / 1.5, 1.2)
    ax.set_aspect("equal")
    ax.set_xlabel("probability of the best other candidate")
    ax.set_ylabel("probability of the true partner")
    low = int(np.sum(partner < floor))
    note = f"\n{low} partners below {floor:.0e} drawn on the bottom edge" if low else ""
    ax.set_title(f"true partner vs best other, per cell{note}", fontsize=10)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return floor


def _draw_per_type(ax: Axes, partner, other, labels: pd.Series, *, floor: float, groupby: str, mod1: str) -> None:
    lab = labels.astype(str).to_numpy()
    counts = pd.Series(lab).value_counts()
    order = [c for c in categories(labels) if c in counts.index]
    order.sort(key=lambda c: -counts[c])  # most frequent first (stable: ties keep the category order)
    rng = np.random.default_rng(0)  # jitter only
    for k, cat in enumerate(order):
        cells = lab == cat
        for offset, values, color in ((-0.18, partner, PARTNER_COLOR), (0.18, other, OTHER_COLOR)):
            v = np.maximum(values[cells], floor)
            y = k + offset + rng.uniform(-0.07, 0.07, size=v.size)
            ax.scatter(v, y, s=7, color=color, alpha=0.5, linewidths=0)
            ax.plot([np.median(v)] * 2, [k + offset - 0.16, k + offset + 0.16], color=color, linewidth=2.2)
    top1 = pd.Series(partner > other).groupby(lab).mean()
    ax.set_yticks(np.arange(len(order)), [f"{c} (n={counts[c]}, top1 {top1[c]:.0%})" for c in order],
                  fontsize=label_fontsize(len(order)))  # fmt: skip
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set_xscale("log")
    ax.set_xlim(floor / 1.5, 1.2)
    ax.set_xlabel("match probability (each dot a cell; bar: median)")
    ax.set_ylabel(f"{mod1} query cells by {groupby}")
    ax.scatter([], [], color=PARTNER_COLOR, label="true partner")
    ax.scatter([], [], color=OTHER_COLOR, label="best other candidate")
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    ax.grid(axis="x", color="0.93", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.set_title(f"per {groupby}: true partner (upper) vs best other (lower)", fontsize=10)
