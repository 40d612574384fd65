"""The memory-bounded path (chunked candidate search, sparse support) against the exact dense computation."""

import copy

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from scmatch.model import MatchModel, Search, TrainingPlan
from scmatch.model.nn._metric import Metric
from scmatch.model.solvers import _search
from scmatch.model.solvers._matching import sinkhorn_dense
from scmatch.model.train import _stopping
from scmatch.model.train._objective import Objective


@pytest.fixture(scope="module")
def fitted(toy_pairs):
    x1, x2 = toy_pairs
    # one network at the likelihood-calibrated temperature: these tests compare algorithms at 1e-6, and the
    # float32 rounding of the similarities alone moves probabilities by up to 3e-5 at the sharper match-score
    # temperature, or 2e-6 when three members' similarities are summed in another order (measured); the ensemble's
    # similarity is checked against its members in test_ensemble.py
    plan = TrainingPlan(max_epochs=15, batch_size=128, progress_bar=False, calibration="nll")
    return MatchModel(n_models=1, n_tokens=4, d_model=32).fit(x1[:400], x2[:400], plan=plan, random_state=0)


def _dense_similarity(model, x1, x2):
    with torch.no_grad():
        return model.module_.batch_similarity(torch.tensor(x1), torch.tensor(x2)).double().numpy()


def test_chunking_does_not_change_the_result(fitted, toy_pairs, monkeypatch):
    x1, x2 = toy_pairs[0][400:], toy_pairs[1][400:]
    emb = [torch.as_tensor(fitted.transform(x, modality=m)) for m, x in ((1, x1), (2, x2))]
    tokens = [
        _search.encode(fitted.module_, x, modality=m, device=torch.device("cpu"), keep_tokens=True)[1]
        for m, x in ((1, x1), (2, x2))
    ]

    def candidates(rerank_chunk):
        return _search.candidate_similarities(
            fitted.module_, *emb, tokens1=tokens[0], tokens2=tokens[1], n_candidates=10, rerank_chunk=rerank_chunk
        )

    whole, P_whole = candidates(256), fitted.predict_proba(x1, x2, top_k=10)
    # 7 rows per candidate-search chunk and 3 rows per re-ranking chunk instead of all 100 at once
    monkeypatch.setattr(_search, "CHUNK_ENTRIES", 7 * x2.shape[0])
    chunked, P_chunked = candidates(3), fitted.predict_proba(x1, x2, top_k=10)
    for S in (whole, chunked):
        S.sort_indices()
    assert np.array_equal(whole.indices, chunked.indices)  # the same candidates
    np.testing.assert_allclose(chunked.data, whole.data, atol=1e-6)  # float32 sums in another blocking
    np.testing.assert_allclose(P_chunked.toarray(), P_whole.toarray(), atol=1e-5)


def test_full_support_equals_dense_sinkhorn(fitted, toy_pairs):
    """With every column a candidate, the bounded path is the exact path: POT's dense Sinkhorn on all pairs."""
    x1, x2 = toy_pairs[0][400:], toy_pairs[1][400:]
    model = copy.copy(fitted)
    model.search = Search(n_candidates=x2.shape[0], n_cross=None)  # every pair with its cross term
    P = model.predict_proba(x1, x2, matching="sinkhorn", top_k=x2.shape[0]).toarray()
    # the similarities: the candidate path (gathered per-cell projections) against the all-pairs attention, equal
    # up to float32 rounding; that rounding (1e-7) moves probabilities by up to 4e-6 at this temperature, so the
    # transport step is compared on the same similarities
    S = model.similarity(x1, x2).toarray()
    np.testing.assert_allclose(S, _dense_similarity(model, x1, x2), atol=1e-6)
    exact = sinkhorn_dense(S.astype(np.float64), temperature=model.temperature_["sinkhorn"])
    np.testing.assert_allclose(P, exact, atol=1e-6)


def test_top_k_softmax_equals_dense_softmax_truncated(fitted, toy_pairs):
    """Softmax on the k best candidates = the dense row softmax restricted to its k largest entries, renormalised."""
    x1, x2 = toy_pairs[0][400:], toy_pairs[1][400:]
    k = 10
    model = copy.copy(fitted)
    model.search = Search(n_cross=None)
    P = model.predict_proba(x1, x2, matching="softmax", top_k=k)
    S = _dense_similarity(model, x1, x2) / fitted.temperature_["softmax"]
    top = np.argsort(-S, axis=1, kind="stable")[:, :k]
    logits = np.take_along_axis(S, top, axis=1)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    exact = sp.csr_matrix((probs.ravel(), top.ravel(), np.arange(0, 100 * k + 1, k)), shape=P.shape).toarray()
    # n_candidates (100) >= k: the cross term re-ranks all 100 candidates, then the best k are kept
    np.testing.assert_allclose(P.toarray(), exact, atol=1e-5)  # float32 similarities, summed in another order


def test_restricted_reranking_is_its_definition(fitted, toy_pairs):
    """``Search(n_cross=r)``: the r best by i0 . c0 get the exact similarity, the rest the row's lowest cross term."""
    x1, x2 = toy_pairs[0][400:], toy_pairs[1][400:]
    model = copy.copy(fitted)
    model.search = Search(n_candidates=40, n_cross=15)
    S = model.similarity(x1, x2).toarray()
    with torch.no_grad():
        module = model.module_
        tok1, tok2 = module.tokens(torch.tensor(x1), 1), module.tokens(torch.tensor(x2), 2)
        base = (module.embed(tok1, 1) @ module.embed(tok2, 2).T).double().numpy()
        cross = module.cross_similarity(tok1, tok2).double().numpy()
    stored = S != 0
    assert np.all(stored.sum(1) == 40)
    top40 = np.argsort(-base, axis=1, kind="stable")[:, :40]
    assert np.array_equal(np.sort(top40, 1), np.sort(np.nonzero(stored)[1].reshape(100, 40), 1))
    top15 = top40[:, :15]
    rows = np.arange(100)[:, None]
    lowest = cross[rows, top15].min(1, keepdims=True)
    expected = base + model.alpha * lowest  # the 25 candidates left out of the re-ranking
    expected[rows, top15] = base[rows, top15] + model.alpha * cross[rows, top15]
    np.testing.assert_allclose(S[stored], expected[stored], atol=1e-5)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_cross_term_candidates_must_be_a_count(bad):
    with pytest.raises(ValueError, match="`n_cross` must be an integer >= 1"):
        Search(n_cross=bad)


def test_restricted_support_stays_close_to_the_exact_path(fitted, toy_pairs):
    """20 candidates of 100 columns: Sinkhorn on the restricted support vs on all pairs (the stated tolerance)."""
    x1, x2 = toy_pairs[0][400:], toy_pairs[1][400:]
    model = copy.copy(fitted)
    P = model.predict_proba(x1, x2, matching="sinkhorn", top_k=20, search=Search(n_candidates=20)).toarray()
    exact = sinkhorn_dense(_dense_similarity(model, x1, x2), temperature=model.temperature_["sinkhorn"])
    truth = np.arange(100)
    assert abs(P[truth, truth].mean() - exact[truth, truth].mean()) < 0.02
    assert np.mean(P.argmax(1) == exact.argmax(1)) >= 0.9


@pytest.mark.slow
def test_approximate_candidates_match_the_exact_ones(fitted, toy_pairs):
    """pynndescent candidates: recall of the exact top-20 and the resulting probabilities (stated tolerance)."""
    x1, x2 = toy_pairs[0][400:], toy_pairs[1][400:]
    exact, ann = copy.copy(fitted), copy.copy(fitted)
    exact.search, ann.search = Search(n_candidates=20), Search(method="pynndescent", n_candidates=20)
    S_exact, S_ann = exact.similarity(x1, x2), ann.similarity(x1, x2)
    recall = np.mean(
        [
            len(set(a) & set(b)) / 20
            for a, b in zip(np.split(S_exact.indices, 100), np.split(S_ann.indices, 100), strict=True)
        ]
    )
    assert recall >= 0.99
    P_exact = exact.predict_proba(x1, x2, top_k=20).toarray()
    P_ann = ann.predict_proba(x1, x2, top_k=20).toarray()
    assert np.abs(P_exact - P_ann).sum(1).max() <= 0.05  # total variation per row
    truth = np.arange(100)
    assert abs(P_exact[truth, truth].mean() - P_ann[truth, truth].mean()) <= 0.005


def test_candidate_validation_equals_all_pairs_when_every_cell_is_a_candidate(fitted, toy_pairs, monkeypatch):
    x1, x2 = toy_pairs[0][400:], toy_pairs[1][400:]
    cpu = torch.device("cpu")
    objective = Objective("infonce", Metric())
    exact = _stopping.validation_score(fitted.module_, x1, x2, cpu, objective=objective)  # every pair scored
    monkeypatch.setattr(_stopping, "VAL_CANDIDATES", 100)
    bounded = _stopping._candidate_mrr(fitted.module_, x1, x2, cpu, objective)
    assert bounded == pytest.approx(exact, abs=1e-6)
    # with 10 candidates a partner outside them counts as rank infinity: the score can only drop, a little (the
    # all-pairs score is a float32 mean of reciprocal ranks, the bounded one a float64 mean: equal ranks can differ
    # by float32 rounding, 1.2e-8 here)
    monkeypatch.setattr(_stopping, "VAL_CANDIDATES", 10)
    few = _stopping.validation_score(fitted.module_, x1, x2, cpu, objective=objective)
    assert exact - 0.05 < few <= exact + 1e-7
