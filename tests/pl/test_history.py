"""pl.training_history: the drawn curves are the recorded history."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import Polygon, Rectangle

import scmatch as scm
from scmatch.model import MatchModel

from .conftest import HISTORY


def test_from_mudata(matched):
    ax = scm.pl.training_history(matched, show=False)
    assert isinstance(ax, plt.Axes)
    loss_line = ax.get_lines()[0]
    np.testing.assert_array_equal(loss_line.get_xdata(), HISTORY["epoch"])
    np.testing.assert_array_equal(loss_line.get_ydata(), HISTORY["train_loss"])
    twin = ax.figure.axes[-1]
    assert twin is not ax and twin.get_shared_x_axes().joined(ax, twin)
    np.testing.assert_array_equal(twin.get_lines()[0].get_ydata(), HISTORY["val_score"])
    best = ax.get_lines()[1]  # the vertical line at the best epoch
    np.testing.assert_array_equal(best.get_xdata(), [3, 3])
    spans = [p for p in ax.patches if isinstance(p, (Rectangle, Polygon))]  # axvspan: a Polygon before matplotlib 3.9
    assert len(spans) == 1  # warm-up epochs 0-1
    corners = spans[0].get_patch_transform().transform(spans[0].get_path().vertices)
    np.testing.assert_allclose(corners[:, 0].max(), 1.5)
    assert ax.get_xlabel() == "epoch"
    assert ax.get_ylabel() == "training loss (triplet)"
    assert twin.get_ylabel() == "validation score\n(mean reciprocal rank of the true partner)"
    assert ax.get_title() == "training history (6 epochs)"
    texts = [t.get_text() for t in twin.get_legend().get_texts()]
    assert texts == [
        "warm-up (mean over negatives)",
        "training loss",
        "validation score",
        "best epoch 3: score 0.400, weights kept",
    ]


def test_moving_average_drawn_when_recorded():
    """A fit's history holds the moving average early stopping followed: drawn dotted on the score's axis."""
    smoothed = [0.1, 0.13, 0.166, 0.236, 0.27, 0.279]
    history = dict(HISTORY, val_smoothed=smoothed)
    ax = scm.pl.training_history(history, show=False)
    twin = ax.figure.axes[-1]
    score_line, average_line = twin.get_lines()
    np.testing.assert_array_equal(score_line.get_ydata(), HISTORY["val_score"])
    np.testing.assert_array_equal(average_line.get_ydata(), smoothed)
    assert average_line.get_linestyle() == ":"
    texts = [t.get_text() for t in twin.get_legend().get_texts()]
    assert "its moving average (early stopping)" in texts
    plt.close(ax.figure)


def test_from_a_dict_without_validation():
    history = {"epoch": [0, 1, 2], "train_loss": [1.0, 0.5, 0.25], "val_score": [], "best_epoch": 2}
    ax = scm.pl.training_history(history, show=False)
    assert len(ax.figure.axes) == 1  # no twin axis without scores
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training loss", "best epoch 2"]
    assert len(ax.patches) == 0  # warm-up unknown for a bare dict


def test_errors(matched):
    with pytest.raises(ValueError, match="key_added='other'"):
        scm.pl.training_history(matched, key="other")
    with pytest.raises(ValueError, match="one loss per epoch"):
        scm.pl.training_history({"epoch": [0, 1], "train_loss": [1.0]})
    with pytest.raises(ValueError, match="lacks 'train_loss'"):
        scm.pl.training_history({"epoch": [0, 1]})
    with pytest.raises(TypeError, match="history dict"):
        scm.pl.training_history([0.1, 0.2])
    with pytest.raises(ValueError, match="fit it first"):
        scm.pl.training_history(MatchModel())
    assert plt.get_fignums() == []
