"""Property-based tests (hypothesis) on random small inputs.

- match probabilities (``match_block`` for every matching, and ``MatchModel.predict_proba``) are non-negative,
  every row sums to one, rows hold at most ``top_k`` non-zeros, only candidates get mass, and the same input
  gives the same output;
- training with the same seed gives bit-identical probabilities;
- the metrics do not change when the cells are listed in another order (rows and columns permuted together
  with the truth and the labels).
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scmatch.metrics import evaluate
from scmatch.model import _fit
from scmatch.model._model import MIN_REFERENCE_PAIRS
from scmatch.model.solvers._matching import MATCHINGS, match_block

from .cases import fitted_model, tiny_model

FEW = settings(max_examples=25, deadline=None, database=None)


@st.composite
def candidate_similarities(draw):
    """A sparse (n1 x n2) similarity matrix in which every row has at least one candidate."""
    n1, n2 = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    values = draw(hnp.arrays(np.float64, (n1, n2), elements=st.floats(-1, 1, allow_nan=False, width=32)))
    support = draw(hnp.arrays(bool, (n1, n2)))
    support[np.arange(n1), draw(hnp.arrays(np.int64, n1, elements=st.integers(0, n2 - 1)))] = True
    rows, cols = np.nonzero(support)
    return sp.csr_matrix((values[rows, cols], (rows, cols)), shape=(n1, n2))


def _check_probabilities(P: sp.csr_matrix, shape: tuple[int, int], top_k: int) -> None:
    assert P.shape == shape
    assert np.all(np.isfinite(P.data)) and np.all(P.data >= 0)
    np.testing.assert_allclose(np.asarray(P.sum(axis=1)).ravel(), 1.0, rtol=1e-9, atol=1e-9)
    assert np.diff(P.indptr).max() <= top_k


@FEW
@given(
    sim=candidate_similarities(),
    matching=st.sampled_from(MATCHINGS),
    temperature=st.sampled_from([0.002, 0.05, 0.3, 1.0]),
    top_k=st.integers(1, 10),
)
def test_match_block_gives_distributions(sim, matching, temperature, top_k):
    P = match_block(sim, matching=matching, temperature=temperature, top_k=top_k)
    _check_probabilities(P, sim.shape, top_k)
    on_support = sim.copy()
    on_support.data[:] = 1
    assert (P.multiply(on_support) != P).nnz == 0  # mass only on candidates
    again = match_block(sim.copy(), matching=matching, temperature=temperature, top_k=top_k)
    assert (P != again).nnz == 0 and np.array_equal(P.indices, again.indices)


@FEW
@given(
    n1=st.integers(1, 12),
    n2=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    matching=st.sampled_from(MATCHINGS),
    top_k=st.integers(1, 15),
    batched=st.booleans(),
)
def test_predict_proba_gives_distributions(n1, n2, seed, matching, top_k, batched):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(scale=5, size=(n1, 8)), rng.normal(scale=5, size=(n2, 6))
    b1 = b2 = None
    if batched and n1 > 1 and n2 > 1:
        b1, b2 = np.arange(n1) % 2, np.arange(n2) % 2
    model = fitted_model()
    P = model.predict_proba(x1, x2, matching=matching, top_k=top_k, batch1=b1, batch2=b2)
    _check_probabilities(P, (n1, n2), top_k)
    if b1 is not None:
        rows, cols = P.nonzero()
        assert np.all(b1[rows] == b2[cols])
    again = model.predict_proba(x1, x2, matching=matching, top_k=top_k, batch1=b1, batch2=b2)
    assert (P != again).nnz == 0


@settings(max_examples=5, deadline=None, database=None)
@given(seed=st.integers(0, 2**31 - 2), n=st.integers(MIN_REFERENCE_PAIRS, MIN_REFERENCE_PAIRS + 20))
def test_same_seed_same_probabilities(seed, n):
    """Training is bit-reproducible under a seed. The calibration (a deterministic grid search, about a second per
    fit) is replaced by fixed temperatures here; it is exercised end to end in test_valid_edges.py."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=(n, 5)), rng.normal(size=(n, 4))
    fixed = {"softmax": 0.1, "sinkhorn": 0.1}
    with mock.patch.object(_fit, "calibrate", lambda sim, *, calibration: dict(fixed)):
        a = tiny_model(max_epochs=1).fit(x1, x2, random_state=seed)
        b = tiny_model(max_epochs=1).fit(x1, x2, random_state=seed)
    Pa, Pb = a.predict_proba(x1, x2), b.predict_proba(x1, x2)
    assert (Pa != Pb).nnz == 0
    timings = ("seconds", "val_seconds", "calibration_seconds")  # wall-clock times are not reproducible
    assert {k: v for k, v in a.history_.items() if k not in timings} == {
        k: v for k, v in b.history_.items() if k not in timings
    }
    assert len(a.history_["seconds"]) == len(a.history_["epoch"])


@st.composite
def scored_match(draw):
    """A probability matrix, a one-to-one truth, labels, and a consistent reordering of rows and columns."""
    n = draw(st.integers(2, 10))
    raw = draw(hnp.arrays(np.float64, (n, n), elements=st.floats(0, 1, allow_nan=False)))
    raw[np.arange(n), draw(st.permutations(range(n)))] += 0.01  # no empty row
    keep = draw(hnp.arrays(bool, (n, n)))
    P = np.where(keep | (raw == raw.max(axis=1, keepdims=True)), raw, 0)
    P = P / P.sum(axis=1, keepdims=True)
    truth = np.array(draw(st.permutations(range(n))))
    labels = np.array(draw(st.lists(st.sampled_from("ABC"), min_size=n, max_size=n)))
    perm_rows = np.array(draw(st.permutations(range(n))))
    perm_cols = np.array(draw(st.permutations(range(n))))
    return P, truth, labels, perm_rows, perm_cols, draw(st.booleans())


@FEW
@given(scored_match())
def test_metrics_do_not_depend_on_cell_order(case):
    P, truth, labels, perm_rows, perm_cols, sparse = case
    labels_cols = np.empty_like(labels)
    labels_cols[truth] = labels  # a cell keeps its label in both modalities
    position = np.argsort(perm_cols)  # new column of old column j
    P2 = P[perm_rows][:, perm_cols]
    truth2 = position[truth[perm_rows]]
    if sparse:
        P, P2 = sp.csr_matrix(P), sp.csr_matrix(P2)
    a = evaluate(P, truth, labels_rows=labels, labels_cols=labels_cols)
    b = evaluate(P2, truth2, labels_rows=labels[perm_rows], labels_cols=labels_cols[perm_cols])
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-12, atol=1e-12, err_msg=key)
