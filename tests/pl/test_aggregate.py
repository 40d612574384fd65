"""The pure computations behind the plots, against hand-computed numbers and scmatch.metrics."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from scmatch.metrics import celltype_mass, top_k_accuracy
from scmatch.pl import celltype_confusion
from scmatch.pl._aggregate import partner_and_runner_up, top_k_curve

from .conftest import CONFUSION, P_QUERY, QUERY_TYPES


@pytest.mark.parametrize("to_matrix", [np.asarray, sp.csr_matrix])
def test_confusion_by_hand(to_matrix):
    conf = celltype_confusion(to_matrix(P_QUERY), QUERY_TYPES, QUERY_TYPES)
    assert conf.index.tolist() == conf.columns.tolist() == ["A", "B", "C"]
    np.testing.assert_allclose(conf.to_numpy(), CONFUSION, atol=1e-12)
    np.testing.assert_allclose(conf.sum(axis=1), 1.0)


def test_confusion_diagonal_is_celltype_mass():
    rng = np.random.default_rng(1)
    P = rng.random((40, 30))
    P /= P.sum(1, keepdims=True)
    rows, cols = rng.choice(list("xyz"), 40), rng.choice(list("xyzw"), 30)
    conf = celltype_confusion(P, rows, cols)
    counts = np.array([(rows == c).sum() for c in conf.index])
    weighted = np.nansum(np.diag(conf.to_numpy()) * counts) / counts.sum()
    assert weighted == pytest.approx(celltype_mass(P, rows, cols), rel=1e-12)
    assert np.isnan(conf.loc["w"]).all()  # no mod1 cell of type w: a row of NaN
    assert conf["w"].drop("w").notna().all()


def test_confusion_order_and_errors():
    conf = celltype_confusion(P_QUERY, QUERY_TYPES, QUERY_TYPES, order=["C", "A", "B"])
    np.testing.assert_allclose(conf.loc["C", "A"], 0.125)
    assert conf.index.tolist() == ["C", "A", "B"]
    with pytest.raises(ValueError, match="lacks labels"):
        celltype_confusion(P_QUERY, QUERY_TYPES, QUERY_TYPES, order=["A", "B"])
    with pytest.raises(ValueError, match="twice"):
        celltype_confusion(P_QUERY, QUERY_TYPES, QUERY_TYPES, order=["A", "B", "C", "A"])
    with pytest.raises(ValueError, match="label per mod1 cell"):
        celltype_confusion(P_QUERY, QUERY_TYPES[:5], QUERY_TYPES)


@pytest.mark.parametrize("to_matrix", [np.asarray, sp.csr_matrix])
def test_partner_and_runner_up_by_hand(to_matrix):
    partner, other = partner_and_runner_up(to_matrix(P_QUERY), np.arange(6))
    np.testing.assert_allclose(partner, [0.6, 0.5, 0.2, 0.35, 0.5, 1.0])
    np.testing.assert_allclose(other, [0.2, 0.3, 0.7, 0.45, 0.25, 0.0])


def test_runner_up_counts_unstored_zeros():
    P = sp.csr_matrix(np.array([[0.0, 1.0, 0.0], [0.2, 0.0, 0.8]]))
    partner, other = partner_and_runner_up(P, np.array([1, 2]))
    np.testing.assert_allclose(partner, [1.0, 0.8])
    np.testing.assert_allclose(other, [0.0, 0.2])
    with pytest.raises(ValueError, match="at least 2 columns"):
        partner_and_runner_up(np.ones((2, 1)), np.array([0, 0]))


def test_top_k_curve_by_hand_and_against_metrics():
    np.testing.assert_allclose(top_k_curve(P_QUERY, np.arange(6), [1, 2, 6]), [4 / 6, 1.0, 1.0])
    rng = np.random.default_rng(0)
    P = np.round(rng.random((50, 40)), 1)  # rounding makes many ties
    truth = rng.integers(0, 40, 50)
    ks = [1, 2, 5, 13, 40]
    expected = [top_k_accuracy(P, truth, k=k) for k in ks]
    np.testing.assert_allclose(top_k_curve(P, truth, ks), expected, rtol=1e-12)
    np.testing.assert_allclose(top_k_curve(sp.csr_matrix(P), truth, ks), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="positive integers"):
        top_k_curve(P, truth, [0, 1])
