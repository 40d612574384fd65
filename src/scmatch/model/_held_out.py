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
from ._prior import PairPrior
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


def held_out_pool(model, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``owner`` (the network scoring each of the ``n`` pairs; -1: none) and ``pool`` (the held-out pairs, sorted).

    A pair held out by several networks is scored by the last.
    """
    held: HeldOut | None = getattr(model, "held_out_", None)
    if held is None:
        raise ValueError(
            "This model keeps no held-out pairs: it was loaded from disk, or fitted with `validation_fraction=0`. "
            "Held-out pairs exist only for a model fitted in this session."
        )
    if max((int(s.max()) for s in held.slices if len(s)), default=-1) >= n:
        raise ValueError("`X1` and `X2` must be the reference pairs the model was fitted on, in the same order.")
    owner = np.full(n, -1)
    for k, part in enumerate(held.slices):
        owner[part] = k
    return owner, np.flatnonzero(owner >= 0)


def held_out_similarities(
    model, X1, X2, *, batch: Sequence | None = None, top_k: int = 100
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, sp.csr_matrix]]]:
    """The held-out pairs (``pool``) and, per batch, their candidate similarities, each row by its own network.

    Returns ``pool`` (indices of the held-out pairs among the ``n`` given) and one ``(rows, cols, S)`` per batch:
    ``rows`` and ``cols`` are positions in ``pool`` and ``S`` their similarities (``len(rows) x len(cols)``).
    """
    n = X1.shape[0]
    if X2.shape[0] != n:
        raise ValueError("`X1` and `X2` must be the reference pairs the model was fitted on, in the same order.")
    owner, pool = held_out_pool(model, n)
    if len(pool) == 0:
        return pool, []
    module = model._check_fitted()
    members = list(module.members) if isinstance(module, EnsembleMatcher) else [module]
    labels = None if batch is None else np.asarray(batch)[pool]
    blocks = []
    for rows, cols in batch_groups(labels, labels, len(pool), len(pool)):
        n_candidates = min(len(cols), max(model.search.n_candidates, top_k))
        parts = []
        for k, member in enumerate(members):
            mine = np.flatnonzero(owner[pool[rows]] == k)
            if len(mine):
                S = model._similarity(member, X1[pool[rows[mine]]], X2[pool[cols]], n_candidates=n_candidates).tocoo()
                parts.append((mine[S.row], S.col, S.data))
        r, c, v = (np.concatenate(part) for part in zip(*parts, strict=True))
        blocks.append((rows, cols, sp.csr_matrix((v, (r, c)), shape=(len(rows), len(cols)))))
    return pool, blocks


def held_out_probabilities(
    model,
    X1,
    X2,
    *,
    batch: Sequence | None = None,
    matching: str = "sinkhorn",
    top_k: int = 100,
    prior: PairPrior | None = None,
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
    prior
        Optional :class:`~scmatch.model._prior.PairPrior` with one profile per pair (``n`` rows each), added as
        the query's is.

    Returns
    -------
    CSR matrix (n_pairs x n_pairs): mod1 rows, mod2 columns, in the order of the pairs; the rows of held-out pairs
    sum to one and the other rows are empty.
    """
    n = X1.shape[0]
    pool, blocks = held_out_similarities(model, X1, X2, batch=batch, top_k=top_k)
    if len(pool) == 0:
        return sp.csr_matrix((n, n))
    by_rows = {tuple(rows): S for rows, _, S in blocks}

    def similarity(rows: np.ndarray, cols: np.ndarray) -> sp.csr_matrix:
        S = by_rows[tuple(rows)]
        return S if prior is None else prior.added(S, pool[rows], pool[cols])

    tau = model.temperature_["softmax" if matching == "softmax" else "sinkhorn"]
    groups = [(rows, cols) for rows, cols, _ in blocks]
    P = match_groups(
        similarity, groups, shape=(len(pool), len(pool)), matching=matching, temperature=tau, top_k=top_k
    ).tocoo()
    return sp.csr_matrix((P.data, (pool[P.row], pool[P.col])), shape=(n, n))
