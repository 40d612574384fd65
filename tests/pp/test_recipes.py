from __future__ import annotations

import logging

import mudata as md
import numpy as np
import pytest
import scipy.sparse as sp

import scmatch as sm

from .conftest import assert_unchanged, snapshot


def test_cite_in_two_lines(cite_data):
    mdata = cite_data.copy()
    counts = {m: mdata[m].X.copy() for m in ("rna", "adt")}

    sm.pp.recipe_rna(mdata, n_top_genes=500)
    sm.pp.recipe_protein(mdata)

    rna, adt = mdata["rna"], mdata["adt"]
    assert mdata.shape == (600, 1134) and list(mdata.obs_names) == list(rna.obs_names) == list(adt.obs_names)
    # rna: counts kept, log-normalised X, 500 HVGs, 50 PCs
    np.testing.assert_array_equal(rna.layers["counts"].toarray(), counts["rna"].toarray())
    assert sp.issparse(rna.X)
    totals = np.expm1(rna.X.toarray()).sum(axis=1)
    np.testing.assert_allclose(totals, np.median(np.asarray(counts["rna"].sum(axis=1)).ravel()), rtol=1e-3)
    assert rna.var["highly_variable"].sum() == 500
    assert rna.obsm["X_pca"].shape == (600, 50)
    assert np.all(rna.varm["PCs"][~rna.var["highly_variable"].to_numpy()] == 0)
    record = dict(rna.uns["scmatch_recipe"])
    fingerprint, state = record.pop("fingerprint"), record.pop("state")
    assert record == {
        "recipe": "rna",
        "obsm_key": "X_pca",
        "params": {"n_top_genes": 500, "n_comps": 50, "scale": "auto", "layer": None, "random_state": 0},
        "n_top_genes_used": 500,
        "n_comps_used": 50,
        "scale_used": False,  # 'auto' with proteins beside the RNA: not scaled
    }
    # the fitted state: the median total as normalisation target, HVG mask and PCA centre per gene, no ceiling
    assert state["target_sum"] == np.median(np.asarray(counts["rna"].sum(axis=1)).ravel())
    assert state["varm_columns"] == ["used", "mean", "ceiling"] and state["loadings_key"] == "PCs"
    used, mean, ceiling = rna.varm["scmatch_recipe"].T
    assert not ceiling.any()
    np.testing.assert_array_equal(used.astype(bool), rna.var["highly_variable"].to_numpy())
    np.testing.assert_allclose(mean[used > 0], rna.X[:, used > 0].mean(axis=0).A1, rtol=1e-5)
    assert len(fingerprint) == 16 and int(fingerprint, 16) >= 0
    # adt: CLR per cell, full PCA (133 = min(600, 134) - 1 components, nearly all the variance)
    np.testing.assert_array_equal(adt.layers["counts"].toarray(), counts["adt"].toarray())
    np.testing.assert_allclose(adt.X.toarray(), sm.pp.clr(adt, layer="counts", copy=True).layers["counts"].toarray())
    assert adt.obsm["X_pca"].shape == (600, 133)
    assert adt.uns["pca"]["variance_ratio"].sum() > 0.999
    assert adt.uns["scmatch_recipe"]["obsm_key"] == sm.pp.RECIPE_OBSM_KEYS["protein"] == "X_pca"
    assert adt.uns["clr"]["params"]["axis"] == 1


def test_multiome_in_two_lines(multiome_data, caplog):
    mdata = multiome_data.copy()

    with caplog.at_level(logging.INFO, logger="scmatch"):
        sm.pp.recipe_rna(mdata)
        sm.pp.recipe_atac(mdata)

    rna, atac = mdata["rna"], mdata["atac"]
    assert mdata.shape == (500, 1200)
    # 600 genes, one without counts: n_top_genes=2000 is capped to 599 with a message
    assert "2000 requested but 599 of the 600 genes have counts; using 599" in caplog.text
    assert rna.uns["scmatch_recipe"]["n_top_genes_used"] == rna.var["highly_variable"].sum() == 599
    assert rna.obsm["X_pca"].shape == (500, 50)
    # atac: the 561 peaks non-zero in >= 3 cells (of 595 with counts; a 1% bound would keep 526), 30 LSI
    # components after dropping the depth component, which "auto" recognises (|r| > 0.9)
    assert atac.obsm["X_lsi"].shape == (500, 30)
    assert atac.varm["LSI"].shape == (600, 30)
    assert atac.var["highly_accessible"].sum() == atac.uns["scmatch_recipe"]["n_peaks_used"] == 561
    assert "recipe_atac: 561 of 600 peaks kept (non-zero in >= 3 cells); 30 LSI components, first component " in (
        caplog.text
    )
    assert atac.uns["scmatch_recipe"]["dropped_first"] is True
    assert np.all(atac.varm["LSI"][~atac.var["highly_accessible"].to_numpy()] == 0)
    lsi = atac.uns["lsi"]
    assert abs(lsi["dropped_component"]["depth_corr"]) > 0.9
    assert np.abs(lsi["depth_corr"]).max() < 0.3
    assert lsi["depth_source"] == "counts"
    assert atac.uns["tfidf"]["params"]["log_tf"] is True
    assert atac.uns["scmatch_recipe"]["obsm_key"] == "X_lsi"
    np.testing.assert_array_equal(atac.layers["counts"].toarray(), multiome_data["atac"].X.toarray())

    # keeping the first component: it is the depth component (|r| > 0.9), and the rest is unchanged
    again = sm.pp.recipe_atac(mdata, layer="counts", drop_first=False, copy=True)
    kept = again["atac"].uns["lsi"]
    assert abs(kept["depth_corr"][0]) > 0.9
    assert kept["depth_corr"][0] == pytest.approx(lsi["dropped_component"]["depth_corr"], rel=1e-6)
    np.testing.assert_allclose(again["atac"].obsm["X_lsi"][:, 1:], atac.obsm["X_lsi"][:, :29], rtol=1e-5, atol=1e-8)


def test_copy_returns_whole_mudata_and_leaves_input(small_mdata):
    befores = {name: snapshot(a) for name, a in small_mdata.mod.items()}
    out = sm.pp.recipe_atac(small_mdata, n_comps=5, copy=True)
    out = sm.pp.recipe_rna(out, n_comps=5, copy=True)
    out = sm.pp.recipe_protein(out, n_comps=5, copy=True)
    assert isinstance(out, md.MuData) and out is not small_mdata
    for name, adata in small_mdata.mod.items():
        assert_unchanged(adata, befores[name])
    for mod, key in (("rna", "X_pca"), ("atac", "X_lsi"), ("adt", "X_pca")):
        assert out[mod].obsm[key].shape == (60, 5)
        assert out[mod].uns["scmatch_recipe"]["obsm_key"] == key
        np.testing.assert_array_equal(out[mod].layers["counts"].toarray(), small_mdata[mod].X.toarray())
    assert out.shape == small_mdata.shape


def test_rerun_from_counts_layer_is_identical(small_mdata):
    sm.pp.recipe_rna(small_mdata, n_comps=5)
    first = small_mdata["rna"].obsm["X_pca"].copy()
    with pytest.raises(ValueError, match="non-integer values"):
        sm.pp.recipe_rna(small_mdata, n_comps=5)  # X is log-normalised now
    sm.pp.recipe_rna(small_mdata, n_comps=5, layer="counts")
    np.testing.assert_array_equal(small_mdata["rna"].obsm["X_pca"], first)


def test_parameters_are_capped_with_a_message(small_mdata, caplog):
    with caplog.at_level(logging.INFO, logger="scmatch"):
        sm.pp.recipe_rna(small_mdata, n_top_genes=30, n_comps=100)
        sm.pp.recipe_atac(small_mdata, n_comps=1000)
        sm.pp.recipe_protein(small_mdata, n_comps=40)
    rna, atac, adt = small_mdata["rna"], small_mdata["atac"], small_mdata["adt"]
    n_hvg = int(rna.var["highly_variable"].sum())
    assert 30 <= n_hvg <= 31  # scanpy may keep ties
    assert rna.obsm["X_pca"].shape == (60, n_hvg - 1)
    n_peaks = atac.uns["scmatch_recipe"]["n_peaks_used"]
    assert atac.obsm["X_lsi"].shape == (60, min(60, n_peaks) - 2)
    assert adt.obsm["X_pca"].shape == (60, 11)
    assert "recipe_rna n_comps: 100 requested" in caplog.text
    assert "lsi: 1000 components requested" in caplog.text
    assert "recipe_protein n_comps: 40 requested but 60 cells x 12 proteins allow 11; using 11" in caplog.text


def test_failure_half_way_leaves_object_untouched(small_mdata):
    before = snapshot(small_mdata["atac"])
    # one peak is in every cell, so peak selection and TF-IDF succeed and LSI (on 1 peak) fails
    with pytest.raises(ValueError, match="The matrix to factorise is 60 x 1; LSI needs at least 3 cells and 3 peaks"):
        sm.pp.recipe_atac(small_mdata, min_frac=1.0)
    assert_unchanged(small_mdata["atac"], before)


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "15"])
def test_bad_basis_neighbors_refused(small_mdata, value):
    before = snapshot(small_mdata["atac"])
    with pytest.raises(ValueError, match=rf"`basis_neighbors` must be a positive integer or None, got {value!r}"):
        sm.pp.recipe_atac(small_mdata, basis_neighbors=value)
    assert_unchanged(small_mdata["atac"], before)


def test_basis_neighbors_recorded_and_reproducible(small_mdata):
    a = sm.pp.recipe_atac(small_mdata, basis_neighbors=5, copy=True)["atac"]
    b = sm.pp.recipe_atac(small_mdata, basis_neighbors=5, copy=True)["atac"]
    plain = sm.pp.recipe_atac(small_mdata, copy=True)["atac"]
    np.testing.assert_array_equal(a.obsm["X_lsi"], b.obsm["X_lsi"])
    assert a.uns["scmatch_recipe"]["params"]["basis_neighbors"] == 5
    assert plain.uns["scmatch_recipe"]["params"]["basis_neighbors"] is None
    assert not np.allclose(np.abs(a.varm["LSI"]), np.abs(plain.varm["LSI"]))  # another basis
    # every cell is its own profile projected on the loadings (TF-IDF on the selected peaks)
    used = a.var["highly_accessible"].to_numpy()
    np.testing.assert_allclose(a.obsm["X_lsi"], a.X[:, used] @ a.varm["LSI"][used], rtol=1e-10, atol=1e-12)


def test_empty_cell_is_refused_by_recipe_atac(small_mdata):
    atac = small_mdata["atac"]
    X = atac.X.toarray()
    X[5] = 0
    atac.X = sp.csr_matrix(X)
    before = snapshot(atac)
    with pytest.raises(ValueError, match=r"1 cells have no counts in `\.X` \(e\.g\. \['cell5'\]\)"):
        sm.pp.recipe_atac(small_mdata)
    assert_unchanged(atac, before)


def test_dense_counts_stay_dense(small_mdata):
    for mod in ("rna", "adt"):
        small_mdata[mod].X = small_mdata[mod].X.toarray()
    sm.pp.recipe_rna(small_mdata, n_comps=5)
    sm.pp.recipe_protein(small_mdata)
    assert isinstance(small_mdata["rna"].X, np.ndarray) and isinstance(small_mdata["adt"].X, np.ndarray)
    assert isinstance(small_mdata["rna"].layers["counts"], np.ndarray)
    assert small_mdata["adt"].obsm["X_pca"].shape == (60, 11)


def test_outputs_survive_h5mu_round_trip(small_mdata, tmp_path):
    sm.pp.recipe_rna(small_mdata, n_comps=5)
    sm.pp.recipe_atac(small_mdata, n_comps=5, random_state=np.int64(3))
    sm.pp.recipe_protein(small_mdata)
    path = tmp_path / "processed.h5mu"
    small_mdata.write_h5mu(path)
    back = md.read_h5mu(path)
    for mod in ("rna", "atac", "adt"):
        key = back[mod].uns["scmatch_recipe"]["obsm_key"]
        np.testing.assert_array_equal(back[mod].obsm[key], small_mdata[mod].obsm[key])
    assert back["atac"].uns["scmatch_recipe"]["params"]["random_state"] == 3
    assert back["atac"].uns["lsi"]["params"]["mask_var"] == "highly_accessible"
    # None survives (anndata >= 0.12 writes it; earlier versions drop the key)
    assert back["atac"].uns["scmatch_recipe"]["params"].get("max_frac") is None


def test_too_few_genes_with_counts(small_mdata):
    rna = small_mdata["rna"]
    rna.X = sp.csr_matrix(rna.X.shape, dtype=np.float32)
    before = snapshot(rna)
    with pytest.raises(ValueError, match="Only 0 genes have counts; recipe_rna needs at least 3"):
        sm.pp.recipe_rna(small_mdata)
    assert_unchanged(rna, before)


def _knn_accuracy(X, labels, is_reference) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(n_neighbors=15).fit(X[is_reference], labels[is_reference])
    return float(clf.score(X[~is_reference], labels[~is_reference]))


def test_sparse_atac_defaults_keep_the_chromatin_signal(snare2_data, caplog):
    """SNARE-seq2 (about 97 of 25,734 peaks non-zero per nucleus): the defaults keep the peaks a 1% bound drops."""
    atac = snare2_data["atac"].copy()
    labels = snare2_data.obs["cell_type"].astype(str).to_numpy()
    is_reference = snare2_data.obs["batch"].isin(["09A", "09B", "09C"]).to_numpy()
    n_cells = np.asarray((atac.X > 0).sum(axis=0)).ravel()

    with caplog.at_level(logging.INFO, logger="scmatch"):
        sm.pp.recipe_atac(atac)
    recipe = atac.uns["scmatch_recipe"]
    assert recipe["n_peaks_used"] == int((n_cells >= 3).sum()) == 19426
    assert recipe["n_comps_used"] == 30 and recipe["dropped_first"] is True
    assert recipe["first_depth_corr"] == pytest.approx(0.955, abs=0.005)
    assert "recipe_atac: 19426 of 25734 peaks kept (non-zero in >= 3 cells)" in caplog.text

    old = sm.pp.recipe_atac(
        snare2_data["atac"].copy(), min_frac=0.01, min_cells=None, n_comps=50, drop_first=True, copy=True
    )
    assert old.uns["scmatch_recipe"]["n_peaks_used"] == int((n_cells >= 0.01 * atac.n_obs).sum()) == 2343
    # 15-NN cell type from libraries 09A-09C to 09D-09F on X_lsi (the largest class is 0.395 of the query)
    new_acc = _knn_accuracy(atac.obsm["X_lsi"], labels, is_reference)
    old_acc = _knn_accuracy(old.obsm["X_lsi"], labels, is_reference)
    assert new_acc == pytest.approx(0.595, abs=0.01)
    assert old_acc == pytest.approx(0.369, abs=0.01)


def test_defaults_on_the_single_nucleus_simulator():
    """The simulator's realistic sparsity (about 100 of 25,000 peaks per cell) rewards the same defaults."""
    mdata = sm.datasets.simulate_multiome(1000, n_genes=200, atac_sparsity="single_nucleus", random_state=0)
    labels = mdata.obs["cell_type"].astype(str).to_numpy()
    is_reference = (mdata.obs["batch"] == "batch0").to_numpy()
    new = sm.pp.recipe_atac(mdata["atac"], copy=True)
    old = sm.pp.recipe_atac(mdata["atac"], min_frac=0.01, min_cells=None, n_comps=50, drop_first=True, copy=True)
    assert new.uns["scmatch_recipe"]["n_peaks_used"] == 14235
    assert old.uns["scmatch_recipe"]["n_peaks_used"] == 1481
    assert _knn_accuracy(new.obsm["X_lsi"], labels, is_reference) == pytest.approx(0.586, abs=0.01)
    assert _knn_accuracy(old.obsm["X_lsi"], labels, is_reference) == pytest.approx(0.332, abs=0.01)


def _sign_aligned(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """``expected`` with each column's sign flipped to agree with ``got`` (principal axes have no sign)."""
    signs = np.sign(np.sum(got * expected, axis=0))
    return expected * np.where(signs == 0, 1, signs)


@pytest.mark.parametrize("dense", [False, True])
def test_rna_scale_is_the_pca_of_clipped_standardised_genes(cite_data, dense):
    rna = cite_data["rna"].copy()
    if dense:
        rna.X = rna.X.toarray()
    sm.pp.recipe_rna(rna, n_top_genes=300, n_comps=10, scale=True)

    hvg = rna.var["highly_variable"].to_numpy()
    X = rna.X.toarray() if sp.issparse(rna.X) else np.asarray(rna.X)
    assert sp.issparse(rna.X) != dense  # .X stays as the counts came, log-normalised and unclipped
    values = X[:, hvg].astype(np.float64)
    mean, sd = values.mean(axis=0), values.std(axis=0)
    clipped = np.minimum(values, mean + 10 * sd)  # scanpy.pp.scale(max_value=10) on the upper side
    assert (clipped < values).sum() > 0  # the ceiling binds on this data: rare genes
    Z = (clipped - clipped.mean(axis=0)) / sd
    U, S, _ = np.linalg.svd(Z, full_matrices=False)
    expected = _sign_aligned(rna.obsm["X_pca"], U[:, :10] * S[:10])
    np.testing.assert_allclose(rna.obsm["X_pca"], expected, atol=1e-3 * np.abs(expected).max(), rtol=0)
    # the state: each HVG's ceiling, the clipped values' means as the centre, the spreads folded into the loadings
    used, centre, ceiling = rna.varm["scmatch_recipe"].T
    np.testing.assert_array_equal(used.astype(bool), hvg)
    np.testing.assert_allclose(ceiling[hvg], mean + 10 * sd, rtol=1e-5)
    assert np.all(ceiling[~hvg] == 0)
    np.testing.assert_allclose(centre[hvg], clipped.mean(axis=0), rtol=1e-5, atol=1e-7)
    rebuilt = (np.minimum(X[:, hvg], ceiling[hvg]) - centre[hvg]) @ rna.varm["PCs"][hvg]
    np.testing.assert_allclose(rna.obsm["X_pca"], rebuilt, atol=1e-4 * np.abs(rebuilt).max(), rtol=0)
    assert rna.uns["scmatch_recipe"]["params"]["scale"] is True


def test_rna_without_scale_keeps_the_fingerprint_of_states_before_the_ceiling(cite_data):
    """A state stored before ``ceiling`` existed (two columns) reads back with its recorded fingerprint."""
    reference = cite_data["rna"].copy()
    sm.pp.recipe_rna(reference, n_top_genes=300, n_comps=10, scale=False)
    assert not reference.varm["scmatch_recipe"][:, 2].any()
    old = reference.copy()
    old.varm["scmatch_recipe"] = old.varm["scmatch_recipe"][:, :2]
    old.uns["scmatch_recipe"]["state"]["varm_columns"] = ["used", "mean"]

    from scmatch.pp._project import RecipeState

    assert RecipeState.from_adata(old).fingerprint == reference.uns["scmatch_recipe"]["fingerprint"]
    query = cite_data["rna"][:40].copy()
    sm.pp.recipe_rna(query, reference=old)
    np.testing.assert_allclose(query.obsm["X_pca"], reference.obsm["X_pca"][:40], atol=1e-4, rtol=0)
    scaled = cite_data["rna"].copy()
    sm.pp.recipe_rna(scaled, n_top_genes=300, n_comps=10, scale=True)
    assert scaled.uns["scmatch_recipe"]["fingerprint"] != reference.uns["scmatch_recipe"]["fingerprint"]


def test_rna_scale_auto_follows_the_partner_modality(multiome_data, cite_data, caplog):
    """'auto' scales beside chromatin (by modality name, feature type or peak names), not beside proteins or alone."""
    mdata = multiome_data.copy()
    with caplog.at_level(logging.INFO, logger="scmatch"):
        sm.pp.recipe_rna(mdata, n_top_genes=300, n_comps=10)
    assert "genes scaled to unit variance (scale='auto': modality 'atac' is chromatin)" in caplog.text
    assert mdata["rna"].uns["scmatch_recipe"]["scale_used"] is True
    explicit = multiome_data["rna"].copy()
    sm.pp.recipe_rna(explicit, n_top_genes=300, n_comps=10, scale=True)
    np.testing.assert_array_equal(mdata["rna"].obsm["X_pca"], explicit.obsm["X_pca"])
    assert mdata["rna"].uns["scmatch_recipe"]["fingerprint"] == explicit.uns["scmatch_recipe"]["fingerprint"]

    # the peaks found by their names (chr1-1677585-1678477) under another modality name, and by feature type
    renamed = md.MuData({"gex": multiome_data["rna"].copy(), "mod2": multiome_data["atac"].copy()})
    sm.pp.recipe_rna(renamed, mod="gex", n_top_genes=300, n_comps=10)
    assert renamed["gex"].uns["scmatch_recipe"]["scale_used"] is True
    typed = multiome_data["atac"].copy()
    typed.var_names = [f"region{i}" for i in range(typed.n_vars)]
    typed.var["feature_types"] = "Peaks"
    by_type = md.MuData({"gex": multiome_data["rna"].copy(), "mod2": typed})
    sm.pp.recipe_rna(by_type, mod="gex", n_top_genes=300, n_comps=10)
    assert by_type["gex"].uns["scmatch_recipe"]["scale_used"] is True
    typed.var["feature_types"] = "Gene Expression"
    unnamed = md.MuData({"gex": multiome_data["rna"].copy(), "mod2": typed})
    sm.pp.recipe_rna(unnamed, mod="gex", n_top_genes=300, n_comps=10)
    assert unnamed["gex"].uns["scmatch_recipe"]["scale_used"] is False

    from scmatch.pp._partner import is_chromatin

    # plain bools (benchmark records are JSON): proteins are not chromatin, peaks named as intervals are
    assert is_chromatin("adt", cite_data["adt"]) is False and is_chromatin("mod2", multiome_data["atac"]) is True

    # proteins beside the RNA, or the RNA alone: not scaled, the same fit as scale=False
    for data in (cite_data.copy(), multiome_data["rna"].copy()):
        rna = data["rna"] if isinstance(data, md.MuData) else data
        unscaled = rna.copy()
        sm.pp.recipe_rna(data, n_top_genes=300, n_comps=10)
        sm.pp.recipe_rna(unscaled, n_top_genes=300, n_comps=10, scale=False)
        assert rna.uns["scmatch_recipe"]["scale_used"] is False
        np.testing.assert_array_equal(rna.obsm["X_pca"], unscaled.obsm["X_pca"])


def test_rna_scale_must_be_a_bool_or_auto(small_mdata):
    before = snapshot(small_mdata["rna"])
    with pytest.raises(TypeError, match=r"`scale` must be True, False or 'auto', got 'yes'"):
        sm.pp.recipe_rna(small_mdata, scale="yes")
    assert_unchanged(small_mdata["rna"], before)
