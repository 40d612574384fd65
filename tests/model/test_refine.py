"""Transductive refinement (scmatch.model.refine): pseudo-pairs, determinism, the model left as it was."""

import copy

import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from anndata import AnnData

import scmatch as scm
from scmatch.experimental import CoresetPlan
from scmatch.model import MatchModel, Refinement, TrainingPlan, refine
from scmatch.model._refine import _refinement_plan, as_refinement, mutual_best

FAST = TrainingPlan(max_epochs=15, progress_bar=False)


def _fast() -> MatchModel:
    model = MatchModel(d_model=32)
    model.plan = FAST
    return model


def test_mutual_best_by_hand():
    P = sp.csr_matrix(
        np.array(
            [
                [0.7, 0.2, 0.1],  # best column 0, whose best row is 0: mutual
                [0.6, 0.3, 0.1],  # best column 0, whose best row is 0: not mutual
                [0.0, 0.45, 0.55],  # best column 2, whose best row is 2: mutual, but below 0.6
            ]
        )
    )
    rows, cols = mutual_best(P, min_probability=0.5)
    np.testing.assert_array_equal(rows, [0, 2])
    np.testing.assert_array_equal(cols, [0, 2])
    rows, cols = mutual_best(P, min_probability=0.6)
    np.testing.assert_array_equal(rows, [0])
    rows, _ = mutual_best(sp.csr_matrix((2, 2)), min_probability=0.5)
    assert rows.size == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"rounds": 0}, "rounds"),
        ({"lr_factor": 0.0}, "lr_factor"),
        ({"lr_factor": 1.5}, "lr_factor"),
        ({"min_probability": 0.0}, "min_probability"),
    ],
)
def test_settings_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Refinement(**kwargs)


def test_as_refinement():
    assert as_refinement(False) is None and as_refinement(None) is None
    assert as_refinement(True) == Refinement()
    settings = Refinement(steps=10)
    assert as_refinement(settings) is settings
    with pytest.raises(TypeError, match="Refinement"):
        as_refinement("yes")


@pytest.fixture(scope="module")
def fitted(toy_pairs):
    x1, x2 = toy_pairs
    model = _fast().fit(x1[:400], x2[:400], random_state=0)
    return model, (x1[:400], x2[:400]), (x1[400:], x2[400:])


def test_refine_copies_and_is_deterministic(fitted):
    model, ref, query = fitted
    before = copy.deepcopy(model.module_.state_dict())
    settings = Refinement(steps=60, pseudo_pairs=True)
    refined, P, info = refine(model, ref, query, settings=settings, predict={"top_k": 50}, random_state=1)
    _, P_again, _ = refine(model, ref, query, settings=settings, predict={"top_k": 50}, random_state=1)
    _, P_other, _ = refine(model, ref, query, settings=settings, predict={"top_k": 50}, random_state=2)
    # the model given keeps its reference weights
    for name, tensor in model.module_.state_dict().items():
        torch.testing.assert_close(tensor, before[name])
    assert refined is not model
    np.testing.assert_array_equal(P.toarray(), P_again.toarray())  # per seed
    assert np.abs(P.toarray() - P_other.toarray()).max() > 0  # another seed, other weights
    assert P.shape == (100, 100)
    np.testing.assert_allclose(np.asarray(P.sum(1)).ravel(), 1.0, rtol=1e-5)
    assert info["settings"]["pseudo_pairs"] is True
    assert info["n_pseudo_pairs"].shape == (1,) and info["seconds"].shape == (1,)
    # on this easy toy most query cells are a confident mutual best match of their own partner
    rows, cols = mutual_best(model.predict_proba(*query, top_k=50), min_probability=0.5)
    assert info["n_pseudo_pairs"][0] == rows.size >= 50
    assert np.mean(rows == cols) >= 0.9


def test_refine_without_pseudo_pairs_keeps_quality(fitted):
    model, ref, query = fitted
    truth = np.arange(100)
    P0 = model.predict_proba(*query, top_k=50)
    _, P, info = refine(model, ref, query, settings=Refinement(steps=60, rounds=2), predict={"top_k": 50})
    assert list(info["n_pseudo_pairs"]) == [0, 0]
    score0 = scm.metrics.match_score(P0, truth)
    assert scm.metrics.match_score(P, truth) >= 0.9 * score0 > 0.5


def _toy(pairs, n_ref: int) -> md.MuData:
    x1, x2 = pairs[0][:300], pairs[1][:300]
    names = [f"cell{i}" for i in range(300)]
    obs = pd.DataFrame({"is_reference": np.arange(300) < n_ref}, index=names)
    a1, a2 = AnnData(obs=obs.copy(), obsm={"X_pca": x1}), AnnData(obs=obs.copy(), obsm={"X_lsi": x2})
    return md.MuData({"rna": a1, "atac": a2})


def test_match_modalities_records_refinement(toy_pairs):
    mdata = _toy(toy_pairs, 200)
    model = _fast()
    scm.tl.match_modalities(mdata, reference="is_reference", model=model, refine=Refinement(steps=40))
    info = mdata.uns["match"]["refinement"]
    assert info["settings"]["steps"] == 40 and list(info["n_pseudo_pairs"]) == [0]
    # the written probabilities and embeddings come from the refined copy, not from the model given
    P_model = model.predict_proba(mdata["rna"].obsm["X_pca"][200:], mdata["atac"].obsm["X_lsi"][200:], top_k=100)
    P_written = mdata.obsp["match_probabilities"][200:, 200:]
    assert np.abs(P_written.toarray() - P_model.toarray()).max() > 0
    emb = model.transform(mdata["rna"].obsm["X_pca"], modality=1)
    assert np.abs(mdata["rna"].obsm["X_match"] - emb).max() > 0


def test_match_modalities_refine_needs_reference_pairs(toy_pairs):
    fitted = _fast()
    scm.tl.match_modalities(_toy(toy_pairs, 200), reference="is_reference", model=fitted)
    mdata = _toy(toy_pairs, 0)  # no cell marked as reference: nothing to fine-tune on
    before = mdata.copy()
    with pytest.raises(ValueError, match="reference pairs"):
        scm.tl.match_modalities(mdata, reference="is_reference", model=fitted, refine=True)
    assert "match" not in mdata.uns and not mdata.obsp
    assert set(mdata["rna"].obsm) == set(before["rna"].obsm)


def test_refinement_plan_from_the_model_plan():
    """Every pair (a coreset plan becomes a plain one), a lower rate, no warm-up, the steps shared, no bar."""
    plan = CoresetPlan(lr=2e-3, warmup_epochs=5, batch_size=64, coreset="random")
    refined = _refinement_plan(plan, Refinement(steps=100, lr_factor=0.5), n_members=3)
    assert type(refined) is TrainingPlan
    assert (refined.lr, refined.max_steps, refined.warmup_epochs, refined.progress_bar) == (1e-3, 34, 0, False)
    assert refined.batch_size == 64 and refined.max_epochs == plan.max_epochs
