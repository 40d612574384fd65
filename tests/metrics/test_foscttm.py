from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from scmatch.metrics import foscttm


def _brute_force(S, truth, tie_weight):
    """Loop-by-loop FOSCTTM from the definition (the reference implementation)."""
    S = np.asarray(S, dtype=float)
    n = S.shape[0]
    inverse = np.argsort(truth)
    rows, cols = [], []
    for i in range(n):
        s = S[i, truth[i]]
        others = [S[i, j] for j in range(n) if j != truth[i]]
        rows.append(sum(1.0 if v > s else tie_weight if v == s else 0.0 for v in others) / (n - 1))
    for j in range(n):
        s = S[inverse[j], j]
        others = [S[i, j] for i in range(n) if i != inverse[j]]
        cols.append(sum(1.0 if v > s else tie_weight if v == s else 0.0 for v in others) / (n - 1))
    return (np.mean(rows) + np.mean(cols)) / 2


def test_foscttm_hand_computed():
    S = np.array([[0.9, 0.1, 0.0], [0.8, 0.5, 0.2], [0.0, 0.6, 0.7]])
    # rows: 0, 1/2 (0.8 > 0.5), 0 -> 1/6; columns: 0, 1/2 (0.6 > 0.5), 0 -> 1/6
    assert foscttm(S, [0, 1, 2]) == pytest.approx(1 / 6)
    # partners on the anti-diagonal: row fractions 1, 1/2, 1 and column fractions 1, 1/2, 1 -> 5/6
    assert foscttm(S, [2, 1, 0]) == pytest.approx(5 / 6)


def test_foscttm_extremes():
    n = 8
    assert foscttm(np.eye(n), np.arange(n)) == 0.0
    assert foscttm(1 - np.eye(n), np.arange(n)) == 1.0
    assert foscttm(-np.abs(np.subtract.outer(np.arange(n), np.arange(n))), np.arange(n)) == 0.0


def test_foscttm_random_scores_is_one_half():
    rng = np.random.default_rng(0)
    n = 400
    value = foscttm(rng.normal(size=(n, n)), rng.permutation(n))
    assert abs(value - 0.5) < 0.03


def test_foscttm_uniform_scores_by_tie_rule():
    S = np.full((10, 10), 0.1)
    truth = np.arange(10)
    assert foscttm(S, truth) == 0.5
    assert foscttm(S, truth, ties="optimistic") == 0.0
    assert foscttm(S, truth, ties="pessimistic") == 1.0


@pytest.mark.parametrize(("ties", "weight"), [("expected", 0.5), ("optimistic", 0.0), ("pessimistic", 1.0)])
def test_foscttm_matches_brute_force_with_ties(ties, weight):
    rng = np.random.default_rng(1)
    n = 25
    S = rng.integers(-2, 4, size=(n, n)).astype(float)  # many ties, negatives and zeros
    truth = rng.permutation(n)
    expected = _brute_force(S, truth, weight)
    assert foscttm(S, truth, ties=ties) == pytest.approx(expected)
    assert foscttm(sp.csr_matrix(S), truth, ties=ties) == pytest.approx(expected)
    assert foscttm(sp.csc_matrix(S), truth, ties=ties) == pytest.approx(expected)


def test_foscttm_sparse_missing_entries_are_zero():
    rng = np.random.default_rng(2)
    n = 40
    S = rng.normal(size=(n, n))
    S[rng.random((n, n)) < 0.7] = 0.0  # unstored in the sparse copy, including some partners
    truth = rng.permutation(n)
    sparse = sp.csr_matrix(S)
    assert sparse.nnz < 0.4 * n * n
    assert foscttm(sparse, truth) == pytest.approx(foscttm(S, truth))
    assert foscttm(sparse, truth) == pytest.approx(_brute_force(S, truth, 0.5))


def test_foscttm_invariant_to_consistent_permutation():
    rng = np.random.default_rng(3)
    n = 50
    S, truth = rng.random((n, n)), rng.permutation(n)
    r, c = rng.permutation(n), rng.permutation(n)
    assert foscttm(S[r][:, c], np.argsort(c)[truth[r]]) == pytest.approx(foscttm(S, truth))


def test_foscttm_large_dense_uses_blocks():
    rng = np.random.default_rng(4)
    n = 1100  # more rows than one block
    truth = rng.permutation(n)
    S = rng.random((n, n))
    S[np.arange(n), truth] += 0.5
    value = foscttm(S, truth)
    # partner score ~ U(0.5, 1.5) against U(0, 1): expected fraction above = E[(1.5 - s)^+ ...] = 1/8
    assert value == pytest.approx(1 / 8, abs=0.01)


@pytest.mark.parametrize(
    ("S", "truth", "match"),
    [
        (np.ones((3, 4)), [0, 1, 2], "square"),
        (np.ones((3, 3)), [0, 0, 2], "permutation"),
        (np.ones((1, 1)), [0], "at least 2"),
    ],
)
def test_foscttm_bad_input(S, truth, match):
    with pytest.raises(ValueError, match=match):
        foscttm(S, truth)
