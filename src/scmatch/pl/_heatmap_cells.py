"""The cell-level view of pl.match_heatmap: sampled query cells sorted by type, with type colour bars."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from mudata import MuData

from .._utils import _rng
from ._common import MatchView, label_fontsize, new_axes, palette, truth_by_name

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def sample_cells(
    view: MatchView, lab1: pd.Series, lab2: pd.Series, order: list[str], *, n_cells: int, random_state
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Rows and columns of the block to draw, each sorted by type; ``paired`` when the columns are the partners."""
    rng = _rng(random_state)
    rank = {c: k for k, c in enumerate(order)}
    n1, n2 = view.P.shape
    rows = np.sort(rng.choice(n1, size=min(n_cells, n1), replace=False))
    rows = rows[np.argsort([rank[str(x)] for x in lab1.to_numpy()[rows]], kind="stable")]
    partners = truth_by_name(view)[rows]
    if np.all(partners >= 0):
        return rows, partners, True
    cols = np.sort(rng.choice(n2, size=min(n_cells, n2), replace=False))
    cols = cols[np.argsort([rank[str(x)] for x in lab2.to_numpy()[cols]], kind="stable")]
    return rows, cols, False


def _runs(labels: np.ndarray) -> list[tuple[str, int, int]]:
    """(label, start, stop) of each run of equal consecutive labels."""
    edges = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [labels.size]])
    return [(str(labels[a]), int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def _thin(runs: list[tuple[str, int, int]], min_gap: float) -> list[tuple[float, str]]:
    """Label positions (run centres) at least ``min_gap`` cells apart, greedily from the top."""
    kept: list[tuple[float, str]] = []
    for label, a, b in runs:
        centre = (a + b - 1) / 2
        if not kept or centre - kept[-1][0] >= min_gap:
            kept.append((centre, label))
    return kept


def draw_cells(
    mdata: MuData,
    view: MatchView,
    lab1: pd.Series,
    lab2: pd.Series,
    order: list[str],
    *,
    groupby: str,
    n_cells: int,
    cmap: str,
    random_state,
    ax: Axes | None,
) -> Axes:
    """Draw the sampled block with a strip of type colours left of the rows and above the columns."""
    from matplotlib.colors import ListedColormap, PowerNorm

    rows, cols, paired = sample_cells(view, lab1, lab2, order, n_cells=n_cells, random_state=random_state)
    block = view.P[rows][:, cols].toarray()
    t1, t2 = lab1.to_numpy().astype(str)[rows], lab2.to_numpy().astype(str)[cols]
    colors = palette(mdata, groupby, order, (view.mod1, view.mod2))
    ax = new_axes(ax, figsize=(9.0, 7.5))
    vmax = max(float(block.max()), 1e-12)
    norm = PowerNorm(0.5, vmin=0.0, vmax=vmax)
    image = ax.imshow(block, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    code = {c: k for k, c in enumerate(order)}
    strip = {"cmap": ListedColormap([colors[c] for c in order]), "vmin": -0.5, "vmax": len(order) - 0.5}
    left = ax.inset_axes((-0.035, 0.0, 0.025, 1.0))
    top = ax.inset_axes((0.0, 1.01, 1.0, 0.025))
    left.imshow([[code[x]] for x in t1], aspect="auto", interpolation="nearest", **strip)
    top.imshow([[code[x] for x in t2]], aspect="auto", interpolation="nearest", **strip)
    for a in (left, top):
        a.set_xticks([])
        a.set_yticks([])
        a.set_frame_on(False)
    runs1, runs2 = _runs(t1), _runs(t2)
    height_pt = ax.figure.get_figheight() * 72 * 0.8  # about the Axes' height in points
    size = label_fontsize(len(runs1))
    labels = _thin(runs1, min_gap=1.15 * size * len(t1) / height_pt)
    left.set_yticks([c for c, _ in labels], [lab for _, lab in labels], fontsize=size)
    left.tick_params(axis="y", length=0)
    for _, a, _ in runs1[1:]:
        ax.axhline(a - 0.5, color="0.8", linewidth=0.4)
    for _, a, _ in runs2[1:]:
        ax.axvline(a - 0.5, color="0.8", linewidth=0.4)
    ax.set_xticks([])
    ax.set_yticks([])
    left.set_ylabel(f"{view.mod1} query cells, by {groupby}")
    if paired:
        ax.set_xlabel(f"{view.mod2} query cells: the true partners, in row order (true match = diagonal)")
    else:
        ax.set_xlabel(f"{view.mod2} query cells (sample), by {groupby}")
    ax.set_title(
        f"{view.mod1} vs {view.mod2} match probabilities: {len(rows)} of {view.P.shape[0]} query cells by {groupby}",
        pad=0.045 * height_pt + 4,
    )
    bar = ax.figure.colorbar(image, ax=ax, shrink=0.7, pad=0.02)
    m = view.P.shape[1]
    bar.set_label(f"match probability (square-root scale)\n{m} candidates per row; chance 1/{m}")
    return ax
