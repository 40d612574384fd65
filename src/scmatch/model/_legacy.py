"""The flat spellings of :class:`~scmatch.model.MatchModel`'s settings, from before they were split by role.

One table maps each flat name to its group and its new name: the model (construction), the training plan
(:class:`~scmatch.model.TrainingPlan`, at ``fit``) and the candidate search (:class:`~scmatch.model.Search`, at
matching). It serves three readers:

- the deprecated keywords of ``MatchModel(...)`` (e.g. ``epochs=``), accepted for one release with a
  ``FutureWarning`` that gives the new spelling;
- ``config.json``'s ``"params"`` of a saved model, which keeps the flat form (every model saved by any version
  loads in any other) and is read back through :func:`from_flat`;
- the deprecated attributes (e.g. ``model.n_candidates``) and flat keys of ``get_params()``.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from .nn._losses import DISTANCE_LOSSES
from .solvers._search import Search
from .train._coreset import CoresetPlan
from .train._plan import TrainingPlan

#: the release that removes the deprecated spellings
REMOVED_IN = "0.2"
#: the model's own settings (``MatchModel``'s keywords)
MODEL = ("n_tokens", "d_model", "d_embed", "n_heads", "n_layers", "dropout", "alpha", "loss", "n_models", "device")
#: flat name -> (group, name in the group), for every setting that moved or was renamed
MOVED = {
    "hist_temperature": ("model", "histogram_temperature"),
    "epochs": ("plan", "max_epochs"),
    "temperature": ("plan", "infonce_temperature"),
    "cross_candidates": ("plan", "n_cross"),
    **{
        name: ("plan", name)
        for name in (
            "max_steps", "batch_size", "lr", "weight_decay", "warmup_epochs", "patience", "noise", "margin",
            "validation_fraction", "calibration", "progress_bar", "coreset", "coreset_fraction", "coreset_every",
        )
    },
    "candidates": ("search", "method"),
    "n_candidates": ("search", "n_candidates"),
    "rerank_candidates": ("search", "n_cross"),
}  # fmt: skip
CORESET = ("coreset", "coreset_fraction", "coreset_every")
#: where each group of settings goes now
WHERE = {
    "plan": "pass them to fit as `model.fit(X1, X2, plan=scmatch.model.TrainingPlan({}))`, or set `model.plan` "
    "before scmatch.tl.match_modalities",
    "search": "pass them to predict_proba as `search=scmatch.model.Search({})`, or set `model.search`",
    "coreset": "train on a coreset with `plan=scmatch.experimental.CoresetPlan({})`",
    "distance": "use `scmatch.experimental.DistanceMatchModel({})`",
}


@dataclasses.dataclass
class Grouped:
    """Settings sorted by role: the model's keywords, the training plan, the search and the histogram temperature."""

    model: dict[str, Any]
    plan: TrainingPlan
    search: Search
    histogram_temperature: float = 0.1


def from_flat(flat: dict[str, Any]) -> Grouped:
    """Sort flat settings by role; raises TypeError for an unknown name and ValueError for an invalid value.

    A name that is absent keeps its default. ``coreset=None`` (or absent) gives a plain :class:`TrainingPlan`,
    whatever ``coreset_fraction`` and ``coreset_every`` say (they are stored for every model).
    """
    unknown = sorted(set(flat) - set(MODEL) - set(MOVED))
    if unknown:
        raise TypeError(f"Unknown settings {unknown}.")
    groups: dict[str, dict[str, Any]] = {"model": {}, "plan": {}, "search": {}}
    for name, value in flat.items():
        group, new = MOVED.get(name, ("model", name))
        groups[group][new] = value
    plan = groups["plan"]
    if plan.get("coreset") is None:
        plan = {name: value for name, value in plan.items() if name not in CORESET}
    histogram_temperature = groups["model"].pop("histogram_temperature", 0.1)
    return Grouped(
        model=groups["model"],
        plan=(CoresetPlan if "coreset" in plan else TrainingPlan)(**plan),
        search=Search(**groups["search"]),
        histogram_temperature=histogram_temperature,
    )


def to_flat(model: dict[str, Any], plan: TrainingPlan, search: Search, histogram_temperature: float) -> dict:
    """The flat form of grouped settings (``config.json``'s ``"params"``): every name of :data:`MOVED`."""
    plan_fields = dataclasses.asdict(plan)
    search_fields = dataclasses.asdict(search)
    flat = dict(model)
    for name, (group, new) in MOVED.items():
        if group == "model":
            flat[name] = histogram_temperature
        elif group == "search":
            flat[name] = search_fields[new]
        else:
            flat[name] = plan_fields.get(new, _CORESET_DEFAULTS.get(new))
    return flat


_CORESET_DEFAULTS = {"coreset": None, "coreset_fraction": 0.3, "coreset_every": 5}


def warn_deprecated(owner: str, deprecated: dict[str, Any], *, loss: str) -> None:
    """The FutureWarning for flat keywords of ``owner(...)`` (and for a distance loss), with their new spelling."""
    moved: dict[str, list[tuple[str, str, Any]]] = {group: [] for group in WHERE}
    if loss in DISTANCE_LOSSES:
        moved["distance"].append(("loss", "loss", loss))
    for name, value in deprecated.items():
        group, new = MOVED[name]
        group = "coreset" if name in CORESET else "distance" if group == "model" else group
        moved[group].append((name, new, value))
    parts = [
        f"for {', '.join(f'`{name}`' for name, _, _ in items)}, "
        + WHERE[group].format(", ".join(f"{new}={value!r}" for _, new, value in items))
        for group, items in moved.items()
        if items
    ]
    warnings.warn(
        f"These settings of {owner}(...) are deprecated and will stop working in scmatch {REMOVED_IN} ({owner} now "
        f"takes only the network's settings): {'; '.join(parts)}.",
        FutureWarning,
        stacklevel=3,
    )


def deprecated_attribute(name: str) -> property:
    """A property for the flat attribute ``name`` (e.g. ``model.n_candidates``): reads and writes its new place."""
    group, new = MOVED[name]

    def message() -> str:
        return (
            f"`model.{name}` is deprecated and will stop working in scmatch {REMOVED_IN}; use `model.{group}.{new}` "
            f"(change it with `model.{group} = dataclasses.replace(model.{group}, {new}=...)`)."
        )

    def get(self) -> Any:
        warnings.warn(message(), FutureWarning, stacklevel=2)
        return getattr(getattr(self, group), new)

    def set_(self, value: Any) -> None:
        warnings.warn(message(), FutureWarning, stacklevel=2)
        setattr(self, group, dataclasses.replace(getattr(self, group), **{new: value}))

    return property(get, set_, doc=f"Deprecated: ``{group}.{new}``.")


class Params(dict):
    """:meth:`MatchModel.get_params`'s settings, grouped by role.

    A flat name (e.g. ``["epochs"]``) still reads, with a FutureWarning, until scmatch 0.2.
    """

    def __init__(self, grouped: dict[str, dict[str, Any]], flat: dict[str, Any]) -> None:
        super().__init__(grouped)
        self._flat = flat

    def __missing__(self, key: str) -> Any:
        if key not in self._flat:
            raise KeyError(key)
        group, new = MOVED.get(key, ("model", key))
        warnings.warn(
            f"get_params()[{key!r}] is deprecated and will stop working in scmatch {REMOVED_IN}: the settings are "
            f"grouped by role; use get_params()[{group!r}][{new!r}].",
            FutureWarning,
            stacklevel=2,
        )
        return self._flat[key]

    def get(self, key: str, default: Any = None) -> Any:
        """``self[key]`` if present (a flat name with a FutureWarning), else ``default``."""
        return self[key] if key in self or key in self._flat else default
