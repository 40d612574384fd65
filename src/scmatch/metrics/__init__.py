"""Metrics of a cross-modal matching: pure functions of arrays (dense or sparse), no AnnData.

``P`` is an ``n x m`` matrix of match probabilities or scores (rows = mod1
cells, columns = mod2 cells) and ``truth`` an integer array with ``truth[i]``
the column of row ``i``'s true partner (:func:`truth_from_solution` builds it
from a challenge ``*_sol.h5ad`` matrix). Definitions follow BENCHMARKS.md.
"""

from scmatch.metrics._calibration import calibration_bins, ece_under_calibration, expected_calibration_error
from scmatch.metrics._evaluate import evaluate
from scmatch.metrics._format import check_challenge_format, is_challenge_format
from scmatch.metrics._foscttm import foscttm
from scmatch.metrics._mixing import celltype_knn_purity, modality_mixing
from scmatch.metrics._scores import celltype_mass, match_score, top_k_accuracy
from scmatch.metrics._truth import truth_from_solution

__all__ = [
    "calibration_bins",
    "celltype_knn_purity",
    "celltype_mass",
    "check_challenge_format",
    "ece_under_calibration",
    "evaluate",
    "expected_calibration_error",
    "foscttm",
    "is_challenge_format",
    "match_score",
    "modality_mixing",
    "top_k_accuracy",
    "truth_from_solution",
]
