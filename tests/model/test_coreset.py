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


# (the all-triplet distance losses are left out: there a matched pair still gets a gradient as another anchor's
# negative inside the margin, and W1 on one-hot embeddings saturates the histogram softmax)
@pytest.mark.parametrize("loss", ["infonce", "triplet", "econtrastive"])
def test_gradient_proxies_vanish_on_pairs_the_model_already_matches(loss):
    import torch

    from scmatch.model._train import TrainConfig, _gradient_proxies

    # 9 pairs on orthonormal embeddings (9 pairs with a batch of 4 leaves a lone pair, merged into a batch);
    # pairs 0 and 1 have swapped partners, the 7 others match exactly
    emb1 = torch.eye(9)
    emb2 = emb1[[1, 0, 2, 3, 4, 5, 6, 7, 8]]
    cfg = TrainConfig(loss=loss, batch_size=4)
    g = _gradient_proxies(emb1, emb2, cfg, rng=np.random.default_rng(0))
    assert g.shape == (9, 18) and np.isfinite(g).all()
    norms = np.linalg.norm(g, axis=1)
    assert norms[:2].min() > 0.1
    assert norms[2:].max() < 0.01 * norms[:2].min()


def test_training_selection_weights_sum_to_n_and_multiply_user_weights():
    import torch

    from scmatch.model._modules import CrossAttentionMatcher
    from scmatch.model._train import TrainConfig, _coreset

    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(300, 6)).astype(np.float32), rng.normal(size=(300, 5)).astype(np.float32)
    torch.manual_seed(0)
    module = CrossAttentionMatcher(6, 5, n_tokens=2, d_model=8, d_embed=8, n_heads=2, n_layers=1, alpha=0.0)
    cfg = TrainConfig(coreset="craig", coreset_fraction=0.2, batch_size=32)
    idx, w = _coreset(module, x1, x2, cfg, np.random.default_rng(1), torch.device("cpu"), None, first=False)
    assert len(idx) == 60 and w.sum() == pytest.approx(300)
    user = np.linspace(0.5, 1.5, 300)
    idx_u, w_u = _coreset(module, x1, x2, cfg, np.random.default_rng(1), torch.device("cpu"), user, first=False)
    np.testing.assert_array_equal(idx_u, idx)
    np.testing.assert_allclose(w_u, w * user[idx], rtol=1e-6)


def test_craig_on_gradient_proxies_spends_its_budget_on_unmatched_pairs():
    import torch
    import torch.nn.functional as F

    from scmatch.model._train import TrainConfig, _gradient_proxies

    # 600 pairs: the first 400 have identical embeddings in both modalities (matched), the last 200 have
    # unrelated partners; a random 20% subset would hold 1/3 unmatched pairs
    g = torch.Generator().manual_seed(0)
    emb1 = F.normalize(torch.randn(600, 32, generator=g), dim=1)
    emb2 = emb1.clone()
    emb2[400:] = F.normalize(torch.randn(200, 32, generator=g), dim=1)
    feats = _gradient_proxies(emb1, emb2, TrainConfig(batch_size=128), rng=np.random.default_rng(0))
    idx, w = select_coreset_indices(feats, fraction=0.2, method="craig", random_state=0)
    share_unmatched = (idx >= 400).mean()
    assert share_unmatched > 0.75
    # the few matched representatives stand for many pairs each
    assert w[idx < 400].mean() > 3 * w[idx >= 400].mean()


@pytest.mark.parametrize(
    ("coreset", "fraction", "message"), [(None, 1.0, "200 pairs"), ("craig", 0.1, "coreset of 20")]
)
def test_data_parallel_refuses_too_few_minibatches_before_training(monkeypatch, coreset, fraction, message):
    import torch

    from scmatch.model import _train
    from scmatch.model._modules import CrossAttentionMatcher

    # as if 4 processes shared the work: 200 pairs make 1 minibatch of 128, a 10% coreset 1 of 20
    monkeypatch.setattr(_train, "_distributed", lambda: (0, 4))
    module = CrossAttentionMatcher(5, 4, n_tokens=2, d_model=8, d_embed=8, n_heads=2, alpha=0.0)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    x1, x2 = np.ones((200, 5), np.float32), np.ones((200, 4), np.float32)
    cfg = _train.TrainConfig(coreset=coreset, coreset_fraction=fraction, epochs=1)
    with pytest.raises(ValueError, match=f"{message}.*too few for 4 processes"):
        _train.train(module, x1, x2, cfg=cfg, rng=np.random.default_rng(0), device=torch.device("cpu"))
    assert all(torch.equal(v, module.state_dict()[k]) for k, v in before.items())
