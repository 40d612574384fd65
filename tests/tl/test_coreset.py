import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest

import scmatch as scm


def _adata(n=300, seed=0):
    rng = np.random.default_rng(seed)
    obs = pd.DataFrame(index=[f"c{i}" for i in range(n)])
    adata = ad.AnnData(obs=obs)
    adata.obsm["X_pca"] = rng.normal(size=(n, 6)).astype(np.float32)
    return adata


@pytest.mark.parametrize("method", ["craig", "random"])
def test_select_coreset_writes_selection_and_weights(method):
    adata = _adata()
    assert scm.tl.select_coreset(adata, fraction=0.2, method=method, random_state=3) is None
    sel, w = adata.obs["coreset_selected"].to_numpy(), adata.obs["coreset_weight"].to_numpy()
    assert sel.dtype == bool and sel.sum() == 60
    assert w.sum() == pytest.approx(300)
    assert np.all(w[~sel] == 0) and np.all(w[sel] > 0)
    assert adata.uns["coreset"]["n_selected"] == 60
    assert adata.uns["coreset"]["params"]["method"] == method
    assert adata.uns["coreset"]["params"]["kernel"] == "adaptive"


def test_select_coreset_copy_and_mudata():
    adata = _adata()
    out = scm.tl.select_coreset(adata, fraction=0.1, copy=True, key_added="ref")
    assert "ref_selected" not in adata.obs and "ref" not in adata.uns
    assert out.obs["ref_selected"].sum() == 30
    mdata = md.MuData({"rna": _adata(), "adt": _adata(seed=1)})
    scm.tl.select_coreset(mdata, mod="adt", fraction=0.5)
    assert mdata["adt"].obs["coreset_selected"].sum() == 150
    assert "coreset_selected" not in mdata["rna"].obs


def test_select_coreset_rejects_bad_input_before_writing():
    adata = _adata()
    with pytest.raises(ValueError, match="fraction"):
        scm.tl.select_coreset(adata, fraction=1.5)
    with pytest.raises(ValueError, match="method"):
        scm.tl.select_coreset(adata, method="kmeans")
    with pytest.raises(ValueError, match="kernel"):
        scm.tl.select_coreset(adata, kernel="local")
    with pytest.raises(ValueError, match="X_lsi"):
        scm.tl.select_coreset(adata, use_rep="X_lsi")
    assert "coreset_selected" not in adata.obs
