import json

import numpy as np
import pytest
import scipy.sparse as sp

from scmatch.metrics import match_score, top_k_accuracy
from scmatch.model import MatchModel, Search, TrainingPlan


def _fit(x1, x2, **plan):
    plan = TrainingPlan(**{"max_epochs": 40, "batch_size": 128, "progress_bar": False, **plan})
    return MatchModel(n_tokens=4, d_model=32).fit(x1, x2, plan=plan, random_state=0)


@pytest.fixture(scope="module")
def fitted(toy_pairs):
    x1, x2 = toy_pairs
    return _fit(x1[:400], x2[:400])


def test_learns_the_pairing(fitted, toy_pairs):
    x1, x2 = toy_pairs
    P = fitted.predict_proba(x1[400:], x2[400:], matching="sinkhorn")
    truth = np.arange(100)
    # chance is 0.01; the toy latent state is recoverable from both sides
    assert match_score(P, truth) > 0.2
    assert top_k_accuracy(P, truth, k=5) > 0.6
    np.testing.assert_allclose(np.asarray(P.sum(1)).ravel(), 1.0)
    assert fitted.history_["best_epoch"] >= 0
    assert len(fitted.history_["train_loss"]) == len(fitted.history_["val_score"])


def test_same_seed_same_result(toy_pairs):
    x1, x2 = toy_pairs
    a = _fit(x1[:200], x2[:200], max_epochs=5).predict_proba(x1[400:], x2[400:])
    b = _fit(x1[:200], x2[:200], max_epochs=5).predict_proba(x1[400:], x2[400:])
    assert (a != b).nnz == 0
    c = MatchModel(n_tokens=4, d_model=32)
    plan = TrainingPlan(max_epochs=5, progress_bar=False)
    c = c.fit(x1[:200], x2[:200], plan=plan, random_state=1).predict_proba(x1[400:], x2[400:])
    assert (a != c).nnz > 0


def test_sparse_input_equals_dense(toy_pairs):
    x1, x2 = toy_pairs
    x1 = np.maximum(x1, 0)  # some zeros to make sparsity meaningful
    # calibrated for the likelihood: the sharper match-score temperature would amplify the float32 rounding of
    # identical similarities past the tolerance (the similarities are compared on their own below)
    a = _fit(x1[:200], x2[:200], max_epochs=3, calibration="nll")
    b = _fit(sp.csr_matrix(x1[:200]), x2[:200], max_epochs=3)
    np.testing.assert_allclose(
        a.similarity(x1[400:], x2[400:]).toarray(), b.similarity(sp.csr_matrix(x1[400:]), x2[400:]).toarray(), atol=1e-5
    )
    b.temperature_ = a.temperature_
    dense = a.predict_proba(x1[400:], x2[400:])
    sparse = b.predict_proba(sp.csr_matrix(x1[400:]), x2[400:])
    np.testing.assert_allclose(dense.toarray(), sparse.toarray(), atol=1e-5)


def test_batches_restrict_matching(fitted, toy_pairs):
    x1, x2 = toy_pairs
    b = np.array(["a", "b"] * 50)
    P = fitted.predict_proba(x1[400:], x2[400:], batch1=b, batch2=b)
    rows, cols = P.nonzero()
    assert np.all(b[rows] == b[cols])
    np.testing.assert_allclose(np.asarray(P.sum(1)).ravel(), 1.0)
    with pytest.raises(ValueError, match="only in mod1: \\['c'\\]"):
        fitted.predict_proba(x1[400:], x2[400:], batch1=np.array(["c"] * 100), batch2=b)


def test_top_k_and_bounded_candidates(fitted, toy_pairs):
    x1, x2 = toy_pairs
    P = fitted.predict_proba(x1[400:], x2[400:], top_k=3)
    assert np.diff(P.indptr).max() <= 3
    # the candidate search keeps only n_candidates columns per row
    S = fitted.similarity(x1[400:], x2[400:], n_candidates=10)
    assert np.all(np.diff(S.indptr) == 10)


def test_cross_term_rerank_equals_full_batch_similarity(fitted, toy_pairs):
    import torch

    x1, x2 = toy_pairs
    S = fitted.similarity(x1[400:450], x2[400:450], n_candidates=50).toarray()
    with torch.no_grad():
        full = fitted.module_.batch_similarity(torch.tensor(x1[400:450]), torch.tensor(x2[400:450])).numpy()
    np.testing.assert_allclose(S, full, atol=1e-5)


def test_save_load_roundtrip(fitted, toy_pairs, tmp_path):
    x1, x2 = toy_pairs
    fitted.save(tmp_path / "m")
    loaded = MatchModel.load(tmp_path / "m", device="cpu")
    a, b = fitted.predict_proba(x1[400:], x2[400:]), loaded.predict_proba(x1[400:], x2[400:])
    assert (a != b).nnz == 0
    assert loaded.get_params()["model"] == {**fitted.get_params()["model"], "device": "cpu"}
    assert loaded.get_params()["model"]["alpha"] == fitted.alpha and loaded.plan == fitted.plan
    with pytest.raises(ValueError, match="overwrite=True"):
        fitted.save(tmp_path / "m")


def test_tampered_weights_refused(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    weights = tmp_path / "m" / "model.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match the checksum"):
        MatchModel.load(tmp_path / "m")


def test_corrupted_config_refused(fitted, tmp_path):
    from scmatch.model._manifest import write_manifest

    fitted.save(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json in .* is 9 bytes but the manifest records"):
        MatchModel.load(tmp_path / "m")
    write_manifest(tmp_path / "m", ["config.json", "model.pt"], version="test")  # the checksums now match
    with pytest.raises(ValueError, match="corrupted"):
        MatchModel.load(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({"format_version": 2}))
    write_manifest(tmp_path / "m", ["config.json", "model.pt"], version="test")
    with pytest.raises(ValueError, match="lacks required fields"):
        MatchModel.load(tmp_path / "m")


def test_wrong_features_refused(fitted, toy_pairs):
    x1, x2 = toy_pairs
    with pytest.raises(ValueError, match="has 19 features but the model was fitted on 20"):
        fitted.predict_proba(x1[:, :19], x2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss": "hinge"}, "Unknown loss 'hinge'; use one of"),
        ({"alpha": -1}, "alpha"),
        ({"dropout": 1.0}, r"`dropout` must be in \[0, 1\)"),
        ({"n_layers": -1}, "`n_layers` must be an integer >= 0"),
        ({"d_model": 30, "n_heads": 4}, r"`d_model` \(30\) must be divisible"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MatchModel(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 1}, "batch_size"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"max_epochs": 0}, "`max_epochs` must be an integer >= 1, got 0"),
        ({"lr": -1e-3}, r"`lr` must be a number > 0, got -0\.001"),
        ({"infonce_temperature": 0}, "`infonce_temperature` must be a number > 0"),
        ({"n_cross": 0}, "`n_cross` must be an integer >= 1"),
        ({"calibration": "ece"}, "Unknown calibration 'ece'"),
    ],
)
def test_bad_training_plan(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainingPlan(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "annoy"}, "Unknown search method 'annoy'"),
        ({"n_candidates": 0}, "`n_candidates` must be an integer >= 1"),
        ({"n_cross": 2.5}, "`n_cross` must be an integer >= 1"),
    ],
)
def test_bad_search(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Search(**kwargs)


def test_settings_are_grouped_by_role():
    model = MatchModel(n_models=2, d_model=32)
    params = model.get_params()
    assert set(params) == {"model", "plan", "search"}
    assert params["model"] == {
        "n_tokens": 4, "d_model": 32, "d_embed": 64, "n_heads": 4, "n_layers": 1, "dropout": 0.3, "alpha": 1.0,
        "loss": "infonce", "n_models": 2, "device": "auto",
    }  # fmt: skip
    assert TrainingPlan(**params["plan"]) == TrainingPlan() and Search(**params["search"]) == Search()
    assert MatchModel(**params["model"]).get_params() == params
    assert MatchModel().n_models == 3  # the default ensemble
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['dimensions'\\]"):
        MatchModel(dimensions=3)


def test_fit_uses_the_given_plan_and_keeps_it(toy_pairs):
    x1, x2 = toy_pairs
    model = MatchModel(n_models=1, n_tokens=2, d_model=16, d_embed=16)
    model.plan = TrainingPlan(max_epochs=2, progress_bar=False)
    model.fit(x1[:100], x2[:100])
    assert len(model.history_["epoch"]) == 2
    plan = TrainingPlan(max_epochs=1, progress_bar=False)
    model.fit(x1[:100], x2[:100], plan=plan)
    assert len(model.history_["epoch"]) == 1 and model.plan is plan
    with pytest.raises(TypeError, match=r"`plan` must be a scmatch\.model\.TrainingPlan, got dict"):
        model.fit(x1[:100], x2[:100], plan={"max_epochs": 1})


def test_search_at_matching(fitted, toy_pairs):
    x1, x2 = toy_pairs
    few = fitted.predict_proba(x1[400:], x2[400:], search=Search(n_candidates=5), top_k=5)
    assert np.diff(few.indptr).max() <= 5
    # the search given to predict_proba is used for that call only; the model keeps its own
    assert fitted.search == Search()
    np.testing.assert_allclose(
        fitted.predict_proba(x1[400:], x2[400:], search=Search()).toarray(),
        fitted.predict_proba(x1[400:], x2[400:]).toarray(),
    )
    with pytest.raises(TypeError, match=r"`search` must be a scmatch\.model\.Search, got str"):
        fitted.predict_proba(x1[400:], x2[400:], search="pynndescent")


def test_bad_inputs(toy_pairs):
    x1, x2 = toy_pairs
    model = MatchModel()
    with pytest.raises(ValueError, match="same number of cells"):
        model.fit(x1[:10], x2[:11])
    bad = x1[:50].copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.fit(bad, x2[:50])
    with pytest.raises(ValueError, match="not fitted"):
        model.predict_proba(x1, x2)


def test_divergence_is_reported(toy_pairs):
    from scmatch.model.train._loop import TrainingDivergedError

    x1, x2 = toy_pairs
    model = MatchModel()
    plan = TrainingPlan(max_epochs=2, lr=1e30, progress_bar=False, noise=0.0)
    with pytest.raises(TrainingDivergedError, match="Training diverged"):
        model.fit(x1[:100] * 1e30, x2[:100], plan=plan, random_state=0)
    assert model.module_ is None


def test_training_within_the_warm_up_keeps_the_last_epoch(toy_pairs):
    x1, x2 = toy_pairs
    model = _fit(x1[:200], x2[:200], max_epochs=3, warmup_epochs=10)
    assert model.history_["best_epoch"] == 2  # no early-stopping candidate yet: the last weights are kept
    assert len(model.history_["seconds"]) == len(model.history_["val_seconds"]) == 3
    assert model.history_["calibration_seconds"] > 0


def test_too_small_reference_refused_before_training(toy_pairs, monkeypatch):
    from scmatch.model import _fit

    def never(*args, **kwargs):
        raise AssertionError("nothing may be built or trained")

    monkeypatch.setattr(_fit, "train", never)
    monkeypatch.setattr(_fit, "CrossAttentionMatcher", never)
    x1, x2 = toy_pairs
    model = MatchModel()
    message = r"Too few paired reference cells \(49\): fitting needs at least 50 .*Add paired cells to the reference"
    with pytest.raises(ValueError, match=message):
        model.fit(x1[:49], x2[:49])
    with pytest.raises(ValueError, match=r"\(49\)"):  # also without a validation slice
        MatchModel().fit(x1[:49], x2[:49], plan=TrainingPlan(validation_fraction=0))
    assert model.module_ is None and model.history_ == {} and model.temperature_ == {}


@pytest.mark.parametrize(
    ("n", "fraction", "n_val"),
    [
        (50, 0.1, 10),  # the minimum reference: round(5) is raised to 10 held-out pairs
        (200, 0.01, 10),  # round(2) raised to 10
        (200, 0.1, 20),
        (100, 0.9, 60),  # 90 capped so that 40 pairs are left to train on
        (50, 0.0, 0),  # no validation: calibration on the training pairs
    ],
)
def test_validation_slice_size(toy_pairs, monkeypatch, n, fraction, n_val):
    from scmatch.model import _fit

    seen = {}
    original = _fit.train

    def spy(module, X1, X2, *, validation, **kwargs):
        seen.update(train=X1.shape[0], validation=0 if validation is None else validation[0].shape[0])
        return original(module, X1, X2, validation=validation, **kwargs)

    def calibrate(sim, *, calibration):
        seen.update(calibration=sim.shape[0])
        return {"softmax": 0.1, "sinkhorn": 0.1}

    monkeypatch.setattr(_fit, "train", spy)
    monkeypatch.setattr(_fit, "calibrate", calibrate)
    x1, x2 = toy_pairs
    plan = TrainingPlan(max_epochs=1, progress_bar=False, validation_fraction=fraction)
    MatchModel(n_tokens=2, d_model=16, d_embed=16).fit(x1[:n], x2[:n], plan=plan)
    assert seen == {"train": n - n_val, "validation": n_val, "calibration": n_val or n}


def test_grid_search_runs_each_stage_in_one_call():
    """The temperature search asks for every coarse point in one call and the best one's neighbours in a second,
    never twice for a point, and finds the minimum of a unimodal objective."""
    from scmatch.model.solvers._calibration import TEMPERATURE_GRID, grid_argmin

    calls = []

    def objective(values):
        calls.append(np.asarray(values))
        return list((np.log(values) - np.log(TEMPERATURE_GRID[21])) ** 2)

    assert grid_argmin(objective) == 21
    assert len(calls) == 2
    np.testing.assert_array_equal(calls[0], TEMPERATURE_GRID[0:45:4])  # 0, 4, ..., 44: the last point is one
    np.testing.assert_array_equal(calls[1], TEMPERATURE_GRID[[17, 18, 19, 21, 22, 23]])
