"""The training plan: how a :class:`~scmatch.model.MatchModel` is trained, early-stopped and calibrated."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._numbers import check_choice, check_numbers
from ..solvers._calibration import CALIBRATIONS
from ._sampling import Pairs


@dataclass(frozen=True, kw_only=True)
class TrainingPlan:
    """How :meth:`MatchModel.fit <scmatch.model.MatchModel.fit>` trains: optimisation, early stopping, calibration.

    Pass it to ``fit(..., plan=...)``, or set ``model.plan`` for :func:`scmatch.tl.match_modalities`; a fitted
    model keeps the plan it was trained with. Change one setting with :func:`dataclasses.replace`.

    Parameters
    ----------
    max_epochs
        Most epochs (passes over the training pairs); early stopping usually ends training before.
    max_steps
        Training budget in optimizer steps: at most ``min(max_epochs, ceil(max_steps / steps_per_epoch))``
        epochs (``None``: ``max_epochs``). References up to ``max_steps * batch_size / max_epochs`` pairs (2,560
        with the defaults) are unaffected; above that the number of steps, and so the training time, stops growing
        with the reference (about a minute per 4,000 steps on one CPU core with the defaults). The warm-up shrinks
        with the budget, to a quarter of it at most. An ensemble of ``n_models`` shares it: each member trains for
        ``max_steps / n_models`` steps.
    batch_size
        Pairs per minibatch; the negatives of every pair come from its minibatch (at least 2).
    lr, weight_decay
        AdamW learning rate and weight decay.
    warmup_epochs
        Epochs before early stopping counts (and, with ``loss="triplet"``, of the mean-over-negatives form).
    patience
        Epochs without a rise of the moving average of the validation score before training stops; the weights of
        the best epoch's own score are kept.
    noise
        Standard deviation of the Gaussian noise added to the standardised inputs during training.
    margin
        Margin of the triplet loss (``loss="triplet"``).
    infonce_temperature
        Temperature of the InfoNCE loss (``loss="infonce"``); training only (the matching temperatures are
        calibrated, see ``calibration``).
    n_cross
        The cross term of each minibatch row is computed only for its ``n_cross`` best columns by ``i0 . c0`` (and
        its partner), as matching computes it only for each cell's best candidates (:attr:`Search.n_cross`); the
        other columns of the row get the row's smallest computed cross value. ``None`` scores every in-batch pair
        (about 5x slower per epoch with ``alpha=1``). See benchmarks/README.md.
    validation_fraction
        Share of the reference pairs held out for early stopping and temperature calibration: at least 10 pairs,
        at most 1000, and never so many that fewer than 40 are left for training. ``0`` holds out nothing: training
        runs every epoch of the budget (no early stopping) and the temperatures are calibrated on the training
        pairs, which makes them sharper than new cells warrant.
    calibration
        How the matching temperatures are chosen on the held-out pairs. ``"match_score"`` (the default) maximises
        the mean probability on the true partner, the challenge's score: the probabilities are sharp, close to a
        hard assignment where the model is sure, and a row's largest probability is a ranking of confidence rather
        than a frequency. ``"nll"`` minimises the negative log-likelihood of the true partner: probabilities that
        mean what they say (of the cells given 0.3, about 3 in 10 are right), flatter, and a lower match score. On
        the real sets the default scored 1.2 to 2.1x ``"nll"`` (benchmarks/README.md, Accuracy).
    progress_bar
        Show a tqdm progress bar while training.

    Examples
    --------
    >>> from scmatch.model import TrainingPlan
    >>> plan = TrainingPlan(max_epochs=5, progress_bar=False)
    >>> plan.batch_size
    128
    """

    max_epochs: int = 200
    max_steps: int | None = 4000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 10
    patience: int = 20
    noise: float = 0.3
    margin: float = 0.2
    infonce_temperature: float = 0.1
    n_cross: int | None = 32
    validation_fraction: float = 0.1
    calibration: str = "match_score"
    progress_bar: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, bool) and isinstance(self.batch_size, int) and self.batch_size < 2:
            raise ValueError(f"`batch_size` must be at least 2 (negatives come from the batch), got {self.batch_size}.")
        optional = {"n_cross": self.n_cross, "max_steps": self.max_steps}
        check_numbers(
            counts={"max_epochs": self.max_epochs, "batch_size": self.batch_size}
            | {name: value for name, value in optional.items() if value is not None},
            counts_or_zero={"warmup_epochs": self.warmup_epochs, "patience": self.patience},
            positive={"lr": self.lr, "infonce_temperature": self.infonce_temperature},
            non_negative={"margin": self.margin, "noise": self.noise, "weight_decay": self.weight_decay},
        )
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"`validation_fraction` must be in [0, 1), got {self.validation_fraction}.")
        check_choice("calibration", self.calibration, CALIBRATIONS)

    def _pairs(self, n: int, *, sample_weight: np.ndarray | None, objective) -> Pairs:
        """The pairs each epoch trains on (all of them, with the user's weights); a coreset plan picks a subset."""
        return Pairs(n, batch_size=self.batch_size, sample_weight=sample_weight)
