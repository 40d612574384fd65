"""pl.embedding on the hand-made match: points, colours, legends and matched-pair lines."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_hex
from sklearn.decomposition import PCA

import scmatch as scm
from scmatch.pl._layout import joint_coordinates

from .conftest import IS_REF, NAMES, P_QUERY, QUERY


def _points(ax) -> np.ndarray:
    return np.vstack([c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)])


def _legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_pca_coordinates_agree_with_sklearn():
    X = np.random.default_rng(0).normal(size=(30, 6))
    xy, labels = joint_coordinates(X, basis="pca", random_state=0)
    ref = PCA(n_components=2).fit(X)
    np.testing.assert_allclose(np.abs(xy), np.abs(ref.transform(X)), atol=1e-10)
    assert labels == tuple(f"PC{k + 1} ({v:.0%} of variance)" for k, v in enumerate(ref.explained_variance_ratio_))
    with pytest.raises(ValueError, match="`basis` must be one of"):
        joint_coordinates(X, basis="tsne", random_state=0)


@pytest.mark.parametrize(("cells", "n_points"), [("all", 20), ("query", 12), ("reference", 8)])
def test_modality_colours_and_point_counts(matched, cells, n_points):
    ax = scm.pl.embedding(matched, basis="pca", cells=cells, show=False)
    assert isinstance(ax, plt.Axes)
    points = _points(ax)
    assert points.shape == (n_points, 2)
    colors = [to_hex(c) for c in ax.collections[0].get_facecolors()]
    assert colors.count("#1f77b4") == colors.count("#ff7f0e") == n_points // 2
    assert _legend_texts(ax) == [f"rna ({n_points // 2})", f"adt ({n_points // 2})"]
    assert ax.get_xlabel().startswith("PC1") and ax.get_ylabel().startswith("PC2")
    half = n_points // 2
    assert ax.get_title() == f"joint embedding by modality\n{cells} cells: {half} rna + {half} adt cells"


def test_points_are_the_embedding_projected(matched):
    ax = scm.pl.embedding(matched, basis="pca", show=False)
    rna, adt = matched["rna"].obsm["X_match"], matched["adt"].obsm["X_match"]
    expected, _ = joint_coordinates(np.vstack([rna, adt]), basis="pca", random_state=0)
    drawn = _points(ax)
    np.testing.assert_allclose(drawn[np.lexsort(drawn.T)], expected[np.lexsort(expected.T)])


def test_cell_type_colours_from_uns(matched):
    matched["rna"].uns["cell_type_colors"] = ["#ff0000", "#00ff00", "#0000ff"]
    ax = scm.pl.embedding(matched, color="cell_type", basis="pca", show=False)
    colors = [to_hex(c) for c in ax.collections[0].get_facecolors()]
    assert (colors.count("#ff0000"), colors.count("#00ff00"), colors.count("#0000ff")) == (6, 6, 8)
    assert _legend_texts(ax) == ["A (6)", "B (6)", "C (8)"]
    assert ax.get_legend().get_title().get_text() == "cell_type"


def test_confidence_is_the_largest_probability(matched):
    ax = scm.pl.embedding(matched, color="confidence", basis="pca", show=False)
    grey, coloured = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(grey.get_offsets()) == 8  # reference cells of both modalities
    expected = np.concatenate([P_QUERY.max(axis=1), P_QUERY.max(axis=0)])
    np.testing.assert_allclose(np.sort(coloured.get_array()), np.sort(expected))
    assert _legend_texts(ax) == ["reference cells, not matched (8)"]
    assert "largest match probability" in ax.figure.axes[-1].get_ylabel()


def test_numeric_column_gets_a_colourbar(matched):
    ax = scm.pl.embedding(matched, color="score", basis="pca", show=False)
    np.testing.assert_allclose(np.sort(ax.collections[0].get_array()), np.sort(np.tile(np.linspace(0, 1, 10), 2)))
    assert ax.figure.axes[-1].get_ylabel() == "score"
    assert ax.get_legend() is None


def test_pair_lines_join_top_matches(matched):
    ax = scm.pl.embedding(matched, basis="pca", cells="query", n_pairs=6, show=False)
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    # the top match is the partner for c1, c2, c7, c8, not for c4 (0.7 on c5) nor c5 (0.45 on c4)
    assert [len(c.get_segments()) for c in lines] == [4, 2]
    assert _legend_texts(ax)[-2:] == ["top match is the true partner (4)", "top match is the wrong partner (2)"]
    # a wrong line starts at rna c4 and ends at adt c5: check against the drawn points
    rna, adt = matched["rna"].obsm["X_match"], matched["adt"].obsm["X_match"]
    q = [NAMES.index(n) for n in QUERY]
    adt_q = [9 - i for i in q]  # adt lists cells in reverse order
    xy, _ = joint_coordinates(np.vstack([rna[q], adt[adt_q]]), basis="pca", random_state=0)  # order-free
    rna_xy = dict(zip(QUERY, xy[:6], strict=True))
    adt_xy = dict(zip(QUERY, xy[6:], strict=True))
    wrong = {tuple(np.round(np.ravel(s), 8)) for s in lines[1].get_segments()}
    assert tuple(np.round(np.r_[rna_xy["c4"], adt_xy["c5"]], 8)) in wrong
    assert tuple(np.round(np.r_[rna_xy["c5"], adt_xy["c4"]], 8)) in wrong


def test_pairs_without_pairing_are_grey(matched_unpaired):
    ax = scm.pl.embedding(matched_unpaired, basis="pca", n_pairs=3, show=False)
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines) == 1 and len(lines[0].get_segments()) == 3
    assert _legend_texts(ax)[-1] == "top match (3 pairs)"


def test_errors(matched):
    with pytest.raises(ValueError, match="`cells` must be one of"):
        scm.pl.embedding(matched, cells="some")
    with pytest.raises(ValueError, match="non-negative integer"):
        scm.pl.embedding(matched, n_pairs=-1)
    with pytest.raises(ValueError, match="use `cells='all'`"):
        scm.pl.embedding(matched, cells="reference", n_pairs=3)
    with pytest.raises(ValueError, match=r"not a column of mdata\['rna'\]\.obs"):
        scm.pl.embedding(matched, color="leiden")
    del matched["adt"].obsm["X_match"]
    with pytest.raises(ValueError, match=r"rerun scmatch\.tl\.match_modalities"):
        scm.pl.embedding(matched)
    assert plt.get_fignums() == []
    assert IS_REF.sum() == 4


def test_space_joint_draws_the_shared_projection(matched):
    rng = np.random.default_rng(1)
    for mod in ("rna", "adt"):
        matched[mod].obsm["X_match_joint"] = rng.normal(size=(matched[mod].n_obs, 3))
    # written by an older scmatch: no joint key, so the matching embedding is drawn (the test above)
    matched.uns["match"]["joint_embedding_key"] = "X_match_joint"
    for space, key in (("joint", "X_match_joint"), ("match", "X_match")):
        ax = scm.pl.embedding(matched, basis="pca", space=space, show=False)
        both = np.vstack([matched["rna"].obsm[key], matched["adt"].obsm[key]])
        expected, _ = joint_coordinates(both, basis="pca", random_state=0)
        drawn = _points(ax)
        np.testing.assert_allclose(drawn[np.lexsort(drawn.T)], expected[np.lexsort(expected.T)])
    with pytest.raises(ValueError, match="`space` must be one of"):
        scm.pl.embedding(matched, space="umap", show=False)
