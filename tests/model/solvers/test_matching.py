import numpy as np
import ot
import pytest
import scipy.sparse as sp

from scmatch.model.solvers._matching import (
    assignment,
    keep_top_k,
    match_block,
    match_block_temperatures,
    row_softmax,
    sinkhorn_dense,
    sinkhorn_sparse,
)


def _sim(n1=30, n2=25, seed=0):
    return np.random.default_rng(seed).normal(size=(n1, n2))


def test_row_softmax_hand_computed():
    S = sp.csr_matrix(np.array([[1.0, 1.0 + np.log(3.0)], [1.0, 1.0]]))
    P = row_softmax(S, temperature=1.0).toarray()
    np.testing.assert_allclose(P, [[0.25, 0.75], [0.5, 0.5]])


def test_sparse_sinkhorn_equals_pot_on_full_support():
    S = _sim()
    tau = 0.3
    plan = ot.sinkhorn(np.full(30, 1 / 30), np.full(25, 1 / 25), -S, reg=tau, method="sinkhorn_log", stopThr=1e-12)
    expected = plan / plan.sum(1, keepdims=True)
    sparse = sinkhorn_sparse(sp.csr_matrix(S), temperature=tau, n_iter=2000, tol=1e-12).toarray()
    np.testing.assert_allclose(sparse, expected, atol=1e-7)
    np.testing.assert_allclose(sinkhorn_dense(S, temperature=tau), expected, atol=1e-7)


def test_sparse_sinkhorn_balances_columns_on_restricted_support():
    S = _sim(40, 40, seed=1)
    keep = np.argsort(-S, axis=1)[:, :10]
    rows = np.repeat(np.arange(40), 10)
    support = sp.csr_matrix((S[rows, keep.ravel()], (rows, keep.ravel())), shape=S.shape)
    P = sinkhorn_sparse(support, temperature=0.2, n_iter=2000, tol=1e-12)
    # rows sum to one and only the support is used
    np.testing.assert_allclose(np.asarray(P.sum(1)).ravel(), 1.0)
    assert set(zip(*P.nonzero(), strict=True)) <= set(zip(*support.nonzero(), strict=True))
    col_mass = np.asarray(P.sum(0)).ravel()
    live = np.asarray((support != 0).sum(0)).ravel() > 0
    # the transport plan gives each reachable column the same mass
    np.testing.assert_allclose(col_mass[live], col_mass[live].mean(), rtol=1e-3)


def test_assignment_finds_the_permutation():
    rng = np.random.default_rng(2)
    perm = rng.permutation(20)
    S = rng.normal(scale=0.1, size=(20, 20))
    S[np.arange(20), perm] += 1.0
    P = assignment(sp.csr_matrix(S), fallback=sp.csr_matrix((20, 20)))
    np.testing.assert_array_equal(P.toarray().argmax(1), perm)
    np.testing.assert_allclose(P.sum(1), 1.0)


def test_assignment_more_rows_than_columns_falls_back():
    S = _sim(6, 4, seed=3)
    fallback = row_softmax(sp.csr_matrix(S), temperature=1.0)
    P = assignment(sp.csr_matrix(S), fallback=fallback).toarray()
    hard = np.isclose(P.max(1), 1.0)
    assert hard.sum() == 4  # every column used once
    assert len(set(P[hard].argmax(1))) == 4
    np.testing.assert_allclose(P[~hard], fallback.toarray()[~hard])


def test_assignment_without_a_full_matching_falls_back_to_greedy():
    # 6 rows, 5 columns, but no row has column 1 among its candidates (and rows 2, 3 and 5 share columns 0 and 2):
    # no matching covers every column. SciPy 1.11.1 (the floor) looped forever on this support; the greedy
    # one-to-one matching is used instead.
    S = np.zeros((6, 5))
    S[0, 3], S[1, 4], S[2, 0], S[3, 0], S[4, 4], S[5, [0, 2]] = 0.5, -0.7, -0.5, -0.7, 0.3, (-0.5, -1.0)
    fallback = row_softmax(sp.csr_matrix(S), temperature=1.0)
    P = assignment(sp.csr_matrix(S), fallback=fallback).toarray()
    np.testing.assert_allclose(P.sum(1), 1.0)
    # greedy by descending similarity: (0, 3), (4, 4), (2, 0), (5, 2); rows 1 and 3 find their column taken and
    # keep their fallback row
    matched, partner = [0, 2, 4, 5], [3, 0, 4, 2]
    np.testing.assert_array_equal(P[matched], np.eye(5)[partner])
    np.testing.assert_allclose(P[[1, 3]], fallback.toarray()[[1, 3]])


def test_keep_top_k():
    P = sp.csr_matrix(np.array([[0.1, 0.5, 0.4], [0.2, 0.2, 0.6]]))
    out = keep_top_k(P, top_k=2).toarray()
    np.testing.assert_allclose(out, [[0, 5 / 9, 4 / 9], [0.25, 0, 0.75]])


@pytest.mark.parametrize("matching", ["softmax", "sinkhorn", "assignment"])
def test_match_block_rows_are_distributions(matching):
    S = sp.csr_matrix(_sim(50, 60, seed=4))
    P = match_block(S, matching=matching, temperature=0.1, top_k=7)
    np.testing.assert_allclose(np.asarray(P.sum(1)).ravel(), 1.0)
    assert P.min() >= 0
    assert np.diff(P.indptr).max() <= 7


def test_batched_temperatures_equal_one_at_a_time():
    """Calibration's batched Sinkhorn gives each temperature's plan of POT's single solver where both converge, is
    as close as it to the exact plan where 1000 iterations do not converge, and the softmax and the large-block
    fallback go one temperature at a time."""
    S = sp.csr_matrix(_sim(31, 31, seed=5))
    temperatures = np.array([0.05, 0.1, 0.3, 1.0])
    cost = -S.toarray() - (-S.toarray()).min()
    for matching in ("sinkhorn", "softmax"):
        batch = match_block_temperatures(S, matching=matching, temperatures=temperatures, top_k=31)
        assert len(batch) == len(temperatures)
        for P, tau in zip(batch, temperatures, strict=True):
            one = match_block(S, matching=matching, temperature=tau, top_k=31).toarray()
            if matching == "softmax" or tau >= 0.3:
                np.testing.assert_allclose(P.toarray(), one, atol=1e-8)
                continue
            # POT's plain (not log-domain) iterations: the same plan to 1e-16 on this cost, ten times sooner
            exact = ot.sinkhorn(np.full(31, 1 / 31), np.full(31, 1 / 31), cost, reg=tau, method="sinkhorn",
                                numItermax=100_000, stopThr=1e-13)  # fmt: skip
            exact /= exact.sum(1, keepdims=True)
            # 1000 iterations leave both 1e-4 to 6e-4 from the exact plan (measured)
            assert 1e-5 < np.abs(one - exact).max() < 1e-3
            assert np.abs(P.toarray() - exact).max() < 1e-3
    # above the batch's size limit: one solve per temperature, the same plans
    big = match_block_temperatures(S, matching="sinkhorn", temperatures=temperatures, top_k=31, dense_limit=100)
    for P, tau in zip(big, temperatures, strict=True):
        one = match_block(S, matching="sinkhorn", temperature=tau, top_k=31)
        np.testing.assert_array_equal(P.toarray(), one.toarray())


def test_match_block_unknown_method():
    with pytest.raises(ValueError, match="Unknown matching 'greedy'"):
        match_block(sp.csr_matrix(_sim()), matching="greedy", temperature=0.1, top_k=3)
