"""pl.confidence: is a per-cell confidence calibrated (reliability diagram), and where are the unsure cells."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from mudata import MuData

from ..metrics import calibration_bins, ece_under_calibration, expected_calibration_error
from ._common import MISSING_COLOR, finish, new_axes
from ._layout import joint_coordinates

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


#: draws of :func:`~scmatch.metrics.ece_under_calibration` behind the "calibrated" ECE in the diagram's title
NOISE_DRAWS = 200


def _column(mdata: MuData, mod: str, column: str) -> pd.Series:
    if not isinstance(mdata, MuData):
        raise TypeError(f"Expected a MuData, got {type(mdata).__name__}.")
    if mod not in mdata.mod:
        raise ValueError(f"Modality {mod!r} is not in the MuData; it has {list(mdata.mod)}.")
    obs = mdata[mod].obs
    if column not in obs:
        raise ValueError(
            f"{column!r} is not a column of mdata[{mod!r}].obs; run scmatch.tl.transfer_labels (or "
            "match_modalities for 'match_confidence') first, or pass one of " + f"{list(obs.columns)}."
        )
    return obs[column]


def confidence(
    mdata: MuData,
    *,
    mod: str,
    labels: str = "cell_type_transferred",
    confidence: str | None = None,
    truth: str | None = None,
    basis: str | None = None,
    n_bins: int = 10,
    ax: Axes | None = None,
    show: bool | None = None,
) -> Axes | Figure | None:
    """Reliability diagram of a per-cell confidence and, optionally, the confidence on an embedding.

    Parameters
    ----------
    mdata
        MuData on which :func:`scmatch.tl.transfer_labels` ran.
    mod
        The modality that received the labels.
    labels
        Column of transferred labels (``key_added`` of :func:`~scmatch.tl.transfer_labels`).
    confidence
        Column of the confidence; default ``f"{labels}_confidence"``. ``"match_confidence"`` draws the
        confidence :func:`~scmatch.tl.match_modalities` wrote.
    truth
        Column of ``mdata[mod].obs`` with the true labels, for the reliability diagram: per confidence bin, the
        share of cells whose transferred label is right against the bin's mean confidence (on the diagonal when
        calibrated), the share of cells per bin in grey, and in the title the expected calibration error beside
        the one a perfectly calibrated confidence would show on as many cells (its mean over draws,
        :func:`scmatch.metrics.ece_under_calibration`): on a few hundred cells that is about 0.05, not 0. Where
        no truth is known, measure it once on annotated data (e.g. a paired set) and pick ``min_confidence``.
    basis
        ``.obsm`` key of ``mdata[mod]`` (e.g. ``"X_match_joint"`` or ``"X_umap"``): the cells coloured by
        confidence on its two first coordinates (two-column embeddings) or first two principal components.
    n_bins
        Equal-width confidence bins of the diagram.
    ax
        Axes to draw in when one panel is drawn; default: a new figure.
    show
        Show the plot and return None; default: only under an interactive matplotlib backend.

    Returns
    -------
    The Axes of the one panel drawn (``truth`` or ``basis``), or the Figure of both, unless shown. Cells without
    a confidence (outside the match) are left out of the diagram and drawn grey on the embedding.

    Examples
    --------
    >>> import scmatch as scm
    >>> ax = scm.pl.confidence(mdata, mod="atac", truth="cell_type", show=False)  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    if truth is None and basis is None:
        raise ValueError("Nothing to draw: pass `truth=` (reliability diagram), `basis=` (embedding) or both.")
    if truth is not None and basis is not None and ax is not None:
        raise ValueError("`ax` takes one panel: pass `truth=` or `basis=`, or leave `ax=None` for both.")
    confidence = f"{labels}_confidence" if confidence is None else confidence
    conf = pd.to_numeric(_column(mdata, mod, confidence), errors="coerce").to_numpy(dtype=float)
    if truth is not None:
        pred = _column(mdata, mod, labels).astype(object).to_numpy()
        true = _column(mdata, mod, truth).astype(object).to_numpy()
        shown = np.isfinite(conf) & pd.notna(pred) & pd.notna(true)
        if not shown.any():
            raise ValueError(f"No cell of mdata[{mod!r}] has a confidence, a transferred label and a true label.")
        correct = pred[shown].astype(str) == true[shown].astype(str)
    if basis is not None and basis not in mdata[mod].obsm:
        raise ValueError(f"`mdata[{mod!r}].obsm[{basis!r}]` not found; it has {list(mdata[mod].obsm)}.")
    if truth is not None and basis is not None:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4.5), layout="constrained")
        _reliability(ax1, conf[shown], correct, n_bins=n_bins, name=confidence)
        _embedding(ax2, mdata, mod, basis, conf, name=confidence)
        return finish(fig, show)
    ax = new_axes(ax, figsize=(5.0, 4.5))
    if truth is not None:
        _reliability(ax, conf[shown], correct, n_bins=n_bins, name=confidence)
    else:
        _embedding(ax, mdata, mod, basis, conf, name=confidence)
    return finish(ax, show)


def _reliability(ax: Axes, conf: np.ndarray, correct: np.ndarray, *, n_bins: int, name: str) -> None:
    table = calibration_bins(conf, correct, n_bins=n_bins)
    ece = expected_calibration_error(conf, correct, n_bins=n_bins)
    noise = float(np.mean(ece_under_calibration(conf, n_bins=n_bins, n_draws=NOISE_DRAWS)))
    width = 1.0 / n_bins
    share = table["n_cells"] / table["n_cells"].sum()
    ax.bar(table["lower"], share, width=width, align="edge", color=MISSING_COLOR, label="share of cells")
    full = table[table["n_cells"] > 0]
    ax.plot(full["mean_confidence"], full["accuracy"], "o-", color="#1f77b4", label="share right")
    ax.plot([0, 1], [0, 1], "--", color="black", linewidth=1, label="calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"{name} (mean per bin)")
    ax.set_ylabel("share of cells whose label is right")
    ax.set_title(f"reliability: ECE {ece:.3f} vs {noise:.3f} if calibrated ({conf.size} cells, {n_bins} bins)")
    ax.legend(loc="upper left", frameon=False, fontsize=8)


def _embedding(ax: Axes, mdata: MuData, mod: str, basis: str, conf: np.ndarray, *, name: str) -> None:
    X = mdata[mod].obsm[basis]
    X = np.asarray(X.to_numpy() if hasattr(X, "to_numpy") else X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] < 2:
        raise ValueError(f"`mdata[{mod!r}].obsm[{basis!r}]` needs at least two columns, got shape {X.shape}.")
    if X.shape[1] == 2:
        xy, axis_labels = X, (f"{basis} 1", f"{basis} 2")
    else:
        xy, axis_labels = joint_coordinates(X, basis="pca", random_state=0)
    size = float(np.clip(12000 / len(xy), 2.0, 40.0))
    missing = ~np.isfinite(conf)
    if missing.any():
        ax.scatter(*xy[missing].T, c=MISSING_COLOR, s=size, linewidths=0, rasterized=True,
                   label=f"no confidence ({int(missing.sum())})")  # fmt: skip
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), frameon=False, fontsize=8)
    points = ax.scatter(*xy[~missing].T, c=conf[~missing], s=size, cmap="viridis", vmin=0, vmax=1, linewidths=0,
                        rasterized=True)  # fmt: skip
    ax.figure.colorbar(points, ax=ax, shrink=0.7, pad=0.02).set_label(name)
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{mod} cells by {name}")
