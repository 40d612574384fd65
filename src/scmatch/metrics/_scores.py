"""Match score (the challenge metric), top-k accuracy and cell-type mass."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from scmatch.metrics._rank import Ties, _check_ties, _rank_counts
from scmatch.metrics._truth import _check_matrix, _check_truth, _partner_scores


def match_score(P: Any, truth: Any) -> float:
    """Probability placed on the true partners: ``(1/n) * sum_i P[i, truth[i]]``.

    This is the score of task 2 ("match modality") of the NeurIPS 2021
    multimodal challenge. Uniform rows (random guessing) score ``1/m``.

    Parameters
    ----------
    P
        ``n x m`` match-probability matrix (rows = mod1 cells, columns = mod2
        cells), dense or sparse; entries not stored in a sparse matrix are 0.
        It is scored as given: check the challenge's constraints (non-negative,
        rows summing to 1, at most 1000 non-zeros per row) with
        :func:`check_challenge_format`.
    truth
        Integer array of length ``n``, ``truth[i]`` = column of row ``i``'s true partner
        (see :func:`truth_from_solution`).

    Returns
    -------
    The match score, between 0 and 1 for a valid ``P``.

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.2, 0.6]])
    >>> round(match_score(P, np.array([0, 1, 2])), 4)
    0.7

    """
    P = _check_matrix(P)
    truth = _check_truth(truth, *P.shape)
    if truth.size == 0:
        raise ValueError("`P` has no rows; there is nothing to score.")
    return float(_partner_scores(P, truth).mean())


def top_k_accuracy(P: Any, truth: Any, *, k: int = 1, ties: Ties = "expected") -> float:
    """Share of rows whose true partner is among the ``k`` largest entries of the row.

    Parameters
    ----------
    P
        ``n x m`` score or probability matrix, dense or sparse (entries not stored are 0).
    truth
        Integer array of length ``n``, ``truth[i]`` = column of row ``i``'s true partner.
    k
        How many of the largest entries of each row count as a hit.
    ties
        How entries equal to the partner's score are ranked. With ``g`` entries
        strictly larger than the partner's and ``t`` others equal to it:

        - ``"expected"`` (default): ties broken at random, the row counts
          ``clip((k - g) / (t + 1), 0, 1)``, the probability that the partner
          lands in the top ``k``. Uniform rows then score ``k/m``, the chance
          level, and a sparse row that misses its partner shares the remaining
          slots with every other unstored (zero) entry.
        - ``"optimistic"``: a hit when ``g < k`` (ties go to the partner).
        - ``"pessimistic"``: a hit when ``g + t < k`` (ties go against it).

        All three agree when there are no ties.

    Returns
    -------
    Top-k accuracy in ``[0, 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[0.6, 0.3, 0.1], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    >>> truth = np.array([0, 1, 2])
    >>> round(top_k_accuracy(P, truth, k=1), 4), top_k_accuracy(P, truth, k=2)
    (0.6667, 1.0)

    """
    _check_ties(ties)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"`k` must be a positive integer, got {k!r}.")
    P = _check_matrix(P)
    truth = _check_truth(truth, *P.shape)
    if truth.size == 0:
        raise ValueError("`P` has no rows; there is nothing to score.")
    greater, equal = _rank_counts(P, _partner_scores(P, truth))
    others = equal - 1  # the partner always equals itself
    if ties == "optimistic":
        hit = (greater < k).astype(np.float64)
    elif ties == "pessimistic":
        hit = (greater + others < k).astype(np.float64)
    else:
        hit = np.clip((k - greater) / (others + 1), 0.0, 1.0)
    return float(hit.mean())


def _label_codes(
    labels_rows: Any, labels_cols: Any, n_rows: int, n_cols: int, *, unassigned: Collection[str] = ()
) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer codes of the labels; ``-1`` for a label in ``unassigned`` (or a missing one, when it is given)."""
    rows = pd.Series(np.asarray(labels_rows, dtype=object).ravel())
    cols = pd.Series(np.asarray(labels_cols, dtype=object).ravel())
    if rows.size != n_rows or cols.size != n_cols:
        raise ValueError(
            f"Got {rows.size} row labels and {cols.size} column labels for a {n_rows} x {n_cols} matrix; "
            "pass one label per mod1 cell (rows) and one per mod2 cell (columns)."
        )
    if not unassigned and (rows.isna().any() or cols.isna().any()):
        raise ValueError(
            "Cell-type labels contain missing values; drop or fill those cells before scoring, or pass "
            "`unassigned=` (e.g. the label of the unassigned cells) to leave cells without a type out."
        )
    both = pd.concat([rows, cols], ignore_index=True)
    missing = both.isna().to_numpy() | both.astype(str).isin([str(u) for u in unassigned]).to_numpy()
    codes, uniques = pd.factorize(both.astype(str).where(~missing, None))
    return codes[:n_rows], codes[n_rows:], len(uniques)


def celltype_mass(
    P: Any, labels_rows: Any, labels_cols: Any, *, unassigned: str | Collection[str] | None = None
) -> float:
    """Mean over rows of the probability placed on columns of the row's own label.

    Parameters
    ----------
    P
        ``n x m`` match-probability matrix, dense or sparse (entries not stored are 0).
    labels_rows
        Cell type (or any label) of each of the ``n`` mod1 cells.
    labels_cols
        Label of each of the ``m`` mod2 cells. Labels are compared as strings.
    unassigned
        Label (or labels) that mean "no cell type", such as ``"Unassigned"`` or an atlas's group of unassigned
        nuclei. Rows with such a label (or a missing one) are left out of the mean; probability placed on columns
        with such a label counts as placed on no cell type, that is, against the row. ``None``: every label is
        a cell type, and missing labels are an error.

    Returns
    -------
    ``(1/n) * sum_i sum_{j: label_j = label_i} P[i, j]``, over the ``n`` rows with an assigned label; 1 when every
    row's mass sits on its own cell type. For rows summing to 1 this lies in ``[0, 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[0.7, 0.3, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    >>> round(celltype_mass(P, ["B", "B", "T"], ["B", "T", "T"]), 4)
    0.7333
    >>> round(celltype_mass(P, ["B", "?", "T"], ["B", "T", "?"], unassigned="?"), 4)
    0.35

    """
    P = _check_matrix(P)
    n_rows, n_cols = P.shape
    if n_rows == 0:
        raise ValueError("`P` has no rows; there is nothing to score.")
    if unassigned is None:
        unassigned = ()
    elif isinstance(unassigned, str):
        unassigned = (unassigned,)
    code_rows, code_cols, n_labels = _label_codes(labels_rows, labels_cols, n_rows, n_cols, unassigned=unassigned)
    rows = np.flatnonzero(code_rows >= 0)
    if rows.size == 0:
        raise ValueError(
            f"Every row's label is unassigned ({sorted(unassigned)} or missing); there is nothing to score."
        )
    typed = code_cols >= 0
    onehot = sp.csr_matrix(
        (np.ones(int(typed.sum())), (np.flatnonzero(typed), code_cols[typed])), shape=(n_cols, n_labels)
    )
    mass = P[rows] @ onehot  # rows x labels: probability placed on each assigned label
    mass = mass.toarray() if sp.issparse(mass) else np.asarray(mass)
    return float(mass[np.arange(rows.size), code_rows[rows]].mean())
