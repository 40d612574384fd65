"""tl.match_modalities(depth=...): each cell's sequencing depth as one more input of the networks."""

import mudata as md
import numpy as np
import pytest
import scipy.sparse as sp

import scmatch as scm
from scmatch.model import MatchModel, TrainingPlan
from scmatch.tl._depth import MIN_DEPTH_CORRELATION, plan_depth


def _quick() -> MatchModel:
    model = MatchModel(n_models=1, d_model=32)
    model.plan = TrainingPlan(max_epochs=5, progress_bar=False)
    return model


def _simulated(*, shared_depth: bool) -> md.MuData:
    """The simulator's multiome (its depths are drawn apart), or with each cell's two profiles thinned alike."""
    mdata = scm.datasets.simulate_multiome(400, n_genes=200, n_peaks=600, random_state=0)
    if shared_depth:  # one capture efficiency per cell, for both assays: the depths now go together
        rng = np.random.default_rng(1)
        keep = rng.uniform(0.15, 1.0, mdata.n_obs)
        for mod in ("rna", "atac"):
            X = sp.csr_matrix(mdata[mod].X)
            X.data = rng.binomial(X.data.astype(np.int64), np.repeat(keep, np.diff(X.indptr))).astype(np.float32)
            X.eliminate_zeros()
            mdata.mod[mod].X = X
        mdata.update()
    scm.pp.recipe_rna(mdata, mod="rna", n_top_genes=150, n_comps=15)
    scm.pp.recipe_atac(mdata, mod="atac", n_comps=15)
    for mod in ("rna", "atac"):
        mdata[mod].obs["is_reference"] = (mdata[mod].obs["batch"] == "batch0").to_numpy()
    return mdata


@pytest.fixture(scope="module")
def shared():
    return _simulated(shared_depth=True)


def _log_depth(adata):
    return np.log1p(np.asarray(adata.layers["counts"].sum(axis=1, dtype=np.float64)).ravel())


def test_depth_used_where_the_pairs_depths_go_together(shared, tmp_path):
    mdata = shared.copy()
    model = _quick()
    scm.tl.match_modalities(mdata, reference="is_reference", model=model)
    record = mdata.uns["match"]["depth"]
    ref = mdata["rna"].obs["is_reference"].to_numpy()
    expected = np.corrcoef(_log_depth(mdata["rna"])[ref], _log_depth(mdata["atac"])[ref])[0, 1]
    assert record["used"] and record["correlation"] == pytest.approx(expected, abs=1e-12)
    assert expected > 0.5  # the thinning shared by both profiles of a cell
    # the networks read one column more than the recipes wrote, and the model keeps how it was made
    assert model.module_.shift1.shape[0] == mdata["rna"].obsm["X_pca"].shape[1] + 1
    assert model.module_.shift2.shape[0] == mdata["atac"].obsm["X_lsi"].shape[1] + 1
    assert model.depth_["correlation"] == record["correlation"]
    np.testing.assert_allclose(model.depth_["reference_mean"][0], _log_depth(mdata["rna"])[ref].mean())
    with pytest.raises(ValueError, match=r"fitted on 16\. .* Its last input is each cell's sequencing depth"):
        model.transform(mdata["rna"].obsm["X_pca"], modality=1)  # the recipe's columns alone
    assert mdata.uns["match"]["params"]["depth"] == "auto"
    # saved and loaded, the model reads the depth again and matches the same query identically
    model.save(tmp_path / "m")
    loaded = MatchModel.load(tmp_path / "m")
    assert loaded.depth_ == model.depth_
    scm.tl.match_modalities(mdata, reference="is_reference", model=loaded, key_added="again")
    assert mdata.uns["again"]["depth"]["source"] == "model"
    difference = mdata.obsp["match_probabilities"] - mdata.obsp["again_probabilities"]
    assert abs(difference).max() < 1e-6
    # it cannot be switched off for a model that reads it; nothing is written
    before = set(mdata.uns)
    with pytest.raises(ValueError, match=r"reads each cell's sequencing depth .* cannot be switched off"):
        scm.tl.match_modalities(mdata, reference="is_reference", model=loaded, depth=None, key_added="off")
    assert set(mdata.uns) == before


def test_depth_left_out_where_the_depths_are_unrelated():
    """The simulator draws each profile's depth on its own: under "auto" the column would be noise."""
    mdata = _simulated(shared_depth=False)
    model = _quick()
    scm.tl.match_modalities(mdata, reference="is_reference", model=model)
    record = mdata.uns["match"]["depth"]
    assert not record["used"] and record["reason"] == "weak correlation"
    assert abs(record["correlation"]) < MIN_DEPTH_CORRELATION
    assert model.depth_ is None and model.module_.shift1.shape[0] == mdata["rna"].obsm["X_pca"].shape[1]
    # asked for, it is used all the same; a model trained without it refuses depth=True
    forced = _quick()
    scm.tl.match_modalities(mdata, reference="is_reference", model=forced, depth=True, key_added="forced")
    assert mdata.uns["forced"]["depth"]["used"] and forced.depth_ is not None
    with pytest.raises(ValueError, match="trained without it"):
        scm.tl.match_modalities(mdata, reference="is_reference", model=model, depth=True, key_added="x")
    scm.tl.match_modalities(mdata, reference="is_reference", model=_quick(), depth=None, key_added="none")
    assert mdata.uns["none"]["depth"] == {"used": False, "reason": "depth=None"}


def test_query_standardised_on_its_own_cells(shared):
    """A query sequenced twice as deep gets the same depth column: each set is standardised on its own cells."""
    from scmatch.tl._match import _inputs

    model = _quick()
    kw = {"mod1": "rna", "mod2": "atac", "rep1": None, "rep2": None, "reference": "is_reference", "batch_key": None}
    inputs = _inputs(shared, model=model, **kw)
    augmented, report = plan_depth(True, shared, inputs, mods=("rna", "atac"), model=model)
    deeper = shared.copy()
    query = ~deeper["rna"].obs["is_reference"].to_numpy()
    for mod in ("rna", "atac"):
        counts = deeper[mod].layers["counts"].tolil()
        counts[np.flatnonzero(query)] = counts[np.flatnonzero(query)] * 2
        deeper[mod].layers["counts"] = counts.tocsr()
    again, _ = plan_depth(True, deeper, _inputs(deeper, model=model, **kw), mods=("rna", "atac"), model=model)
    column, column_deeper = augmented.query1[:, -1], again.query1[:, -1]
    assert abs(column.mean()) < 1e-6 and column.std() == pytest.approx(report["scale"][0], rel=1e-5)
    np.testing.assert_allclose(column_deeper, column, atol=0.05 * report["scale"][0])
    np.testing.assert_array_equal(again.ref1, augmented.ref1)  # the reference is untouched by the query's depth


def test_refusals_leave_the_object_untouched(shared):
    mdata = shared.copy()
    del mdata["rna"].layers["counts"]
    mdata["rna"].X = mdata["rna"].X.astype(np.float32) * 0.5  # normalised values: no counts anywhere
    before = set(mdata.uns)
    with pytest.raises(ValueError, match=r"needs each cell's raw counts: .* non-integer values"):
        scm.tl.match_modalities(mdata, reference="is_reference", model=_quick(), depth=True)
    with pytest.raises(TypeError, match="`depth` must be 'auto', True, False or None"):
        scm.tl.match_modalities(mdata, reference="is_reference", model=_quick(), depth="yes")
    assert set(mdata.uns) == before and "match_probabilities" not in mdata.obsp
    # under "auto" the match goes on without it
    scm.tl.match_modalities(mdata, reference="is_reference", model=_quick())
    assert mdata.uns["match"]["depth"]["reason"] == "no raw counts in one of the modalities"


def test_cite_seq_is_matched_without_it(cite_path):
    """Protein counts: the rule of "auto" leaves them out (docs/atac.md, the depth)."""
    mdata = md.read_h5mu(cite_path)
    for mod in ("rna", "adt"):
        mdata[mod].obs["is_reference"] = (mdata[mod].obs["batch"] == "s1d1").to_numpy()
    scm.pp.recipe_rna(mdata, mod="rna")
    scm.pp.recipe_protein(mdata, mod="adt")
    scm.tl.match_modalities(mdata, mod1="rna", mod2="adt", reference="is_reference", model=_quick(), links=None)
    assert mdata.uns["match"]["depth"] == {"used": False, "reason": "no chromatin modality"}
