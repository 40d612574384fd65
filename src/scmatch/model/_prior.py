"""A pairwise prior added to the network's similarities before the transport step.

A :class:`PairPrior` carries one unit-length profile per cell of each modality, in a space both modalities share
(for example each protein beside the gene that codes it: :mod:`scmatch.links`), and a weight. The matching score
of a candidate pair becomes ``S(i, j) + weight * z1[i] . z2[j]``: the network proposes the candidates, and the
prior re-ranks them with what is known without training. The weight is in the units of ``S`` and is chosen on
held-out reference pairs (:func:`scmatch.links.choose_weight`), so a prior that does not help gets weight 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class PairPrior:
    """Profiles ``z1`` (rows) and ``z2`` (columns) of the cells being matched, and the weight of their dot product.

    ``z1[i]`` belongs to row ``i`` of the ``X1`` given to :meth:`~scmatch.model.MatchModel.predict_proba`, ``z2[j]``
    to row ``j`` of ``X2``.
    """

    z1: np.ndarray
    z2: np.ndarray
    weight: float

    def __post_init__(self) -> None:
        z1, z2 = np.asarray(self.z1), np.asarray(self.z2)
        if z1.ndim != 2 or z2.ndim != 2 or z1.shape[1] != z2.shape[1]:
            raise ValueError(
                f"PairPrior needs two 2-D profile matrices with the same number of columns, got shapes {z1.shape} "
                f"and {z2.shape}."
            )
        if not (np.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"PairPrior's weight must be finite and >= 0, got {self.weight!r}.")

    def check_shapes(self, n1: int, n2: int) -> None:
        """Refuse profiles that are not one per cell of the matrices being matched."""
        if self.z1.shape[0] != n1 or self.z2.shape[0] != n2:
            raise ValueError(
                f"PairPrior has profiles for {self.z1.shape[0]} x {self.z2.shape[0]} cells, but {n1} x {n2} cells are "
                "being matched: give one profile per row of X1 and of X2, in the same order."
            )

    def scores(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The dot product of ``z1[rows[k]]`` and ``z2[cols[k]]`` for every k (entries of a sparse candidate matrix)."""
        out = np.empty(len(rows), dtype=np.float64)
        # bounded memory on large candidate sets: each chunk gathers at most 2**22 profile values per side (16 MB)
        step = max(1, (1 << 22) // max(1, self.z1.shape[1]))
        for start in range(0, len(rows), step):
            r, c = rows[start : start + step], cols[start : start + step]
            out[start : start + len(r)] = np.einsum("ij,ij->i", self.z1[r], self.z2[c], dtype=np.float64)
        return out

    def added(self, S: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> sp.csr_matrix:
        """``S`` (a block: ``rows`` x ``cols`` of the cells) with the weighted profile products added on its entries."""
        if self.weight == 0:
            return S
        C = S.tocoo()
        data = C.data + self.weight * self.scores(rows[C.row], cols[C.col])
        return sp.csr_matrix((data, (C.row, C.col)), shape=S.shape)
