"""Ensembles (``MatchModel(n_models=K)``): members averaged in similarity before the transport step."""

import copy
import dataclasses

import numpy as np
import pytest

from scmatch.model import MatchModel, Search, TrainingPlan
from scmatch.model._fit import combine_temperatures, member_split
from scmatch.model.nn._ensemble import EnsembleMatcher

ARCHITECTURE = {"n_tokens": 4, "d_model": 32}
PLAN = TrainingPlan(max_epochs=15, batch_size=64, progress_bar=False)


@pytest.fixture(scope="module")
def ensemble(toy_pairs):
    x1, x2 = toy_pairs
    return MatchModel(n_models=3, **ARCHITECTURE).fit(x1[:300], x2[:300], plan=PLAN, random_state=0)


def _member(model: MatchModel, k: int) -> MatchModel:
    """A single-network model holding member ``k`` of an ensemble (same settings and temperatures)."""
    single = copy.copy(model)
    single.module_ = model.module_.members[k]
    single.n_models = 1
    return single


def test_member_splits_are_disjoint_and_member_zero_is_the_single_split():
    order = np.random.default_rng(0).permutation(100)
    held = [member_split(order, n_val=10, member=k)[0] for k in range(3)]
    assert np.array_equal(held[0], np.sort(order[:10]))  # the slice a single model holds out
    assert all(len(h) == 10 for h in held)
    assert len(np.unique(np.concatenate(held))) == 30  # disjoint
    for k in range(3):
        val, train = member_split(order, n_val=10, member=k)
        assert len(train) == 90 and not set(val) & set(train)
    # more members than slices: the slices wrap around
    val, train = member_split(order, n_val=40, member=2)
    assert np.array_equal(val, np.sort(order[np.r_[80:100, 0:20]]))
    assert member_split(order, n_val=0, member=1)[0].size == 0


def test_similarity_is_the_mean_of_the_members(ensemble, toy_pairs):
    x1, x2 = toy_pairs
    q1, q2 = x1[300:400], x2[300:400]
    whole = copy.copy(ensemble)
    whole.search = Search(n_cross=None)  # every pair with its cross term: no candidate cut-off
    full = whole.similarity(q1, q2, n_candidates=100).toarray()
    members = [_member(whole, k).similarity(q1, q2, n_candidates=100).toarray() for k in range(3)]
    np.testing.assert_allclose(full, np.mean(members, axis=0), atol=2e-5)
    # the members differ (own seeds, own held-out slices), so the average is not any one of them
    assert np.abs(members[0] - members[1]).max() > 0.05
    # the joint-space embedding: unit length, K x d_embed wide, dot products = mean member cosine
    emb = ensemble.transform(q1, modality=1)
    assert emb.shape == (100, 3 * 64)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_temperatures_are_the_geometric_mean_of_the_members(ensemble):
    members = ensemble.history_["member_temperature_sinkhorn"]
    assert len(members) == 3 and ensemble.history_["n_models"] == 3
    assert ensemble.temperature_["sinkhorn"] == pytest.approx(float(np.exp(np.mean(np.log(members)))))
    assert combine_temperatures([{"a": 0.01}, {"a": 0.04}]) == {"a": pytest.approx(0.02)}


def test_step_budget_is_shared(toy_pairs):
    x1, x2 = toy_pairs
    plan = dataclasses.replace(PLAN, max_epochs=50, max_steps=30)
    model = MatchModel(n_models=3, **ARCHITECTURE).fit(x1[:300], x2[:300], plan=plan)
    single = MatchModel(n_models=1, **ARCHITECTURE).fit(x1[:300], x2[:300], plan=plan)
    steps = single.history_["steps_per_epoch"]  # 270 training pairs in minibatches of 64
    assert model.history_["steps_per_epoch"] == steps == 4
    assert single.history_["epoch_budget"] == 8  # ceil(30 / 4)
    assert model.history_["epoch_budget"] == 3  # each member gets 30 / 3 = 10 steps: ceil(10 / 4)


def test_save_load_roundtrip(ensemble, toy_pairs, tmp_path):
    x1, x2 = toy_pairs
    ensemble.save(tmp_path / "ens")
    loaded = MatchModel.load(tmp_path / "ens", device="cpu")
    assert isinstance(loaded.module_, EnsembleMatcher) and loaded.n_models == 3
    q1, q2 = x1[300:], x2[300:]
    assert (ensemble.predict_proba(q1, q2) != loaded.predict_proba(q1, q2)).nnz == 0
    # the shared projection for joint plots travels with the model
    np.testing.assert_array_equal(ensemble.joint_transform(q1, modality=1), loaded.joint_transform(q1, modality=1))
    assert loaded.joint_transform(q2, modality=2).shape == (200, 10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_models": 0}, "`n_models` must be an integer >= 1"),
        ({"n_models": 2.5}, "`n_models` must be an integer >= 1"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MatchModel(**kwargs)
