from __future__ import annotations

import mudata as md
import numpy as np
import pytest
import scipy.sparse as sp

import scmatch as sm

from .conftest import assert_unchanged, make_adata, snapshot

# 4 cells x 5 peaks, non-zero in 4, 2, 1, 0 and 3 cells: frequencies 1, 0.5, 0.25, 0, 0.75.
COUNTS = np.array(
    [
        [1, 2, 0, 0, 1],
        [3, 0, 0, 0, 1],
        [1, 1, 5, 0, 0],
        [2, 0, 0, 0, 4],
    ],
    dtype=np.float32,
)
FRAC = np.array([1.0, 0.5, 0.25, 0.0, 0.75])


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, [True, True, True, False, True]),
        ({"min_frac": 0.3}, [True, True, False, False, True]),
        ({"min_frac": 0.3, "max_frac": 0.9}, [False, True, False, False, True]),
        ({"min_frac": 0.0}, [True, True, True, True, True]),
        ({"n_top": 2}, [True, False, False, False, True]),
        ({"min_frac": 0.3, "max_frac": 0.9, "n_top": 1}, [False, False, False, False, True]),
        ({"n_top": 10}, [True, True, True, False, True]),
        # counts of cells: 4, 2, 1, 0, 3
        ({"min_frac": 0.0, "min_cells": 2}, [True, True, False, False, True]),
        ({"min_frac": 0.0, "min_cells": 1}, [True, True, True, False, True]),
        ({"min_frac": 0.6, "min_cells": 1}, [True, False, False, False, True]),
        ({"min_frac": 0.0, "min_cells": 4}, [True, False, False, False, False]),
    ],
)
@pytest.mark.parametrize("to_matrix", [np.asarray, sp.csr_matrix])
def test_hand_computed(kwargs, expected, to_matrix):
    adata = make_adata(to_matrix(COUNTS))
    assert sm.pp.select_peaks(adata, **kwargs) is None
    np.testing.assert_allclose(adata.var["frac_cells"], FRAC)
    assert adata.var["highly_accessible"].dtype == bool
    assert adata.var["highly_accessible"].tolist() == expected
    params = adata.uns["select_peaks"]["params"]
    assert params["n_selected"] == sum(expected)
    assert params["min_frac"] == kwargs.get("min_frac", 0.01)
    assert params["min_cells"] == kwargs.get("min_cells")
    assert adata.shape == (4, 5)


def test_explicit_zeros_do_not_count():
    X = sp.csr_matrix(COUNTS)
    X.data[X.indices == 4] = 0  # stored zeros in peak 4
    adata = make_adata(X)
    sm.pp.select_peaks(adata)
    np.testing.assert_allclose(adata.var["frac_cells"], [1.0, 0.5, 0.25, 0.0, 0.0])


def test_ties_keep_peak_order():
    adata = make_adata(np.ones((3, 4)))
    sm.pp.select_peaks(adata, n_top=2)
    assert adata.var["highly_accessible"].tolist() == [True, True, False, False]


def test_subset_anndata_and_copy():
    adata = make_adata(sp.csr_matrix(COUNTS))
    before = snapshot(adata)
    out = sm.pp.select_peaks(adata, min_frac=0.3, subset=True, copy=True)
    assert_unchanged(adata, before)
    assert out.shape == (4, 3)
    assert list(out.var_names) == ["f0", "f1", "f4"]
    assert out.var["highly_accessible"].all()
    np.testing.assert_array_equal(out.X.toarray(), COUNTS[:, [0, 1, 4]])


def test_subset_inside_mudata_keeps_it_in_sync(small_mdata):
    n_rna = small_mdata["rna"].n_vars
    sm.pp.select_peaks(small_mdata, mod="atac", min_frac=0.3, subset=True)
    atac = small_mdata["atac"]
    n_kept = atac.n_vars
    assert 0 < n_kept < 100
    assert atac.var["frac_cells"].min() >= 0.3
    assert small_mdata.n_vars == n_rna + n_kept + 12
    assert (np.asarray(small_mdata.varmap["atac"]) > 0).sum() == n_kept
    assert small_mdata.n_obs == 60


def test_copy_returns_whole_mudata(small_mdata):
    out = sm.pp.select_peaks(small_mdata, mod="atac", min_frac=0.3, subset=True, copy=True)
    assert isinstance(out, md.MuData)
    assert small_mdata["atac"].n_vars == 100 and "highly_accessible" not in small_mdata["atac"].var
    assert out.n_vars == out["rna"].n_vars + out["atac"].n_vars + out["adt"].n_vars < 192


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_frac": 1.5}, "`min_frac` must be a fraction between 0 and 1"),
        ({"max_frac": -0.1}, "`max_frac` must be a fraction between 0 and 1 or None"),
        ({"min_frac": 0.5, "max_frac": 0.4}, r"`max_frac` \(0.4\) is below `min_frac` \(0.5\)"),
        ({"n_top": 0}, "`n_top` must be an integer >= 1 or None"),
        ({"min_cells": 0}, "`min_cells` must be an integer >= 1 or None"),
        ({"min_cells": 2.5}, "`min_cells` must be an integer >= 1 or None"),
        ({"min_frac": 0.0, "min_cells": 5}, r"in at least 5 of the cells .* 4 cells at most\); lower `min_frac` or"),
        ({"min_frac": 1.0, "max_frac": 1.0, "layer": "bin"}, r"No peak is non-zero in at least 1.0 and at most 1.0"),
        ({"layer": "missing"}, "Layer 'missing' not found"),
    ],
)
def test_bad_arguments(kwargs, message):
    adata = make_adata(sp.csr_matrix(COUNTS))
    adata.layers["bin"] = sp.csr_matrix(np.zeros_like(COUNTS))  # no peak is ever non-zero
    before = snapshot(adata)
    with pytest.raises(ValueError, match=message):
        sm.pp.select_peaks(adata, **kwargs)
    assert_unchanged(adata, before)


def test_real_data(multiome_data):
    atac = multiome_data["atac"]
    out = sm.pp.select_peaks(atac, copy=True)
    frac = out.var["frac_cells"].to_numpy()
    # the mean frequency times the number of peaks is the mean number of non-zero peaks per cell
    nnz_per_cell = np.diff(sp.csr_matrix(atac.X).indptr).mean()
    assert frac.mean() * atac.n_vars == pytest.approx(nnz_per_cell, rel=1e-9)
    assert 80 < nnz_per_cell < 90
    assert out.var["highly_accessible"].sum() == (frac >= 0.01).sum() == 526
    assert out.uns["select_peaks"]["params"]["n_selected"] == 526
