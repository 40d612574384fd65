"""Reference mapping in the recipes: the fitted state, its fingerprint, and `reference=` projection."""

from __future__ import annotations

import logging

import mudata as md
import numpy as np
import pytest
import scipy.sparse as sp

import scmatch as scm
from scmatch.pp._project import MIN_FEATURE_FRACTION, RecipeState

from .conftest import assert_unchanged, snapshot

RECIPES = {"rna": scm.pp.recipe_rna, "atac": scm.pp.recipe_atac, "protein": scm.pp.recipe_protein}


def _split(adata, n_query: int, seed: int = 0):
    """A processed reference of all cells, and a copy of the raw counts of ``n_query`` of them."""
    rng = np.random.default_rng(seed)
    cells = np.sort(rng.choice(adata.n_obs, n_query, replace=False))
    return cells, adata[cells].copy()


@pytest.mark.parametrize(
    ("name", "mod", "recipe", "kwargs"),
    [
        ("cite", "rna", "rna", {}),
        ("cite", "rna", "rna", {"scale": True}),  # clipped and scaled genes: the reference's ceilings and spreads
        ("snare2", "rna", "rna", {"scale": True}),  # sparse single-nucleus RNA
        ("cite", "adt", "protein", {}),
        ("cite", "adt", "protein", {"axis": 0}),
        ("multiome", "atac", "atac", {}),
        ("multiome", "rna", "rna", {"n_top_genes": 300, "n_comps": 30}),
        ("snare2", "atac", "atac", {}),  # real sparse single-nucleus ATAC, the recipe's defaults
        ("snare2", "atac", "atac", {"basis_neighbors": 15}),  # loadings from neighbour-averaged profiles
    ],
)
def test_projection_equals_the_reference_fit_on_real_data(
    name, mod, recipe, kwargs, cite_data, multiome_data, snare2_data
):
    data = {"cite": cite_data, "multiome": multiome_data, "snare2": snare2_data}[name]
    reference = data[mod].copy()
    RECIPES[recipe](reference, **kwargs)
    key = reference.uns["scmatch_recipe"]["obsm_key"]
    cells, query = _split(data[mod], 120)

    RECIPES[recipe](query, reference=reference)

    # the same cells, processed as part of the reference or projected on their own, land on the same coordinates
    expected = np.asarray(reference.obsm[key])[cells]
    scale = np.abs(expected).max()
    np.testing.assert_allclose(query.obsm[key], expected, atol=2e-5 * scale, rtol=0)
    # and the transformed matrix is the reference's too
    X_ref, X_query = reference.X[cells], query.X
    X_ref = X_ref.toarray() if sp.issparse(X_ref) else X_ref
    X_query = X_query.toarray() if sp.issparse(X_query) else X_query
    np.testing.assert_allclose(X_query, X_ref, rtol=1e-5, atol=1e-5)
    record = query.uns["scmatch_recipe"]
    assert record["fingerprint"] == reference.uns["scmatch_recipe"]["fingerprint"]
    assert record["projected"] == {
        "n_reference_features": int(reference.varm["scmatch_recipe"][:, 0].sum()),
        "n_missing_features": 0,
        "n_ignored_features": 0,
    }
    assert "scmatch_recipe" not in query.varm  # a projected query holds no fitted state of its own
    np.testing.assert_array_equal(query.layers["counts"].toarray(), data[mod][cells].X.toarray())


def test_state_survives_h5mu_and_projects_the_same(cite_data, tmp_path):
    reference = cite_data.copy()
    scm.pp.recipe_rna(reference, mod="rna")
    scm.pp.recipe_protein(reference, mod="adt")
    reference.write_h5mu(tmp_path / "ref.h5mu")
    back = md.read_h5mu(tmp_path / "ref.h5mu")
    for mod, recipe in (("rna", "rna"), ("adt", "protein")):
        before = RecipeState.from_adata(reference[mod], recipe=recipe)
        after = RecipeState.from_adata(back[mod], recipe=recipe)
        assert before.fingerprint == after.fingerprint == reference[mod].uns["scmatch_recipe"]["fingerprint"]
    q1, q2 = cite_data[:50].copy(), cite_data[:50].copy()
    scm.pp.recipe_rna(q1, mod="rna", reference=reference)
    scm.pp.recipe_rna(q2, mod="rna", reference=back)
    np.testing.assert_array_equal(q1["rna"].obsm["X_pca"], q2["rna"].obsm["X_pca"])


def test_fingerprint_identifies_the_fit(small_mdata):
    a, b = small_mdata.copy(), small_mdata.copy()
    scm.pp.recipe_rna(a, n_top_genes=40, n_comps=10)
    scm.pp.recipe_rna(b, n_top_genes=40, n_comps=10)
    assert a["rna"].uns["scmatch_recipe"]["fingerprint"] == b["rna"].uns["scmatch_recipe"]["fingerprint"]
    c = small_mdata[:50].copy()  # other cells: another fit
    scm.pp.recipe_rna(c, n_top_genes=40, n_comps=10)
    assert c["rna"].uns["scmatch_recipe"]["fingerprint"] != a["rna"].uns["scmatch_recipe"]["fingerprint"]
    d = small_mdata.copy()  # other settings: another fit
    scm.pp.recipe_rna(d, n_top_genes=40, n_comps=9)
    assert d["rna"].uns["scmatch_recipe"]["fingerprint"] != a["rna"].uns["scmatch_recipe"]["fingerprint"]


def test_missing_features_count_as_zeros_and_are_reported(cite_data, caplog):
    reference = cite_data["rna"].copy()
    scm.pp.recipe_rna(reference)
    query = cite_data["rna"][:80].copy()
    dropped = query.var_names[:300]
    partial = query[:, 300:].copy()
    with caplog.at_level(logging.WARNING, logger="scmatch"):
        scm.pp.recipe_rna(partial, reference=reference)
    assert partial.uns["scmatch_recipe"]["projected"]["n_missing_features"] == 300
    assert "lacks 300 of the 1000 reference features" in caplog.text
    # the same as the full query with those genes' counts set to zero
    zeroed = query.copy()
    X = zeroed.X.toarray()
    X[:, query.var_names.get_indexer(dropped)] = 0
    zeroed.X = sp.csr_matrix(X)
    scm.pp.recipe_rna(zeroed, reference=reference)
    np.testing.assert_allclose(partial.obsm["X_pca"], zeroed.obsm["X_pca"], atol=1e-4)
    # genes the reference lacks are ignored, in any order
    shuffled = query[:, np.random.default_rng(0).permutation(query.n_vars)].copy()
    scm.pp.recipe_rna(shuffled, reference=reference)
    np.testing.assert_allclose(shuffled.obsm["X_pca"], np.asarray(reference.obsm["X_pca"])[:80], atol=1e-3)


def test_too_few_features_refused_and_query_untouched(cite_data):
    reference = cite_data["rna"].copy()
    scm.pp.recipe_rna(reference)
    n_keep = int(MIN_FEATURE_FRACTION * reference.n_vars) - 1
    query = cite_data["rna"][:50, :n_keep].copy()
    before = snapshot(query)
    with pytest.raises(ValueError, match=rf"only {n_keep} of the 1000 reference features.*at least 50%"):
        scm.pp.recipe_rna(query, reference=reference)
    assert_unchanged(query, before)


def test_reference_must_come_from_the_same_recipe(small_mdata):
    raw = small_mdata["rna"].copy()
    query = small_mdata["rna"][:20].copy()
    before = snapshot(query)
    with pytest.raises(ValueError, match=r"not processed by scmatch.pp.recipe_rna.*Run scmatch.pp.recipe_rna"):
        scm.pp.recipe_rna(query, reference=raw)
    adt = small_mdata["adt"].copy()
    scm.pp.recipe_protein(adt)
    with pytest.raises(ValueError, match=r"processed by scmatch.pp.recipe_protein, not scmatch.pp.recipe_rna"):
        scm.pp.recipe_rna(query, reference=adt)
    with pytest.raises(TypeError, match="`reference` must be an AnnData, a MuData or a fitted"):
        scm.pp.recipe_rna(query, reference="ref.h5ad")
    assert_unchanged(query, before)


def test_changed_reference_and_projected_query_are_refused(small_mdata):
    reference = small_mdata["rna"].copy()
    scm.pp.recipe_rna(reference, n_top_genes=40, n_comps=10)
    query = small_mdata["rna"][:20].copy()
    subset = reference[:, :70].copy()  # genes subset after the recipe: the fitted state no longer matches
    with pytest.raises(ValueError, match="no longer matches its fingerprint"):
        scm.pp.recipe_rna(query, reference=subset)
    scm.pp.recipe_rna(query, reference=reference)
    with pytest.raises(ValueError, match="itself projected onto a reference"):
        scm.pp.recipe_rna(small_mdata["rna"][20:40].copy(), reference=query)


def test_mudata_reference_and_copy(small_mdata):
    reference = small_mdata.copy()
    scm.pp.recipe_atac(reference, mod="atac", n_comps=8)
    query = small_mdata[:30].copy()
    out = scm.pp.recipe_atac(query, mod="atac", reference=reference, copy=True)
    assert "X_lsi" not in query["atac"].obsm  # copy=True leaves the input alone
    np.testing.assert_allclose(out["atac"].obsm["X_lsi"], reference["atac"].obsm["X_lsi"][:30], atol=1e-10)
    np.testing.assert_array_equal(
        out["atac"].var["highly_accessible"].to_numpy(), reference["atac"].var["highly_accessible"].to_numpy()
    )
    np.testing.assert_array_equal(out["atac"].varm["LSI"], reference["atac"].varm["LSI"])


def test_query_without_reference_counts_refused(small_mdata):
    reference = small_mdata["atac"].copy()
    scm.pp.recipe_atac(reference, n_comps=8)
    query = small_mdata["atac"][:10].copy()
    query.X = sp.csr_matrix(query.shape, dtype=np.float32)
    query.X[0, 0] = 1  # the other cells have no counts at all
    with pytest.raises(ValueError, match="9 cells of the query have no counts in the reference's peaks"):
        scm.pp.recipe_atac(query, reference=reference)
