"""Plots of a match: the joint embedding, probability heatmaps, training history, match scores and confidence.

Every function follows scanpy's conventions: data first, keyword-only options, ``ax=`` to draw into an existing
Axes (not for grids), ``show=None`` (show only under an interactive backend), and the Axes (a Figure for grids) is
returned when not shown. Nothing is saved: call ``.figure.savefig(...)`` yourself. matplotlib is imported only
when a plot is drawn.
"""

from ._aggregate import celltype_confusion
from ._confidence import confidence
from ._embedding import embedding
from ._heatmap import match_heatmap
from ._history import training_history
from ._scores import match_scores

__all__ = ["celltype_confusion", "confidence", "embedding", "match_heatmap", "match_scores", "training_history"]
