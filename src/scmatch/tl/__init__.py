"""Tools: matching cells across modalities."""

from ._match import match_modalities

__all__ = ["match_modalities"]
