"""The settings of a :class:`~scmatch.model.MatchModel`: the network's, its training plan and its search.

:class:`ModelSettings` holds and checks them, gives them back grouped by role (``get_params``) or under their flat
names (``config.json``), and keeps the deprecated attribute spellings working until scmatch 0.2.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from ._legacy import Grouped, Params, deprecated_attribute, to_flat
from ._numbers import check_numbers
from .nn._ensemble import EnsembleMatcher
from .nn._losses import COSINE_LOSSES, LOSS_METRIC
from .nn._metric import Metric
from .nn._modules import CrossAttentionMatcher
from .solvers._search import Search
from .train._objective import Objective
from .train._plan import TrainingPlan

#: ensemble size with the cosine losses when ``n_models`` is not given (benchmarks/README.md, Accuracy)
DEFAULT_N_MODELS = 3


class ModelSettings:
    """The settings part of :class:`~scmatch.model.MatchModel` (its base class)."""

    def _setup(self, grouped: Grouped) -> None:
        """Check the settings and set them; the fitted state starts empty."""
        settings = grouped.model
        loss, alpha, n_models = settings.get("loss", "infonce"), settings.get("alpha", 1.0), settings.get("n_models")
        if loss not in LOSS_METRIC:
            raise ValueError(
                f"Unknown loss {loss!r}; use one of {COSINE_LOSSES} (distance losses: scmatch.experimental)."
            )
        metric = Metric(LOSS_METRIC[loss], grouped.histogram_temperature)
        if n_models is None:  # the default: an ensemble where similarities can be averaged (cosine losses)
            n_models = DEFAULT_N_MODELS if metric.is_cosine else 1
        architecture = {name: settings.get(name, default) for name, default in _ARCHITECTURE.items()}
        self.architecture = _check_architecture({**architecture, "alpha": alpha})
        check_numbers(counts={"n_models": n_models}, positive={"histogram_temperature": metric.histogram_temperature})
        if n_models > 1 and not metric.is_cosine:
            raise ValueError(
                f"n_models={n_models} averages i0 . c0 similarities; loss={loss!r} learns a {metric.name} "
                "space. Use n_models=1 or a cosine loss ('infonce', 'triplet')."
            )
        self.loss, self.metric, self.n_models = loss, metric, n_models
        self.device: str = settings.get("device", "auto")
        self.plan: TrainingPlan = grouped.plan
        self.search: Search = self._check_search(grouped.search)
        self.module_: CrossAttentionMatcher | EnsembleMatcher | None = None
        self.temperature_: dict[str, float] = {}
        self.history_: dict = {}
        self.held_out_ = None  # the fit's held-out pairs (scmatch.model._held_out.HeldOut), this session only
        self.feature_names_: tuple[list[str] | None, list[str] | None] = (None, None)
        #: per modality: the fingerprint of the scmatch.pp recipe fit behind the training representation (or None)
        self.fingerprints_: tuple[str | None, str | None] = (None, None)
        #: per modality: the reference's fitted recipe (:class:`scmatch.pp._project.RecipeState`), or None
        self.preprocessing_: tuple = (None, None)
        #: the shared projection of the joint-space embeddings (:mod:`scmatch.model._joint`), set by ``fit``
        self.joint_: dict | None = None
        #: the feature links the model matches with (set by :func:`scmatch.tl.match_modalities` when its fit chose a
        #: weight above 0; saved): ``protein``, ``genes`` (lists, one entry per link), ``proteins_in`` (1 or 2: the
        #: modality holding the proteins) and ``weight``
        self.links_: dict | None = None
        #: each cell's sequencing depth as the last input column (set by :func:`scmatch.tl.match_modalities` when
        #: it used it; saved): ``scale``, ``correlation``, ``reference_mean`` and ``reference_sd`` (per modality)
        self.depth_: dict | None = None

    # ------------------------------------------------------------------ settings
    def get_params(self) -> dict:
        """The settings grouped by role: ``"model"`` (the constructor's), ``"plan"`` and ``"search"``.

        A flat name of the settings' former spelling (``get_params()["epochs"]``) still reads, with a
        ``FutureWarning``, until scmatch 0.2.
        """
        values = {**self.architecture, "loss": self.loss, "n_models": self.n_models, "device": self.device}
        values["histogram_temperature"] = self.metric.histogram_temperature
        names = [name for name, p in inspect.signature(type(self)).parameters.items() if p.kind is p.KEYWORD_ONLY]
        if not self.metric.is_cosine:  # a deprecated MatchModel(loss="wtriplet"): its histogram temperature too
            names = list(dict.fromkeys([*names, "histogram_temperature"]))
        grouped = {
            "model": {name: values[name] for name in names},
            "plan": dataclasses.asdict(self.plan),
            "search": dataclasses.asdict(self.search),
        }
        return Params(grouped, self._flat_params())

    def _flat_params(self) -> dict:
        """Every setting under its flat name: the form ``config.json`` and ``uns[key]["params"]["model"]`` keep."""
        model = {**self.architecture, "loss": self.loss, "n_models": self.n_models, "device": self.device}
        return to_flat(model, self.plan, self.search, self.metric.histogram_temperature)

    @property
    def alpha(self) -> float:
        """Weight of the cross-attention term."""
        return self.architecture["alpha"]

    # deprecated until scmatch 0.2: the settings that moved to model.plan and model.search
    validation_fraction = deprecated_attribute("validation_fraction")
    calibration = deprecated_attribute("calibration")
    progress_bar = deprecated_attribute("progress_bar")
    n_candidates = deprecated_attribute("n_candidates")
    rerank_candidates = deprecated_attribute("rerank_candidates")
    candidates = deprecated_attribute("candidates")

    def _objective(self, plan: TrainingPlan) -> Objective:
        return Objective(self.loss, self.metric, plan.margin, plan.infonce_temperature, plan.n_cross)

    def _check_search(self, search: Search) -> Search:
        if not isinstance(search, Search):
            raise TypeError(f"`search` must be a scmatch.model.Search, got {type(search).__name__}.")
        if search.method != "exact" and not self.metric.is_cosine:
            raise ValueError(
                f"Search(method={search.method!r}) searches the i0 . c0 (cosine) space; loss={self.loss!r} learns "
                f"a {self.metric.name} space. Use Search(method='exact') or a cosine loss ('infonce', 'triplet')."
            )
        return search


#: the network's sizes and their defaults
_ARCHITECTURE = {"n_tokens": 4, "d_model": 64, "d_embed": 64, "n_heads": 4, "n_layers": 1, "dropout": 0.3}


def _check_architecture(architecture: dict[str, Any]) -> dict[str, Any]:
    """The architecture's settings, checked (sizes are integers >= 1, ``n_layers`` >= 0, ``alpha`` >= 0)."""
    if architecture["alpha"] < 0:
        raise ValueError(f"`alpha` must be >= 0, got {architecture['alpha']}.")
    sizes = ("n_tokens", "d_model", "d_embed", "n_heads")
    check_numbers(counts={k: architecture[k] for k in sizes}, counts_or_zero={"n_layers": architecture["n_layers"]})
    if not 0 <= architecture["dropout"] < 1:
        raise ValueError(f"`dropout` must be in [0, 1), got {architecture['dropout']!r}.")
    if architecture["d_model"] % architecture["n_heads"]:
        raise ValueError(
            f"`d_model` ({architecture['d_model']}) must be divisible by `n_heads` ({architecture['n_heads']})."
        )
    return {**architecture, "alpha": float(architecture["alpha"])}
