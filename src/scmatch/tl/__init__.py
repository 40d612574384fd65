"""Tools: matching cells across modalities and scoring a match."""

from ._coreset import select_coreset
from ._deprecated import learn_metric
from ._evaluate import evaluate_match, query_block
from ._match import match_modalities
from ._transfer import transfer_features, transfer_labels

__all__ = [
    "evaluate_match",
    "learn_metric",
    "match_modalities",
    "query_block",
    "select_coreset",
    "transfer_features",
    "transfer_labels",
]
