from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from scmatch.metrics import celltype_mass, match_score, top_k_accuracy

P3 = np.array([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.2, 0.6]])


def _random_sparse_P(n, m, nnz_per_row, seed):
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), nnz_per_row)
    cols = np.concatenate([rng.choice(m, nnz_per_row, replace=False) for _ in range(n)])
    vals = rng.random(rows.size)
    P = sp.csr_matrix((vals, (rows, cols)), shape=(n, m))
    return sp.csr_matrix(P.multiply(1 / P.sum(axis=1)))


def test_match_score_hand_computed():
    assert match_score(P3, [0, 1, 2]) == pytest.approx((0.5 + 1.0 + 0.6) / 3)
    assert match_score(P3, np.array([1, 1, 0])) == pytest.approx((0.5 + 1.0 + 0.2) / 3)
    assert match_score(sp.csr_matrix(P3), [2, 0, 1]) == pytest.approx(0.2 / 3)


def test_match_score_uniform_is_one_over_n():
    n = 37
    truth = np.random.default_rng(0).permutation(n)
    assert match_score(np.full((n, n), 1 / n), truth) == pytest.approx(1 / n)


def test_sparse_equals_dense():
    P = _random_sparse_P(60, 80, 7, seed=1)
    truth = np.random.default_rng(2).integers(0, 80, 60)
    truth[:20] = P[:20].argmax(axis=1).A1  # some hits so the scores are not all zero
    for fn in (match_score, lambda P, t: top_k_accuracy(P, t, k=5)):
        dense, sparse = fn(P.toarray(), truth), fn(P, truth)
        assert sparse == pytest.approx(dense, abs=1e-12)
    assert match_score(P, truth) > 0.05
    assert match_score(P.tocsc(), truth) == pytest.approx(match_score(P, truth))


def test_top_k_hand_computed():
    P = np.array([[0.6, 0.3, 0.1], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    truth = [0, 1, 2]
    assert top_k_accuracy(P, truth, k=1) == pytest.approx(2 / 3)
    assert top_k_accuracy(P, truth, k=2) == 1.0
    assert top_k_accuracy(P, [2, 2, 0], k=1) == 0.0
    # row 0 partner (0.1) is last; row 1 partner 0.2 is last; row 2 partner 0.2 is tied second with 0.2
    assert top_k_accuracy(P, [2, 2, 0], k=2, ties="expected") == pytest.approx((0 + 0 + 0.5) / 3)
    assert top_k_accuracy(P, [2, 2, 0], k=2, ties="optimistic") == pytest.approx(1 / 3)
    assert top_k_accuracy(P, [2, 2, 0], k=2, ties="pessimistic") == 0.0


def test_top_k_uniform_rows_by_tie_rule():
    n = 20
    P = np.full((n, n), 1 / n)
    truth = np.arange(n)
    assert top_k_accuracy(P, truth, k=1) == pytest.approx(1 / n)
    assert top_k_accuracy(P, truth, k=5) == pytest.approx(5 / n)
    assert top_k_accuracy(P, truth, k=1, ties="optimistic") == 1.0
    assert top_k_accuracy(P, truth, k=5, ties="pessimistic") == 0.0


def test_top_k_sparse_partner_not_stored():
    # partner (column 4) is unstored: 2 larger entries, ties with the 2 other zeros
    P = sp.csr_matrix(np.array([[0.5, 0.5, 0.0, 0.0, 0.0]]))
    assert top_k_accuracy(P, [4], k=2) == 0.0
    assert top_k_accuracy(P, [4], k=3) == pytest.approx(1 / 3)
    assert top_k_accuracy(P, [4], k=5) == 1.0
    assert top_k_accuracy(P, [4], k=3, ties="optimistic") == 1.0


def test_metrics_invariant_to_consistent_permutation():
    rng = np.random.default_rng(3)
    n = 30
    P = rng.random((n, n))
    P /= P.sum(1, keepdims=True)
    truth = rng.permutation(n)
    labels = rng.choice(["B", "T", "NK"], n)
    labels_cols = labels[np.argsort(truth)]  # column j carries the label of its partner row
    r, c = rng.permutation(n), rng.permutation(n)
    c_inv = np.argsort(c)
    P2, truth2 = P[r][:, c], c_inv[truth[r]]
    assert match_score(P2, truth2) == pytest.approx(match_score(P, truth))
    for k in (1, 3):
        assert top_k_accuracy(P2, truth2, k=k) == pytest.approx(top_k_accuracy(P, truth, k=k))
    assert celltype_mass(P2, labels[r], labels_cols[c]) == pytest.approx(celltype_mass(P, labels, labels_cols))


def test_celltype_mass_hand_computed():
    P = np.array([[0.7, 0.3, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    assert celltype_mass(P, ["B", "B", "T"], ["B", "T", "T"]) == pytest.approx((0.7 + 0.5 + 1.0) / 3)
    assert celltype_mass(sp.csr_matrix(P), ["B", "B", "T"], ["B", "T", "T"]) == pytest.approx(2.2 / 3)
    # labels with no counterpart on the other side get no mass
    assert celltype_mass(P, ["NK", "B", "NK"], ["B", "T", "T"]) == pytest.approx(0.5 / 3)
    # integer and string labels compare as strings
    assert celltype_mass(P, [1, 1, 2], np.array(["1", "2", "2"])) == pytest.approx(2.2 / 3)


def test_celltype_mass_leaves_unassigned_cells_out():
    P = np.array([[0.7, 0.3, 0.0], [0.5, 0.5, 0.0], [0.0, 0.4, 0.6]])
    rows, cols = ["B", "?", "T"], ["B", "T", "?"]
    # row 1 is left out; row 2's 0.6 on the unassigned column counts against it: (0.7 + 0.4) / 2
    assert celltype_mass(P, rows, cols, unassigned="?") == pytest.approx(1.1 / 2)
    assert celltype_mass(sp.csr_matrix(P), rows, cols, unassigned=["?"]) == pytest.approx(1.1 / 2)
    # missing labels count as unassigned once `unassigned` is given
    assert celltype_mass(P, ["B", None, "T"], ["B", "T", np.nan], unassigned="?") == pytest.approx(1.1 / 2)
    # several unassigned labels; without it, "?" is a cell type of its own: (0.7 + 0.5 + 0.4) / 3
    assert celltype_mass(P, ["B", "?", "T"], ["B", "doublet", "?"], unassigned=("?", "doublet")) == pytest.approx(
        0.7 / 2
    )
    assert celltype_mass(P, rows, cols) == pytest.approx((0.7 + 0.0 + 0.4) / 3)
    # a label that no cell carries changes nothing
    assert celltype_mass(P, ["B", "B", "T"], ["B", "T", "T"], unassigned="none") == pytest.approx(
        celltype_mass(P, ["B", "B", "T"], ["B", "T", "T"])
    )


def test_celltype_mass_unassigned_equals_the_masked_computation():
    rng = np.random.default_rng(7)
    labels_rows, labels_cols = rng.choice(list("abcu"), 60), rng.choice(list("abcu"), 50)
    P = _random_sparse_P(60, 50, 8, seed=8).toarray()
    typed_rows, typed_cols = labels_rows != "u", labels_cols != "u"
    same = (labels_rows[:, None] == labels_cols[None, :]) & typed_cols[None, :]
    expected = (P * same).sum(1)[typed_rows].mean()
    assert celltype_mass(P, labels_rows, labels_cols, unassigned="u") == pytest.approx(expected, rel=1e-12)


def test_celltype_mass_uniform_and_sparse_equals_dense():
    rng = np.random.default_rng(4)
    labels_rows, labels_cols = rng.choice(list("abc"), 50), rng.choice(list("abc"), 40)
    uniform = np.full((50, 40), 1 / 40)
    expected = np.mean([(labels_cols == lab).mean() for lab in labels_rows])
    assert celltype_mass(uniform, labels_rows, labels_cols) == pytest.approx(expected)
    P = _random_sparse_P(50, 40, 6, seed=5)
    assert celltype_mass(P, labels_rows, labels_cols) == pytest.approx(
        celltype_mass(P.toarray(), labels_rows, labels_cols)
    )


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: match_score(P3, [0, 1]), ValueError, "3 rows"),
        (lambda: match_score(P3, [0, 1, 3]), ValueError, "outside"),
        (lambda: match_score(P3, [[0, 1, 2]]), ValueError, "1-D"),
        (lambda: match_score(P3, [0.5, 1, 2]), TypeError, "integer"),
        (lambda: match_score(np.array([0.1, 0.9]), [0]), ValueError, "2-D"),
        (lambda: match_score(np.array([[np.nan, 1.0]]), [0]), ValueError, "NaN"),
        (lambda: top_k_accuracy(P3, [0, 1, 2], k=0), ValueError, "positive integer"),
        (lambda: top_k_accuracy(P3, [0, 1, 2], ties="random"), ValueError, "ties"),
        (lambda: celltype_mass(P3, ["a", "b"], ["a", "b", "c"]), ValueError, "one label per"),
        (lambda: celltype_mass(P3, ["a", None, "b"], ["a", "b", "c"]), ValueError, "missing"),
        (lambda: celltype_mass(P3, ["a", None, "b"], ["a", "b", "c"]), ValueError, "unassigned="),
        (lambda: celltype_mass(P3, ["u", "u", None], ["a", "b", "c"], unassigned="u"), ValueError, "nothing to score"),
    ],
)
def test_bad_input_raises(call, error, match):
    with pytest.raises(error, match=match):
        call()
