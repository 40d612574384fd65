"""Held-out reference pairs, matched by the networks that never trained on them.

Every network of a fit holds out a slice of the reference pairs for early stopping and temperature calibration
(:func:`scmatch.model._fit.member_split`): with an ensemble, member ``k`` holds out the ``k``-th slice and trains
on the rest. Pooled, and each held-out cell scored by the network that held it out, the slices are a query whose
true pairs are known: labelled data in the reference's conditions, on which what is later computed from a match
(the label vote of :func:`scmatch.tl.transfer_labels`) can be calibrated, where nothing label-free can
(benchmarks/README.md, Transfer).

The slices are kept by the fitted model (``model.held_out_``) for the session only: a saved model does not
carry them, since its reference cells are not saved with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from ._inputs import batch_groups
from .nn._ensemble import EnsembleMatcher
from .solvers._matching import match_groups


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """Each network's held-out slice of the reference pairs.

    ``slices[k]`` are row indices into the pairs given to ``fit``; the slices of an ensemble are disjoint while
    ``n_models * n_held_out <= n_pairs``.
    """

    slices: tuple[np.ndarray, ...]

    @property
    def n_pairs(self) -> int:
        """Reference pairs held out from at least one network."""
        return len(np.unique(np.concatenate(self.slices))) if self.slices else 0


def n_held_out(fitted) -> int:
    """Pairs held out from at least one network of a :class:`~scmatch.model._fit.Fitted` (0 without a slice)."""
    return len(np.unique(np.concatenate(fitted.held_out))) if fitted.held_out else 0


def held_out_probabilities(
    model,
    X1,
    X2,
    *,
    batch: Sequence | None = None,
    matching: str = "sinkhorn",
    top_k: int = 100,
) -> sp.csr_matrix:
    """Match probabilities among the held-out pairs, each row scored by a network that never trained on it.

    The held-out pairs of all networks are matched together, within batches, as one query: the row of a held-out
    mod1 cell holds the similarities that its network (the last one holding it out) gives it to every held-out
    mod2 cell, and the model's matching temperature turns them into probabilities. Pooling the slices gives a
    query ``n_models`` times larger than one slice, closer to a real query's size.

    Parameters
    ----------
    model
        A :class:`~scmatch.model.MatchModel` fitted on the pairs ``(X1[i], X2[i])`` in this session.
    X1, X2
        The reference pairs the model was fitted on, in the same order.
    batch
        Batch label of each pair: the held-out pairs are matched within batches, as a query is.
    matching, top_k
        As :meth:`~scmatch.model.MatchModel.predict_proba`.

    Returns
    -------
    CSR matrix (n_pairs x n_pairs): mod1 rows, mod2 columns, in the order of the pairs; the rows of held-out pairs
    sum to one and the other rows are empty.
    """
    held: HeldOut | None = getattr(model, "held_out_", None)
    if held is None:
        raise ValueError(
            "This model keeps no held-out pairs: it was loaded from disk, or fitted with `validation_fraction=0`. "
            "Held-out pairs exist only for a model fitted in this session."
        )
    n = X1.shape[0]
    if X2.shape[0] != n or max((int(s.max()) for s in held.slices if len(s)), default=-1) >= n:
        raise ValueError("`X1` and `X2` must be the reference pairs the model was fitted on, in the same order.")
    module = model._check_fitted()
    members = list(module.members) if isinstance(module, EnsembleMatcher) else [module]
    owner = np.full(n, -1)
    for k, part in enumerate(held.slices):
        owner[part] = k  # a pair held out by several networks is scored by the last
    pool = np.flatnonzero(owner >= 0)
    if len(pool) == 0:
        return sp.csr_matrix((n, n))
    labels = None if batch is None else np.asarray(batch)[pool]
    groups = batch_groups(labels, labels, len(pool), len(pool))

    def similarity(rows: np.ndarray, cols: np.ndarray) -> sp.csr_matrix:
        n_candidates = min(len(cols), max(model.search.n_candidates, top_k))
        blocks = []
        for k, member in enumerate(members):
            mine = rows[owner[pool[rows]] == k]
            if len(mine):
                S = model._similarity(member, X1[pool[mine]], X2[pool[cols]], n_candidates=n_candidates).tocoo()
                blocks.append((mine[S.row], S.col, S.data))
        r, c, v = (np.concatenate(parts) for parts in zip(*blocks, strict=True))
        local = np.searchsorted(rows, r)  # rows are sorted (batch_groups), as match_groups expects
        return sp.csr_matrix((v, (local, c)), shape=(len(rows), len(cols)))

    tau = model.temperature_["softmax" if matching == "softmax" else "sinkhorn"]
    P = match_groups(
        similarity, groups, shape=(len(pool), len(pool)), matching=matching, temperature=tau, top_k=top_k
    ).tocoo()
    return sp.csr_matrix((P.data, (pool[P.row], pool[P.col])), shape=(n, n))
