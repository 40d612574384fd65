from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from scmatch.metrics import check_challenge_format, is_challenge_format


def _top_k_rows(n, m, k, seed=0):
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), k)
    cols = np.concatenate([rng.choice(m, k, replace=False) for _ in range(n)])
    P = sp.csr_matrix((rng.random(rows.size) + 0.01, (rows, cols)), shape=(n, m))
    return sp.csr_matrix(P.multiply(1 / P.sum(axis=1)))


def test_valid_predictions_pass():
    check_challenge_format(np.full((4, 4), 0.25))
    check_challenge_format(np.eye(5), shape=(5, 5))
    P = _top_k_rows(30, 1500, 1000)
    check_challenge_format(P, shape=(30, 1500))
    check_challenge_format(P.astype(np.float32))
    assert is_challenge_format(P)


def test_row_sum_tolerance():
    P = np.full((2, 4), 0.25)
    P[0, 0] += 5e-7
    assert is_challenge_format(P)
    P[0, 0] += 1e-6
    assert not is_challenge_format(P)
    assert is_challenge_format(P, atol=1e-5)


def test_nonzero_limit_counts_only_nonzeros():
    assert not is_challenge_format(_top_k_rows(3, 1200, 1001))
    with pytest.raises(ValueError, match=r"3 row\(s\) have more than 1000 non-zero"):
        check_challenge_format(np.full((3, 1200), 1 / 1200))
    # an explicitly stored zero does not count
    P = sp.csr_matrix((np.array([0.5, 0.0, 0.5]), np.array([0, 1, 2]), np.array([0, 3])), shape=(1, 3))
    check_challenge_format(P, max_nonzero=2)
    with pytest.raises(ValueError, match="Keep the 1 largest"):
        check_challenge_format(P, max_nonzero=1)


@pytest.mark.parametrize(
    ("P", "kwargs", "match"),
    [
        (np.array([[0.5, 0.6], [0.5, 0.5]]), {}, r"1 row\(s\) do not sum to 1.*row 0 sums to 1\.1"),
        (np.zeros((2, 2)), {}, "do not sum to 1"),
        (np.array([[1.5, -0.5], [0.5, 0.5]]), {}, "negative"),
        (np.array([[np.nan, 1.0], [0.5, 0.5]]), {}, "NaN"),
        (sp.csr_matrix(np.array([[np.inf, 1.0], [0.5, 0.5]])), {}, "NaN or infinite"),
        (np.full((2, 3), 1 / 3), {"shape": (2, 2)}, r"shape \(2, 3\) but \(2, 2\)"),
        (np.full(3, 1 / 3), {}, "2-D"),
        (np.array([["a", "b"]]), {}, "numeric"),
    ],
)
def test_invalid_predictions_raise(P, kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_challenge_format(P, **kwargs)
    assert not is_challenge_format(P, **kwargs)
