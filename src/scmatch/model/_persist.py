"""Saving and loading models: a JSON config plus a torch state_dict, never pickled objects."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

FORMAT_VERSION = 1
CONFIG, WEIGHTS = "config.json", "model.pt"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_model(path: str | Path, *, params: dict, state: dict, extra: dict, overwrite: bool = False) -> None:
    """Write ``config.json`` and ``model.pt`` into directory ``path``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{str(path)!r} exists and is not a directory; choose a directory path.")
    if (path / CONFIG).exists() and not overwrite:
        raise ValueError(f"A model is already saved in {str(path)!r}; pass `overwrite=True` to replace it.")
    path.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in state.items()}, path / WEIGHTS)
    config = {
        "format_version": FORMAT_VERSION,
        "params": params,
        "weights_sha256": _sha256(path / WEIGHTS),
        **extra,
    }
    (path / CONFIG).write_text(json.dumps(config, indent=2))


def load_model(path: str | Path) -> tuple[dict, dict, dict]:
    """Read and verify a saved model; returns (params, state_dict, extra)."""
    path = Path(path)
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        raise ValueError(f"{str(path)!r} is not a saved scmatch model: it needs {CONFIG} and {WEIGHTS}.")
    try:
        config = json.loads((path / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{CONFIG} in {str(path)!r} is corrupted ({err}); save the model again.") from err
    required = {"format_version", "params", "weights_sha256", "n_features", "temperature", "history", "feature_names"}
    if not isinstance(config, dict) or not required <= set(config):
        raise ValueError(f"{CONFIG} in {str(path)!r} lacks required fields {sorted(required)}; save the model again.")
    if config["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"Model format {config['format_version']} is not supported (expected {FORMAT_VERSION}); save the model "
            "again with this version of scmatch."
        )
    if _sha256(path / WEIGHTS) != config["weights_sha256"]:
        raise ValueError(
            f"{WEIGHTS} in {str(path)!r} does not match the checksum in {CONFIG}: the file was changed or "
            "corrupted. Save the model again."
        )
    _check_fields(config, path)
    try:
        state = torch.load(path / WEIGHTS, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for bad archives; its full message is chained
        raise ValueError(
            f"{WEIGHTS} in {str(path)!r} cannot be read as plain weights ({type(err).__name__}): it is damaged or "
            "holds other objects, which are never unpickled. Save the model again."
        ) from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{WEIGHTS} in {str(path)!r} does not hold a state_dict of tensors; save the model again.")
    extra = {k: v for k, v in config.items() if k not in {"format_version", "params", "weights_sha256"}}
    return config["params"], state, extra


def _check_fields(config: dict, path: Path) -> None:
    """Refuse a config.json whose fields have the wrong shape (edited by hand or damaged)."""

    def names(value) -> bool:
        return value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))

    checks = {
        "params": isinstance(config["params"], dict),
        "n_features": isinstance(config["n_features"], list)
        and len(config["n_features"]) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in config["n_features"]),
        "temperature": isinstance(config["temperature"], dict)
        and {"softmax", "sinkhorn"} <= set(config["temperature"])
        and all(isinstance(t, int | float) and t > 0 for t in config["temperature"].values()),
        "history": isinstance(config["history"], dict),
        "feature_names": isinstance(config["feature_names"], list)
        and len(config["feature_names"]) == 2
        and all(names(v) for v in config["feature_names"]),
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise ValueError(
            f"{CONFIG} in {str(path)!r} has invalid fields {bad}; it was edited or damaged. Save the model again."
        )
