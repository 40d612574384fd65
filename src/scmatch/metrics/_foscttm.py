"""FOSCTTM: fraction of samples closer than the true match."""

from __future__ import annotations

from typing import Any

import numpy as np

from scmatch.metrics._rank import Ties, _check_ties, _rank_counts
from scmatch.metrics._truth import _check_matrix, _check_truth, _is_permutation, _partner_scores


def foscttm(scores: Any, truth: Any, *, ties: Ties = "expected") -> float:
    """Fraction of samples closer than the true match (lower is better, 0.5 is random).

    For every mod1 cell (row ``i``), the fraction of the other ``n - 1`` mod2
    cells (columns) scored higher than its true partner ``truth[i]``; and for
    every mod2 cell (column ``j``), the fraction of the other mod1 cells scored
    higher than its partner in that column. The result averages the row values,
    averages the column values, and takes the mean of the two directions.

    Parameters
    ----------
    scores
        Square ``n x n`` matrix of similarities or match probabilities (higher =
        more alike; pass negative distances), dense or sparse. Entries not
        stored in a sparse matrix are 0, so a sparse ``P`` ranks every unstored
        candidate below any positive probability.
    truth
        A permutation of ``0 .. n-1``: ``truth[i]`` is the column of row ``i``'s
        partner, each column the partner of exactly one row.
    ties
        How candidates scored equal to the partner count. ``"expected"``
        (default) counts each as one half (ties broken at random), so uniform
        scores give 0.5; ``"optimistic"`` counts them as not closer (the strict
        definition), ``"pessimistic"`` as closer. All three agree when there are
        no ties, as for continuous scores.

    Returns
    -------
    FOSCTTM in ``[0, 1]``; 0 when every partner beats all other candidates in its
    row and its column.

    Examples
    --------
    >>> import numpy as np
    >>> S = np.array([[0.9, 0.1, 0.0], [0.8, 0.5, 0.2], [0.0, 0.6, 0.7]])
    >>> round(foscttm(S, np.array([0, 1, 2])), 4)
    0.1667

    """
    _check_ties(ties)
    S = _check_matrix(scores, what="`scores`")
    n_rows, n_cols = S.shape
    truth = _check_truth(truth, n_rows, n_cols)
    if n_rows != n_cols or not _is_permutation(truth, n_cols):
        raise ValueError(
            f"FOSCTTM needs a square matrix and a one-to-one truth (a permutation of 0..n-1); got a "
            f"{n_rows} x {n_cols} matrix{'' if n_rows != n_cols else ' and a truth that repeats columns'}. "
            "Restrict the matrix to the cells that have a partner on the other side."
        )
    if n_rows < 2:
        raise ValueError("FOSCTTM needs at least 2 cells per side.")
    ref = _partner_scores(S, truth)
    inverse = np.empty_like(truth)
    inverse[truth] = np.arange(n_rows)
    rows = _fraction_closer(*_rank_counts(S, ref), n_rows - 1, ties)
    cols = _fraction_closer(*_rank_counts(S.T, ref[inverse]), n_rows - 1, ties)
    return float((rows.mean() + cols.mean()) / 2)


def _fraction_closer(greater: np.ndarray, equal: np.ndarray, n_other: int, ties: str) -> np.ndarray:
    others = equal - 1  # the partner always equals itself
    if ties == "optimistic":
        closer = greater.astype(np.float64)
    elif ties == "pessimistic":
        closer = (greater + others).astype(np.float64)
    else:
        closer = greater + 0.5 * others
    return closer / n_other
