import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from scmatch.model.solvers._coreset import (
    farthest_first,
    greedy_facility_location,
    knn_similarity,
    select_coreset_indices,
)


def facility_location_objective(sim: np.ndarray | sp.spmatrix, selected: np.ndarray) -> float:
    """F(S) = sum_i max_{j in S} sim[i, j]: the reference the greedy selection is scored with."""
    if len(selected) == 0:
        return 0.0
    block = sim[:, selected]
    block = block.toarray() if sp.issparse(block) else np.asarray(block)
    return float(block.max(axis=1).sum())


def _naive_greedy(S, k):
    chosen, cur = [], np.zeros(S.shape[0])
    for _ in range(k):
        gains = np.maximum(S - cur[:, None], 0).sum(0)
        gains[chosen] = -1
        j = int(np.argmax(gains))
        chosen.append(j)
        cur = np.maximum(cur, S[:, j])
    return chosen


@pytest.mark.parametrize("seed", range(5))
def test_greedy_within_1_minus_1_over_e_of_brute_force(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(12, 2))
    S = np.exp(-((X[:, None] - X[None]) ** 2).sum(-1))
    k = 3
    chosen = greedy_facility_location(S, k)
    best = max(facility_location_objective(S, np.array(c)) for c in itertools.combinations(range(12), k))
    ours = facility_location_objective(S, chosen)
    assert ours >= (1 - 1 / np.e) * best
    assert ours <= best + 1e-12
    # the lazy form picks the same objective value as the plain greedy
    assert ours == pytest.approx(facility_location_objective(S, np.array(_naive_greedy(S, k))))


def test_greedy_picks_one_cell_per_cluster():
    S = np.array(
        [[1, 0.9, 0, 0], [0.9, 1, 0, 0], [0, 0, 1, 0.8], [0, 0, 0.8, 1]],
    )
    chosen = set(greedy_facility_location(S, 2).tolist())
    assert len(chosen & {0, 1}) == 1 and len(chosen & {2, 3}) == 1
    assert facility_location_objective(S, np.array([0, 2])) == pytest.approx(1 + 0.9 + 1 + 0.8)


def test_knn_similarity_has_unit_self_similarity():
    X = np.random.default_rng(0).normal(size=(50, 3))
    S = knn_similarity(X, n_neighbors=5)
    np.testing.assert_allclose(S.diagonal(), 1.0)
    assert S.nnz == 50 * 6


@pytest.mark.parametrize("method", ["craig", "random"])
@pytest.mark.parametrize("chunk_size", [40, 5000])
def test_selection_size_and_weights_sum_to_n(method, chunk_size):
    X = np.random.default_rng(0).normal(size=(203, 4))
    idx, w = select_coreset_indices(X, fraction=0.3, method=method, chunk_size=chunk_size, random_state=1)
    assert len(idx) == round(0.3 * 203) == len(np.unique(idx))
    assert np.all(np.diff(idx) > 0)
    assert w.sum() == pytest.approx(203)
    assert np.all(w > 0)


def test_craig_covers_better_than_random():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=10, size=(20, 5))
    X = np.repeat(centres, [2] * 10 + [48] * 10, axis=0) + rng.normal(size=(500, 5))
    S = knn_similarity(X, n_neighbors=30)
    craig, w = select_coreset_indices(X, fraction=0.04, method="craig")
    rand, _ = select_coreset_indices(X, fraction=0.04, method="random")
    assert facility_location_objective(S, craig) > facility_location_objective(S, rand)
    # every large cluster gets a representative, whose weights sum to about the cluster's size
    cluster = np.searchsorted(np.cumsum([2] * 10 + [48] * 10), craig, side="right")
    assert set(range(10, 20)) <= set(cluster.tolist())
    assert w.sum() == pytest.approx(500)


def test_dense_greedy_equals_sparse_greedy():
    S = np.random.default_rng(3).random((200, 150))
    assert greedy_facility_location(S, 25).tolist() == greedy_facility_location(sp.csr_matrix(S), 25).tolist()
    with pytest.raises(ValueError, match="non-negative"):
        greedy_facility_location(S - 1, 3)


def test_adaptive_kernel_covers_a_sparse_rare_cluster():
    """A tight common cluster and a spread-out rare one: one global scale spends the budget on the common cluster."""
    rng = np.random.default_rng(4)
    X = np.r_[0.1 * rng.normal(size=(2000, 5)), 10 + rng.normal(size=(60, 5))]
    rare = {}
    for kernel in ("global", "adaptive"):
        idx, _ = select_coreset_indices(X, fraction=0.02, kernel=kernel, random_state=0)
        rare[kernel] = int((idx >= 2000).sum())
    assert rare == {"global": 0, "adaptive": 1}  # 2% of 60 cells is 1.2
    with pytest.raises(ValueError, match="kernel"):
        knn_similarity(X[:20], kernel="local")


def test_farthest_first_picks_every_separated_group():
    rng = np.random.default_rng(5)
    sizes, centres = (500, 300, 100, 5, 2), 50 * np.eye(5)
    X = np.concatenate([c + rng.normal(size=(n, 5)) for n, c in zip(sizes, centres, strict=True)])
    group = np.repeat(np.arange(5), sizes)
    picks = farthest_first(X, 5, start=0)
    assert sorted(group[picks].tolist()) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_farthest_first_radius_within_twice_the_optimum(seed):
    X = np.random.default_rng(seed).normal(size=(12, 2))
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    optimum = min(D[:, list(c)].min(1).max() for c in itertools.combinations(range(12), 3))
    radius = D[:, farthest_first(X, 3, start=seed)].min(1).max()
    assert optimum <= radius <= 2 * optimum + 1e-6


def test_kcenter_sketch_keeps_the_rare_cluster_that_facility_location_misses():
    rng = np.random.default_rng(4)
    X = np.r_[0.1 * rng.normal(size=(2000, 5)), 10 + rng.normal(size=(60, 5))]
    idx, w = select_coreset_indices(X, fraction=0.02, method="kcenter", random_state=0)
    assert len(idx) == 41 and w.sum() == pytest.approx(2060)
    rare = idx >= 2000
    assert rare.sum() >= 1 and w[rare].sum() == pytest.approx(60)  # the rare cells are represented by their own
