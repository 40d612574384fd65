"""Bad files: saved model folders, predictions and the command's inputs and outputs, damaged, edited or misplaced.

"Re-signed" below means the manifest was updated to match the edited file, as a deliberate editor would: the
checksums then pass, and the checks behind them (bounds, shapes, structure) must refuse the edit. A "legacy"
folder is one saved before manifests (``tests/data/legacy_model_v1``, saved by the code of that time).
"""

from __future__ import annotations

import atexit
import functools
import io as _io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

import scmatch as scm
from scmatch._errors import InvalidFileError, OutputIsInputError
from scmatch.model import MatchModel
from scmatch.model._manifest import write_manifest

from .cases import (
    CASES,
    LSIS,
    PCS,
    Case,
    CLIExit,
    _challenge_files,
    _cli,
    _mapping,
    _match_args,
    _mkdir,
    _write,
    fitted_model,
    saved_model,
    tiny_model,
    toy_mudata,
)

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy_model_v1"
LOAD, SAVE = "MatchModel.load", "MatchModel.save"
READ, WRITE, CLI = "io.read_prediction", "io.write_prediction", "scmatch (CLI)"


# ---------------------------------------------------------------------------------------------------- model folders
@functools.cache
def _template_with_preprocessing() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="scmatch_model_pp_")) / "model"
    atexit.register(shutil.rmtree, folder.parent, ignore_errors=True)  # the template outlives no test session
    _mapping(alone=False, model=True)(folder.parent)["model"].save(folder)
    return folder


def saved_with_preprocessing(tmp: Path) -> Path:
    """A fresh copy, in ``tmp``, of a tiny model saved with its reference's preprocessing (rna: 8, atac: 6 comps)."""
    return Path(shutil.copytree(_template_with_preprocessing(), tmp / "model"))


def legacy_model(tmp: Path) -> Path:
    """A fresh copy, in ``tmp``, of the model folder saved before manifests."""
    return Path(shutil.copytree(LEGACY, tmp / "legacy"))


def resign(folder: Path) -> Path:
    """Rewrite the manifest of ``folder`` to match its files as they are now (what a deliberate editor does)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    write_manifest(folder, list(manifest["files"]), version=manifest["scmatch_version"])
    return folder


def edit_json(folder: Path, name: str, edit: Callable[[Any], Any], *, sign: bool = True) -> Path:
    """Edit one JSON file of a model folder in place (what ``edit`` returns is ignored)."""
    data = json.loads((folder / name).read_text())
    edit(data)
    (folder / name).write_text(json.dumps(data))
    return resign(folder) if sign and (folder / "manifest.json").exists() else folder


def edit_npz(folder: Path, edit: Callable[[dict], None]) -> Path:
    """Edit the preprocessing arrays (``edit`` changes the dict of arrays in place), manifest re-signed."""
    with np.load(folder / "preprocessing.npz", allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    edit(arrays)
    with open(folder / "preprocessing.npz", "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return resign(folder)


def replace_bytes(folder: Path, name: str, data: bytes, *, sign: bool) -> Path:
    (folder / name).write_bytes(data)
    return resign(folder) if sign else folder


def flip_byte(folder: Path, name: str) -> Path:
    data = bytearray((folder / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    return replace_bytes(folder, name, bytes(data), sign=False)


def _same_size_edit(folder: Path, old: str, new: str) -> Path:
    """Change text in config.json without changing its size, and without updating the manifest."""
    text = (folder / "config.json").read_text()
    assert old in text and len(old) == len(new)
    (folder / "config.json").write_text(text.replace(old, new, 1))
    return folder


class _Payload:
    """Pickles as a call of ``os.mkdir(marker)``: harmless, but proves whether unpickling ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def _malicious(tmp: Path) -> dict[str, Any]:
    folder = saved_model(tmp)
    marker = tmp / "payload_ran"
    buffer = _io.BytesIO()
    torch.save({"shift1": _Payload(marker)}, buffer)
    replace_bytes(folder, "model.pt", buffer.getvalue(), sign=True)
    return {"folder": folder, "marker": marker}


def _nan_weights(tmp: Path) -> dict[str, Any]:
    folder = saved_model(tmp)
    state = torch.load(folder / "model.pt", weights_only=True)
    next(iter(state.values()))[0] = float("nan")
    buffer = _io.BytesIO()
    torch.save(state, buffer)
    return {"folder": replace_bytes(folder, "model.pt", buffer.getvalue(), sign=True)}


def _params(**values: Any) -> Callable[[Path], dict[str, Any]]:
    """A saved model whose config.json settings are edited to ``values``, manifest re-signed."""
    return lambda t: {"folder": edit_json(saved_model(t), "config.json", lambda c: c["params"].update(values))}


def _config(edit: Callable[[dict], Any], *, model: Callable[[Path], Path] = saved_model, sign: bool = True):
    return lambda t: {"folder": edit_json(model(t), "config.json", edit, sign=sign)}


def _load(o: dict[str, Any]) -> MatchModel:
    return MatchModel.load(o["folder"], device="cpu")


def _more_features(config: dict) -> None:
    config["n_features"] = [9, 6]
    config["feature_names"] = [[*PCS, "PC9"], LSIS]


def _joint_rank_mismatch(config: dict) -> None:
    config["joint"]["basis1"] = [row[:-1] for row in config["joint"]["basis1"]]


def _one_modality(meta: dict) -> None:
    meta["modalities"] = meta["modalities"][:1]


def _other_tool(tmp: Path) -> dict[str, Any]:
    folder = _mkdir(tmp / "other_tool")
    _write(folder / "config.json", '{"model": "another tool"}')
    _write(folder / "model.pt", "weights of another tool")
    return {"folder": folder}


def _with_notes(tmp: Path) -> dict[str, Any]:
    folder = saved_model(tmp)
    _write(folder / "notes.txt", "mine")
    return {"folder": folder}


MODEL_CASES: list[Case] = [
    Case(
        "load-missing",
        LOAD,
        "a folder that holds no model",
        lambda t: {"folder": t / "nothing"},
        _load,
        InvalidFileError,
        r"is not a saved scmatch model: it needs config\.json and model\.pt",
    ),
    Case(
        "load-config-hand-edit",
        LOAD,
        "config.json: `d_model` 16 edited to 17 by hand (same size, manifest not updated)",
        lambda t: {"folder": _same_size_edit(saved_model(t), '"d_model": 16', '"d_model": 17')},
        _load,
        InvalidFileError,
        r"config\.json in .* does not match the checksum in manifest\.json",
    ),
    Case(
        "load-file-longer",
        LOAD,
        "preprocessing.json with a line appended (manifest not updated)",
        lambda t: {"folder": _append(saved_with_preprocessing(t), "preprocessing.json", "\n")},
        _load,
        InvalidFileError,
        r"preprocessing\.json in .* is 526 bytes but the manifest records 525: the file was truncated, extended or "
        r"replaced",
    ),
    Case(
        "load-config-not-json",
        LOAD,
        "config.json is not JSON (re-signed)",
        lambda t: {"folder": resign(_write(saved_model(t) / "config.json", "{not json").parent)},
        _load,
        InvalidFileError,
        r"config\.json in .* is corrupted",
    ),
    Case(
        "load-config-fields",
        LOAD,
        "config.json lacks required fields (re-signed)",
        lambda t: {"folder": resign(_write(saved_model(t) / "config.json", '{"format_version": 2}').parent)},
        _load,
        InvalidFileError,
        r"lacks required fields",
    ),
    Case(
        "load-format-version",
        LOAD,
        "config.json of another format version (re-signed)",
        _config(lambda c: c.update(format_version=99)),
        _load,
        InvalidFileError,
        r"Model format 99 is not supported in a folder with manifest\.json \(expected 2\)",
    ),
    Case(
        "load-manifest-version",
        LOAD,
        "manifest.json of another format version (its own checksum updated)",
        lambda t: {"folder": _rewrite_manifest(saved_model(t), lambda m: m.update(format_version=99))},
        _load,
        InvalidFileError,
        r"Model format 99 in manifest\.json .* is not supported \(expected 2\)",
    ),
    Case(
        "load-manifest-no-marker",
        LOAD,
        "manifest.json without scmatch's format marker",
        lambda t: {"folder": _write(saved_model(t) / "manifest.json", '{"files": {}}').parent},
        _load,
        InvalidFileError,
        r"manifest\.json in .* does not carry scmatch's format marker",
    ),
    Case(
        "load-manifest-edited",
        LOAD,
        "manifest.json: the recorded size of model.pt edited (its own checksum not updated)",
        lambda t: {"folder": edit_json(saved_model(t), "manifest.json", _grow_size, sign=False)},
        _load,
        InvalidFileError,
        r"manifest\.json in .* does not match its own checksum",
    ),
    Case(
        "load-manifest-not-json",
        LOAD,
        "manifest.json truncated to half",
        lambda t: {"folder": _halve(saved_model(t), "manifest.json")},
        _load,
        InvalidFileError,
        r"manifest\.json in .* is corrupted",
    ),
    Case(
        "load-file-missing",
        LOAD,
        "preprocessing.npz, listed in the manifest, deleted",
        lambda t: {"folder": _delete(saved_with_preprocessing(t), "preprocessing.npz")},
        _load,
        InvalidFileError,
        r"preprocessing\.npz is missing from the model folder .* \(its manifest lists it\)",
    ),
    Case(
        "load-manifest-missing",
        LOAD,
        "manifest.json deleted from a folder saved with one",
        lambda t: {"folder": _delete(saved_model(t), "manifest.json")},
        _load,
        InvalidFileError,
        r"manifest\.json is missing from the model folder .*: the folder was copied incompletely or edited",
    ),
    Case(
        "load-flipped-byte",
        LOAD,
        "one byte of model.pt flipped (corrupted file)",
        lambda t: {"folder": flip_byte(saved_model(t), "model.pt")},
        _load,
        InvalidFileError,
        r"model\.pt in .* does not match the checksum in manifest\.json",
    ),
    Case(
        "load-truncated",
        LOAD,
        "model.pt truncated to 200 bytes",
        lambda t: {"folder": _truncate(saved_model(t), sign=False)},
        _load,
        InvalidFileError,
        r"model\.pt in .* is 200 bytes but the manifest records \d+",
    ),
    Case(
        "load-truncated-resigned",
        LOAD,
        "model.pt truncated to 200 bytes (re-signed)",
        lambda t: {"folder": _truncate(saved_model(t), sign=True)},
        _load,
        InvalidFileError,
        r"model\.pt in .* is not a torch weights archive",
    ),
    Case(
        "load-pickled-code",
        LOAD,
        "model.pt replaced by a pickle that runs code when unpickled (re-signed)",
        _malicious,
        _load,
        InvalidFileError,
        r"cannot be read as plain weights \(UnpicklingError\).*never unpickled",
    ),
    Case(
        "load-nan-weights",
        LOAD,
        "model.pt holding a NaN weight (re-signed)",
        _nan_weights,
        _load,
        InvalidFileError,
        r"model\.pt in .* holds tensors that are not finite floating-point numbers",
    ),
    Case(
        "load-unknown-setting",
        LOAD,
        "config.json holds a setting this version does not know (re-signed)",
        _params(colour="blue"),
        _load,
        InvalidFileError,
        r"settings in .*config\.json are not valid for this version of scmatch .*'colour'",
    ),
    Case(
        "load-bad-setting",
        LOAD,
        "config.json holds an invalid setting value (re-signed)",
        _params(loss="hinge"),
        _load,
        InvalidFileError,
        r"not valid for this version .*Unknown loss 'hinge'",
    ),
    Case(
        "load-huge-width",
        LOAD,
        "config.json: `d_model` edited to 10^9 (would allocate without bound; re-signed)",
        _params(d_model=10**9),
        _load,
        InvalidFileError,
        r"config\.json in .* sets 'd_model' to 1000000000, above the largest a model may have \(65536\)",
    ),
    Case(
        "load-huge-depth",
        LOAD,
        "config.json: `n_layers` edited to 10^8 (would build layers without end; re-signed)",
        _params(n_layers=10**8),
        _load,
        InvalidFileError,
        r"sets 'n_layers' to 100000000, above the largest",
    ),
    Case(
        "load-layers-mismatch",
        LOAD,
        "config.json: `n_layers` edited from 1 to 200, within bounds (re-signed)",
        _params(n_layers=200),
        _load,
        InvalidFileError,
        r"do not fit together \(n_layers 200 in config\.json but 1 in model\.pt\)",
    ),
    Case(
        "load-members-mismatch",
        LOAD,
        "config.json: `n_models` edited from 3 to 2 (re-signed)",
        _params(n_models=2),
        _load,
        InvalidFileError,
        r"do not fit together \(n_models 2 in config\.json but 3 in model\.pt\)",
    ),
    Case(
        "load-embed-mismatch",
        LOAD,
        "config.json: `d_embed` edited from 16 to 8 (re-signed)",
        _params(d_embed=8),
        _load,
        InvalidFileError,
        r"do not fit together \(d_embed 8 in config\.json but 16 in model\.pt\)",
    ),
    Case(
        "load-feature-count",
        LOAD,
        "config.json: number of features (and names) edited to 9 (re-signed)",
        _config(_more_features),
        _load,
        InvalidFileError,
        r"do not fit together \(n_features1 9 in config\.json but 8 in model\.pt\)",
    ),
    Case(
        "load-feature-names-count",
        LOAD,
        "config.json: 8 features but 7 feature names (re-signed)",
        _config(lambda c: c["feature_names"][0].pop()),
        _load,
        InvalidFileError,
        r"has invalid fields \['feature_names'\]",
    ),
    Case(
        "load-bad-field",
        LOAD,
        "config.json: temperatures edited to text (re-signed)",
        _config(lambda c: c.update(temperature="hot")),
        _load,
        InvalidFileError,
        r"has invalid fields \['temperature'\]",
    ),
    Case(
        "load-temperature-nan",
        LOAD,
        "config.json: a temperature edited to NaN (re-signed)",
        _config(lambda c: c["temperature"].update(softmax=float("nan"))),
        _load,
        InvalidFileError,
        r"has invalid fields \['temperature'\]",
    ),
    Case(
        "load-setting-infinite",
        LOAD,
        "config.json: `lr` edited to Infinity (re-signed)",
        _params(lr=float("inf")),
        _load,
        InvalidFileError,
        r"holds a non-finite number for setting 'lr'",
    ),
    Case(
        "load-fingerprint-field",
        LOAD,
        "config.json: a fingerprint edited to a number (re-signed)",
        _config(lambda c: c.update(fingerprints=[7, None])),
        _load,
        InvalidFileError,
        r"has invalid fields \['fingerprints'\]",
    ),
    Case(
        "load-joint-shape",
        LOAD,
        "config.json: the joint projection's bases of different ranks (re-signed)",
        _config(_joint_rank_mismatch),
        _load,
        InvalidFileError,
        r"holds a 'joint' projection whose two bases differ in rank",
    ),
    Case(
        "load-joint-width",
        LOAD,
        "config.json: the joint projection's centre one entry short (re-signed)",
        _config(lambda c: c["joint"]["mean1"].pop()),
        _load,
        InvalidFileError,
        r"holds an invalid 'joint' projection \(it must fit the 48-dimensional embeddings\)",
    ),
    Case(
        "load-links-weight",
        LOAD,
        "config.json: the feature links' weight edited to -1 (re-signed)",
        _config(lambda c: c.update(links={"protein": ["CD3"], "genes": ["CD3E"], "proteins_in": 2, "weight": -1})),
        _load,
        InvalidFileError,
        r"holds invalid 'links' \(it needs 'protein' and 'genes'",
    ),
    Case(
        "load-depth-scale",
        LOAD,
        "config.json: the depth input's scale edited to a negative number (re-signed)",
        _config(
            lambda c: c.update(
                depth={"scale": [-1.0, 1.0], "correlation": 0.5, "reference_mean": [6.0, 5.0], "reference_sd": [1, 1]}
            )
        ),
        _load,
        InvalidFileError,
        r"holds an invalid 'depth' \(it needs 'scale' and 'reference_sd', two positive numbers each",
    ),
    Case(
        "load-preprocessing-one-modality",
        LOAD,
        "preprocessing.json lists one modality (re-signed)",
        lambda t: {"folder": edit_json(saved_with_preprocessing(t), "preprocessing.json", _one_modality)},
        _load,
        InvalidFileError,
        r"preprocessing\.json in .* must describe two modalities \(format 1\), one per model input",
    ),
    Case(
        "load-preprocessing-recipe",
        LOAD,
        "preprocessing.json names an unknown recipe (re-signed)",
        lambda t: {
            "folder": edit_json(
                saved_with_preprocessing(t), "preprocessing.json", lambda m: m["modalities"][0].update(recipe="dna")
            )
        },
        _load,
        InvalidFileError,
        r"preprocessing\.json in .* has an invalid mod1 entry \(recipe 'dna'\)",
    ),
    Case(
        "load-preprocessing-setting",
        LOAD,
        "preprocessing.json: the normalisation target edited to -1 (re-signed)",
        lambda t: {
            "folder": edit_json(
                saved_with_preprocessing(t),
                "preprocessing.json",
                lambda m: m["modalities"][0]["scalars"].update(target_sum=-1),
            )
        },
        _load,
        InvalidFileError,
        r"has an invalid mod1 setting target_sum=-1",
    ),
    Case(
        "load-preprocessing-shape",
        LOAD,
        "preprocessing.npz: the rna loadings with 7 components for the model's 8 (re-signed)",
        lambda t: {
            "folder": edit_npz(saved_with_preprocessing(t), lambda a: a.update(mod1_loadings=a["mod1_loadings"][:, :7]))
        },
        _load,
        InvalidFileError,
        r"preprocessing\.npz in .* holds mod1_loadings of shape \(30, 7\) and dtype float64, but the model needs "
        r"finite float64 of shape \(30, 8\)",
    ),
    Case(
        "load-preprocessing-dtype",
        LOAD,
        "preprocessing.npz: feature names stored as numbers (re-signed)",
        lambda t: {"folder": edit_npz(saved_with_preprocessing(t), lambda a: a.update(mod1_features=np.arange(30)))},
        _load,
        InvalidFileError,
        r"holds invalid mod1 feature names \(dtype int64\)",
    ),
    Case(
        "load-preprocessing-missing-array",
        LOAD,
        "preprocessing.npz lacks the atac IDF (re-signed)",
        lambda t: {"folder": edit_npz(saved_with_preprocessing(t), lambda a: a.pop("mod2_vector_idf"))},
        _load,
        InvalidFileError,
        r"lacks the arrays \['mod2_vector_idf'\] of recipe_atac",
    ),
    Case(
        "load-preprocessing-other-fit",
        LOAD,
        "config.json records another fit's fingerprint than the bundled preprocessing (re-signed)",
        lambda t: {
            "folder": edit_json(
                saved_with_preprocessing(t),
                "config.json",
                lambda c: c["fingerprints"].__setitem__(0, "0123456789abcdef"),
            )
        },
        _load,
        InvalidFileError,
        r"holds the mod1 preprocessing of another fit \(fingerprint [0-9a-f]{16}\) than the one the model was "
        r"trained on \(0123456789abcdef\)",
    ),
    Case(
        "load-legacy-huge-width",
        LOAD,
        "legacy folder: config.json `d_model` edited to 10^9 (config.json has no checksum there)",
        _config(lambda c: c["params"].update(d_model=10**9), model=legacy_model, sign=False),
        _load,
        InvalidFileError,
        r"sets 'd_model' to 1000000000, above the largest",
    ),
    Case(
        "load-legacy-layers",
        LOAD,
        "legacy folder: config.json `n_layers` edited from 1 to 2",
        _config(lambda c: c["params"].update(n_layers=2), model=legacy_model, sign=False),
        _load,
        InvalidFileError,
        r"do not fit together \(n_layers 2 in config\.json but 1 in model\.pt\)",
    ),
    Case(
        "load-legacy-flipped-byte",
        LOAD,
        "legacy folder: one byte of model.pt flipped",
        lambda t: {"folder": flip_byte(legacy_model(t), "model.pt")},
        _load,
        InvalidFileError,
        r"model\.pt in .* is missing or does not match the checksum in config\.json",
    ),
    Case(
        "save-onto-file",
        SAVE,
        "a path that is an existing file",
        lambda t: {"file": _write(t / "model", "a file")},
        lambda o: fitted_model().save(o["file"]),
        ValueError,
        r"exists and is not a directory",
    ),
    Case(
        "save-no-overwrite",
        SAVE,
        "a folder that already holds a model",
        lambda t: {"folder": saved_model(t)},
        lambda o: fitted_model().save(o["folder"]),
        ValueError,
        r"A model is already saved in .*; pass `overwrite=True`",
    ),
    Case(
        "save-into-other-folder",
        SAVE,
        "a folder that holds other files, with `overwrite=True` (nothing may be mixed in or deleted)",
        lambda t: {"folder": _write(_mkdir(t / "results") / "notes.txt", "mine").parent},
        lambda o: fitted_model().save(o["folder"], overwrite=True),
        ValueError,
        r"holds files other than a saved scmatch model \(it has no manifest\.json with scmatch's marker; found "
        r"\['notes\.txt'\]\); choose another path",
    ),
    Case(
        "save-over-other-tool",
        SAVE,
        "another tool's folder with a config.json and a model.pt, with `overwrite=True`",
        _other_tool,
        lambda o: fitted_model().save(o["folder"], overwrite=True),
        ValueError,
        r"has no manifest\.json with scmatch's marker; found \['config\.json', 'model\.pt'\]\).*older scmatch",
    ),
    Case(
        "save-over-legacy",
        SAVE,
        "a legacy model folder (no manifest), with `overwrite=True`",
        lambda t: {"folder": legacy_model(t)},
        lambda o: fitted_model().save(o["folder"], overwrite=True),
        ValueError,
        r"found \['config\.json', 'model\.pt', 'preprocessing\.json', 'preprocessing\.npz'\]\).*load it with "
        r"MatchModel\.load and save it to a new folder",
    ),
    Case(
        "save-model-with-foreign-file",
        SAVE,
        "a saved model's folder that also holds a file of yours, with `overwrite=True`",
        _with_notes,
        lambda o: fitted_model().save(o["folder"], overwrite=True),
        ValueError,
        r"holds files other than a saved scmatch model \(e\.g\. \['notes\.txt'\]\)",
    ),
]


def _rewrite_manifest(folder: Path, edit: Callable[[dict], None]) -> Path:
    """Edit manifest.json and update its own checksum to match."""
    from scmatch.model._manifest import _canonical_sha256

    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    fields = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    (folder / "manifest.json").write_text(json.dumps({**fields, "manifest_sha256": _canonical_sha256(fields)}))
    return folder


def _grow_size(manifest: dict) -> None:
    manifest["files"]["model.pt"]["size"] += 1


def _halve(folder: Path, name: str) -> Path:
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])
    return folder


def _append(folder: Path, name: str, text: str) -> Path:
    with open(folder / name, "a") as handle:
        handle.write(text)
    return folder


def _delete(folder: Path, name: str) -> Path:
    (folder / name).unlink()
    return folder


def _truncate(folder: Path, *, sign: bool) -> Path:
    return replace_bytes(folder, "model.pt", (folder / "model.pt").read_bytes()[:200], sign=sign)


# ---------------------------------------------------------------------------------------------------- predictions
def prediction(tmp: Path, name: str = "pred.h5ad") -> Path:
    """A valid 3 x 3 prediction file written by scmatch."""
    path = tmp / name
    scm.io.write_prediction(sp.identity(3, format="csr"), path, dataset_id="toy")
    return path


def _edited_prediction(tmp: Path) -> dict[str, Any]:
    path = prediction(tmp)
    with h5py.File(path, "r+") as h5:
        h5["X/indices"][0] = 1  # cell 0 now matches cell 1: still a valid prediction, but not the one written
    return {"path": path}


def _plain_hdf5(path: Path) -> Path:
    with h5py.File(path, "w") as h5:
        h5["numbers"] = np.arange(3)
    return path


def _h5mu(path: Path) -> Path:
    import mudata as md

    md.MuData(
        {"rna": ad.AnnData(np.eye(3, dtype=np.float32)), "atac": ad.AnnData(np.eye(3, dtype=np.float32))}
    ).write_h5mu(path)
    return path


def _truncated_copy(path: Path, target: Path) -> Path:
    target.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return target


def _link(target: Path, link: Path) -> Path:
    link.symlink_to(target)
    return link


def _inputs_and_link(tmp: Path) -> dict[str, Any]:
    files = _challenge_files(tmp)
    return {"files": files, "link": _link(files["test_mod1"], tmp / "out.h5ad")}


IO_CASES: list[Case] = [
    Case(
        "io-write-onto-input",
        WRITE,
        "a path that is one of the `inputs=` files",
        lambda t: {"files": _challenge_files(t)},
        lambda o: scm.io.write_prediction(
            np.eye(4), o["files"]["test_mod1"], dataset_id="toy", inputs=list(o["files"].values())
        ),
        OutputIsInputError,
        r"The prediction path .*test_mod1\.h5ad is the input `inputs\[3\]` .*; writing it would destroy that input",
    ),
    Case(
        "io-write-through-link",
        WRITE,
        "a path that is a symbolic link to an `inputs=` file",
        _inputs_and_link,
        lambda o: scm.io.write_prediction(np.eye(4), o["link"], dataset_id="toy", inputs=[o["files"]["test_mod1"]]),
        OutputIsInputError,
        r"out\.h5ad \(a link to .*test_mod1\.h5ad\) is the input `inputs\[0\]`",
    ),
    Case(
        "io-write-over-data",
        WRITE,
        "a path holding a data .h5ad that is not a prediction (no `inputs=` given)",
        lambda t: {"files": _challenge_files(t)},
        lambda o: scm.io.write_prediction(np.eye(4), o["files"]["train_sol"], dataset_id="toy"),
        ValueError,
        r"exists and is an HDF5 file without uns\['dataset_id'\] and uns\['method_id'\] \(e\.g\. an input \.h5ad\), "
        r"not a prediction file, so it is not replaced",
    ),
    Case(
        "io-write-over-text",
        WRITE,
        "a path holding a text file",
        lambda t: {"path": _write(t / "notes.h5ad", "mine")},
        lambda o: scm.io.write_prediction(np.eye(3), o["path"], dataset_id="toy"),
        ValueError,
        r"exists and is a file that is not HDF5, not a prediction file",
    ),
    Case(
        "io-read-text",
        READ,
        "a text file",
        lambda t: {"path": _write(t / "pred.h5ad", "not a prediction")},
        lambda o: scm.io.read_prediction(o["path"]),
        InvalidFileError,
        r"is not an HDF5 file, so neither an AnnData \.h5ad nor a MuData \.h5mu \(it starts with b'not a prediction'\)",
    ),
    Case(
        "io-read-empty",
        READ,
        "an empty file",
        lambda t: {"path": _write(t / "pred.h5ad", "")},
        lambda o: scm.io.read_prediction(o["path"]),
        InvalidFileError,
        r"is empty \(0 bytes\)",
    ),
    Case(
        "io-read-h5mu",
        READ,
        "a MuData .h5mu",
        lambda t: {"path": _h5mu(t / "pred.h5mu")},
        lambda o: scm.io.read_prediction(o["path"]),
        InvalidFileError,
        r"is a MuData \.h5mu file, but an AnnData \.h5ad is expected here",
    ),
    Case(
        "io-read-plain-hdf5",
        READ,
        "an HDF5 file that is not an AnnData",
        lambda t: {"path": _plain_hdf5(t / "pred.h5ad")},
        lambda o: scm.io.read_prediction(o["path"]),
        InvalidFileError,
        r"is an HDF5 file but not an AnnData \.h5ad \(encoding-type None, top-level entries \['numbers'\]\)",
    ),
    Case(
        "io-read-truncated",
        READ,
        "a prediction truncated to half",
        lambda t: {"path": _truncated_copy(prediction(t), t / "half.h5ad")},
        lambda o: scm.io.read_prediction(o["path"]),
        InvalidFileError,
        r"half\.h5ad is a damaged HDF5 file \(OSError: .*truncated file",
    ),
    Case(
        "io-read-edited",
        READ,
        "a prediction whose matches were edited after writing (still a valid prediction)",
        _edited_prediction,
        lambda o: scm.io.read_prediction(o["path"]),
        InvalidFileError,
        r"does not match the checksum written with it \(uns\['scmatch_sha256'\]\)",
    ),
    Case(
        "io-challenge-h5mu",
        "io.read_match_modality",
        "an .h5mu given as `train_mod1`",
        lambda t: {"files": {**_challenge_files(t), "train_mod1": _h5mu(t / "data.h5mu")}},
        lambda o: scm.io.read_match_modality(**o["files"]),
        InvalidFileError,
        r"The train_mod1 file .*data\.h5mu is a MuData \.h5mu file, but an AnnData \.h5ad is expected here",
    ),
]


# ---------------------------------------------------------------------------------------------------- the command
def _cli_files(tmp: Path, **replace: Callable[[Path], Path]) -> dict[str, Any]:
    """Valid challenge files, some replaced by ``replace[role](tmp)``; the output folder is ``tmp``."""
    files = _challenge_files(tmp)
    files |= {role: make(tmp) for role, make in replace.items()}
    return {"files": files, "folder": tmp}


def _match_to(output: Callable[[dict[str, Any]], Path]) -> Callable[[dict[str, Any]], None]:
    return lambda o: _cli(_match_args(o["files"], output(o)))


CLI_CASES: list[Case] = [
    Case(
        "cli-output-is-input",
        CLI,
        "`--output` names the `--test-mod1` file",
        _cli_files,
        _match_to(lambda o: o["files"]["test_mod1"]),
        CLIExit,
        r"exit code 2; stderr: scmatch: error: --output .*test_mod1\.h5ad is the input --test-mod1 .*; writing it "
        r"would destroy that input, so nothing was written\. Choose another output path\.",
    ),
    Case(
        "cli-output-link-to-input",
        CLI,
        "`--output` is a symbolic link to the `--train-sol` file",
        lambda t: _cli_files(t) | {"link": _link(t / "train_sol.h5ad", t / "pred.h5ad")},
        _match_to(lambda o: o["link"]),
        CLIExit,
        r"exit code 2; .*--output .*pred\.h5ad \(a link to .*train_sol\.h5ad\) is the input --train-sol",
    ),
    Case(
        "cli-output-data-file",
        CLI,
        "`--output` names an existing data .h5ad that is not an input of this run",
        lambda t: _cli_files(t) | {"other": _h5ad_copy(t / "train_mod1.h5ad", _mkdir(t / "other") / "x.h5ad")},
        _match_to(lambda o: o["other"]),
        CLIExit,
        r"exit code 2; stderr: scmatch: error: --output .*x\.h5ad exists and is an HDF5 file without "
        r"uns\['dataset_id'\]",
    ),
    Case(
        "cli-h5mu-input",
        CLI,
        "an .h5mu given as `--train-mod1`",
        lambda t: _cli_files(t, train_mod1=lambda d: _h5mu(d / "data.h5mu")),
        _match_to(lambda o: o["folder"] / "out.h5ad"),
        CLIExit,
        r"exit code 2; stderr: scmatch: error: --train-mod1 .*data\.h5mu is a MuData \.h5mu file, but an AnnData "
        r"\.h5ad is expected here",
    ),
    Case(
        "cli-plain-hdf5-input",
        CLI,
        "a plain HDF5 file given as `--test-mod2`",
        lambda t: _cli_files(t, test_mod2=lambda d: _plain_hdf5(d / "plain.h5")),
        _match_to(lambda o: o["folder"] / "out.h5ad"),
        CLIExit,
        r"exit code 2; stderr: scmatch: error: --test-mod2 .*plain\.h5 is an HDF5 file but not an AnnData \.h5ad",
    ),
    Case(
        "cli-damaged-input",
        CLI,
        "a truncated `--train-sol` file",
        lambda t: _cli_files(t, train_sol=lambda d: _truncated_copy(d / "train_sol.h5ad", d / "half.h5ad")),
        _match_to(lambda o: o["folder"] / "out.h5ad"),
        CLIExit,
        r"exit code 2; stderr: scmatch: error: --train-sol .*half\.h5ad is a damaged HDF5 file",
    ),
    Case(
        "cli-demo-h5ad",
        CLI,
        "`demo --data` given an .h5ad instead of an .h5mu",
        lambda t: {"files": _challenge_files(t)},
        lambda o: _cli(["demo", "--data", str(o["files"]["train_mod1"])]),
        CLIExit,
        r"exit code 2; stderr: scmatch: error: --data .* is an AnnData \.h5ad file, but a MuData \.h5mu",
    ),
    Case(
        "cli-evaluate-edited",
        CLI,
        "`evaluate --prediction` given a prediction edited after writing",
        lambda t: _edited_prediction(t) | {"sol": _write_solution(t / "sol.h5ad")},
        lambda o: _cli(["evaluate", "--prediction", str(o["path"]), "--solution", str(o["sol"])]),
        CLIExit,
        r"exit code 2; stderr: scmatch: error: The prediction file .* does not match the checksum written with it",
    ),
]


def _h5ad_copy(source: Path, target: Path) -> Path:
    shutil.copyfile(source, target)
    return target


def _write_solution(path: Path) -> Path:
    ad.AnnData(X=sp.identity(3, format="csr", dtype=np.float32), uns={"dataset_id": "toy"}).write_h5ad(path)
    return path


# ---------------------------------------------------------------------------------------------------- tl
def _nullable_flag_with_na(tmp: Path) -> dict[str, Any]:
    mdata = toy_mudata()
    for mod in ("rna", "atac"):
        flags = mdata[mod].obs["is_reference"].astype("boolean")
        flags.iloc[3] = pd.NA
        mdata[mod].obs["is_reference"] = flags
    return {"mdata": mdata}


def _reference_changed_after_projection(tmp: Path) -> dict[str, Any]:
    """A query projected onto a reference, whose PCA loadings are changed afterwards (its fingerprint kept)."""
    out = _mapping(alone=False)(tmp)
    scm.pp.recipe_rna(out["query"], mod="rna", reference=out["reference"])
    scm.pp.recipe_atac(out["query"], mod="atac", reference=out["reference"])
    out["reference"]["rna"].varm["PCs"] = out["reference"]["rna"].varm["PCs"][:, ::-1].copy()
    return out


TL_CASES: list[Case] = [
    Case(
        "tl-reference-flag-na",
        "tl.match_modalities",
        "a nullable `boolean` reference column with a missing value (<NA>)",
        _nullable_flag_with_na,
        lambda o: scm.tl.match_modalities(o["mdata"], reference="is_reference", model=tiny_model()),
        ValueError,
        r"mdata\['rna'\]\.obs\['is_reference'\] has 1 missing values \(<NA>, e\.g\. cells \['c3'\]\).*fillna\(False\)",
    ),
    Case(
        "tl-reference-changed",
        "tl.match_modalities",
        "a reference MuData whose PCA loadings changed after the query was projected onto it",
        _reference_changed_after_projection,
        lambda o: scm.tl.match_modalities(
            o["query"], mod1="rna", mod2="atac", reference=o["reference"], model=tiny_model()
        ),
        ValueError,
        r"the reference's modality 'rna': the recipe's fitted state no longer matches its fingerprint.*Then "
        r"project the query onto it again: scmatch\.pp\.recipe_rna\(mdata, mod='rna', reference=reference\)",
    ),
]

DISK_CASES: list[Case] = [*TL_CASES, *MODEL_CASES, *IO_CASES, *CLI_CASES]
#: every case: those of :mod:`.cases`, then these (the docs table lists them in this order)
ALL_CASES: list[Case] = [*CASES, *DISK_CASES]
