"""The settings' former spellings still work until scmatch 0.2, each with a FutureWarning giving the new one."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import scmatch as scm
from scmatch.experimental import CoresetPlan, DistanceMatchModel
from scmatch.model import MatchModel, Search, TrainingPlan
from scmatch.model._legacy import MOVED, from_flat

LEGACY = Path(__file__).parents[1] / "data" / "legacy_model_v1"


@pytest.mark.parametrize(
    ("old", "group", "new"),
    [
        ({"epochs": 7}, "plan", {"max_epochs": 7}),
        ({"temperature": 0.2}, "plan", {"infonce_temperature": 0.2}),
        ({"cross_candidates": None}, "plan", {"n_cross": None}),
        (
            {"lr": 0.01, "batch_size": 64, "progress_bar": False},
            "plan",
            {"lr": 0.01, "batch_size": 64, "progress_bar": False},
        ),
        (
            {"validation_fraction": 0.2, "calibration": "nll"},
            "plan",
            {"validation_fraction": 0.2, "calibration": "nll"},
        ),
        ({"candidates": "pynndescent"}, "search", {"method": "pynndescent"}),
        ({"n_candidates": 20, "rerank_candidates": 10}, "search", {"n_candidates": 20, "n_cross": 10}),
    ],
)
def test_constructor_keywords_that_moved(old, group, new):
    with pytest.warns(FutureWarning, match=r"deprecated and will stop working in scmatch 0\.2") as record:
        model = MatchModel(n_models=1, **old)
    message = str(record[0].message)
    for name in old:
        assert f"`{name}`" in message
    for name, value in new.items():
        assert f"{name}={value!r}" in message
    expected = TrainingPlan(**new) if group == "plan" else Search(**new)
    assert getattr(model, group) == expected
    assert model.n_models == 1


def test_distance_loss_and_coreset_point_to_experimental():
    with pytest.warns(
        FutureWarning, match=r"scmatch\.experimental\.DistanceMatchModel\(loss='wtriplet', histogram_temperature=0\.2\)"
    ):
        model = MatchModel(loss="wtriplet", hist_temperature=0.2)
    assert model.metric.name == "wasserstein" and model.metric.histogram_temperature == 0.2 and model.n_models == 1
    assert model.get_params()["model"]["histogram_temperature"] == 0.2
    with pytest.warns(
        FutureWarning, match=r"scmatch\.experimental\.CoresetPlan\(coreset='random', coreset_fraction=0\.5\)"
    ):
        model = MatchModel(coreset="random", coreset_fraction=0.5)
    assert model.plan == CoresetPlan(coreset="random", coreset_fraction=0.5)
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match=r"averages i0 \. c0 similarities"):
        MatchModel(loss="etriplet", n_models=3)


def test_invalid_values_are_refused_under_their_new_name():
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="`max_epochs` must be an integer >= 1, got 0"):
        MatchModel(epochs=0)
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="Unknown coreset 'kmeans'"):
        MatchModel(coreset="kmeans")


def test_old_and_new_spellings_fit_the_same_model(toy_pairs):
    x1, x2 = toy_pairs
    with pytest.warns(FutureWarning):
        old = MatchModel(n_models=2, d_model=16, epochs=3, progress_bar=False, n_candidates=30, rerank_candidates=10)
    old.fit(x1[:120], x2[:120], random_state=2)
    new = MatchModel(n_models=2, d_model=16)
    new.search = Search(n_candidates=30, n_cross=10)
    new.fit(x1[:120], x2[:120], plan=TrainingPlan(max_epochs=3, progress_bar=False), random_state=2)
    assert old.get_params() == new.get_params() and old.temperature_ == new.temperature_
    assert (old.predict_proba(x1[120:], x2[120:]) != new.predict_proba(x1[120:], x2[120:])).nnz == 0


@pytest.mark.parametrize(
    ("name", "group", "new", "value"),
    [
        ("n_candidates", "search", "n_candidates", 12),
        ("rerank_candidates", "search", "n_cross", 5),
        ("candidates", "search", "method", "pynndescent"),
        ("calibration", "plan", "calibration", "nll"),
        ("validation_fraction", "plan", "validation_fraction", 0.3),
        ("progress_bar", "plan", "progress_bar", False),
    ],
)
def test_attributes_that_moved(name, group, new, value):
    model = MatchModel()
    with pytest.warns(FutureWarning, match=rf"`model\.{name}` is deprecated .* use `model\.{group}\.{new}`"):
        setattr(model, name, value)
    assert getattr(getattr(model, group), new) == value
    with pytest.warns(FutureWarning):
        assert getattr(model, name) == value


def test_flat_keys_of_get_params():
    params = MatchModel(n_models=2).get_params()
    with pytest.warns(
        FutureWarning, match=r"get_params\(\)\['epochs'\] is deprecated .* get_params\(\)\['plan'\]\['max_epochs'\]"
    ):
        assert params["epochs"] == 200
    with pytest.warns(FutureWarning):
        assert params.get("alpha") == 1.0 and params["n_models"] == 2
    assert params.get("nothing", "default") == "default"
    with pytest.raises(KeyError):
        params["nothing"]
    assert json.loads(json.dumps(params)) == {k: dict(v) for k, v in params.items()}  # plain JSON


def test_every_flat_name_round_trips():
    """config.json keeps the flat names: what any version saved is read back into the same groups."""
    model = MatchModel(n_models=2, d_model=32)
    model.plan = CoresetPlan(max_epochs=9, coreset="random", n_cross=None, calibration="nll")
    model.search = Search(method="pynndescent", n_cross=7)
    flat = model._flat_params()
    assert set(MOVED) <= set(flat)
    grouped = from_flat(flat)
    assert grouped.plan == model.plan and grouped.search == model.search
    assert grouped.model == {k: v for k, v in flat.items() if k not in MOVED}


def test_legacy_config_is_read_into_groups():
    """tests/data/legacy_model_v1 was saved by the code before the split (flat settings)."""
    config = json.loads((LEGACY / "config.json").read_text())
    grouped = from_flat(config["params"])
    assert grouped.plan == TrainingPlan(max_epochs=2, batch_size=64, progress_bar=False)
    assert grouped.search == Search()
    loaded = MatchModel.load(LEGACY, device="cpu")
    assert loaded.plan == grouped.plan and loaded.n_models == 3 and loaded.architecture["d_model"] == 16
    # older configs may lack settings added since: they keep their defaults
    partial = {
        k: v for k, v in config["params"].items() if k not in ("cross_candidates", "max_steps", "rerank_candidates")
    }
    assert from_flat(partial).plan == dataclasses.replace(grouped.plan, n_cross=32, max_steps=4000)


def test_learn_metric_moved_to_experimental():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    adata = scm.datasets.simulate_multiome(200, n_genes=50, n_peaks=60, random_state=0)["rna"]
    adata.obsm["X_pca"] = rng.normal(size=(200, 6)) + labels[:, None]
    adata.obs["ct"] = labels.astype(str)
    new = scm.experimental.learn_metric(
        adata, labels_key="ct", loss="wtriplet", histogram_temperature=0.3, epochs=2, progress_bar=False, copy=True
    )
    with pytest.warns(FutureWarning, match=r"scmatch\.experimental\.learn_metric"):
        old = scm.tl.learn_metric(
            adata, labels_key="ct", loss="wtriplet", hist_temperature=0.3, epochs=2, progress_bar=False, copy=True
        )
    np.testing.assert_array_equal(old.obsm["X_metric"], new.obsm["X_metric"])


def test_distance_model_is_the_new_spelling_of_a_distance_loss(toy_pairs):
    x1, x2 = toy_pairs
    plan = TrainingPlan(max_epochs=2, progress_bar=False)
    with pytest.warns(FutureWarning):
        old = MatchModel(loss="econtrastive", d_model=16)
    old.fit(x1[:100], x2[:100], plan=plan)
    new = DistanceMatchModel(loss="econtrastive", d_model=16).fit(x1[:100], x2[:100], plan=plan)
    assert (old.predict_proba(x1[100:150], x2[100:150]) != new.predict_proba(x1[100:150], x2[100:150])).nnz == 0
