from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from scmatch.metrics import truth_from_solution

SOL = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=np.float32)


@pytest.mark.parametrize("convert", [np.asarray, sp.csr_matrix, sp.csc_matrix, sp.coo_matrix, sp.csr_array])
def test_truth_from_solution_formats(convert):
    sol = convert(SOL)
    truth = truth_from_solution(sol)
    np.testing.assert_array_equal(truth, [1, 2, 0])
    assert truth.dtype == np.int64


def test_truth_from_solution_rectangular_and_bool():
    sol = np.zeros((2, 4), dtype=bool)
    sol[0, 3] = sol[1, 0] = True
    np.testing.assert_array_equal(truth_from_solution(sol), [3, 0])


def test_truth_from_solution_ignores_explicit_zeros():
    sol = sp.csr_matrix((np.array([0.0, 1.0, 1.0]), np.array([0, 2, 1]), np.array([0, 2, 3])), shape=(2, 3))
    np.testing.assert_array_equal(truth_from_solution(sol), [2, 1])


@pytest.mark.parametrize(
    ("sol", "match"),
    [
        (np.array([[1, 1, 0], [0, 0, 1]]), "exactly one 1"),
        (np.array([[0, 0, 0], [0, 0, 1]]), "exactly one 1"),
        (np.array([[2, 0], [0, 1]]), "only 0 and 1"),
        (np.array([[0.5, 0.5], [0, 1]]), "only 0 and 1"),
        (np.array([1, 0, 0]), "2-D"),
        (np.array([[np.nan, 1], [1, 0]]), "NaN"),
    ],
)
def test_truth_from_solution_rejects_bad_input(sol, match):
    with pytest.raises(ValueError, match=match):
        truth_from_solution(sol)


def test_truth_from_solution_error_names_row():
    sol = np.eye(4)
    sol[2, 3] = 1
    with pytest.raises(ValueError, match="row 2 has 2"):
        truth_from_solution(sp.csr_matrix(sol))
