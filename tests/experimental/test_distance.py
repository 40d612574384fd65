"""DistanceMatchModel: the matcher trained with a distance loss, scored, searched and saved under that distance."""

import numpy as np
import pytest
import torch

from scmatch.experimental import DistanceMatchModel
from scmatch.model import MatchModel, Search, TrainingPlan
from scmatch.model.nn._metric import euclidean_pairwise, w1_pairwise

PLAN = TrainingPlan(max_epochs=3, progress_bar=False, validation_fraction=0)


def _pairs():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(120, 4))
    return z @ rng.normal(size=(4, 12)), z @ rng.normal(size=(4, 9))


def test_w1_model_scores_by_w1():
    x1, x2 = _pairs()
    model = DistanceMatchModel(loss="wtriplet", alpha=0.0, d_model=16, n_heads=2).fit(x1[:100], x2[:100], plan=PLAN)
    S = model.similarity(x1[100:], x2[100:], n_candidates=20).toarray()
    e1 = torch.as_tensor(model.transform(x1[100:], modality=1))
    e2 = torch.as_tensor(model.transform(x2[100:], modality=2))
    np.testing.assert_allclose(S, -w1_pairwise(e1, e2, temperature=0.1).numpy(), atol=1e-5)
    P = model.predict_proba(x1[100:], x2[100:], top_k=5)
    np.testing.assert_allclose(np.asarray(P.sum(1)).ravel(), 1.0, atol=1e-5)


def test_euclidean_model_scores_by_the_euclidean_distance_and_its_histogram_temperature_is_unused():
    x1, x2 = _pairs()
    model = DistanceMatchModel(loss="etriplet", alpha=0.0, d_model=16, n_heads=2, histogram_temperature=0.5)
    model.fit(x1[:100], x2[:100], plan=PLAN)
    S = model.similarity(x1[100:], x2[100:], n_candidates=20).toarray()
    e1 = torch.as_tensor(model.transform(x1[100:], modality=1))
    e2 = torch.as_tensor(model.transform(x2[100:], modality=2))
    np.testing.assert_allclose(S, -euclidean_pairwise(e1, e2).numpy(), atol=1e-5)


def test_settings_and_save_load(tmp_path):
    x1, x2 = _pairs()
    model = DistanceMatchModel(loss="winfonce", d_model=16, n_heads=2, histogram_temperature=0.2)
    assert model.n_models == 1 and model.metric.name == "wasserstein"
    assert model.get_params()["model"] == {
        "n_tokens": 4, "d_model": 16, "d_embed": 64, "n_heads": 2, "n_layers": 1, "dropout": 0.3, "alpha": 1.0,
        "loss": "winfonce", "histogram_temperature": 0.2, "device": "auto",
    }  # fmt: skip
    model.fit(x1[:100], x2[:100], plan=PLAN)
    model.save(tmp_path / "m")
    loaded = DistanceMatchModel.load(tmp_path / "m", device="cpu")
    assert isinstance(loaded, DistanceMatchModel) and loaded.metric == model.metric
    np.testing.assert_allclose(
        loaded.predict_proba(x1[100:], x2[100:]).toarray(), model.predict_proba(x1[100:], x2[100:]).toarray()
    )
    # MatchModel.load reads it too, with its metric (config.json keeps the flat names of every version)
    assert MatchModel.load(tmp_path / "m", device="cpu").metric == model.metric


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss": "infonce"}, "Unknown distance loss 'infonce'"),
        ({"histogram_temperature": 0}, "`histogram_temperature` must be a number > 0"),
        ({"d_model": 30}, r"`d_model` \(30\) must be divisible"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DistanceMatchModel(**kwargs)


def test_approximate_search_is_refused_before_training():
    x1, x2 = _pairs()
    model = DistanceMatchModel()
    model.search = Search(method="pynndescent")
    with pytest.raises(ValueError, match=r"Search\(method='pynndescent'\) searches the i0 \. c0 \(cosine\) space"):
        model.fit(x1, x2, plan=PLAN)
    assert model.module_ is None
