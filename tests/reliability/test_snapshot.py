"""The snapshot helper itself: it must notice a change in any slot, and only a change."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from .cases import toy_mudata
from .snapshot import assert_unchanged, snapshot


def _unsorted(mdata):
    X = mdata["rna"].X
    X.indices[:2], X.data[:2] = X.indices[:2][::-1].copy(), X.data[:2][::-1].copy()
    X.has_sorted_indices = False
    return mdata


MUTATIONS = {
    "modality X value": lambda m: m["rna"].X.data.__setitem__(0, 99),
    "modality X dense->sparse": lambda m: setattr(m["atac"], "X", sp.csr_matrix(m["atac"].X)),
    "modality X dtype": lambda m: setattr(m["atac"], "X", m["atac"].X.astype(np.float64)),
    "sparse index order": _unsorted,
    "layer value": lambda m: m["rna"].layers["counts"].data.__setitem__(1, 42),
    "new layer": lambda m: m["rna"].layers.__setitem__("extra", m["rna"].X.copy()),
    "obs column": lambda m: m["rna"].obs.__setitem__("new", 1),
    "obs value": lambda m: m["atac"].obs.__setitem__("batch", "bx"),
    "var column": lambda m: m["atac"].var.__setitem__("highly_variable", True),
    "obsm value": lambda m: m["rna"].obsm["X_pca"].__setitem__((0, 0), 1e9),
    "obsm key": lambda m: m["rna"].obsm.__setitem__("X_match", np.zeros((m["rna"].n_obs, 2))),
    "modality uns": lambda m: m["rna"].uns.__setitem__("tfidf", {"params": {}}),
    "global obsp": lambda m: m.obsp.__setitem__("match_probabilities", sp.csr_matrix((m.n_obs, m.n_obs))),
    "global obsp value": lambda m: m.obsp["knn"].data.__setitem__(0, 0.5),
    "global uns nested": lambda m: m.uns["note"]["values"].__setitem__(0, 7),
    "global uns key": lambda m: m.uns.__setitem__("match", {}),
    "global obs": lambda m: m.obs.__setitem__("flag", True),
    "global obsm": lambda m: m.obsm.__setitem__("X_joint", np.zeros((m.n_obs, 2))),
    "modality obs names": lambda m: setattr(m["rna"], "obs_names", [f"x{i}" for i in range(m["rna"].n_obs)]),
}


@pytest.mark.parametrize("mutate", MUTATIONS.values(), ids=MUTATIONS.keys())
def test_any_change_is_caught(mutate):
    mdata = toy_mudata()
    before = snapshot(mdata)
    mutate(mdata)
    with pytest.raises(AssertionError):
        assert_unchanged(mdata, before)


def test_untouched_passes_with_nan_and_frames():
    mdata = toy_mudata()
    mdata["rna"].obsm["X_pca"][3, 1] = np.nan
    mdata["atac"].obsm["X_lsi"] = pd.DataFrame(mdata["atac"].obsm["X_lsi"], index=mdata["atac"].obs_names)
    before = snapshot(mdata)
    mdata.copy()  # reading and copying changes nothing
    assert_unchanged(mdata, before)


def test_files_and_arrays(tmp_path):
    path = tmp_path / "f.txt"
    before_absent = snapshot(path)
    path.write_text("x")
    with pytest.raises(AssertionError):
        assert_unchanged(path, before_absent)
    x = np.arange(6.0).reshape(2, 3)
    before = snapshot(x)
    x[0, 0] = -1
    with pytest.raises(AssertionError):
        assert_unchanged(x, before)
