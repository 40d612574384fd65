"""Coreset training (scmatch.experimental.CoresetPlan): selection on gradient proxies, weights, the training loop."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scmatch.experimental import CoresetPlan
from scmatch.model import MatchModel, TrainingPlan
from scmatch.model.nn._losses import LOSS_METRIC
from scmatch.model.nn._metric import Metric
from scmatch.model.nn._modules import CrossAttentionMatcher
from scmatch.model.solvers._coreset import select_coreset_indices
from scmatch.model.train import _loop
from scmatch.model.train._coreset import gradient_proxies
from scmatch.model.train._objective import Objective


def test_match_model_trains_on_a_coreset(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200, 4))
    x1, x2 = z @ rng.normal(size=(4, 12)), z @ rng.normal(size=(4, 9))
    plan = CoresetPlan(
        coreset="craig", coreset_fraction=0.5, coreset_every=2, max_epochs=4, validation_fraction=0, progress_bar=False
    )
    model = MatchModel(alpha=0.0, d_model=16, n_heads=2).fit(x1[:150], x2[:150], plan=plan)
    assert model.plan == plan and model.get_params()["plan"]["coreset"] == "craig"
    assert len(model.history_["train_loss"]) == 4
    P = model.predict_proba(x1[150:], x2[150:], top_k=5)
    np.testing.assert_allclose(np.asarray(P.sum(1)).ravel(), 1.0, atol=1e-5)
    model.save(tmp_path / "m")  # the plan is saved and read back
    assert MatchModel.load(tmp_path / "m", device="cpu").plan == plan


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"coreset": "kmeans"}, "Unknown coreset 'kmeans'"),
        ({"coreset_fraction": 0}, "coreset_fraction"),
        ({"coreset_every": -1}, "coreset_every"),
        ({"batch_size": 1}, "batch_size"),
    ],
)
def test_bad_coreset_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CoresetPlan(**kwargs)


# (the all-triplet distance losses are left out: there a matched pair still gets a gradient as another anchor's
# negative inside the margin, and W1 on one-hot embeddings saturates the histogram softmax)
@pytest.mark.parametrize("loss", ["infonce", "triplet", "econtrastive"])
def test_gradient_proxies_vanish_on_pairs_the_model_already_matches(loss):
    # 9 pairs on orthonormal embeddings (9 pairs with a batch of 4 leaves a lone pair, merged into a batch);
    # pairs 0 and 1 have swapped partners, the 7 others match exactly
    emb1 = torch.eye(9)
    emb2 = emb1[[1, 0, 2, 3, 4, 5, 6, 7, 8]]
    objective = Objective(loss, Metric(LOSS_METRIC[loss]))
    g = gradient_proxies(emb1, emb2, objective, batch_size=4, rng=np.random.default_rng(0))
    assert g.shape == (9, 18) and np.isfinite(g).all()
    norms = np.linalg.norm(g, axis=1)
    assert norms[:2].min() > 0.1
    assert norms[2:].max() < 0.01 * norms[:2].min()


def test_training_selection_weights_sum_to_n_and_multiply_user_weights():
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(300, 6)).astype(np.float32), rng.normal(size=(300, 5)).astype(np.float32)
    torch.manual_seed(0)
    module = CrossAttentionMatcher(6, 5, n_tokens=2, d_model=8, d_embed=8, n_heads=2, n_layers=1, alpha=0.0)
    plan = CoresetPlan(coreset="craig", coreset_fraction=0.2, batch_size=32)
    objective = Objective("infonce", Metric())

    def select(user):
        pairs = plan._pairs(300, sample_weight=user, objective=objective)
        return pairs._select(module, x1, x2, np.random.default_rng(1), torch.device("cpu"), first=False)

    idx, w = select(None)
    assert len(idx) == 60 and w.sum() == pytest.approx(300)
    user = np.linspace(0.5, 1.5, 300)
    idx_u, w_u = select(user)
    np.testing.assert_array_equal(idx_u, idx)
    np.testing.assert_allclose(w_u, w * user[idx], rtol=1e-6)


def test_craig_on_gradient_proxies_spends_its_budget_on_unmatched_pairs():
    # 600 pairs: the first 400 have identical embeddings in both modalities (matched), the last 200 have
    # unrelated partners; a random 20% subset would hold 1/3 unmatched pairs
    g = torch.Generator().manual_seed(0)
    emb1 = F.normalize(torch.randn(600, 32, generator=g), dim=1)
    emb2 = emb1.clone()
    emb2[400:] = F.normalize(torch.randn(200, 32, generator=g), dim=1)
    feats = gradient_proxies(emb1, emb2, Objective("infonce", Metric()), batch_size=128, rng=np.random.default_rng(0))
    idx, w = select_coreset_indices(feats, fraction=0.2, method="craig", random_state=0)
    share_unmatched = (idx >= 400).mean()
    assert share_unmatched > 0.75
    # the few matched representatives stand for many pairs each
    assert w[idx < 400].mean() > 3 * w[idx >= 400].mean()


@pytest.mark.parametrize(
    ("coreset", "fraction", "message"), [(None, 1.0, "200 pairs"), ("craig", 0.1, "coreset of 20")]
)
def test_data_parallel_refuses_too_few_minibatches_before_training(monkeypatch, coreset, fraction, message):
    # as if 4 processes shared the work: 200 pairs make 1 minibatch of 128, a 10% coreset 1 of 20
    monkeypatch.setattr(_loop, "_distributed", lambda: (0, 4))
    module = CrossAttentionMatcher(5, 4, n_tokens=2, d_model=8, d_embed=8, n_heads=2, alpha=0.0)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    x1, x2 = np.ones((200, 5), np.float32), np.ones((200, 4), np.float32)
    if coreset is None:
        plan = TrainingPlan(max_epochs=1, progress_bar=False)
    else:
        plan = CoresetPlan(coreset=coreset, coreset_fraction=fraction, max_epochs=1, progress_bar=False)
    with pytest.raises(ValueError, match=f"{message}.*too few for 4 processes"):
        _loop.train(
            module, x1, x2, plan=plan, objective=Objective("infonce", Metric()), rng=np.random.default_rng(0),
            device=torch.device("cpu"),
        )  # fmt: skip
    assert all(torch.equal(v, module.state_dict()[k]) for k, v in before.items())
