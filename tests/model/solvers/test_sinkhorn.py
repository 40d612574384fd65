"""The torch sparse Sinkhorn against the previous NumPy implementation, POT, and a naive segment log-sum-exp."""

import warnings

import mudata as md
import numpy as np
import ot
import pytest
import scipy.sparse as sp
import torch
from scipy.special import logsumexp

from scmatch.model.solvers import _matching, _sinkhorn
from scmatch.model.solvers._matching import sinkhorn_sparse
from scmatch.model.solvers._sinkhorn import _segment_log2sumexp2

from .sinkhorn_reference import sinkhorn_sparse_numpy


def _support(n1, n2, *, per_row, seed, dead_rows=0, dead_cols=0, scale=1.0):
    """Random support: a random number of candidates per row (0 for ``dead_rows`` rows), ``dead_cols`` columns
    that no row proposes, N(0, scale^2) similarities, indices unsorted within rows."""
    rng = np.random.default_rng(seed)
    allowed = rng.permutation(n2)[dead_cols:]
    counts = rng.integers(1, per_row + 1, size=n1)
    counts[rng.choice(n1, dead_rows, replace=False)] = 0
    indices = np.concatenate([rng.choice(allowed, min(c, len(allowed)), replace=False) for c in counts])
    indptr = np.concatenate([[0], np.cumsum(np.minimum(counts, len(allowed)))])
    return sp.csr_matrix((scale * rng.normal(size=len(indices)), indices, indptr), shape=(n1, n2))


def _hub_support(n, k, *, seed):
    """Every row's top-k cosine similarities between two clustered point clouds: uniform rows, hub columns, and
    five dead columns."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, 8))
    x1, x2 = (centres[rng.integers(0, 5, n)] + 0.5 * rng.normal(size=(n, 8)) for _ in range(2))
    x1, x2 = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (x1, x2))
    S = x1 @ x2.T
    S[:, -5:] -= 10.0  # five columns nobody proposes
    top = np.argsort(-S, axis=1)[:, :k]
    rows = np.repeat(np.arange(n), k)
    return sp.csr_matrix((S[rows, top.ravel()], (rows, top.ravel())), shape=(n, n))


def _compare(S, **kwargs):
    """Run both implementations of the plain iterations (no epsilon scaling); return (max abs difference, torch
    info, numpy info)."""
    new_info, old_info = {}, {}
    new = sinkhorn_sparse(S, **kwargs, scaling_stages=0, info=new_info)
    old = sinkhorn_sparse_numpy(S, **kwargs, info=old_info)
    assert new.shape == old.shape
    np.testing.assert_array_equal(new.indptr, old.indptr)  # same stored entries, row by row
    return float(abs(new - old).max()), new_info, old_info


SUPPORTS = {
    "square": dict(n1=60, n2=60, per_row=12, seed=0),
    "wide, dead rows and columns": dict(n1=40, n2=90, per_row=15, seed=1, dead_rows=6, dead_cols=20),
    "tall, dead rows and columns": dict(n1=120, n2=35, per_row=6, seed=2, dead_rows=10, dead_cols=5),
    "one candidate per row at most": dict(n1=30, n2=50, per_row=1, seed=3, dead_rows=3),
    "dense-ish rows": dict(n1=25, n2=40, per_row=40, seed=4, scale=0.3),
}


@pytest.mark.parametrize("name", list(SUPPORTS))
@pytest.mark.parametrize("temperature", [0.03, 0.2, 1.0])
def test_equals_numpy_implementation(name, temperature):
    S = _support(**SUPPORTS[name])
    diff, new_info, old_info = _compare(S, temperature=temperature)
    assert diff < 1e-6
    assert new_info["n_iter"] == old_info["n_iter"]
    assert new_info["marginal_error"] == pytest.approx(old_info["marginal_error"], rel=1e-6, abs=1e-15)


@pytest.mark.parametrize("seed", [0, 1])
def test_equals_numpy_on_a_hub_support(seed):
    # uniform rows and hub columns (many candidates in a few columns, none in five)
    S = _hub_support(300, 15, seed=seed)
    col_counts = np.bincount(S.indices, minlength=300)
    assert col_counts.max() > 3 * np.median(col_counts) and (col_counts == 0).any()
    diff, new_info, old_info = _compare(S, temperature=0.05, tol=1e-9, n_iter=500)
    assert diff < 1e-6
    assert new_info["n_iter"] == old_info["n_iter"]


def test_equals_numpy_on_real_cite_protein_neighbours(cite_path):
    # ADT profiles of the CITE-seq starter: donor s1d1 cells propose their 20 most similar s1d2 cells
    with warnings.catch_warnings(), md.set_options(pull_on_update=False):
        warnings.simplefilter("ignore")
        adt = md.read_h5mu(cite_path)["adt"]
    X = np.log1p(np.asarray(adt.X.todense() if sp.issparse(adt.X) else adt.X, dtype=np.float64))
    X = (X - X.mean(0)) / (X.std(0) + 1e-8)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    batch = adt.obs["batch"].to_numpy()
    A, B = X[batch == "s1d1"], X[batch == "s1d2"]
    sim = A @ B.T
    top = np.argsort(-sim, axis=1)[:, :20]
    rows = np.repeat(np.arange(len(A)), 20)
    S = sp.csr_matrix((sim[rows, top.ravel()], (rows, top.ravel())), shape=sim.shape)
    for temperature in (0.03, 0.1):
        diff, new_info, old_info = _compare(S, temperature=temperature)
        assert diff < 1e-6
        assert new_info["n_iter"] == old_info["n_iter"]


@pytest.mark.parametrize(("n1", "n2", "tau"), [(30, 25, 0.3), (20, 45, 0.1), (40, 40, 1.0)])
def test_full_support_equals_pot(n1, n2, tau):
    S = np.random.default_rng(n1 + n2).normal(size=(n1, n2))
    a, b = np.full(n1, 1 / n1), np.full(n2, 1 / n2)
    plan = ot.sinkhorn(a, b, -S, reg=tau, method="sinkhorn_log", numItermax=20000, stopThr=1e-13)
    expected = plan / plan.sum(1, keepdims=True)
    info = {}
    ours = sinkhorn_sparse(sp.csr_matrix(S), temperature=tau, n_iter=20000, tol=1e-12, info=info)
    assert info["converged"]
    np.testing.assert_allclose(ours.toarray(), expected, atol=1e-7)
    reference = sinkhorn_sparse_numpy(sp.csr_matrix(S), temperature=tau, n_iter=20000, tol=1e-12)
    assert abs(ours - reference).max() < 1e-6


def test_dead_rows_and_columns():
    S = _support(50, 70, per_row=10, seed=5, dead_rows=7, dead_cols=15)
    P = sinkhorn_sparse(S, temperature=0.1, n_iter=5000, tol=1e-10)
    live_rows = np.diff(S.indptr) > 0
    row_sums = np.asarray(P.sum(1)).ravel()
    np.testing.assert_allclose(row_sums[live_rows], 1.0)
    assert (row_sums[~live_rows] == 0).all()
    col_mass = np.asarray(P.sum(0)).ravel()
    assert (col_mass[np.bincount(S.indices, minlength=70) == 0] == 0).all()
    # only the support is used
    assert set(zip(*P.nonzero(), strict=True)) <= set(zip(*S.nonzero(), strict=True))


def test_info_and_stopping_rule():
    S = _support(80, 60, per_row=20, seed=6)
    info = {}
    sinkhorn_sparse(S, temperature=0.5, tol=1e-6, scaling_stages=0, info=info)
    assert info["converged"] and 0 < info["n_iter"] < 200
    assert info["marginal_error"] < 1e-6 / 80
    # one fewer iteration is not enough: the rule stops at the first iteration that meets it
    short = {}
    sinkhorn_sparse(S, temperature=0.5, tol=1e-6, n_iter=info["n_iter"] - 1, scaling_stages=0, info=short)
    assert not short["converged"] and short["marginal_error"] >= 1e-6 / 80
    capped = {}
    sinkhorn_sparse(S, temperature=0.01, n_iter=3, scaling_stages=0, info=capped)
    assert capped == {"n_iter": 3, "marginal_error": capped["marginal_error"], "converged": False}
    # with epsilon scaling the count includes every stage's iterations
    staged = {}
    sinkhorn_sparse(S, temperature=0.01, n_iter=3, scaling_stages=4, stage_iter=5, info=staged)
    assert staged["n_iter"] == 4 * 5 + 3


def test_no_iteration_is_the_row_softmax():
    S = _support(20, 30, per_row=8, seed=7)
    info = {}
    P = sinkhorn_sparse(S, temperature=0.2, n_iter=0, scaling_stages=0, info=info)
    assert info["n_iter"] == 0 and np.isnan(info["marginal_error"]) and not info["converged"]
    np.testing.assert_allclose(P.toarray(), _matching.row_softmax(S, temperature=0.2).toarray(), atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 3), (0, 5), (5, 0), (0, 0)])
def test_empty_support(shape):
    info = {}
    P = sinkhorn_sparse(sp.csr_matrix(shape), temperature=0.1, info=info)
    assert P.shape == shape and P.nnz == 0
    assert info["n_iter"] >= 1 and not np.isnan(info["marginal_error"])


def test_minus_inf_similarities_leave_the_support():
    S = _support(30, 30, per_row=8, seed=8)
    with_inf = S.copy()
    with_inf.data[::5] = -np.inf
    # a row whose every candidate is -inf becomes a row without support
    with_inf.data[with_inf.indptr[0] : with_inf.indptr[1]] = -np.inf
    P = sinkhorn_sparse(with_inf, temperature=0.1)
    expected = sinkhorn_sparse(_matching._drop_entries(S, np.isneginf(with_inf.data)), temperature=0.1)
    assert P.shape == expected.shape and abs(P - expected).max() == 0
    assert P[0].nnz == 0 and np.isfinite(P.data).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_rejects_nan_and_plus_inf(bad):
    S = _support(10, 10, per_row=3, seed=9)
    S.data[2] = bad
    with pytest.raises(ValueError, match="NaN or \\+inf"):
        sinkhorn_sparse(S, temperature=0.1)


def test_rejects_non_positive_temperature():
    with pytest.raises(ValueError, match="`temperature` must be > 0"):
        sinkhorn_sparse(_support(5, 5, per_row=2, seed=0), temperature=0.0)


def test_segment_log2sumexp2_equals_a_naive_one():
    rng = np.random.default_rng(10)
    lengths = rng.integers(1, 60, size=40)
    lengths[[3, 17]] = 0
    segment = np.repeat(np.arange(40), lengths)
    x = 200 * rng.normal(size=len(segment))  # spreads far beyond float64's exp range
    got = _segment_log2sumexp2(torch.from_numpy(x), torch.from_numpy(segment), 40).numpy()
    expected = [logsumexp(x[segment == s] * np.log(2.0)) / np.log(2.0) if n else -np.inf for s, n in enumerate(lengths)]
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("seed", [4, 5])
def test_absorption_keeps_the_log_domain_iterates(seed, monkeypatch):
    """Cold enough (similarities / 0.0005) that the scalings leave their range and are absorbed into the kernel."""
    S = _hub_support(300, 15, seed=seed)
    calls = []
    rebuild = _sinkhorn.ScaledSinkhorn._rebuild
    monkeypatch.setattr(_sinkhorn.ScaledSinkhorn, "_rebuild", lambda self: calls.append(1) or rebuild(self))
    diff, new_info, old_info = _compare(S, temperature=0.0005, n_iter=300)
    assert len(calls) > 1  # the kernel was rebuilt after its first build: the log-domain path ran
    assert diff < 1e-6
    assert new_info["n_iter"] == old_info["n_iter"]
    assert new_info["marginal_error"] == pytest.approx(old_info["marginal_error"], rel=1e-6, abs=1e-15)


def test_a_column_far_from_every_row():
    """A column 3,000 binary orders below every row's best entry: its kernel entries underflow to zero, and the
    column update is redone in the log domain instead of dividing by zero."""
    S = _support(40, 40, per_row=8, seed=11, scale=0.1).tolil()
    S[:, 7] = 0.0
    S[::3, 7] = -6.0  # every 3rd row proposes column 7, far below its other candidates
    S = S.tocsr()
    S.data[S.data == 0.0] = 0.0
    P = sinkhorn_sparse(S, temperature=0.001, n_iter=50, scaling_stages=0)
    reference = sinkhorn_sparse_numpy(S, temperature=0.001, n_iter=50)
    assert np.isfinite(P.data).all()
    assert abs(P - reference).max() < 1e-6
    assert P[:, 7].sum() > 0.5  # the column still receives its mass


def _paired_support(n, k, *, seed):
    """Each row's top-k cosine similarities to noisy copies of the same points (a matching-like support)."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=(n, 8))
    x2 = x1 + 0.5 * rng.normal(size=(n, 8))
    x1, x2 = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (x1, x2))
    S = x1 @ x2.T
    top = np.argsort(-S, axis=1)[:, :k]
    rows = np.repeat(np.arange(n), k)
    return sp.csr_matrix((S[rows, top.ravel()], (rows, top.ravel())), shape=(n, n))


@pytest.mark.slow
def test_epsilon_scaling_reaches_the_same_coupling_sooner():
    S = _paired_support(200, 30, seed=0)
    converged = sinkhorn_sparse(S, temperature=0.005, scaling_stages=0, n_iter=50_000, tol=1e-9)
    scaled_info, plain_info = {}, {}
    scaled = sinkhorn_sparse(S, temperature=0.005, info=scaled_info)  # the defaults: up to 8 stages of 10
    plain = sinkhorn_sparse(S, temperature=0.005, scaling_stages=0, n_iter=scaled_info["n_iter"], info=plain_info)
    assert scaled_info["n_iter"] == 270  # 7 stages of 10 (the similarities span 0.69 = 2^7.1 temperatures) + 200
    # measured: 0.117 against 0.187 from the converged coupling; row-mass error 0.025 against 0.032 (x n)
    assert abs(scaled - converged).max() < 0.7 * abs(plain - converged).max()
    assert scaled_info["marginal_error"] < plain_info["marginal_error"]
    # run long, the scaled iterations reach the same coupling (both stop 50,000 iterations in with row masses
    # about 4e-5 off their target, relative, so the couplings agree to that order)
    full = sinkhorn_sparse(S, temperature=0.005, n_iter=50_000, tol=1e-9)
    assert abs(full - converged).max() < 1e-4
