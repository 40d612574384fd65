import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import scmatch as scm


@pytest.fixture
def transferred(matched):
    scm.tl.transfer_labels(matched, "cell_type", source="rna", target="adt", temperature=1)
    return matched


def test_reliability_diagram_draws_bins_and_diagonal(transferred):
    ax = scm.pl.confidence(transferred, mod="adt", truth="cell_type", n_bins=5, show=False)
    assert isinstance(ax, Axes)
    assert "ECE" in ax.get_title() and "6 cells" in ax.get_title()  # the 6 query cells; reference cells left out
    assert "if calibrated" in ax.get_title()  # beside it, the ECE a calibrated confidence shows on 6 cells
    assert len(ax.patches) == 5  # one bar per bin: the share of cells
    np.testing.assert_allclose(sum(p.get_height() for p in ax.patches), 1.0)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["share right", "calibrated"]
    x, y = ax.get_lines()[0].get_data()
    assert np.all((0 <= np.asarray(y)) & (np.asarray(y) <= 1)) and len(x) >= 1


def test_both_panels_make_a_figure_and_embedding_greys_cells_without_confidence(transferred):
    fig = scm.pl.confidence(transferred, mod="adt", truth="cell_type", basis="X_match", show=False)
    assert isinstance(fig, Figure)
    assert len([a for a in fig.axes if a.get_label() != "<colorbar>"]) == 2
    emb = fig.axes[1]
    assert emb.get_title() == "adt cells by cell_type_transferred_confidence"
    sizes = [len(c.get_offsets()) for c in emb.collections]
    assert sorted(sizes) == [4, 6]  # 4 reference cells grey, 6 query cells coloured
    fig.canvas.draw()
    assert np.asarray(fig.canvas.buffer_rgba()).std() > 0


def test_match_confidence_and_into_given_axes(transferred):
    transferred["adt"].obs["match_confidence"] = transferred["adt"].obs["cell_type_transferred_confidence"] / 2
    _, ax = plt.subplots()
    out = scm.pl.confidence(transferred, mod="adt", confidence="match_confidence", truth="cell_type", ax=ax, show=False)
    assert out is ax
    assert ax.get_xlabel().startswith("match_confidence")


def test_refusals(transferred):
    with pytest.raises(ValueError, match="Nothing to draw"):
        scm.pl.confidence(transferred, mod="adt", show=False)
    with pytest.raises(ValueError, match="not a column"):
        scm.pl.confidence(transferred, mod="adt", truth="nope", show=False)
    with pytest.raises(ValueError, match="obsm"):
        scm.pl.confidence(transferred, mod="adt", basis="X_umap", show=False)
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="one panel"):
        scm.pl.confidence(transferred, mod="adt", truth="cell_type", basis="X_match", ax=ax, show=False)
