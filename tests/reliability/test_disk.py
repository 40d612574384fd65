"""Files on disk: legacy model folders load, outputs never replace inputs, the command never shows a traceback."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pytest
import scipy.sparse as sp

import scmatch as scm
from scmatch._cli import main as cli_main
from scmatch._errors import InvalidFileError, OutputIsInputError
from scmatch.model import MatchModel

from .cases import (
    N_CELLS,
    N_REF,
    _challenge_files,
    _count_mudata,
    _mapping,
    _match_args,
    tiny_model,
    toy_mudata,
)
from .disk_cases import LEGACY, legacy_model, saved_with_preprocessing

EXPECTED = LEGACY.parent / "legacy_model_v1_expected.npy"


def _query_of_legacy(model: MatchModel) -> tuple[np.ndarray, np.ndarray]:
    """The 12 query cells the legacy model's expected predictions were computed on, projected by the model."""
    query = _count_mudata(slice(N_REF, N_CELLS))
    scm.pp.recipe_rna(query, mod="rna", reference=model)
    scm.pp.recipe_atac(query, mod="atac", reference=model)
    return query["rna"].obsm["X_pca"], query["atac"].obsm["X_lsi"]


def assert_same_predictions(actual: np.ndarray, expected: np.ndarray) -> None:
    """The stored predictions, to float32 precision: the network runs in float32, whose last bits differ between
    CPUs (vector widths, BLAS kernels); a change in the weights or the maths moves them by far more."""
    assert actual.shape == expected.shape and np.array_equal(actual > 0, expected > 0)
    np.testing.assert_allclose(actual, expected, rtol=2e-6, atol=1e-7)


def test_legacy_folder_loads_with_its_predictions(caplog):
    """A folder saved before manifests (by the code of that time) loads, with a note, and predicts as it did."""
    assert not (LEGACY / "manifest.json").exists()
    with caplog.at_level(logging.INFO, logger="scmatch"):
        model = MatchModel.load(LEGACY, device="cpu")
    assert "saved by an older scmatch, without a manifest" in caplog.text
    assert [s.recipe for s in model.preprocessing_] == ["rna", "atac"]
    P = model.predict_proba(*_query_of_legacy(model))
    assert_same_predictions(P.toarray(), np.load(EXPECTED))


def test_legacy_model_saved_again_gets_a_manifest(tmp_path):
    model = MatchModel.load(legacy_model(tmp_path), device="cpu")
    model.save(tmp_path / "new")
    manifest = json.loads((tmp_path / "new" / "manifest.json").read_text())
    assert manifest["format"] == "scmatch.model" and manifest["scmatch_version"] == scm.__version__
    assert sorted(manifest["files"]) == ["config.json", "model.pt", "preprocessing.json", "preprocessing.npz"]
    again = MatchModel.load(tmp_path / "new", device="cpu")
    P = again.predict_proba(*_query_of_legacy(again))
    assert_same_predictions(P.toarray(), np.load(EXPECTED))


def test_overwrite_replaces_a_marked_model(tmp_path):
    folder = saved_with_preprocessing(tmp_path)
    first = MatchModel.load(folder, device="cpu")
    tiny_model().fit(*_pairs(), random_state=3).save(folder, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "manifest.json", "model.pt"]
    assert MatchModel.load(folder, device="cpu").preprocessing_ == (None, None) != first.preprocessing_


def _pairs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(60, 3))
    return z @ rng.normal(size=(3, 8)), z @ rng.normal(size=(3, 6))


def test_save_refuses_a_folder_holding_its_backed_preprocessing(tmp_path):
    built = _mapping(alone=False, model=True)(tmp_path)
    target = tmp_path / "target"
    target.mkdir()
    built["reference"]["rna"].write_h5ad(target / "reference_rna.h5ad")
    backed = ad.read_h5ad(target / "reference_rna.h5ad", backed="r")
    before = sorted(os.listdir(target))
    with pytest.raises(OutputIsInputError, match=r"The model folder .*target holds the input `preprocessing\[0\]`"):
        built["model"].save(target, overwrite=True, preprocessing=(backed, None))
    backed.file.close()
    assert sorted(os.listdir(target)) == before


def test_write_prediction_refuses_the_file_its_matrix_is_read_from(tmp_path):
    path = tmp_path / "pred.h5ad"
    scm.io.write_prediction(sp.identity(3, format="csr"), path, dataset_id="toy")
    before = path.read_bytes()
    with h5py.File(path, "r") as h5, pytest.raises(OutputIsInputError, match=r"is the input the file P is read from"):
        scm.io.write_prediction(h5["X/data"], path, dataset_id="toy")
    assert path.read_bytes() == before


def test_write_prediction_through_a_hard_link_to_an_input(tmp_path):
    files = _challenge_files(tmp_path)
    os.link(files["test_mod2"], tmp_path / "hard.h5ad")
    with pytest.raises(OutputIsInputError, match=r"hard\.h5ad is the input"):
        scm.io.write_prediction(np.eye(4), tmp_path / "hard.h5ad", dataset_id="toy", inputs=[files["test_mod2"]])


def test_a_previous_prediction_is_replaced(tmp_path):
    path = tmp_path / "pred.h5ad"
    scm.io.write_prediction(np.eye(3), path, dataset_id="toy", method_id="old")
    scm.io.write_prediction(np.eye(3), path, dataset_id="toy", method_id="new")
    assert scm.io.read_prediction(path).uns["method_id"] == "new"


def test_prediction_of_another_tool_without_checksum_is_read(tmp_path):
    X = sp.csr_matrix(np.eye(3))
    ad.AnnData(X=X, uns={"dataset_id": "toy", "method_id": "other"}).write_h5ad(tmp_path / "other.h5ad")
    assert (scm.io.read_prediction(tmp_path / "other.h5ad").X != X).nnz == 0


def test_nullable_boolean_reference_flag_gives_the_bool_result():
    plain, nullable = toy_mudata(), toy_mudata()
    for mod in ("rna", "atac"):
        nullable[mod].obs["is_reference"] = nullable[mod].obs["is_reference"].astype("boolean")
    for mdata in (plain, nullable):
        scm.tl.match_modalities(mdata, reference="is_reference", model=tiny_model())
    assert (plain.obsp["match_probabilities"] != nullable.obsp["match_probabilities"]).nnz == 0


def test_reference_checked_deeply_but_unchanged_reference_passes():
    """The deep check refuses a changed reference (tested in cases) and lets an unchanged one through."""
    built = _mapping(alone=False)(Path("."))
    scm.pp.recipe_rna(built["query"], mod="rna", reference=built["reference"])
    scm.pp.recipe_atac(built["query"], mod="atac", reference=built["reference"])
    scm.tl.match_modalities(built["query"], mod1="rna", mod2="atac", reference=built["reference"], model=tiny_model())
    assert "match_probabilities" in built["query"].obsp


def _run_cli(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli_main(args)
    return code, err.getvalue()


def test_cli_failure_that_is_not_the_input_has_no_traceback(tmp_path, monkeypatch):
    files = _challenge_files(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("something internal broke")

    monkeypatch.setattr(scm.io, "read_match_modality", broken)
    code, err = _run_cli(_match_args(files, tmp_path / "out.h5ad"))
    assert code == 1
    assert err.startswith("scmatch: error: something internal broke (RuntimeError; rerun with --verbose")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_output_hard_link_to_input_is_refused(tmp_path):
    files = _challenge_files(tmp_path)
    os.link(files["train_mod2"], tmp_path / "out.h5ad")
    before = files["train_mod2"].read_bytes()
    code, err = _run_cli(_match_args(files, tmp_path / "out.h5ad"))
    assert code == 2 and "is the input --train-mod2" in err and "Traceback" not in err
    assert files["train_mod2"].read_bytes() == before


def test_damaged_model_file_error_names_the_file(tmp_path):
    folder = saved_with_preprocessing(tmp_path)
    data = bytearray((folder / "preprocessing.npz").read_bytes())
    data[100] ^= 0x10
    (folder / "preprocessing.npz").write_bytes(bytes(data))
    with pytest.raises(InvalidFileError, match=r"preprocessing\.npz in .* does not match the checksum") as info:
        MatchModel.load(folder)
    assert info.value.path == str(folder / "preprocessing.npz")
