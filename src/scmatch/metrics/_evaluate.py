"""All metrics of BENCHMARKS.md in one call."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from scmatch._utils import logger
from scmatch.metrics._format import is_challenge_format
from scmatch.metrics._foscttm import foscttm
from scmatch.metrics._scores import celltype_mass, match_score, top_k_accuracy
from scmatch.metrics._truth import _check_matrix, _check_truth, _is_permutation


def evaluate(
    P: Any,
    truth: Any,
    *,
    labels_rows: Any | None = None,
    labels_cols: Any | None = None,
    unassigned: str | Collection[str] | None = None,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float | bool]:
    """Score a match-probability matrix with every metric of the benchmark protocol.

    Parameters
    ----------
    P
        ``n x m`` match probabilities (rows = mod1 cells, columns = mod2 cells), dense or sparse.
    truth
        Integer array of length ``n``: ``truth[i]`` is the column of row ``i``'s true partner.
    labels_rows, labels_cols
        Cell-type labels of the rows and of the columns, used only for
        ``celltype_mass``; pass both or neither.
    unassigned
        Label (or labels) of cells without a cell type, left out of ``celltype_mass``: see
        :func:`celltype_mass`.
    ks
        The ``k`` of the top-k accuracies.

    Returns
    -------
    A dict with

    - ``match_score``: :func:`match_score`;
    - ``top{k}`` for each ``k`` in ``ks``: :func:`top_k_accuracy` (ties at random);
    - ``foscttm``: :func:`foscttm` on ``P``, NaN unless ``P`` is square and
      ``truth`` a permutation;
    - ``celltype_mass``: :func:`celltype_mass`, only when labels are given;
    - ``valid_format``: :func:`is_challenge_format` (non-negative, rows sum to 1,
      at most 1000 non-zeros per row). The other numbers are computed either way.

    Examples
    --------
    >>> import numpy as np
    >>> scores = evaluate(np.eye(3), np.array([0, 1, 2]), ks=(1,))
    >>> scores["match_score"], scores["top1"], scores["foscttm"], scores["valid_format"]
    (1.0, 1.0, 0.0, True)

    """
    if (labels_rows is None) != (labels_cols is None):
        raise ValueError("Pass both `labels_rows` and `labels_cols` to compute celltype_mass, or neither.")
    P = _check_matrix(P)
    truth = _check_truth(truth, *P.shape)
    out: dict[str, float | bool] = {"match_score": match_score(P, truth)}
    for k in ks:
        out[f"top{k}"] = top_k_accuracy(P, truth, k=k)
    if P.shape[0] == P.shape[1] and P.shape[0] > 1 and _is_permutation(truth, P.shape[1]):
        out["foscttm"] = foscttm(P, truth)
    else:
        logger.info("FOSCTTM needs a square P and a one-to-one truth; reporting NaN.")
        out["foscttm"] = float(np.nan)
    if labels_rows is not None:
        out["celltype_mass"] = celltype_mass(P, labels_rows, labels_cols, unassigned=unassigned)
    out["valid_format"] = is_challenge_format(P)
    return out
