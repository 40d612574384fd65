"""The metric model: torch modules, losses, training loop and the MatchModel estimator."""

from ._model import MatchModel
from ._refine import Refinement, refine

__all__ = ["MatchModel", "Refinement", "refine"]
