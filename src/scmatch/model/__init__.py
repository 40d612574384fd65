"""The metric model: torch modules, losses, training loop and the MatchModel estimator."""

from ._model import MatchModel

__all__ = ["MatchModel"]
