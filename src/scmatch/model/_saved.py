"""A :class:`~scmatch.model.MatchModel` to and from its folder: what is saved, and what is checked before loading.

The folder's format (files, manifest, atomic writes) is :mod:`scmatch.model._persist`'s; the checks of the settings
and weights are :mod:`scmatch.model._checks`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._errors import InvalidFileError
from .._paths import check_output
from .._utils import _device
from ._checks import check_depth, check_joint, check_links, check_weights
from ._joint import from_json, to_json
from ._legacy import from_flat
from ._persist import load_model, save_model
from ._preprocessing import read_states, states_from_adatas, writer
from .nn._ensemble import EnsembleMatcher
from .nn._modules import CrossAttentionMatcher


def write_model(model: Any, path: str | Path, *, overwrite: bool, preprocessing: Sequence | None) -> None:
    """Save the fitted ``model`` into folder ``path`` (see :meth:`MatchModel.save <scmatch.model.MatchModel.save>`)."""
    from .. import __version__

    module = model._check_fitted()
    n_features = (int(module.shift1.shape[0]), int(module.shift2.shape[0]))
    states, fingerprints = model.preprocessing_, model.fingerprints_
    if preprocessing is not None:
        states = states_from_adatas(
            preprocessing, n_features=_recipe_widths(n_features, model.depth_), fingerprints=fingerprints
        )
        fingerprints = tuple(
            state.fingerprint if state is not None else known for state, known in zip(states, fingerprints, strict=True)
        )
        backed = {f"`preprocessing[{i}]` (backed)": getattr(a, "filename", None) for i, a in enumerate(preprocessing)}
        check_output(path, backed, what="The model folder", folder=True)
    extra = {
        "n_features": list(n_features),
        "temperature": model.temperature_,
        "history": model.history_,
        "feature_names": list(model.feature_names_),
        "fingerprints": list(fingerprints),
        "joint": to_json(model.joint_),
        "links": model.links_,
        "depth": model.depth_,
    }
    save_model(
        path, params=model._flat_params(), state=module.state_dict(), extra=extra, version=__version__,
        overwrite=overwrite, extra_files=writer(states),
    )  # fmt: skip


def read_model(cls: type, path: str | Path, *, device: str) -> Any:
    """A ``cls`` instance loaded from folder ``path`` (see :meth:`MatchModel.load <scmatch.model.MatchModel.load>`)."""
    folder = Path(path)
    params, state, extra = load_model(folder)
    model = cls.__new__(cls)
    try:
        model._setup(from_flat({**params, "device": device}))
    except (TypeError, ValueError) as err:
        raise InvalidFileError(
            f"The settings in {str(path)!r}/config.json are not valid for this version of scmatch ({err}); "
            "save the model again.",
            path=folder / "config.json",
        ) from err
    n1, n2 = extra["n_features"]
    check_weights(state, architecture=model.architecture, n_models=model.n_models, n_features=(n1, n2), folder=folder)
    check_joint(extra.get("joint"), width=model.n_models * model.architecture["d_embed"], folder=folder)
    check_links(extra.get("links"), folder=folder)
    check_depth(extra.get("depth"), folder=folder)
    fingerprints = tuple(extra.get("fingerprints") or (None, None))
    widths = _recipe_widths((n1, n2), extra.get("depth"))
    preprocessing = read_states(folder, extra["files"], n_features=widths, fingerprints=fingerprints)
    # everything is checked: only now are the networks built
    members = [CrossAttentionMatcher(n1, n2, **model.architecture) for _ in range(model.n_models)]
    module = EnsembleMatcher(members) if model.n_models > 1 else members[0]
    module.load_state_dict(state)
    model.module_ = module.to(_device(device)).eval()
    model.temperature_, model.history_ = extra["temperature"], extra["history"]
    model.feature_names_, model.fingerprints_ = tuple(extra["feature_names"]), fingerprints
    model.joint_, model.preprocessing_ = from_json(extra.get("joint")), preprocessing
    model.links_ = extra.get("links")  # absent from folders saved before links were saved: None
    model.depth_ = extra.get("depth")  # absent from folders saved before the depth input: None
    return model


def _recipe_widths(n_features: tuple[int, int], depth: dict | None) -> tuple[int, int]:
    """The recipes' output widths: the networks' inputs less the depth column, where they read one."""
    return n_features if depth is None else (n_features[0] - 1, n_features[1] - 1)
