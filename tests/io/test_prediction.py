from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from scmatch.io import read_match_modality, read_prediction, write_prediction
from scmatch.metrics import match_score, truth_from_solution


def _top_k_rows(n, m, k, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), k)
    cols = np.concatenate([rng.choice(m, k, replace=False) for _ in range(n)])
    P = sp.csr_matrix((rng.random(rows.size) + 0.01, (rows, cols)), shape=(n, m))
    return sp.csr_matrix(P.multiply(1 / P.sum(axis=1)), dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip(tmp_path, dtype):
    P = _top_k_rows(40, 40, 7, dtype=dtype)
    names1, names2 = [f"c{i}" for i in range(40)], [str(j) for j in range(40)]
    write_prediction(P, tmp_path / "pred.h5ad", dataset_id="ds", method_id="m", obs_names=names1, var_names=names2)
    pred = read_prediction(tmp_path / "pred.h5ad")
    assert sp.isspmatrix_csr(pred.X) and pred.X.dtype == dtype
    assert (pred.X != P).nnz == 0
    assert pred.uns["dataset_id"] == "ds" and pred.uns["method_id"] == "m"
    assert list(pred.obs_names) == names1 and list(pred.var_names) == names2


def test_dense_input_is_stored_sparse(tmp_path):
    P = np.array([[0.25, 0.75, 0.0], [0.0, 0.0, 1.0], [1 / 3, 1 / 3, 1 / 3]])
    write_prediction(P, tmp_path / "p.h5ad", dataset_id="ds")
    pred = read_prediction(tmp_path / "p.h5ad")
    assert pred.X.nnz == 6 and pred.X.dtype == np.float64
    np.testing.assert_allclose(pred.X.toarray(), P)
    assert pred.uns["method_id"] == "scmatch"


@pytest.mark.parametrize(
    ("P", "kwargs", "match"),
    [
        (np.array([[0.5, 0.6], [0.5, 0.5]]), {}, "sum to 1"),
        (np.array([[1.5, -0.5], [0.5, 0.5]]), {}, "negative"),
        (np.full((2, 2), 0.5), {"max_nonzero": 1}, "more than 1 non-zero"),
        (np.full((2, 2), 0.5), {"obs_names": ["a", "b", "c"]}, r"shape \(2, 2\) but \(3, 2\)"),
        (np.full((2, 2), 0.5), {"dataset_id": ""}, "dataset_id"),
        (np.full((2, 2), 0.5), {"method_id": None}, "method_id"),
    ],
)
def test_invalid_prediction_writes_nothing(tmp_path, P, kwargs, match):
    kwargs = {"dataset_id": "ds", **kwargs}
    with pytest.raises(ValueError, match=match):
        write_prediction(P, tmp_path / "p.h5ad", **kwargs)
    assert not (tmp_path / "p.h5ad").exists()


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_prediction(np.eye(2), tmp_path / "no" / "p.h5ad", dataset_id="ds")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_prediction(tmp_path / "p.h5ad")


def test_read_prediction_checks(tmp_path):
    ad.AnnData(sp.csr_matrix(np.eye(3))).write_h5ad(tmp_path / "no_uns.h5ad")
    with pytest.raises(ValueError, match="dataset_id"):
        read_prediction(tmp_path / "no_uns.h5ad")
    assert read_prediction(tmp_path / "no_uns.h5ad", check=False).shape == (3, 3)
    ad.AnnData(sp.csr_matrix(2 * np.eye(3)), uns={"dataset_id": "d", "method_id": "m"}).write_h5ad(
        tmp_path / "bad.h5ad"
    )
    with pytest.raises(ValueError, match="sum to 1"):
        read_prediction(tmp_path / "bad.h5ad")


def test_challenge_accepts_prediction_and_scores_it(challenge_dir, tmp_path):
    """Write a prediction for the multiome starter and apply the challenge's own checks to it."""
    folder = challenge_dir / "multiome"
    mdata = read_match_modality(folder)
    info = mdata.uns["match_modality"]
    truth, n = info["test_truth"], info["n_test"]
    P = np.full((n, n), 0.5 / (n - 1))
    P[np.arange(n), truth] = 0.5  # half the mass on the partner, the rest spread out
    write_prediction(P, tmp_path / "pred.h5ad", dataset_id=info["dataset_id"], method_id="scmatch")
    pred = ad.read_h5ad(tmp_path / "pred.h5ad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = ad.read_h5ad(folder / "test_sol.h5ad")
    # the checks of the challenge's unit test (src/match_modality/unit_tests/test_method.py)
    assert pred.uns["dataset_id"] == sol.uns["dataset_id"]
    assert pred.uns["method_id"] == "scmatch"
    assert sp.issparse(pred.X)
    assert pred.X.nonzero()[0].size <= 1000 * sol.n_obs
    assert pred.shape == sol.shape
    assert np.isclose(pred.X.sum(axis=1), 1, atol=1e-10).all()
    assert match_score(pred.X, truth_from_solution(sol.X)) == pytest.approx(0.5)


def _half_write(self, filename, *args, **kwargs):
    """AnnData.write_h5ad that dies part-way: a truncated file, then an interruption."""
    with open(filename, "wb") as handle:
        handle.write(b"\x89HDF\r\n\x1a\n truncated")
    raise KeyboardInterrupt


@pytest.mark.parametrize("existing", [True, False])
def test_interrupted_write_keeps_the_previous_file(tmp_path, monkeypatch, existing):
    target = tmp_path / "pred.h5ad"
    old = _top_k_rows(20, 20, 5, seed=1)
    if existing:
        write_prediction(old, target, dataset_id="ds", method_id="old")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(ad.AnnData, "write_h5ad", _half_write)
    with pytest.raises(KeyboardInterrupt):
        write_prediction(_top_k_rows(20, 20, 5, seed=2), target, dataset_id="ds", method_id="new")
    monkeypatch.undo()
    # the same files, byte for byte (none at all when there was no previous file): no temporary file is left
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    if existing:
        pred = read_prediction(target)
        assert (pred.X != old).nnz == 0 and pred.uns["method_id"] == "old"


def test_overwrite_replaces_the_file(tmp_path):
    target = tmp_path / "pred.h5ad"
    write_prediction(_top_k_rows(20, 20, 5, seed=1), target, dataset_id="ds", method_id="old")
    new = _top_k_rows(20, 20, 5, seed=2)
    write_prediction(new, target, dataset_id="ds", method_id="new")
    assert [p.name for p in tmp_path.iterdir()] == ["pred.h5ad"]
    pred = read_prediction(target)
    assert (pred.X != new).nnz == 0 and pred.uns["method_id"] == "new"
