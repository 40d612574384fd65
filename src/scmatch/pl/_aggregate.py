"""Pure computations behind the plots: cell-type confusion, partner-vs-runner-up probabilities, top-k curve."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..metrics._rank import _rank_counts
from ..metrics._truth import _check_matrix, _check_truth, _partner_scores


def celltype_confusion(
    P: Any, labels_rows: Any, labels_cols: Any, *, order: Sequence[str] | None = None
) -> pd.DataFrame:
    """Probability mass of a match aggregated by cell type, like a confusion matrix.

    Parameters
    ----------
    P
        ``n x m`` match probabilities (rows = mod1 cells, columns = mod2 cells), dense or sparse.
    labels_rows, labels_cols
        Label of each row and of each column; compared as strings.
    order
        Labels of the result's rows and columns, in this order. Default: every label of either side, sorted.

    Returns
    -------
    A square DataFrame (index = mod1 label, columns = mod2 label) whose entry ``(a, b)`` is the mean, over the
    mod1 cells of label ``a``, of the probability they place on mod2 cells of label ``b``. A row sums to 1
    when the rows of ``P`` do; a label without mod1 cells has a row of NaN.

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[0.7, 0.3, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    >>> celltype_confusion(P, ["B", "B", "T"], ["B", "T", "T"]).to_numpy()
    array([[0.6, 0.4],
           [0. , 1. ]])
    """
    P = _check_matrix(P)
    n_rows, n_cols = P.shape
    rows = np.asarray(labels_rows, dtype=object).astype(str).ravel()
    cols = np.asarray(labels_cols, dtype=object).astype(str).ravel()
    if rows.size != n_rows or cols.size != n_cols:
        raise ValueError(
            f"Got {rows.size} row labels and {cols.size} column labels for a {n_rows} x {n_cols} matrix; pass one "
            "label per mod1 cell (rows) and one per mod2 cell (columns)."
        )
    if order is None:
        order = sorted(set(rows) | set(cols))
    order = [str(o) for o in order]
    if len(set(order)) != len(order):
        raise ValueError("`order` holds a label twice; list each label once.")
    missing = (set(rows) | set(cols)) - set(order)
    if missing:
        raise ValueError(f"`order` lacks labels present in the data: {sorted(missing)[:5]}; add them.")
    index = {label: k for k, label in enumerate(order)}
    code_rows = np.array([index[x] for x in rows], dtype=np.int64)
    code_cols = np.array([index[x] for x in cols], dtype=np.int64)
    k = len(order)
    onehot_cols = sp.csr_matrix((np.ones(n_cols), (np.arange(n_cols), code_cols)), shape=(n_cols, k))
    onehot_rows = sp.csr_matrix((np.ones(n_rows), (code_rows, np.arange(n_rows))), shape=(k, n_rows))
    summed = onehot_rows @ (P @ onehot_cols)  # k x k: mass from label a onto label b
    summed = summed.toarray() if sp.issparse(summed) else np.asarray(summed)
    counts = np.bincount(code_rows, minlength=k).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = summed / counts[:, None]
    mean[counts == 0] = np.nan
    return pd.DataFrame(mean, index=pd.Index(order, name="mod1"), columns=pd.Index(order, name="mod2"))


def partner_and_runner_up(P: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each row's probability on its true partner and the largest probability on any other column.

    Parameters
    ----------
    P
        ``n x m`` match probabilities, dense or sparse (entries not stored are 0); ``m >= 2``.
    truth
        Integer array of length ``n``: ``truth[i]`` is the column of row ``i``'s true partner.

    Returns
    -------
    ``(partner, runner_up)``, two float arrays of length ``n``. Row ``i`` ranks its partner first when
    ``partner[i] > runner_up[i]``.

    Examples
    --------
    >>> import numpy as np
    >>> partner_and_runner_up(np.array([[0.6, 0.3, 0.1], [0.5, 0.2, 0.3]]), np.array([0, 1]))
    (array([0.6, 0.2]), array([0.3, 0.5]))
    """
    P = _check_matrix(P)
    truth = _check_truth(truth, *P.shape)
    if P.shape[1] < 2:
        raise ValueError("`P` needs at least 2 columns to have a best other candidate.")
    partner = _partner_scores(P, truth)
    if sp.issparse(P):
        coo = P.tocoo()
        keep = coo.col != truth[coo.row]
        others = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=P.shape)
        runner_up = others.max(axis=1).toarray().ravel().astype(np.float64)
    else:
        masked = np.array(P, dtype=np.float64)
        masked[np.arange(truth.size), truth] = -np.inf
        runner_up = masked.max(axis=1)
    return partner, runner_up


def top_k_curve(P: Any, truth: Any, ks: Sequence[int]) -> np.ndarray:
    """Top-k accuracy at each ``k`` of ``ks``, ties broken at random as in :func:`scmatch.metrics.top_k_accuracy`.

    Parameters
    ----------
    P
        ``n x m`` match probabilities or scores, dense or sparse (entries not stored are 0).
    truth
        Integer array of length ``n``: ``truth[i]`` is the column of row ``i``'s true partner.
    ks
        Positive integers.

    Returns
    -------
    Float array, one accuracy per ``k``.

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[0.6, 0.3, 0.1], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    >>> top_k_curve(P, np.array([0, 1, 2]), [1, 2, 3]).round(4)
    array([0.6667, 1.    , 1.    ])
    """
    P = _check_matrix(P)
    truth = _check_truth(truth, *P.shape)
    ks = np.asarray(ks)
    if ks.ndim != 1 or ks.size == 0 or not np.issubdtype(ks.dtype, np.integer) or ks.min() < 1:
        raise ValueError(f"`ks` must be a non-empty sequence of positive integers, got {ks!r}.")
    greater, equal = _rank_counts(P, _partner_scores(P, truth))
    others = (equal - 1)[None, :]  # the partner always equals itself
    hits = np.clip((ks[:, None] - greater[None, :]) / (others + 1), 0.0, 1.0)
    return hits.mean(axis=1)
