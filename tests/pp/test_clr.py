from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import scmatch as sm

from .conftest import assert_unchanged, make_adata, snapshot

COUNTS = np.array([[0, 1, 3], [4, 4, 0]], dtype=np.float32)
# axis=1, by hand: cell 0 has mean log1p = (0 + log 2 + log 4) / 3 = log 2, so g = 2;
# cell 1 has mean log1p = 2 log 5 / 3, so g = 5 ** (2 / 3).
PER_CELL = np.log1p(np.array([[0, 1 / 2, 3 / 2], [4 / 5 ** (2 / 3), 4 / 5 ** (2 / 3), 0]]))
# axis=0, by hand: protein means of log1p are log(5)/2, log(10)/2, log(4)/2, so g = sqrt(5), sqrt(10), 2.
PER_PROTEIN = np.log1p(np.array([[0, 1 / np.sqrt(10), 3 / 2], [4 / np.sqrt(5), 4 / np.sqrt(10), 0]]))


@pytest.mark.parametrize(("axis", "expected"), [(1, PER_CELL), (0, PER_PROTEIN)])
@pytest.mark.parametrize("to_matrix", [np.asarray, sp.csr_matrix, sp.csc_matrix])
def test_hand_computed(axis, expected, to_matrix):
    adata = make_adata(to_matrix(COUNTS))
    assert sm.pp.clr(adata, axis=axis) is None
    assert sp.issparse(adata.X) == sp.issparse(to_matrix(COUNTS))
    assert adata.X.dtype == np.float32
    X = adata.X.toarray() if sp.issparse(adata.X) else adata.X
    np.testing.assert_allclose(X, expected, rtol=1e-6)
    assert adata.uns["clr"]["params"] == {"axis": axis, "layer": None}


def test_default_is_per_cell_and_zeros_stay_zero():
    adata = make_adata(sp.csr_matrix(np.vstack([COUNTS, np.zeros((1, 3), dtype=np.float32)])))
    sm.pp.clr(adata)
    assert adata.uns["clr"]["params"]["axis"] == 1
    np.testing.assert_allclose(adata.X.toarray()[:2], PER_CELL, rtol=1e-6)
    np.testing.assert_array_equal(adata.X.toarray()[2], 0)
    assert adata.X.nnz == 4


def test_layer_and_copy(small_mdata):
    adt = small_mdata["adt"]
    adt.layers["counts"] = adt.X.copy()
    before = snapshot(adt)
    out = sm.pp.clr(small_mdata, layer="counts", copy=True)
    assert_unchanged(adt, before)
    np.testing.assert_array_equal(out["adt"].X.toarray(), adt.X.toarray())  # X untouched, layer transformed
    expected = sm.pp.clr(adt, copy=True).X.toarray()
    np.testing.assert_allclose(out["adt"].layers["counts"].toarray(), expected, rtol=1e-6)


@pytest.mark.parametrize("axis", [0, 1])
def test_agrees_with_muon_on_real_data(cite_data, axis):
    muon = pytest.importorskip("muon")
    adt = cite_data["adt"]
    ours = sm.pp.clr(adt, axis=axis, copy=True)
    reference = adt.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # muon's own format-conversion warnings
        muon.prot.pp.clr(reference, axis=axis)
    assert sp.issparse(ours.X)
    ref = reference.X.toarray() if sp.issparse(reference.X) else reference.X
    assert ref.max() > 3
    np.testing.assert_allclose(ours.X.toarray(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("value", "axis", "message"),
    [
        (-1.0, 1, "negative values"),
        (np.nan, 1, "NaN or infinite"),
        (1.0, 2, "`axis` must be 0 .per protein, across cells. or 1"),
        (1.0, True, "`axis` must be 0"),
    ],
)
def test_bad_input(value, axis, message):
    X = COUNTS.copy()
    X[0, 0] = value
    adata = make_adata(sp.csr_matrix(X))
    before = snapshot(adata)
    with pytest.raises(ValueError, match=message):
        sm.pp.clr(adata, axis=axis)
    assert_unchanged(adata, before)
