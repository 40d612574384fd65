from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pytest
import scipy.sparse as sp

import scmatch as sm

from .conftest import assert_unchanged, make_adata, snapshot

# 3 cells x 3 peaks; cell totals 3, 4, 4; peak totals 3, 5, 3; n_cells / peak total = 1, 0.6, 1.
COUNTS = np.array([[1, 0, 2], [0, 3, 1], [2, 2, 0]], dtype=np.float32)
# scale_factor=1, no logs: (counts / cell total) * (n_cells / peak total), by hand.
PLAIN = np.array([[1 / 3, 0, 2 / 3], [0, 0.75 * 0.6, 0.25], [0.5, 0.5 * 0.6, 0]])
# defaults: log1p(1e4 * counts / cell total) * log1p(n_cells / peak total), by hand.
LOG2, LOG16 = np.log(2.0), np.log(1.6)
DEFAULT = np.array(
    [
        [np.log1p(1e4 / 3) * LOG2, 0, np.log1p(2e4 / 3) * LOG2],
        [0, np.log1p(7500) * LOG16, np.log1p(2500) * LOG2],
        [np.log1p(5000) * LOG2, np.log1p(5000) * LOG16, 0],
    ]
)


@pytest.mark.parametrize("to_matrix", [np.asarray, sp.csr_matrix, sp.csc_matrix])
def test_hand_computed_defaults(to_matrix):
    adata = make_adata(to_matrix(COUNTS))
    assert sm.pp.tfidf(adata) is None
    assert sp.issparse(adata.X) == sp.issparse(to_matrix(COUNTS))
    assert adata.X.dtype == np.float32
    X = adata.X.toarray() if sp.issparse(adata.X) else adata.X
    np.testing.assert_allclose(X, DEFAULT, rtol=1e-6)
    assert adata.uns["tfidf"]["params"] == {
        "log_tf": True,
        "log_idf": True,
        "log_tfidf": False,
        "scale_factor": 1e4,
        "layer": None,
    }


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"log_tf": False, "log_idf": False}, PLAIN),
        ({"log_tf": False, "log_idf": False, "log_tfidf": True}, np.log1p(PLAIN)),
        ({"log_tf": False, "log_idf": True}, PLAIN / np.array([1, 0.6, 1]) * np.log1p([1, 0.6, 1])),
        ({"log_tf": True, "log_idf": False}, np.log1p(PLAIN / np.array([1, 0.6, 1])) * np.array([1, 0.6, 1])),
    ],
)
def test_hand_computed_flags(flags, expected):
    adata = make_adata(sp.csr_matrix(COUNTS))
    sm.pp.tfidf(adata, scale_factor=1, **flags)
    np.testing.assert_allclose(adata.X.toarray(), expected, rtol=1e-6)


def test_integer_dtype_and_scale_factor_none():
    adata = make_adata(COUNTS.astype(np.int64))
    sm.pp.tfidf(adata, scale_factor=None, log_tf=False, log_idf=False)
    assert adata.X.dtype == np.float32
    np.testing.assert_allclose(adata.X, PLAIN, rtol=1e-6)
    assert adata.uns["tfidf"]["params"]["scale_factor"] == 1.0


def test_layer_in_place_leaves_x():
    adata = make_adata(sp.csr_matrix(COUNTS))
    adata.layers["peaks"] = adata.X.copy()
    adata.X = sp.csr_matrix(np.ones((3, 3), dtype=np.float32))
    sm.pp.tfidf(adata, layer="peaks")
    np.testing.assert_allclose(adata.layers["peaks"].toarray(), DEFAULT, rtol=1e-6)
    np.testing.assert_array_equal(adata.X.toarray(), np.ones((3, 3)))
    assert adata.uns["tfidf"]["params"]["layer"] == "peaks"


def test_copy_anndata_leaves_input():
    adata = make_adata(sp.csr_matrix(COUNTS))
    before = snapshot(adata)
    out = sm.pp.tfidf(adata, copy=True)
    assert isinstance(out, ad.AnnData) and out is not adata
    assert_unchanged(adata, before)
    np.testing.assert_allclose(out.X.toarray(), DEFAULT, rtol=1e-6)


def test_mudata_dispatch_and_copy(small_mdata):
    atac_before = snapshot(small_mdata["atac"])
    rna_before = snapshot(small_mdata["rna"])
    out = sm.pp.tfidf(small_mdata, mod="atac", copy=True)
    assert isinstance(out, md.MuData)
    assert "tfidf" in out["atac"].uns and "tfidf" not in out["rna"].uns
    assert_unchanged(small_mdata["atac"], atac_before)
    sm.pp.tfidf(small_mdata, mod="atac")
    np.testing.assert_allclose(small_mdata["atac"].X.toarray(), out["atac"].X.toarray())
    assert_unchanged(small_mdata["rna"], rna_before)
    assert small_mdata.shape == out.shape == (60, 192)


def test_view_is_made_actual_without_warning():
    adata = make_adata(sp.csr_matrix(np.vstack([COUNTS, COUNTS])))
    view = adata[:3]
    sm.pp.tfidf(view)
    assert not view.is_view
    np.testing.assert_allclose(view.X.toarray(), DEFAULT, rtol=1e-6)


def test_empty_peak_gives_zero_column():
    X = np.hstack([COUNTS, np.zeros((3, 1), dtype=np.float32)])
    adata = make_adata(sp.csr_matrix(X))
    sm.pp.tfidf(adata)
    out = adata.X.toarray()
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out[:, 3], 0)
    np.testing.assert_allclose(out[:, :3], DEFAULT, rtol=1e-6)


def test_empty_cell_is_refused():
    X = np.vstack([COUNTS, np.zeros((1, 3), dtype=np.float32)])
    adata = make_adata(sp.csr_matrix(X))
    before = snapshot(adata)
    with pytest.raises(ValueError, match=r"1 cells have no counts in `\.X` \(e\.g\. \['cell3'\]\).*filter_cells"):
        sm.pp.tfidf(adata)
    assert_unchanged(adata, before)


@pytest.mark.parametrize("scale_factor", [0, -1.0, True, "1e4"])
def test_bad_scale_factor(scale_factor):
    adata = make_adata(sp.csr_matrix(COUNTS))
    with pytest.raises(ValueError, match="`scale_factor` must be a positive number"):
        sm.pp.tfidf(adata, scale_factor=scale_factor)


@pytest.mark.parametrize(
    "flags",
    [
        {"log_tf": True, "log_idf": True},  # muon's defaults
        {"log_tf": False, "log_idf": True},
        {"log_tf": False, "log_idf": False, "log_tfidf": True},
    ],
)
def test_agrees_with_muon_on_real_data(multiome_data, flags):
    muon = pytest.importorskip("muon")
    atac = multiome_data["atac"]
    ours = sm.pp.tfidf(atac, copy=True, **flags)
    reference = atac.copy()
    muon.atac.pp.tfidf(reference, **flags)
    assert sp.issparse(ours.X)
    ref = reference.X.toarray()
    assert (np.asarray(atac.X.sum(axis=0)).ravel() == 0).sum() == 5  # the data have empty peaks
    assert ref.max() > 5
    np.testing.assert_allclose(ours.X.toarray(), ref, rtol=1e-5, atol=1e-5 * ref.max())
