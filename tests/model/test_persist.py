"""MatchModel.save writes its folder in one step: an interrupted save leaves the previous model loadable."""

import hashlib
import json

import numpy as np
import pytest
import torch

from scmatch._errors import InvalidFileError
from scmatch.model import MatchModel, TrainingPlan, _manifest, _persist

TINY = {"n_tokens": 2, "d_model": 16, "d_embed": 16, "device": "cpu"}
PLAN = TrainingPlan(max_epochs=2, progress_bar=False)


@pytest.fixture(scope="module")
def two_models(toy_pairs):
    """Two different small models (other seeds), fitted on 60 pairs."""
    x1, x2 = toy_pairs
    return [MatchModel(**TINY).fit(x1[:60], x2[:60], plan=PLAN, random_state=seed) for seed in (0, 1)]


def _query(toy_pairs):
    return toy_pairs[0][400:], toy_pairs[1][400:]


def _listing(folder) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def _same_predictions(a, b, toy_pairs) -> bool:
    return (a.predict_proba(*_query(toy_pairs)) != b.predict_proba(*_query(toy_pairs))).nnz == 0


def _torch_save_half_then_fail(obj, f, *args, **kwargs):
    with open(f, "wb") as handle:
        handle.write(b"PK\x03\x04 half an archive")
    raise OSError("No space left on device")


@pytest.mark.parametrize(
    ("where", "replacement", "error"),
    [
        ("torch.save", _torch_save_half_then_fail, OSError),
        ("json.dumps", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt), KeyboardInterrupt),
    ],
    ids=["while-writing-model.pt", "between-model.pt-and-config.json"],
)
def test_interrupted_overwrite_keeps_the_previous_model(
    two_models, toy_pairs, tmp_path, monkeypatch, where, replacement, error
):
    old, new = two_models
    assert not _same_predictions(old, new, toy_pairs)
    old.save(tmp_path / "m")
    before = _listing(tmp_path)
    module, name = where.split(".")
    monkeypatch.setattr(getattr(_persist, module), name, replacement)
    with pytest.raises(error):
        new.save(tmp_path / "m", overwrite=True)
    monkeypatch.undo()
    assert _listing(tmp_path) == before  # the same files, byte for byte, and no temporary folder left
    loaded = MatchModel.load(tmp_path / "m", device="cpu")
    assert _same_predictions(loaded, old, toy_pairs)


def test_interrupted_first_save_leaves_nothing(two_models, tmp_path, monkeypatch):
    def half_write(self, text, *args, **kwargs):
        with open(self, "w") as handle:
            handle.write(text[: len(text) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(_persist.Path, "write_text", half_write)
    with pytest.raises(KeyboardInterrupt):
        two_models[0].save(tmp_path / "m")
    monkeypatch.undo()
    assert _listing(tmp_path) == {}


def test_overwrite_replaces_the_model(two_models, toy_pairs, tmp_path):
    old, new = two_models
    old.save(tmp_path / "m")
    new.save(tmp_path / "m", overwrite=True)
    assert sorted(_listing(tmp_path)) == ["m", "m/config.json", "m/manifest.json", "m/model.pt"]
    assert _same_predictions(MatchModel.load(tmp_path / "m", device="cpu"), new, toy_pairs)


def test_save_into_new_parents_and_an_empty_folder(two_models, tmp_path):
    two_models[0].save(tmp_path / "a" / "b" / "m")
    (tmp_path / "empty").mkdir()
    two_models[0].save(tmp_path / "empty")
    for folder in (tmp_path / "a" / "b" / "m", tmp_path / "empty"):
        assert sorted(p.name for p in folder.iterdir()) == ["config.json", "manifest.json", "model.pt"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_folder_with_other_files_is_refused_and_untouched(two_models, tmp_path, overwrite):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "notes.txt").write_text("mine")
    before = _listing(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"holds files other than a saved scmatch model \(it has no manifest\.json with scmatch's "
        r"marker; found \['notes\.txt'\]\); choose",
    ):
        two_models[0].save(tmp_path / "results", overwrite=overwrite)
    assert _listing(tmp_path) == before


def test_model_folder_with_a_foreign_file_is_not_overwritten(two_models, tmp_path):
    two_models[0].save(tmp_path / "m")
    (tmp_path / "m" / "notes.txt").write_text("mine")
    before = _listing(tmp_path)
    with pytest.raises(ValueError, match=r"already saved"):
        two_models[1].save(tmp_path / "m")
    with pytest.raises(ValueError, match=r"other than a saved scmatch model \(e\.g\. \['notes\.txt'\]\)"):
        two_models[1].save(tmp_path / "m", overwrite=True)
    assert _listing(tmp_path) == before


def test_damaged_model_can_be_overwritten(two_models, toy_pairs, tmp_path):
    two_models[0].save(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    two_models[1].save(tmp_path / "m", overwrite=True)
    assert _same_predictions(MatchModel.load(tmp_path / "m", device="cpu"), two_models[1], toy_pairs)


def _save(model, path, **kwargs):
    module = model.module_
    _persist.save_model(
        path,
        params=model._flat_params(),
        state=module.state_dict(),
        extra={
            "n_features": [int(module.shift1.shape[0]), int(module.shift2.shape[0])],
            "temperature": model.temperature_,
            "history": model.history_,
            "feature_names": list(model.feature_names_),
        },
        version="test",
        **kwargs,
    )


def _extra_writer(folder):
    (folder / "extra.json").write_text('{"recipe": "rna"}')
    np.savez(folder / "extra.npz", mean=np.arange(3.0))
    return ["extra.json", "extra.npz"]


def test_extra_files_are_checksummed_and_verified(two_models, toy_pairs, tmp_path):
    folder = tmp_path / "m"
    _save(two_models[0], folder, extra_files=_extra_writer)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == "scmatch.model" and manifest["format_version"] == 2
    assert sorted(manifest["files"]) == ["config.json", "extra.json", "extra.npz", "model.pt"]
    for name, entry in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    params, _, extra = _persist.load_model(folder)
    assert extra["files"] == ["extra.json", "extra.npz"] and params == two_models[0]._flat_params()
    # the listed files belong to the model: overwriting it is allowed and replaces them
    _save(two_models[1], folder, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "manifest.json", "model.pt"]
    _save(two_models[0], folder, overwrite=True, extra_files=_extra_writer)
    (folder / "extra.json").write_text('{"recipe": "atac"}')
    with pytest.raises(InvalidFileError, match=r"extra\.json in .* is 18 bytes but the manifest records 17"):
        MatchModel.load(folder)
    (folder / "extra.json").write_text('{"recipe": "dna"}')
    with pytest.raises(InvalidFileError, match=r"extra\.json in .* does not match the checksum in manifest\.json"):
        MatchModel.load(folder)
    _save(two_models[0], folder, overwrite=True, extra_files=_extra_writer)
    (folder / "extra.npz").unlink()
    with pytest.raises(InvalidFileError, match=r"extra\.npz is missing from the model folder"):
        MatchModel.load(folder)


def test_extra_files_failure_keeps_the_previous_model(two_models, toy_pairs, tmp_path):
    _save(two_models[0], tmp_path / "m", extra_files=_extra_writer)
    before = _listing(tmp_path)

    def failing(folder):
        (folder / "extra.json").write_text("{")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _save(two_models[1], tmp_path / "m", overwrite=True, extra_files=failing)
    assert _listing(tmp_path) == before
    assert _same_predictions(MatchModel.load(tmp_path / "m", device="cpu"), two_models[0], toy_pairs)


@pytest.mark.parametrize(
    ("writer", "message"),
    [
        (lambda f: ["config.json"], r"returned \['config\.json'\]"),
        (lambda f: ["../outside.txt"], r"returned \['\.\./outside\.txt'\]"),
        (lambda f: ["never.txt"], r"named but not written \['never\.txt'\], written but not named \[\]"),
        (lambda f: (f / "secret.txt").write_text("x") and [], r"written but not named \['secret\.txt'\]"),
    ],
)
def test_extra_files_must_name_what_they_write(two_models, tmp_path, writer, message):
    with pytest.raises(ValueError, match=message):
        _save(two_models[0], tmp_path / "m", extra_files=writer)
    assert _listing(tmp_path) == {}


def _rewrite_manifest(folder, edit):
    """Edit manifest.json and give it a matching checksum, as a deliberate tamperer would."""
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    fields = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    manifest["manifest_sha256"] = _manifest._canonical_sha256(fields)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_listed_files_with_bad_names_are_refused(two_models, tmp_path):
    folder = tmp_path / "m"
    _save(two_models[0], folder)
    _rewrite_manifest(folder, lambda m: m["files"].update({"../../etc/passwd": {"size": 1, "sha256": "0" * 64}}))
    with pytest.raises(InvalidFileError, match=r"manifest\.json in .* has an invalid list of files"):
        MatchModel.load(folder)


def test_saved_weights_are_plain_tensors(two_models, tmp_path):
    two_models[0].save(tmp_path / "m")
    state = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
