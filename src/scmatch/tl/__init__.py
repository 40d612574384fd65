"""Tools: matching cells across modalities and scoring a match."""

from ._evaluate import evaluate_match, query_block
from ._match import match_modalities

__all__ = ["evaluate_match", "match_modalities", "query_block"]
