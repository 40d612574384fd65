"""Checks of a saved model's ``config.json`` and ``model.pt`` before anything is built from them.

Every number read from ``config.json`` is bounded, and the networks' sizes are compared with the shapes of the
weights (read first, with ``torch.load(weights_only=True)``) before any network is built: a one-number edit cannot
make :meth:`scmatch.model.MatchModel.load` allocate without bound or run without end, and damage is refused at
load with a message naming the file, never later at match time.
"""

from __future__ import annotations

import math
import numbers
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from .._errors import InvalidFileError
from .nn._ensemble import EnsembleMatcher
from .nn._modules import CrossAttentionMatcher

CONFIG, WEIGHTS = "config.json", "model.pt"
#: upper bounds of the integer settings (lower bounds are the constructor's); far above any real model
INT_BOUNDS = {
    "n_tokens": 4096,
    "d_model": 1 << 16,
    "d_embed": 1 << 16,
    "n_heads": 4096,
    "n_layers": 256,
    "n_models": 256,
    "epochs": 10**6,
    "batch_size": 10**7,
    "warmup_epochs": 10**6,
    "patience": 10**6,
    "n_candidates": 10**7,
    "rerank_candidates": 10**7,
    "cross_candidates": 10**7,
    "max_steps": 10**9,
    "coreset_every": 10**6,
}
#: upper bounds of the real-valued settings (lower bounds are the constructor's)
FLOAT_BOUNDS = {
    "lr": 1e6,
    "weight_decay": 1e6,
    "margin": 1e6,
    "noise": 1e6,
    "alpha": 1e6,
    "temperature": 1e8,
    "hist_temperature": 1e8,
}
#: the network's sizes: a fitted model records each as an integer (``n_models=None`` is resolved at construction)
STRUCTURAL = ("n_tokens", "d_model", "d_embed", "n_heads", "n_layers", "n_models")
#: most features of one modality's input
MAX_FEATURES = 10**6
#: temperatures of a fitted model lie in this range (the calibration grid is far inside it)
TEMPERATURE_RANGE = (1e-8, 1e8)
#: most entries of one history list (epochs, members)
MAX_HISTORY = 10**7
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _refuse(folder: Path, problem: str, *, file: str = CONFIG) -> InvalidFileError:
    return InvalidFileError(
        f"{file} in {str(folder)!r} {problem}; it was edited or damaged. Save the model again.", path=folder / file
    )


def check_params(params: Any, folder: Path) -> None:
    """Bounds on the settings: integers within :data:`INT_BOUNDS`, every number finite, no nested values."""
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise _refuse(folder, "holds invalid 'params' (not a mapping of setting names)")
    for name, value in params.items():
        if isinstance(value, dict | list):
            raise _refuse(folder, f"holds a nested value for setting {name!r}")
        if _is_number(value) and not math.isfinite(value):
            raise _refuse(folder, f"holds a non-finite number for setting {name!r} ({value!r})")
        if name in STRUCTURAL and not _is_int(value):
            raise _refuse(folder, f"sets the network size {name!r} to {value!r}, not an integer")
        bound = INT_BOUNDS.get(name, FLOAT_BOUNDS.get(name))
        if bound is not None and _is_number(value) and not value <= bound:
            raise _refuse(folder, f"sets {name!r} to {value}, above the largest a model may have ({bound})")


def check_config(config: Any, folder: Path, *, required: set[str]) -> None:
    """Refuse a config.json whose fields are missing, of the wrong shape, or outside their bounds."""
    if not isinstance(config, dict) or not required <= set(config):
        raise InvalidFileError(
            f"{CONFIG} in {str(folder)!r} lacks required fields {sorted(required)}; save the model again.",
            path=folder / CONFIG,
        )
    check_params(config["params"], folder)
    n_features = config["n_features"]
    checks = {
        "n_features": isinstance(n_features, list)
        and len(n_features) == 2
        and all(_is_int(n) and 1 <= n <= MAX_FEATURES for n in n_features),
        "temperature": isinstance(config["temperature"], dict)
        and {"softmax", "sinkhorn"} <= set(config["temperature"])
        and all(
            _is_number(t) and TEMPERATURE_RANGE[0] <= t <= TEMPERATURE_RANGE[1] for t in config["temperature"].values()
        ),
        "history": _valid_history(config["history"]),
        "feature_names": isinstance(config["feature_names"], list)
        and len(config["feature_names"]) == 2
        and all(_valid_names(names, n) for names, n in zip(config["feature_names"], n_features, strict=False)),
        "fingerprints": _valid_fingerprints(config.get("fingerprints")),
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise _refuse(folder, f"has invalid fields {bad}")


def _valid_names(names: Any, n: Any) -> bool:
    return names is None or (isinstance(names, list) and len(names) == n and all(isinstance(v, str) for v in names))


def _valid_fingerprints(value: Any) -> bool:
    if value is None:
        return True
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(v is None or (isinstance(v, str) and _FINGERPRINT.fullmatch(v)) for v in value)
    )


def _valid_history(history: Any) -> bool:
    """A mapping of names to numbers (or None) or to bounded lists of them; NaN is allowed (an empty score)."""

    def scalar(v: Any) -> bool:
        return v is None or isinstance(v, bool | str) or _is_number(v)

    if not isinstance(history, dict):
        return False
    return all(
        isinstance(k, str) and (scalar(v) or (isinstance(v, list) and len(v) <= MAX_HISTORY and all(map(scalar, v))))
        for k, v in history.items()
    )


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Read ``model.pt`` as plain tensors: its archive's sizes checked first, then ``torch.load(weights_only=True)``.

    torch writes ``model.pt`` as an uncompressed zip archive, so no entry can hold more bytes than the file: an
    entry claiming more was edited, and is refused before torch allocates anything for it.
    """
    path = folder / WEIGHTS
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            claimed = sum(info.file_size for info in archive.infolist())
            if claimed > size:
                raise _refuse(folder, f"claims {claimed} bytes of content in a {size}-byte file", file=WEIGHTS)
            damaged = archive.testzip()  # every entry's CRC: catches damage behind a checksum rewritten to match
    except InvalidFileError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as err:
        raise _refuse(folder, f"is not a torch weights archive ({err})", file=WEIGHTS) from err
    if damaged is not None:
        raise _refuse(folder, f"has a damaged entry {damaged!r} (its CRC does not match)", file=WEIGHTS)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for bad archives; its full message is chained
        raise InvalidFileError(
            f"{WEIGHTS} in {str(folder)!r} cannot be read as plain weights ({type(err).__name__}): it is damaged or "
            "holds other objects, which are never unpickled. Save the model again.",
            path=path,
        ) from err
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise _refuse(folder, "does not hold a state_dict of named tensors", file=WEIGHTS)
    bad = [k for k, v in state.items() if not v.is_floating_point() or not bool(torch.isfinite(v).all())]
    if bad:
        problem = f"holds tensors that are not finite floating-point numbers (e.g. {bad[:3]})"
        raise _refuse(folder, problem, file=WEIGHTS)
    return state


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    """How many distinct indices ``pattern`` (a regex with one group) finds in the weights' names."""
    found = {int(m.group(1)) for key in state if (m := re.match(pattern, key))}
    return max(found) + 1 if found else 0


def weights_architecture(state: dict[str, torch.Tensor]) -> dict[str, int]:
    """The sizes the weights were saved with: members, layers, features, tokens, widths (cheap, no network built)."""
    n_models = _count(state, r"members\.(\d+)\.")
    prefix = "members.0." if n_models else ""
    try:
        position = state[f"{prefix}encoder1.position"]
        return {
            "n_models": max(n_models, 1),
            "n_layers": _count(state, re.escape(prefix) + r"encoder1\.attention\.layers\.(\d+)\."),
            "n_features1": int(state[f"{prefix}shift1"].shape[0]),
            "n_features2": int(state[f"{prefix}shift2"].shape[0]),
            "n_tokens": int(position.shape[0]),
            "d_model": int(position.shape[1]),
            "d_embed": int(state[f"{prefix}head1.weight"].shape[0]),
        }
    except (KeyError, IndexError) as err:
        raise ValueError(f"the weights lack {err}") from err


def check_weights(
    state: dict[str, torch.Tensor], *, architecture: dict, n_models: int, n_features: tuple[int, int], folder: Path
) -> None:
    """Refuse weights that do not fit the saved settings, before any network is built.

    First the sizes read off the weights' shapes are compared with ``config.json`` (a message names each that
    differs); then every tensor's name, shape and dtype with those of the network the settings describe, built on
    torch's ``meta`` device (no memory, no computation).
    """
    expected = {"n_models": n_models, "n_features1": n_features[0], "n_features2": n_features[1]}
    expected |= {k: architecture[k] for k in ("n_layers", "n_tokens", "d_model", "d_embed")}
    try:
        found = weights_architecture(state)
    except ValueError as err:
        raise _refuse(folder, f"does not hold this model's networks ({err})", file=WEIGHTS) from err
    differ = {k: (v, found[k]) for k, v in expected.items() if found[k] != v}
    if differ:
        listing = ", ".join(f"{k} {a} in {CONFIG} but {b} in {WEIGHTS}" for k, (a, b) in differ.items())
        raise InvalidFileError(
            f"The files of the model in {str(folder)!r} do not fit together ({listing}): one of them was edited or "
            "replaced. Save the model again.",
            path=folder / CONFIG,
        )
    with torch.device("meta"):
        members = [CrossAttentionMatcher(*n_features, **architecture) for _ in range(n_models)]
        module = EnsembleMatcher(members) if n_models > 1 else members[0]
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in module.state_dict().items()}
    saved = {k: (tuple(v.shape), v.dtype) for k, v in state.items()}
    if shapes != saved:
        wrong = sorted(set(shapes) ^ set(saved)) or [k for k in shapes if shapes[k] != saved[k]]
        raise _refuse(folder, f"holds weights that do not fit the saved settings (e.g. {wrong[:3]})", file=WEIGHTS)


def check_joint(joint: Any, *, width: int, folder: Path) -> None:
    """The shared projection (``config.json['joint']``): centres of ``width`` and bases of ``width`` x rank."""
    if joint is None:
        return

    def finite(v: Any, n: int | None = None) -> bool:
        return isinstance(v, list) and (n is None or len(v) == n) and all(_is_number(x) and math.isfinite(x) for x in v)

    def basis(b: Any) -> int | None:
        """The rank of a valid basis (``width`` rows of one length from 1 to ``width``), else None."""
        if not isinstance(b, list) or len(b) != width or not b or not isinstance(b[0], list):
            return None
        rank = len(b[0])
        return rank if 1 <= rank <= width and all(finite(row, rank) for row in b) else None

    ok = isinstance(joint, dict) and set(joint) == {"mean1", "mean2", "basis1", "basis2"}
    ranks = {basis(joint["basis1"]), basis(joint["basis2"])} if ok else {None}
    if not ok or not finite(joint["mean1"], width) or not finite(joint["mean2"], width) or None in ranks:
        raise _refuse(folder, f"holds an invalid 'joint' projection (it must fit the {width}-dimensional embeddings)")
    if len(ranks) != 1:
        raise _refuse(folder, "holds a 'joint' projection whose two bases differ in rank")


#: most feature links a saved model may hold (far above any antibody panel, and any 2,000 genes' peaks)
MAX_LINKS = 10**6
#: largest weight of the links' prior a saved model may hold (the weight grid's top is 1000 temperatures)
MAX_LINK_WEIGHT = 1e8


def check_links(links: Any, *, folder: Path) -> None:
    """The feature links (``config.json['links']``): their names, the protein (or peak) side and a weight.

    Protein-gene links: ``protein``, ``genes``, ``proteins_in``, ``weight``. Peak-gene links: ``kind`` ("peak"),
    ``gene``, ``peak``, ``peaks_in``, ``weight``.
    """
    if links is None:
        return

    def names(v: Any) -> bool:
        return isinstance(v, list) and 1 <= len(v) <= MAX_LINKS and all(isinstance(x, str) and x for x in v)

    peak = isinstance(links, dict) and links.get("kind") == "peak"
    first, second, side = ("gene", "peak", "peaks_in") if peak else ("protein", "genes", "proteins_in")
    keys = {first, second, side, "weight"} | ({"kind"} if peak else set())
    ok = isinstance(links, dict) and set(links) == keys
    ok = ok and names(links[first]) and names(links[second]) and len(links[first]) == len(links[second])
    ok = ok and links[side] in (1, 2) and not isinstance(links[side], bool)
    weight = links.get("weight") if isinstance(links, dict) else None
    if not ok or not _is_number(weight) or not 0 < weight <= MAX_LINK_WEIGHT:
        raise _refuse(
            folder,
            f"holds invalid 'links' (it needs '{first}' and '{second}', lists of names of one length, '{side}' 1 "
            f"or 2 and a 'weight' in (0, {MAX_LINK_WEIGHT:g}])",
        )


def check_depth(depth: Any, *, folder: Path) -> None:
    """The depth input (``config.json['depth']``), checked.

    Per modality a positive ``scale`` and ``reference_sd`` and a finite ``reference_mean``; the ``correlation``
    (in [-1, 1]) it was chosen on.
    """
    if depth is None:
        return

    def pair(values: Any, *, positive: bool) -> bool:
        return (
            isinstance(values, list)
            and len(values) == 2
            and all(_is_number(v) and math.isfinite(v) and (v > 0 or not positive) for v in values)
        )

    keys = {"scale", "correlation", "reference_mean", "reference_sd"}
    ok = isinstance(depth, dict) and set(depth) == keys
    ok = ok and pair(depth["scale"], positive=True) and pair(depth["reference_sd"], positive=True)
    ok = ok and pair(depth["reference_mean"], positive=False)
    ok = ok and _is_number(depth["correlation"]) and -1 <= depth["correlation"] <= 1
    if not ok:
        raise _refuse(
            folder,
            "holds an invalid 'depth' (it needs 'scale' and 'reference_sd', two positive numbers each, "
            "'reference_mean', two finite numbers, and a 'correlation' in [-1, 1])",
        )
