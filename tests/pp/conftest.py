"""Small fixtures for the preprocessing tests: hand-made count matrices and the real starters read once."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="package", autouse=True)
def _single_threaded_blas():
    """One BLAS thread: the matrices here are small, and on a loaded 2-core machine OpenBLAS threads that wait
    for each other made the SVDs 30-70x slower (measured)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _counts(rng: np.random.Generator, n_obs: int, n_vars: int, lam: float) -> sp.csr_matrix:
    X = rng.poisson(lam, size=(n_obs, n_vars)).astype(np.float32)
    X[:, 0] += 1  # no empty cells
    return sp.csr_matrix(X)


def make_adata(X, prefix: str = "f") -> ad.AnnData:
    """AnnData around ``X`` with readable names."""
    n_obs, n_vars = X.shape
    return ad.AnnData(
        X=X,
        obs=pd.DataFrame(index=[f"cell{i}" for i in range(n_obs)]),
        var=pd.DataFrame(index=[f"{prefix}{j}" for j in range(n_vars)]),
    )


@pytest.fixture
def small_mdata() -> md.MuData:
    """60 paired cells: rna (80 genes), atac (100 peaks), adt (12 proteins), sparse integer counts."""
    rng = np.random.default_rng(7)
    mods = {
        "rna": make_adata(_counts(rng, 60, 80, 1.5), "gene"),
        "atac": make_adata(_counts(rng, 60, 100, 0.3), "peak"),
        "adt": make_adata(_counts(rng, 60, 12, 20.0), "prot"),
    }
    return md.MuData(mods)


def snapshot(adata: ad.AnnData) -> dict:
    """Everything a failed call must leave as it was."""
    X = adata.X.toarray() if sp.issparse(adata.X) else np.array(adata.X)
    return {
        "X": X,
        "X_type": type(adata.X),
        "layers": {k: (v.toarray() if sp.issparse(v) else np.array(v)) for k, v in adata.layers.items()},
        "obsm": sorted(adata.obsm),
        "varm": sorted(adata.varm),
        "uns": sorted(adata.uns),
        "var": list(adata.var.columns),
        "obs": list(adata.obs.columns),
        "shape": adata.shape,
    }


def assert_unchanged(adata: ad.AnnData, before: dict) -> None:
    after = snapshot(adata)
    assert after["shape"] == before["shape"]
    assert after["X_type"] is before["X_type"]
    np.testing.assert_array_equal(after["X"], before["X"])
    assert after["layers"].keys() == before["layers"].keys()
    for k in before["layers"]:
        np.testing.assert_array_equal(after["layers"][k], before["layers"][k])
    for key in ("obsm", "varm", "uns", "var", "obs"):
        assert after[key] == before[key], key


def _read(data_dir: Path, name: str) -> md.MuData:
    path = data_dir / name
    if not path.exists():
        pytest.skip(f"real data {path} not available")
    return md.read_h5mu(path)


@pytest.fixture(scope="module")
def multiome_data(data_dir: Path) -> md.MuData:
    """The multiome starter, read once per module (tests must work on copies)."""
    return _read(data_dir, "bmmc_multiome_starter.h5mu")


@pytest.fixture(scope="module")
def cite_data(data_dir: Path) -> md.MuData:
    """The CITE starter, read once per module (tests must work on copies)."""
    return _read(data_dir, "bmmc_cite_starter.h5mu")


@pytest.fixture(scope="module")
def snare2_data(data_dir: Path) -> md.MuData:
    """SNARE-seq2 mouse cortex: real sparse single-nucleus ATAC, read once per module (tests must work on copies)."""
    return _read(data_dir, "snare2_mop_5232.h5mu")
