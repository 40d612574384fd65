"""Experimental: research features whose own benchmarks say they do not beat the defaults (yet).

They are kept, tested and documented with their measured results, as ``scanpy.experimental`` and
``scvi.external`` keep theirs, but their interface may change without a deprecation period.

- :class:`DistanceMatchModel`: the matcher trained with a distance loss on the Wasserstein-1 or Euclidean
  distance instead of the cosine InfoNCE. On the real sets the distance losses did not beat InfoNCE
  (benchmarks/README.md, Matching, Distance losses).
- :class:`CoresetPlan`: a :class:`~scmatch.model.TrainingPlan` that trains each epoch on a weighted coreset of the
  reference pairs. On a 20,000-pair simulated reference neither coreset beat training on every pair for fewer
  epochs at the same fit time (benchmarks/README.md, Coreset).
- :func:`learn_metric`: deep metric learning within one modality from cell-type labels, optionally on a label
  coreset. One or two epochs over every cell did as well as a coreset in the same time (benchmarks/README.md,
  Label coreset).
"""

from ..model.train._coreset import CoresetPlan
from ._distance import DistanceMatchModel
from ._learn_metric import learn_metric

__all__ = ["CoresetPlan", "DistanceMatchModel", "learn_metric"]
