"""pl.match_heatmap on the hand-made match: the drawn values are the hand-computed ones."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_hex

import scmatch as scm

from .conftest import CONFUSION, P_QUERY


def test_celltype_level_values_labels_and_title(matched):
    ax = scm.pl.match_heatmap(matched, groupby="cell_type", show=False)
    assert isinstance(ax, plt.Axes)
    np.testing.assert_allclose(ax.images[0].get_array().filled(np.nan), CONFUSION, atol=1e-12)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A (2)", "B (2)", "C (2)"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A (2)", "B (2)", "C (2)"]
    assert ax.get_xlabel() == "adt query cells: cell_type (number of cells)"
    assert ax.get_ylabel() == "rna query cells: cell_type (number of cells)"
    assert "same type: 0.84" in ax.get_title()  # (0.8 + 0.85 + 0.875) * 2 / 6
    texts = sorted(t.get_text() for t in ax.texts)  # annotated, as there are <= 12 types
    assert texts == sorted(f"{v:.2f}" for v in CONFUSION.ravel())
    colorbar = ax.figure.axes[-1]
    assert "rows sum to 1" in colorbar.get_ylabel()
    assert len(ax.patches) == 3  # the diagonal outlined


def test_celltype_level_draws_into_given_ax_without_annotation(matched):
    _, (left, right) = plt.subplots(1, 2)
    out = scm.pl.match_heatmap(matched, ax=right, annotate=False, show=False)
    assert out is right and len(left.images) == 0 and len(right.images) == 1
    assert len(right.texts) == 0


def test_cell_level_paired_draws_partners_on_the_diagonal(matched):
    ax = scm.pl.match_heatmap(matched, level="cell", n_cells=50, show=False)
    # all 6 query cells; rows sorted by type (already in type order), columns = partners in row order
    np.testing.assert_allclose(ax.images[0].get_array(), P_QUERY)
    assert "true match = diagonal" in ax.get_xlabel()
    assert "6 of 6 query cells" in ax.get_title()
    left, top = ax.child_axes
    assert [t.get_text() for t in left.get_yticklabels()] == ["A", "B", "C"]
    assert left.get_ylabel() == "rna query cells, by cell_type"
    np.testing.assert_array_equal(np.asarray(left.images[0].get_array()).ravel(), [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(np.asarray(top.images[0].get_array()).ravel(), [0, 0, 1, 1, 2, 2])


def test_cell_level_takes_scanpy_colours_from_uns(matched):
    matched["rna"].uns["cell_type_colors"] = ["#ff0000", "#00ff00", "#0000ff"]
    ax = scm.pl.match_heatmap(matched, level="cell", show=False)
    strip = ax.child_axes[0].images[0]
    assert [to_hex(c) for c in strip.cmap.colors] == ["#ff0000", "#00ff00", "#0000ff"]


def test_cell_level_sample_sorted_by_type(matched):
    ax = scm.pl.match_heatmap(matched, level="cell", n_cells=3, random_state=1, show=False)
    image = np.asarray(ax.images[0].get_array())
    assert image.shape == (3, 3)
    codes = np.asarray(ax.child_axes[0].images[0].get_array()).ravel()
    assert np.all(np.diff(codes) >= 0)
    # every drawn row is a row of P_QUERY restricted to its partners: the diagonal holds partner probabilities
    assert set(np.round(np.diag(image), 6)) <= set(np.round(np.diag(P_QUERY), 6))


def test_cell_level_unpaired_samples_columns(matched_unpaired):
    ax = scm.pl.match_heatmap(matched_unpaired, level="cell", show=False)
    assert ax.get_xlabel() == "adt query cells (sample), by cell_type"
    image = np.asarray(ax.images[0].get_array())
    # columns sorted by type: adt query cells in adt order are c8, c7 (C), c5, c4 (B), c2, c1 (A)
    expected = P_QUERY[:, [5, 4, 3, 2, 1, 0]][:, [4, 5, 2, 3, 0, 1]]
    np.testing.assert_allclose(image, expected)


def test_errors(matched):
    with pytest.raises(ValueError, match="`level` must be one of"):
        scm.pl.match_heatmap(matched, level="cells")
    with pytest.raises(ValueError, match=r"not a column of mdata\['rna'\]\.obs"):
        scm.pl.match_heatmap(matched, groupby="celltype")
    with pytest.raises(ValueError, match="key_added='other'"):
        scm.pl.match_heatmap(matched, key="other")
    with pytest.raises(ValueError, match="positive integer"):
        scm.pl.match_heatmap(matched, n_cells=0)
    with pytest.raises(TypeError, match="MuData"):
        scm.pl.match_heatmap(matched["rna"])
    assert plt.get_fignums() == []  # nothing drawn before the checks


def test_show_follows_the_backend(matched, monkeypatch):
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(True))
    assert scm.pl.match_heatmap(matched, show=None) is not None  # Agg: not shown, returned
    assert shown == []
    assert scm.pl.match_heatmap(matched, show=True) is None
    assert shown == [True]
    monkeypatch.setattr("matplotlib.get_backend", lambda: "QtAgg")
    assert scm.pl.match_heatmap(matched) is None
    assert shown == [True, True]
