"""Calibration of a confidence: a confidence of 0.8 should mean right 8 times in 10."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def _check(confidence: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    right = np.asarray(correct).ravel()
    if conf.size != right.size:
        raise ValueError(f"Got {conf.size} confidences and {right.size} correctness values; pass one per cell.")
    if conf.size == 0:
        raise ValueError("No cells: pass at least one confidence.")
    if not np.all(np.isfinite(conf)) or conf.min() < -1e-9 or conf.max() > 1 + 1e-9:
        raise ValueError("`confidence` must hold finite values in [0, 1]; drop the cells without one (NaN).")
    conf = np.clip(conf, 0.0, 1.0)  # sums of probabilities may exceed 1 by rounding
    if right.dtype != bool and not np.isin(right, (0, 1)).all():
        raise ValueError("`correct` must be boolean (or 0/1): whether each cell's answer is right.")
    return conf, right.astype(bool)


def calibration_bins(confidence: Any, correct: Any, *, n_bins: int = 10) -> pd.DataFrame:
    """Share of right answers per confidence bin: the points of a reliability diagram.

    Parameters
    ----------
    confidence
        Confidence of each cell, in [0, 1].
    correct
        Whether each cell's answer (e.g. its transferred label) is right.
    n_bins
        Equal-width bins of [0, 1]; the last one includes 1.

    Returns
    -------
    One row per bin: ``lower``, ``upper``, ``n_cells``, ``mean_confidence`` and ``accuracy`` (NaN for empty bins).

    Examples
    --------
    >>> calibration_bins([0.05, 0.95, 0.95], [False, True, False], n_bins=2)[["n_cells", "accuracy"]].to_numpy()
    array([[1. , 0. ],
           [2. , 0.5]])
    """
    conf, right = _check(confidence, correct)
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"`n_bins` must be a positive integer, got {n_bins!r}.")
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bins, weights=conf, minlength=n_bins) / count
        accuracy = np.bincount(bins, weights=right.astype(float), minlength=n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame(
        {"lower": edges[:-1], "upper": edges[1:], "n_cells": count, "mean_confidence": mean_conf, "accuracy": accuracy}
    )


def expected_calibration_error(confidence: Any, correct: Any, *, n_bins: int = 10) -> float:
    """Expected calibration error: the cell-weighted mean over bins of ``|accuracy - mean confidence|``.

    Parameters
    ----------
    confidence, correct, n_bins
        As in :func:`calibration_bins`.

    Returns
    -------
    A value in [0, 1]; 0 when, in every bin, the share of right answers equals the mean confidence.

    Examples
    --------
    >>> expected_calibration_error([0.9, 0.9, 0.6, 0.6], [True, True, True, False], n_bins=10)
    0.1
    """
    table = calibration_bins(confidence, correct, n_bins=n_bins)
    full = table[table["n_cells"] > 0]
    weights = full["n_cells"] / full["n_cells"].sum()
    return round(float((weights * (full["accuracy"] - full["mean_confidence"]).abs()).sum()), 12)


#: draws per chunk of :func:`ece_under_calibration`: bounds its memory to (chunk x cells) values
_DRAW_CHUNK = 64


def ece_under_calibration(
    confidence: Any, *, n_bins: int = 10, n_draws: int = 1000, random_state: int | None = 0
) -> np.ndarray:
    """The expected calibration errors a perfectly calibrated confidence would show on these cells.

    An ECE measured on a few hundred cells is not zero even when the confidence is exactly right: each bin's share
    of right answers scatters around its mean confidence. This draws that scatter: in each draw every cell is
    right with probability equal to its confidence, and the ECE of the draw is kept. Compare a measured ECE with
    these draws (their mean, or their 95th percentile) before calling a confidence miscalibrated.

    Parameters
    ----------
    confidence
        Confidence of each cell, in [0, 1] (the values whose ECE was measured).
    n_bins
        As in :func:`calibration_bins`.
    n_draws
        Number of draws.
    random_state
        Seed of the draws.

    Returns
    -------
    ``n_draws`` values in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> conf = np.linspace(0.3, 1.0, 100)
    >>> round(float(ece_under_calibration(conf).mean()), 2)  # 100 cells: about 0.09 from sampling alone
    0.09
    """
    conf, _ = _check(confidence, np.zeros(np.size(confidence), bool))
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"`n_bins` must be a positive integer, got {n_bins!r}.")
    if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 1:
        raise ValueError(f"`n_draws` must be a positive integer, got {n_draws!r}.")
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    conf_sum = np.bincount(bins, weights=conf, minlength=n_bins)
    member = np.zeros((conf.size, n_bins))
    member[np.arange(conf.size), bins] = 1.0
    rng = np.random.default_rng(random_state)
    out = np.empty(n_draws)
    for start in range(0, n_draws, _DRAW_CHUNK):
        size = min(_DRAW_CHUNK, n_draws - start)
        right = (rng.random((size, conf.size)) < conf).astype(float)
        out[start : start + size] = np.abs(right @ member - conf_sum).sum(axis=1) / conf.size
    return out
