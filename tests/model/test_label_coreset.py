import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from scmatch.model._coreset import farthest_first, greedy_facility_location, knn_similarity, select_coreset_indices
from scmatch.model._label_coreset import stratified_coreset


def test_every_label_keeps_a_cell_and_weights_sum_per_label():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(700, int), np.ones(290, int), np.full(10, 2)]
    X = rng.normal(size=(1000, 5))
    idx, w = stratified_coreset(X, labels, fraction=0.02, rng=rng)
    assert np.all(np.diff(idx) > 0)
    # 2% of 1000 = 20, split 14 / 6 / 0.2 -> the rare label still gets its one cell
    assert np.bincount(labels[idx]).tolist() == [14, 6, 1]
    for lab, size in enumerate((700, 290, 10)):
        assert w[labels[idx] == lab].sum() == pytest.approx(size)


@pytest.mark.parametrize("method", ["wasserstein", "craig"])
def test_facility_location_represents_both_modes_of_a_label(method):
    """One label made of two far-apart blobs (900 and 100 cells): both are represented, each weighted by its size."""
    rng = np.random.default_rng(1)
    X = np.r_[rng.normal(size=(900, 3)), 20 + rng.normal(size=(100, 3))]
    idx, w = stratified_coreset(X, np.zeros(1000, int), fraction=0.01, method=method, rng=rng)
    far = idx >= 900
    assert len(idx) == 10 and 1 <= far.sum() <= 3
    assert w[far].sum() == pytest.approx(100) and w[~far].sum() == pytest.approx(900)


def test_chunks_bound_the_blocks_and_keep_the_budget():
    rng = np.random.default_rng(2)
    labels = np.r_[np.zeros(2500, int), np.ones(500, int)]
    idx, w = stratified_coreset(rng.normal(size=(3000, 4)), labels, fraction=0.1, chunk_size=600, rng=rng)
    assert len(idx) == 300 and len(np.unique(idx)) == 300
    assert np.bincount(labels[idx]).tolist() == [250, 50]
    assert w.sum() == pytest.approx(3000)


def test_stratified_coreset_rejects_bad_settings():
    X, labels = np.zeros((10, 2)), np.zeros(10, int)
    with pytest.raises(ValueError, match="method"):
        stratified_coreset(X, labels, fraction=0.5, method="kmeans", rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="fraction"):
        stratified_coreset(X, labels, fraction=0, rng=np.random.default_rng(0))


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
