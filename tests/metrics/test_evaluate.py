from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from scmatch.metrics import evaluate, foscttm, match_score, top_k_accuracy, truth_from_solution


def test_evaluate_hand_computed():
    P = np.array([[0.6, 0.3, 0.1], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    out = evaluate(P, [0, 1, 2], labels_rows=["B", "T", "T"], labels_cols=["B", "B", "T"])
    assert out["match_score"] == pytest.approx(1.5 / 3)
    assert out["top1"] == pytest.approx(2 / 3)
    assert out["top5"] == out["top10"] == 1.0
    # rows: 0, 1/2 (0.5 > 0.3), 0; columns: 0, 1/4 (0.3 of row 0 ties: counts half), 0 -> (1/6 + 1/12) / 2
    assert out["foscttm"] == pytest.approx(1 / 8)
    assert out["celltype_mass"] == pytest.approx((0.9 + 0.2 + 0.6) / 3)
    assert out["valid_format"] is True
    assert set(out) == {"match_score", "top1", "top5", "top10", "foscttm", "celltype_mass", "valid_format"}


def test_evaluate_passes_unassigned_on():
    P = np.array([[0.6, 0.3, 0.1], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    out = evaluate(P, [0, 1, 2], labels_rows=["B", "T", "?"], labels_cols=["B", "?", "T"], unassigned="?")
    assert out["celltype_mass"] == pytest.approx((0.6 + 0.2) / 2)
    assert out["match_score"] == pytest.approx(1.5 / 3)  # the other metrics score every cell


def test_evaluate_random_guess_expectations():
    n = 50
    truth = np.random.default_rng(0).permutation(n)
    out = evaluate(sp.csr_matrix(np.full((n, n), 1 / n)), truth)
    assert out["match_score"] == pytest.approx(1 / n)
    assert out["top1"] == pytest.approx(1 / n)
    assert out["top5"] == pytest.approx(5 / n)
    assert out["top10"] == pytest.approx(10 / n)
    assert out["foscttm"] == pytest.approx(0.5)
    assert "celltype_mass" not in out


def test_evaluate_rectangular_and_invalid():
    P = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0]])
    out = evaluate(P, [0, 2], ks=(1, 2))
    assert np.isnan(out["foscttm"])
    assert out["valid_format"] is False
    assert out["match_score"] == pytest.approx(2.5)
    assert out["top1"] == out["top2"] == 1.0
    with pytest.raises(ValueError, match="both"):
        evaluate(P, [0, 2], labels_rows=["a", "b"])


def test_evaluate_real_solution(challenge_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the challenge files use an older on-disk format
        sol = ad.read_h5ad(challenge_dir / "multiome" / "test_sol.h5ad")
    truth = truth_from_solution(sol.X)
    assert truth.shape == (279,)
    np.testing.assert_array_equal(np.sort(truth), np.arange(279))
    perfect = evaluate(sol.X, truth)
    assert perfect == {"match_score": 1.0, "top1": 1.0, "top5": 1.0, "top10": 1.0, "foscttm": 0.0, "valid_format": True}
    # a prediction that puts all mass on a wrong column of a permutation
    wrong = sp.csr_matrix(sol.X)[:, np.roll(np.arange(279), 1)]
    assert match_score(wrong, truth) == 0.0
    assert top_k_accuracy(wrong, truth, k=1) == 0.0
    # the partner is an unstored zero tied with 277 others, one candidate (the 1) above it
    assert foscttm(wrong, truth) == pytest.approx((1 + 277 / 2) / 278)
