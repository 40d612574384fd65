"""The metric model: the MatchModel estimator, its training plan, its candidate search and its refinement.

Inside: ``nn`` (the torch modules, losses and metrics), ``train`` (the training loop, early stopping, pair
sampling, ensemble members in threads), ``solvers`` (candidate search, Sinkhorn, assignment, calibration, coreset
selection), and the estimator's own modules (fitting, refinement, persistence, checks of saved files).
"""

from ._model import MatchModel
from ._refine import Refinement, refine
from .solvers._search import Search
from .train._plan import TrainingPlan
from .train._self_supervised import SelfSupervision

__all__ = ["MatchModel", "Refinement", "Search", "SelfSupervision", "TrainingPlan", "refine"]
