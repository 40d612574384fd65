"""The weight of the linked prior, chosen on the reference pairs that the networks held out of training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..model._held_out import held_out_similarities
from ..model._prior import PairPrior
from ..model.solvers._matching import match_block
from ._profiles import profiles

#: candidate weights, in units of the model's Sinkhorn temperature (0: no prior)
WEIGHT_GRID = np.concatenate([[0.0], np.geomspace(0.1, 1000.0, 25)])
#: fewest held-out pairs on which a weight is chosen; with fewer the prior is not used
MIN_PAIRS = 30
#: how many standard errors above 0 the reference pairs' mean linked correlation must be for the links to be used
MIN_LINK_T = 3.0
#: how far (in standard deviations of other pairs' linked correlations) the reference pairs' mean must stand above 0
MIN_LINK_SEPARATION = 0.75


def choose_weight(
    model,
    X1,
    X2,
    values1: np.ndarray,
    values2: np.ndarray,
    *,
    batch: Sequence | None = None,
    top_k: int = 100,
) -> dict:
    """The weight of the linked prior that gives the held-out reference pairs the most probability on their partner.

    Each held-out pair's row is scored by the network that never trained on it (as
    :func:`~scmatch.model._held_out.held_out_probabilities`); the linked profiles are standardised among the
    held-out cells of each batch, as a query's are among its own. For each weight of :data:`WEIGHT_GRID` (times the
    model's Sinkhorn temperature) the held-out pairs are matched by Sinkhorn at the model's temperature, and the
    weight with the largest mean probability on the true partners is kept (the smallest of ties; 0 leaves the
    network alone).

    A few dozen held-out pairs judge a weight noisily, and links to the wrong partners can win there by chance.
    So the links are first tested on *every* reference pair, without the network: the correlation of a pair's
    two linked profiles (standardised within each batch), whose mean over random pairs is about 0 (each linked
    feature is centred). Unless its mean over the true pairs is :data:`MIN_LINK_T` standard errors above 0, the
    links say nothing about which cell is which and get weight 0. Thousands of pairs make even a faint
    correlation significant, so its size is tested too: the *separation*, the true pairs' mean correlation over the
    standard deviation of the correlations of mismatched pairs (each reference cell with the next one's partner),
    must be at least :data:`MIN_LINK_SEPARATION`. Below it the links barely tell a partner from any other cell,
    and the held-out pairs cannot tell their weight from noise: on sparse single-nucleus ATAC (SNARE-seq2, about
    100 open peaks per nucleus) the weight they chose raised the query's match score on one split and lowered it
    on the other, while dense 10x multiome and the CITE-seq sets pass the test and their links lift the query
    (benchmarks/README.md, *Feature links*; docs/links.md).

    Parameters
    ----------
    model
        A :class:`~scmatch.model.MatchModel` fitted in this session on the pairs ``(X1[i], X2[i])``.
    X1, X2
        Its reference pairs, as given to ``fit``.
    values1, values2
        The pairs' linked values (:func:`~scmatch.links.linked_values`), one row per pair.
    batch
        Batch label of each pair; held-out pairs are matched within batches.
    top_k
        Candidates per held-out row (at least the search's).

    Returns
    -------
    dict: ``weight`` (in the units of the similarities; 0 when the prior does not help or cannot be judged),
    ``weight_in_temperatures``, ``n_pairs`` (held-out pairs judged on), ``score_without`` and ``score_with``
    (their mean probability on the partner), and ``reason`` when no weight could be chosen.
    """
    n = X1.shape[0]
    if len(values1) != n or len(values2) != n:
        raise ValueError(f"`values1` and `values2` need one row per reference pair ({n}).")
    pair_t, pair_mean, separation = _pair_correlation(values1, values2, batch)
    report: dict = {"pair_correlation": pair_mean, "pair_correlation_t": pair_t, "pair_separation": separation}
    if not pair_t > MIN_LINK_T:
        reason = f"the linked values of the reference pairs do not correlate (t = {pair_t:.1f} <= {MIN_LINK_T})"
        return {"weight": 0.0, **report, "reason": reason}
    if not separation >= MIN_LINK_SEPARATION:
        reason = (
            f"the linked values tell a cell's partner from other cells too weakly (separation {separation:.2f} < "
            f"{MIN_LINK_SEPARATION}: the pairs' mean correlation {pair_mean:.3f})"
        )
        return {"weight": 0.0, **report, "reason": reason}
    pool, blocks = held_out_similarities(model, X1, X2, batch=batch, top_k=top_k)
    report["n_pairs"] = len(pool)
    if len(pool) < MIN_PAIRS:
        return {"weight": 0.0, **report, "reason": f"fewer than {MIN_PAIRS} held-out pairs"}
    groups = None if batch is None else np.asarray(batch)[pool]
    z1, z2 = np.zeros((n, values1.shape[1]), np.float32), np.zeros((n, values2.shape[1]), np.float32)
    z1[pool], z2[pool] = profiles(values1[pool], groups=groups), profiles(values2[pool], groups=groups)
    tau = float(model.temperature_["sinkhorn"])
    p_true = [_held_out_p_true(blocks, pool, PairPrior(z1, z2, lam * tau), tau, top_k) for lam in WEIGHT_GRID]
    scores = [float(p.mean()) for p in p_true]
    best = int(np.argmax(scores))  # the first (smallest weight) of ties
    report["score_without"] = scores[0]
    return {
        "weight": float(WEIGHT_GRID[best] * tau),
        "weight_in_temperatures": float(WEIGHT_GRID[best]),
        **report,
        "score_with": scores[best],
    }


def _pair_correlation(values1: np.ndarray, values2: np.ndarray, batch) -> tuple[float, float, float]:
    """The t statistic, mean and separation of the pairs' linked correlations (profiles standardised per batch).

    The separation is the mean over the standard deviation of mismatched pairs' correlations (cell i with the
    partner of cell i + 1).
    """
    z1, z2 = profiles(values1, groups=batch), profiles(values2, groups=batch)
    c = np.einsum("ij,ij->i", z1, z2, dtype=np.float64)
    sd = c.std(ddof=1) if len(c) > 1 else 0.0
    t = float(c.mean() / (sd / np.sqrt(len(c)))) if sd > 0 else 0.0
    other = np.einsum("ij,ij->i", z1, np.roll(z2, -1, axis=0), dtype=np.float64)
    spread = other.std(ddof=1) if len(c) > 2 else 0.0
    return t, float(c.mean()), float(c.mean() / spread) if spread > 0 else 0.0


def _held_out_p_true(blocks, pool: np.ndarray, prior: PairPrior, tau: float, top_k: int) -> np.ndarray:
    """Each held-out pair's probability on its partner, matched within its batch with ``prior``."""
    p_true = np.zeros(len(pool))
    for rows, cols, S in blocks:
        P = match_block(prior.added(S, pool[rows], pool[cols]), matching="sinkhorn", temperature=tau, top_k=top_k)
        partner = np.searchsorted(cols, rows)  # rows and cols are the same sorted positions of a batch
        p_true[rows] = np.asarray(P[np.arange(len(rows)), partner]).ravel()
    return p_true
