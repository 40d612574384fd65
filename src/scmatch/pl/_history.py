"""pl.training_history: training loss and validation score per epoch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from mudata import MuData

from ._common import finish, new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

LOSS_COLOR, SCORE_COLOR = "#1f77b4", "#d62728"


def _history_of(data: Any, key: str) -> tuple[Mapping, int | None, str | None]:
    """The history mapping, the number of warm-up epochs and the loss name, from whatever holds them."""
    if isinstance(data, MuData):
        if key not in data.uns or "history" not in data.uns[key]:
            raise ValueError(
                f"`mdata.uns[{key!r}]['history']` not found: run scmatch.tl.match_modalities(..., key_added={key!r})."
            )
        settings = data.uns[key].get("params", {}).get("model", {})
        return data.uns[key]["history"], settings.get("warmup_epochs"), settings.get("loss")
    if hasattr(data, "history_") and hasattr(data, "get_params"):  # a fitted MatchModel
        if not data.history_:
            raise ValueError("The model has no training history: fit it first.")
        settings = data.get_params()
        return data.history_, settings["plan"]["warmup_epochs"], settings["model"]["loss"]
    if isinstance(data, Mapping):
        return data, None, None
    raise TypeError(f"Expected a matched MuData, a fitted MatchModel or a history dict, got {type(data).__name__}.")


def training_history(
    data: MuData | Mapping | Any,
    *,
    key: str = "match",
    ax: Axes | None = None,
    show: bool | None = None,
) -> Axes | None:
    """Training loss and validation score of a match, per epoch.

    Parameters
    ----------
    data
        A MuData on which :func:`scmatch.tl.match_modalities` ran (history in ``uns[key]["history"]``), a
        fitted :class:`~scmatch.model.MatchModel` or its ``history_`` dict (``epoch``, ``train_loss``,
        ``val_score``, ``best_epoch``; ``val_smoothed``, the moving average early stopping follows, is drawn
        dotted when present).
    key
        The ``key_added`` of the match (MuData only).
    ax
        Axes to draw in; the validation score gets a twin y axis on the right. Default: a new figure.
    show
        Show the plot and return None; default: only under an interactive matplotlib backend.

    Returns
    -------
    The Axes of the loss, unless shown; the score and the legend are on its twin, ``ax.figure.axes[-1]``.

    Examples
    --------
    >>> import scmatch as scm
    >>> history = {"epoch": [0, 1, 2], "train_loss": [0.5, 0.3, 0.2], "val_score": [0.1, 0.3, 0.4], "best_epoch": 2}
    >>> ax = scm.pl.training_history(history, show=False)
    >>> ax.get_xlabel()
    'epoch'
    """
    history, warmup, loss_name = _history_of(data, key)
    for field in ("epoch", "train_loss"):
        if field not in history:
            raise ValueError(f"The history lacks {field!r}; it must hold epoch, train_loss and val_score.")
    epoch = np.asarray(history["epoch"], dtype=float)
    loss = np.asarray(history["train_loss"], dtype=float)
    score = np.asarray(history.get("val_score", []), dtype=float)
    if epoch.size == 0 or loss.size != epoch.size or score.size not in (0, epoch.size):
        raise ValueError(
            f"The history has {epoch.size} epochs, {loss.size} losses and {score.size} validation scores; "
            "it needs at least one epoch, one loss per epoch and one score per epoch (or none)."
        )
    best = history.get("best_epoch")
    best = None if best is None or int(np.asarray(best)) < 0 else int(np.asarray(best))
    ax = new_axes(ax, figsize=(7.0, 4.2))
    handles = []
    if warmup and warmup > 0 and epoch.max() >= warmup:
        what = "mean over negatives" if loss_name == "triplet" else "best epoch chosen after it"
        handles.append(ax.axvspan(epoch.min() - 0.5, warmup - 0.5, color="0.92", label=f"warm-up ({what})"))
    handles += ax.plot(epoch, loss, color=LOSS_COLOR, marker="o" if epoch.size <= 30 else None, markersize=3,
                       label="training loss")  # fmt: skip
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"training loss{f' ({loss_name})' if loss_name else ''}", color=LOSS_COLOR)
    ax.tick_params(axis="y", colors=LOSS_COLOR)
    top = ax
    if score.size:
        twin = top = ax.twinx()
        handles += twin.plot(epoch, score, color=SCORE_COLOR, marker="o" if epoch.size <= 30 else None,
                             markersize=3, label="validation score")  # fmt: skip
        smoothed = np.asarray(history.get("val_smoothed", []), dtype=float)
        if smoothed.size == epoch.size:
            handles += twin.plot(epoch, smoothed, color=SCORE_COLOR, linestyle=":", linewidth=1.5,
                                 label="its moving average (early stopping)")  # fmt: skip
        twin.set_ylabel("validation score\n(mean reciprocal rank of the true partner)", color=SCORE_COLOR)
        twin.tick_params(axis="y", colors=SCORE_COLOR)
    if best is not None:
        at_best = score[epoch == best] if score.size else score
        label = f"best epoch {best}" + (f": score {at_best[0]:.3f}, weights kept" if at_best.size else "")
        handles.append(ax.axvline(best, color="0.3", linestyle="--", linewidth=1, label=label))
    # below the plot, on the top Axes: never hides a curve
    top.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8, frameon=False)
    ax.set_title(f"training history ({epoch.size} epochs)")
    return finish(ax, show)
