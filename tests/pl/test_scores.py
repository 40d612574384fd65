"""pl.match_scores: the drawn curves and points are the hand-computed ranks and probabilities."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

import scmatch as scm

from .conftest import P_QUERY


def test_two_panels_without_labels(matched):
    fig = scm.pl.match_scores(matched, show=False)
    assert isinstance(fig, plt.Figure)
    topk, scatter = fig.axes
    curve = topk.get_lines()[0]
    np.testing.assert_array_equal(curve.get_xdata(), np.arange(1, 7))
    np.testing.assert_allclose(curve.get_ydata(), [4 / 6, 1, 1, 1, 1, 1])
    np.testing.assert_allclose(topk.get_lines()[1].get_ydata(), np.arange(1, 7) / 6)  # chance
    scores = scm.tl.evaluate_match(matched)
    assert curve.get_ydata()[0] == pytest.approx(scores["top1"])
    assert curve.get_ydata()[4] == pytest.approx(scores["top5"])
    assert [t.get_text() for t in topk.texts] == ["top1 = 0.67", "top5 = 1.00"]  # k=10 > 6 candidates
    first, not_first = scatter.collections[:2]
    # (best other, partner) of each cell; the partner of rna c8 is alone in its row: other = 0 -> floor 0.01/6
    floor = 0.01 / 6
    np.testing.assert_allclose(first.get_offsets(), [[0.2, 0.6], [0.3, 0.5], [0.25, 0.5], [floor, 1.0]])
    np.testing.assert_allclose(not_first.get_offsets(), [[0.7, 0.2], [0.45, 0.35]])
    assert [t.get_text() for t in scatter.get_legend().get_texts()][:2] == [
        "partner ranked first (67%)",
        "another cell ranked first (33%)",
    ]
    assert scatter.get_xlabel() == "probability of the best other candidate"
    assert scatter.get_ylabel() == "probability of the true partner"
    assert topk.get_xlabel() == "k (most probable candidates considered, of 6)"
    # the figure's texts hold its suptitle (Figure.get_suptitle needs matplotlib 3.8)
    assert "rna to adt match (match): 6 query rna cells, 6 adt candidates" in [t.get_text() for t in fig.texts]


def test_per_cell_type_panel(matched):
    fig = scm.pl.match_scores(matched, groupby="cell_type", show=False)
    assert len(fig.axes) == 3
    per_type = fig.axes[2]
    labels = [t.get_text() for t in per_type.get_yticklabels()]
    assert labels == ["A (n=2, top1 100%)", "B (n=2, top1 0%)", "C (n=2, top1 100%)"]
    # 3 types x (partner, best other) strips of 2 cells each
    strips = [c for c in per_type.collections if len(c.get_offsets())]
    assert [len(c.get_offsets()) for c in strips] == [2] * 6
    np.testing.assert_allclose(np.sort(strips[2].get_offsets()[:, 0]), [0.2, 0.35])  # partners of type B
    assert per_type.get_ylabel() == "rna query cells by cell_type"


def test_truth_is_required_without_shared_names(matched_unpaired):
    with pytest.raises(ValueError, match="pass `truth=`"):
        scm.pl.match_scores(matched_unpaired)
    # block columns follow the adt order (c8, c7, c5, c4, c2, c1): partner of row i is column 5 - i
    fig = scm.pl.match_scores(matched_unpaired, truth=np.arange(6)[::-1], show=False)
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata()[:2], [4 / 6, 1])
    with pytest.raises(ValueError, match="`truth` has 5 entries"):
        scm.pl.match_scores(matched_unpaired, truth=np.arange(5))


def test_errors(matched):
    with pytest.raises(ValueError, match="key_added='nope'"):
        scm.pl.match_scores(matched, key="nope")
    with pytest.raises(ValueError, match="not a column"):
        scm.pl.match_scores(matched, groupby="celltype")
    assert plt.get_fignums() == []
    assert P_QUERY.shape == (6, 6)


def test_evaluate_match_leaves_unassigned_cells_out(matched):
    # c8 (query, type C) becomes unassigned in both modalities: its row is left out, and the 0.25 that c7 places
    # on it counts against c7. Rows c1, c2 (A), c4, c5 (B), c7 (C): (0.8 + 0.8 + 0.9 + 0.8 + 0.5) / 5
    for mod in ("rna", "adt"):
        obs = matched[mod].obs
        obs["cell_type"] = obs["cell_type"].astype(str).where(obs.index != "c8", "Unassigned")
    scores = scm.tl.evaluate_match(matched, labels_key="cell_type", unassigned="Unassigned")
    assert scores["celltype_mass"] == pytest.approx(3.8 / 5)
    # a missing label counts as unassigned too, once `unassigned` is given
    for mod in ("rna", "adt"):
        matched[mod].obs["cell_type"] = matched[mod].obs["cell_type"].replace("Unassigned", np.nan)
    again = scm.tl.evaluate_match(matched, labels_key="cell_type", unassigned="Unassigned")
    assert again["celltype_mass"] == pytest.approx(3.8 / 5)
