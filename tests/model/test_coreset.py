import itertools

import numpy as np
import pytest

from scmatch.model import MatchModel
from scmatch.model._coreset import (
    facility_location_objective,
    greedy_facility_location,
    knn_similarity,
    select_coreset_indices,
)


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


def test_match_model_trains_on_a_coreset():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 4))
    x1, x2 = z @ rng.normal(size=(4, 12)), z @ rng.normal(size=(4, 9))
    model = MatchModel(
        coreset="craig",
        coreset_fraction=0.5,
        coreset_every=2,
        epochs=4,
        alpha=0.0,
        d_model=16,
        n_heads=2,
        validation_fraction=0,
        progress_bar=False,
    )
    model.fit(x1[:150], x2[:150])
    assert model.get_params()["coreset"] == "craig"
    assert len(model.history_["train_loss"]) == 4
    P = model.predict_proba(x1[150:], x2[150:], top_k=5)
    np.testing.assert_allclose(np.asarray(P.sum(1)).ravel(), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="coreset"):
        MatchModel(coreset="kmeans")
    with pytest.raises(ValueError, match="coreset_fraction"):
        MatchModel(coreset="craig", coreset_fraction=0)
