"""DistanceMatchModel (experimental): the matcher trained with a distance loss on Wasserstein-1 or Euclidean."""

from __future__ import annotations

from ..model._legacy import Grouped
from ..model._model import MatchModel
from ..model.nn._losses import DISTANCE_LOSSES
from ..model.solvers._search import Search
from ..model.train._plan import TrainingPlan


class DistanceMatchModel(MatchModel):
    """A :class:`~scmatch.model.MatchModel` whose joint space is learned with a distance loss (experimental).

    The similarity is ``-d(i0, c0) + alpha * i1 . c1`` with ``d`` the Wasserstein-1 distance between the
    embeddings read as histograms ``softmax(z / histogram_temperature)`` over their ordered dimensions
    (:mod:`scmatch.model.nn._metric`), or the Euclidean distance; candidates are searched by that distance, so
    training, calibration and matching use the same metric. One network (no ensemble: members' distances cannot
    be averaged like cosine similarities) and the exact candidate search. Training, matching, saving and loading
    work as for :class:`~scmatch.model.MatchModel`.

    Experimental: on the real sets the distance losses did not beat the default InfoNCE (benchmarks/README.md,
    Matching, Distance losses: W1 ties the cosine InfoNCE on CITE, 0.061 against 0.062, and trails on totalVI,
    0.211 against 0.236), and tutorial 4 shows them side by side.

    Parameters
    ----------
    n_tokens, d_model, d_embed, n_heads, n_layers, dropout, alpha, device
        As for :class:`~scmatch.model.MatchModel`.
    loss
        ``"wtriplet"``, ``"wcontrastive"``, ``"winfonce"`` (on W1), ``"etriplet"`` or ``"econtrastive"`` (on the
        Euclidean distance). The triplet and contrastive losses use the plan's ``margin``, ``"winfonce"`` its
        ``infonce_temperature``.
    histogram_temperature
        Temperature of the softmax turning each unit embedding into a histogram (W1 losses).

    Examples
    --------
    >>> import numpy as np
    >>> from scmatch.experimental import DistanceMatchModel
    >>> from scmatch.model import TrainingPlan
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(200, 5))
    >>> x1, x2 = z @ rng.normal(size=(5, 20)), z @ rng.normal(size=(5, 15))
    >>> model = DistanceMatchModel(loss="wtriplet")
    >>> model.fit(x1[:150], x2[:150], plan=TrainingPlan(max_epochs=3, progress_bar=False)).predict_proba(
    ...     x1[150:], x2[150:]
    ... ).shape
    (50, 50)
    """

    def __init__(
        self,
        *,
        n_tokens: int = 4,
        d_model: int = 64,
        d_embed: int = 64,
        n_heads: int = 4,
        n_layers: int = 1,
        dropout: float = 0.3,
        alpha: float = 1.0,
        loss: str = "wtriplet",
        histogram_temperature: float = 0.1,
        device: str = "auto",
    ) -> None:
        if loss not in DISTANCE_LOSSES:
            raise ValueError(f"Unknown distance loss {loss!r}; use one of {DISTANCE_LOSSES}.")
        architecture = {"n_tokens": n_tokens, "d_model": d_model, "d_embed": d_embed, "n_heads": n_heads}
        architecture |= {"n_layers": n_layers, "dropout": dropout, "alpha": alpha}
        model = {**architecture, "loss": loss, "n_models": 1, "device": device}
        self._setup(Grouped(model, TrainingPlan(), Search(), histogram_temperature=histogram_temperature))
