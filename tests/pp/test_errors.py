"""Bad input: every function raises a ValueError that says what is wrong and leaves the object as it was."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import scmatch as sm

from .conftest import assert_unchanged, make_adata, snapshot

ALL = [sm.pp.tfidf, sm.pp.lsi, sm.pp.select_peaks, sm.pp.clr, sm.pp.recipe_rna, sm.pp.recipe_atac, sm.pp.recipe_protein]
COUNTING = [sm.pp.tfidf, sm.pp.recipe_rna, sm.pp.recipe_atac]  # these need integer counts


def _with(value: float, sparse: bool):
    X = np.arange(1, 25, dtype=np.float32).reshape(6, 4)
    X[1, 2] = value
    return make_adata(sp.csr_matrix(X) if sparse else X)


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("fn", [sm.pp.tfidf, sm.pp.clr, sm.pp.recipe_rna, sm.pp.recipe_atac, sm.pp.recipe_protein])
def test_negative_values(fn, sparse):
    adata = _with(-3.0, sparse)
    before = snapshot(adata)
    with pytest.raises(ValueError, match=r"The matrix in `\.X` has negative values.*`layer=`"):
        fn(adata)
    assert_unchanged(adata, before)


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("fn", COUNTING)
def test_non_integer_values(fn, sparse):
    adata = _with(2.5, sparse)
    before = snapshot(adata)
    with pytest.raises(ValueError, match=r"has non-integer values, but raw counts are required.*layer='counts'"):
        fn(adata)
    assert_unchanged(adata, before)


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("fn", ALL)
def test_nan_and_inf(fn, value):
    adata = _with(value, sparse=True)
    before = snapshot(adata)
    with pytest.raises(ValueError, match=r"The matrix in `\.X` contains NaN or infinite values"):
        fn(adata)
    assert_unchanged(adata, before)


@pytest.mark.parametrize("fn", ALL)
def test_missing_modality(fn, small_mdata):
    befores = {name: snapshot(a) for name, a in small_mdata.mod.items()}
    with pytest.raises(ValueError, match=r"Modality 'prot' is not in the MuData; it has \['rna', 'atac', 'adt'\]"):
        fn(small_mdata, mod="prot")
    with pytest.raises(ValueError, match="`data` is a MuData: pass `mod=`"):
        fn(small_mdata, mod=None)
    for name, adata in small_mdata.mod.items():
        assert_unchanged(adata, befores[name])


@pytest.mark.parametrize("fn", ALL)
def test_missing_layer(fn, small_mdata):
    before = snapshot(small_mdata["atac"])
    with pytest.raises(ValueError, match=r"Layer 'counts' not found; available layers: \[\]"):
        fn(small_mdata["atac"], layer="counts")
    assert_unchanged(small_mdata["atac"], before)


@pytest.mark.parametrize("fn", ALL)
def test_not_anndata(fn):
    with pytest.raises(TypeError, match="Expected an AnnData or MuData, got ndarray"):
        fn(np.ones((4, 4)))
