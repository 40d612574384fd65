"""Train once on a reference, match a new experiment later: fingerprints, refusals, and a model that preprocesses."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import mudata as md
import numpy as np
import pytest
import scipy.sparse as sp
from tests.reliability.snapshot import assert_unchanged, snapshot

import scmatch as scm
from scmatch.model import MatchModel, TrainingPlan

FAST = {"n_tokens": 2, "d_model": 16, "d_embed": 16, "device": "cpu"}
PLAN = TrainingPlan(max_epochs=4, progress_bar=False)


def _fast() -> MatchModel:
    model = MatchModel(**FAST)
    model.plan = PLAN
    return model


@pytest.fixture(scope="module")
def cite(data_dir):
    md.set_options(pull_on_update=False)
    return md.read_h5mu(data_dir / "bmmc_cite_starter.h5mu")


def _donor(cite, batch: str) -> md.MuData:
    return cite[cite.obs["batch"] == batch].copy()


def _unpaired(query: md.MuData) -> tuple[md.MuData, np.ndarray]:
    """The query with its protein cells shuffled and renamed, and each RNA cell's partner column."""
    adt = query["adt"][np.random.default_rng(0).permutation(query["adt"].n_obs)].copy()
    truth = adt.obs_names.get_indexer(query["rna"].obs_names)
    adt.obs_names = [f"adt_{i}" for i in range(adt.n_obs)]
    return md.MuData({"rna": query["rna"].copy(), "adt": adt}), truth


@pytest.fixture(scope="module")
def trained(cite):
    """Reference s1d1 preprocessed alone and a model trained on it through the functional API."""
    reference = _donor(cite, "s1d1")
    scm.pp.recipe_rna(reference, mod="rna")
    scm.pp.recipe_protein(reference, mod="adt")
    model = _fast()
    scm.tl.match_modalities(reference, mod1="rna", mod2="adt", model=model)
    return reference, model


def test_model_remembers_the_reference_preprocessing(trained):
    reference, model = trained
    assert model.fingerprints_ == (
        reference["rna"].uns["scmatch_recipe"]["fingerprint"],
        reference["adt"].uns["scmatch_recipe"]["fingerprint"],
    )
    assert [state.recipe for state in model.preprocessing_] == ["rna", "protein"]
    assert [state.modality for state in model.preprocessing_] == ["rna", "adt"]
    assert reference.uns["match"]["fingerprints"] == {"rna": model.fingerprints_[0], "adt": model.fingerprints_[1]}


def test_separately_preprocessed_query_is_refused(cite, trained):
    reference, model = trained
    query, _ = _unpaired(_donor(cite, "s1d2"))
    scm.pp.recipe_rna(query, mod="rna")  # its own PCA: unrelated axes
    scm.pp.recipe_protein(query, mod="adt")
    before = snapshot(query)
    with pytest.raises(ValueError, match=r"different fit.*than the model's training data.*reference=model\)"):
        scm.tl.match_modalities(query, mod1="rna", mod2="adt", model=model)
    fresh = _fast()
    expected = r"different fit.*than the reference.*recipe_rna\(mdata, mod='rna', reference=reference\)"
    with pytest.raises(ValueError, match=expected):
        scm.tl.match_modalities(query, mod1="rna", mod2="adt", reference=reference, model=fresh)
    assert fresh.module_ is None  # refused before training
    assert_unchanged(query, before)


def test_projected_query_matches_where_its_own_preprocessing_cannot(cite, trained):
    reference, model = trained
    query, truth = _unpaired(_donor(cite, "s1d2"))
    scm.pp.recipe_rna(query, mod="rna", reference=reference)
    scm.pp.recipe_protein(query, mod="adt", reference=model)  # a model with preprocessing works as reference too
    scm.tl.match_modalities(query, mod1="rna", mod2="adt", reference=reference, model=model)
    mapped = scm.tl.evaluate_match(query, truth=truth)

    # what the refusal prevents: the query's own PCA, with the fingerprints removed so that it is accepted
    alone, truth = _unpaired(_donor(cite, "s1d2"))
    scm.pp.recipe_rna(alone, mod="rna")
    scm.pp.recipe_protein(alone, mod="adt")
    for mod in ("rna", "adt"):
        del alone[mod].uns["scmatch_recipe"]
    scm.tl.match_modalities(alone, mod1="rna", mod2="adt", model=model)
    unrelated = scm.tl.evaluate_match(alone, truth=truth)

    # measured with 4 epochs of a tiny model: FOSCTTM 0.23 mapped, 0.59 (worse than random, 0.5) on its own
    assert mapped["foscttm"] < 0.3 and unrelated["foscttm"] > 0.45
    assert mapped["match_score"] > 3 / query["adt"].n_obs > unrelated["match_score"]


def test_representation_without_fingerprint_is_used_with_a_note(cite, trained, caplog):
    reference, model = trained
    query, _ = _unpaired(_donor(cite, "s1d2"))
    scm.pp.recipe_rna(query, mod="rna", reference=reference)
    scm.pp.recipe_protein(query, mod="adt", reference=reference)
    del query["rna"].uns["scmatch_recipe"]  # now a representation of the user's own
    with caplog.at_level(logging.INFO, logger="scmatch"):
        scm.tl.match_modalities(query, mod1="rna", mod2="adt", model=model)
    assert "carries no scmatch.pp fingerprint" in caplog.text
    assert "match_probabilities" in query.obsp


@pytest.mark.slow
def test_raw_counts_in_a_fresh_process_give_identical_probabilities(cite, trained, tmp_path):
    reference, model = trained
    model.save(tmp_path / "model")
    assert {p.name for p in (tmp_path / "model").iterdir()} == {
        "config.json",
        "manifest.json",
        "model.pt",
        "preprocessing.json",
        "preprocessing.npz",
    }
    query, _ = _unpaired(_donor(cite, "s1d2"))  # raw counts only, nothing in .obsm
    query.write_h5mu(tmp_path / "query.h5mu")

    # in this session: project explicitly, then apply the in-memory model
    projected = query.copy()
    scm.pp.recipe_rna(projected, mod="rna", reference=reference)
    scm.pp.recipe_protein(projected, mod="adt", reference=reference)
    expected = model.predict_proba(projected["rna"].obsm["X_pca"], projected["adt"].obsm["X_pca"])
    # the model carries the feature links its fit chose: with them, as this session's tl.match_modalities gives
    assert model.links_ is not None
    with_links = query.copy()
    scm.tl.match_modalities(with_links, mod1="rna", mod2="adt", model=model)
    expected_links = scm.tl.query_block(with_links)[0]

    script = textwrap.dedent(
        f"""
        import mudata as md, numpy as np, torch, scmatch as scm
        torch.set_num_threads(1)  # as in this session: the same reduction order, bit for bit
        md.set_options(pull_on_update=False)
        model = scm.model.MatchModel.load({str(tmp_path / "model")!r}, device="cpu")
        query = md.read_h5mu({str(tmp_path / "query.h5mu")!r})
        linked = query.copy()
        scm.tl.match_modalities(query, mod1="rna", mod2="adt", model=model, links=None)  # the network alone
        scm.tl.match_modalities(linked, mod1="rna", mod2="adt", model=model)
        block, rows, cols = scm.tl.query_block(query)
        P_links = scm.tl.query_block(linked)[0].toarray()
        np.savez({str(tmp_path / "out.npz")!r}, P=block.toarray(), P_links=P_links, pca=query["rna"].obsm["X_pca"])
        print(query.uns["match"]["projected_by_model"], linked.uns["match"]["links"]["source"])
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "['rna', 'adt'] model" in done.stdout
    with np.load(tmp_path / "out.npz") as out:
        np.testing.assert_array_equal(out["P"], expected.toarray())
        np.testing.assert_array_equal(out["P_links"], expected_links.toarray())
        assert (out["P_links"] != out["P"]).any()
        np.testing.assert_array_equal(out["pca"], projected["rna"].obsm["X_pca"])


def test_save_bundles_preprocessing_for_a_model_fitted_on_arrays(cite, trained, tmp_path):
    reference, _ = trained
    model = _fast().fit(reference["rna"].obsm["X_pca"], reference["adt"].obsm["X_pca"])
    assert model.preprocessing_ == (None, None)
    with pytest.raises(ValueError, match="makes 133-dimensional embeddings but the model's mod1 input has 50"):
        model.save(tmp_path / "bad", preprocessing=(reference["adt"], reference["rna"]))
    assert not (tmp_path / "bad").exists()
    model.save(tmp_path / "m", preprocessing=(reference["rna"], reference["adt"]))
    loaded = MatchModel.load(tmp_path / "m")
    assert loaded.fingerprints_ == tuple(reference[m].uns["scmatch_recipe"]["fingerprint"] for m in ("rna", "adt"))
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert set(manifest["files"]) == {"config.json", "model.pt", "preprocessing.json", "preprocessing.npz"}
    query = _donor(cite, "s1d2")[:60].copy()
    scm.pp.recipe_rna(query, mod="rna", reference=loaded)  # the explicit path: project with the loaded model
    direct = _donor(cite, "s1d2")[:60].copy()
    scm.pp.recipe_rna(direct, mod="rna", reference=reference)
    np.testing.assert_array_equal(query["rna"].obsm["X_pca"], direct["rna"].obsm["X_pca"])


def test_tampered_preprocessing_file_is_refused(trained, tmp_path):
    _, model = trained
    model.save(tmp_path / "m")
    path = tmp_path / "m" / "preprocessing.npz"
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["mod1_loadings"] = arrays["mod1_loadings"] * 1.01
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    with pytest.raises(ValueError, match=r"preprocessing.npz.*(checksum|changed|replaced)"):
        MatchModel.load(tmp_path / "m")


def test_query_with_counts_but_no_preprocessing_in_model_is_refused(cite, tmp_path):
    reference = _donor(cite, "s1d1")
    scm.pp.recipe_rna(reference, mod="rna")
    scm.pp.recipe_protein(reference, mod="adt")
    model = _fast().fit(reference["rna"].obsm["X_pca"], reference["adt"].obsm["X_pca"])
    query = _donor(cite, "s1d2")  # counts only
    before = snapshot(query)
    with pytest.raises(ValueError, match=r"\.obsm\['X_pca'\]` not found"):
        scm.tl.match_modalities(query, mod1="rna", mod2="adt", model=model)
    assert_unchanged(query, before)
    assert sp.issparse(query["rna"].X)


def test_a_saved_model_applies_the_reference_rna_scale(cite, tmp_path):
    """recipe_rna(scale=True): the genes' ceilings travel with the model and clip the projected query alike."""
    reference = _donor(cite, "s1d1")
    scm.pp.recipe_rna(reference, mod="rna", scale=True)
    scm.pp.recipe_protein(reference, mod="adt")
    model = _fast().fit(reference["rna"].obsm["X_pca"], reference["adt"].obsm["X_pca"])
    model.save(tmp_path / "m", preprocessing=(reference["rna"], reference["adt"]))
    saved = np.load(tmp_path / "m" / "preprocessing.npz")
    ceiling = reference["rna"].varm["scmatch_recipe"][:, 2]
    assert ceiling.any()
    np.testing.assert_array_equal(saved["mod1_vector_ceiling"], ceiling)
    loaded = MatchModel.load(tmp_path / "m")
    query = _donor(cite, "s1d2")[:60].copy()
    scm.pp.recipe_rna(query, mod="rna", reference=loaded)
    direct = _donor(cite, "s1d2")[:60].copy()
    scm.pp.recipe_rna(direct, mod="rna", reference=reference)
    np.testing.assert_array_equal(query["rna"].obsm["X_pca"], direct["rna"].obsm["X_pca"])
    # the query's values above a reference gene's ceiling were clipped for the embedding, not in .X
    hvg = reference["rna"].var["highly_variable"].to_numpy()
    X = direct["rna"].X.toarray()[:, hvg]
    assert (X > ceiling[hvg]).any()
    centre = reference["rna"].varm["scmatch_recipe"][hvg, 1]
    expected = (np.minimum(X, ceiling[hvg]) - centre) @ reference["rna"].varm["PCs"][hvg]
    np.testing.assert_allclose(direct["rna"].obsm["X_pca"], expected, atol=1e-4 * np.abs(expected).max(), rtol=0)
