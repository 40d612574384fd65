"""A hand-made matched MuData in the documented layout of scmatch.tl.match_modalities (no training), and figure
hygiene: every test starts and ends with no open figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

NAMES = [f"c{i}" for i in range(10)]
IS_REF = np.array([True, False, False, True, False, False, True, False, False, True])
TYPES = np.array(["A", "A", "A", "B", "B", "B", "C", "C", "C", "C"])
#: query cells in rna order (c1, c2, c4, c5, c7, c8) and their types
QUERY = [n for n, r in zip(NAMES, IS_REF, strict=True) if not r]
QUERY_TYPES = ["A", "A", "B", "B", "C", "C"]
#: P_QUERY[i, j]: probability that rna cell QUERY[i] is adt cell QUERY[j]; the truth is the diagonal
P_QUERY = np.array(
    [
        [0.60, 0.20, 0.10, 0.10, 0.00, 0.00],
        [0.30, 0.50, 0.20, 0.00, 0.00, 0.00],
        [0.00, 0.10, 0.20, 0.70, 0.00, 0.00],
        [0.00, 0.00, 0.45, 0.35, 0.20, 0.00],
        [0.25, 0.00, 0.00, 0.00, 0.50, 0.25],
        [0.00, 0.00, 0.00, 0.00, 0.00, 1.00],
    ]
)
#: cell-type confusion of P_QUERY by hand: rows A, B, C (mod1), columns A, B, C (mod2)
CONFUSION = np.array([[0.8, 0.2, 0.0], [0.05, 0.85, 0.10], [0.125, 0.0, 0.875]])
HISTORY = {
    "epoch": np.arange(6),
    "train_loss": np.array([0.9, 0.5, 0.7, 0.6, 0.55, 0.52]),
    "val_score": np.array([0.1, 0.2, 0.25, 0.4, 0.35, 0.3]),
    "best_epoch": np.array(3),
}


def make_matched(*, rename_adt: bool = False) -> md.MuData:
    """10 paired cells (4 reference, 6 query); the adt modality lists its cells in reverse order.

    With ``rename_adt`` the adt cells get other names (``a0`` ...), so no pairing by name exists.
    """
    rng = np.random.default_rng(0)
    obs = pd.DataFrame(
        {"is_reference": IS_REF, "cell_type": pd.Categorical(TYPES), "score": np.linspace(0, 1, 10)}, index=NAMES
    )
    emb = rng.normal(size=(10, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    rna = AnnData(obs=obs.copy(), obsm={"X_match": emb})
    order = np.arange(10)[::-1]
    adt_obs = obs.iloc[order].copy()
    adt_names = [f"a{i}" for i in range(10)] if rename_adt else NAMES
    adt_obs.index = [adt_names[i] for i in order]
    adt = AnnData(obs=adt_obs, obsm={"X_match": emb[order] + 0.01})
    with md.set_options(pull_on_update=False):
        mdata = md.MuData({"rna": rna, "adt": adt})
    glob = mdata.obs_names
    rows = glob.get_indexer(QUERY)
    cols = glob.get_indexer([adt_names[NAMES.index(n)] for n in QUERY])
    i, j = np.nonzero(P_QUERY)
    mdata.obsp["match_probabilities"] = sp.csr_matrix(
        (P_QUERY[i, j], (rows[i], cols[j])), shape=(mdata.n_obs, mdata.n_obs)
    )
    mdata.uns["match"] = {
        "params": {
            "mod1": "rna",
            "mod2": "adt",
            "rep1": "X_pca",
            "rep2": "X_pca",
            "reference": "is_reference",
            "batch_key": None,
            "model": {"warmup_epochs": 2, "loss": "triplet"},
        },
        "probabilities_key": "match_probabilities",
        "embedding_key": "X_match",
        "n_reference": 4,
        "query": {"n_mod1": 6, "n_mod2": 6},
        "temperature": {"sinkhorn": 0.05},
        "history": {k: np.asarray(v) for k, v in HISTORY.items()},
    }
    return mdata


@pytest.fixture
def matched() -> md.MuData:
    return make_matched()


@pytest.fixture
def matched_unpaired() -> md.MuData:
    return make_matched(rename_adt=True)


@pytest.fixture(autouse=True)
def _close_figures():
    assert plt.get_fignums() == [], "a previous test left a figure open"
    yield
    plt.close("all")
