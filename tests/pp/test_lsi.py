from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp

import scmatch as sm

from .conftest import assert_unchanged, make_adata, snapshot


@pytest.fixture
def matrix() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.poisson(2.0, size=(15, 9)).astype(np.float64) + rng.random((15, 9))


def _reference(X: np.ndarray):
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    return U * s, s, Vt.T


def _assert_equal_up_to_sign(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    for j in range(a.shape[1]):
        sign = np.sign(a[:, j] @ b[:, j])
        np.testing.assert_allclose(a[:, j], sign * b[:, j], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("to_matrix", [np.asarray, sp.csr_matrix])
@pytest.mark.parametrize("drop_first", [False, True])
def test_matches_numpy_svd(matrix, to_matrix, drop_first):
    adata = make_adata(to_matrix(matrix))
    sm.pp.lsi(adata, n_comps=4, drop_first=drop_first)
    coords, s, V = _reference(matrix)
    first = int(drop_first)
    _assert_equal_up_to_sign(adata.obsm["X_lsi"], coords[:, first : first + 4])
    _assert_equal_up_to_sign(adata.varm["LSI"], V[:, first : first + 4])
    uns = adata.uns["lsi"]
    np.testing.assert_allclose(uns["singular_values"], s[first : first + 4], rtol=1e-10)
    np.testing.assert_allclose(uns["stdev"], s[first : first + 4] / np.sqrt(14), rtol=1e-10)
    assert uns["params"] == {
        "n_comps": 4,
        "n_comps_used": 4,
        "drop_first": drop_first,
        "dropped_first": drop_first,
        "layer": None,
        "mask_var": None,
        "n_neighbors": None,
        "random_state": 0,
    }
    assert ("dropped_component" in uns) == drop_first
    if drop_first:
        assert uns["dropped_component"]["singular_value"] == pytest.approx(s[0], rel=1e-10)
    # sign convention: the largest-magnitude loading of every component is positive
    L = adata.varm["LSI"]
    assert (L[np.argmax(np.abs(L), axis=0), np.arange(4)] > 0).all()


@pytest.mark.parametrize("tracks_depth", [True, False])
def test_auto_drops_the_first_component_only_when_it_tracks_depth(matrix, tracks_depth):
    adata = make_adata(sp.csr_matrix(matrix))
    coords, _, _ = _reference(matrix)
    # a depth that is (or is not) the first component's coordinate: |correlation| 1, or 0 by construction
    first = coords[:, 0] - coords[:, 0].mean()
    other = np.random.default_rng(0).standard_normal(15)
    other -= other.mean() + (other @ first) / (first @ first) * first  # centred and orthogonal to `first`
    log_depth = 5 + (first if tracks_depth else other) / np.abs(first if tracks_depth else other).max()
    counts = np.zeros((15, 9))
    counts[:, 0] = np.expm1(log_depth)
    adata.layers["counts"] = sp.csr_matrix(counts)
    sm.pp.lsi(adata, n_comps=4, drop_first="auto")
    k = int(tracks_depth)
    _assert_equal_up_to_sign(adata.obsm["X_lsi"], coords[:, k : k + 4])
    params = adata.uns["lsi"]["params"]
    assert params["drop_first"] == "auto" and params["dropped_first"] is tracks_depth
    assert params["n_comps_used"] == 4
    assert ("dropped_component" in adata.uns["lsi"]) == tracks_depth
    if tracks_depth:
        assert abs(adata.uns["lsi"]["dropped_component"]["depth_corr"]) == pytest.approx(1.0)
    else:
        assert abs(adata.uns["lsi"]["depth_corr"][0]) < 1e-8


def test_drop_first_refuses_other_values(matrix):
    adata = make_adata(sp.csr_matrix(matrix))
    with pytest.raises(ValueError, match="`drop_first` must be True, False or 'auto', got 'yes'"):
        sm.pp.lsi(adata, n_comps=3, drop_first="yes")
    assert "X_lsi" not in adata.obsm


def test_depth_correlation_by_hand(matrix):
    adata = make_adata(sp.csr_matrix(matrix))
    counts = np.zeros((15, 9))
    counts[:, 0] = np.arange(1, 16) * 10
    adata.layers["counts"] = sp.csr_matrix(counts)
    depth = np.log1p(np.arange(1, 16) * 10.0)
    sm.pp.lsi(adata, n_comps=3, drop_first=False)
    expected = [np.corrcoef(adata.obsm["X_lsi"][:, j], depth)[0, 1] for j in range(3)]
    np.testing.assert_allclose(adata.uns["lsi"]["depth_corr"], expected, rtol=1e-10)
    assert adata.uns["lsi"]["depth_source"] == "counts"
    del adata.layers["counts"]
    sm.pp.lsi(adata, n_comps=3, drop_first=False)
    assert adata.uns["lsi"]["depth_source"] == "input"
    input_depth = np.log1p(matrix.sum(axis=1))
    assert adata.uns["lsi"]["depth_corr"][0] == pytest.approx(
        np.corrcoef(adata.obsm["X_lsi"][:, 0], input_depth)[0, 1], rel=1e-10
    )


def test_deterministic_given_random_state(matrix):
    a, b = make_adata(sp.csr_matrix(matrix)), make_adata(sp.csr_matrix(matrix))
    sm.pp.lsi(a, n_comps=5, random_state=11)
    sm.pp.lsi(b, n_comps=5, random_state=11)
    np.testing.assert_array_equal(a.obsm["X_lsi"], b.obsm["X_lsi"])
    np.testing.assert_array_equal(a.varm["LSI"], b.varm["LSI"])
    c = make_adata(sp.csr_matrix(matrix))
    sm.pp.lsi(c, n_comps=5, random_state=np.random.default_rng(11))
    np.testing.assert_array_equal(a.obsm["X_lsi"], c.obsm["X_lsi"])
    assert c.uns["lsi"]["params"]["random_state"] is None


def test_n_comps_capped_with_message(matrix, caplog):
    adata = make_adata(sp.csr_matrix(matrix))
    with caplog.at_level(logging.INFO, logger="scmatch"):
        sm.pp.lsi(adata, n_comps=100)
    # a 15 x 9 matrix allows 8 components, one of them dropped
    assert adata.obsm["X_lsi"].shape == (15, 7)
    assert adata.varm["LSI"].shape == (9, 7)
    assert adata.uns["lsi"]["params"]["n_comps_used"] == 7
    assert "100 components requested" in caplog.text and "using 7" in caplog.text


def test_mask_var_uses_only_selected_peaks(matrix):
    adata = make_adata(sp.csr_matrix(matrix))
    mask = np.array([True, False, True, True, True, False, True, True, True])
    adata.var["keep"] = mask
    sm.pp.lsi(adata, n_comps=3, mask_var="keep", drop_first=False)
    coords, _, V = _reference(matrix[:, mask])
    _assert_equal_up_to_sign(adata.obsm["X_lsi"], coords[:, :3])
    np.testing.assert_array_equal(adata.varm["LSI"][~mask], 0)
    _assert_equal_up_to_sign(adata.varm["LSI"][mask], V[:, :3])


@pytest.mark.parametrize("drop_first", [False, True])
def test_neighbour_basis_by_hand(matrix, drop_first):
    # the loadings come from the SVD of each cell's profile averaged with its 4 nearest cells (itself included) in
    # a first LSI, by cosine distance; every cell is then placed by projecting its own profile on them
    adata = make_adata(sp.csr_matrix(matrix))
    sm.pp.lsi(adata, n_comps=3, drop_first=drop_first, n_neighbors=4)
    first = int(drop_first)
    coords, _, _ = _reference(matrix)
    space = coords[:, first : first + 3]
    unit = space / np.linalg.norm(space, axis=1, keepdims=True)
    distances = ((unit[:, None, :] - unit[None, :, :]) ** 2).sum(axis=2)
    nearest = np.argsort(distances, axis=1)[:, :4]
    assert (nearest[:, 0] == np.arange(15)).all()
    averaged = matrix[nearest].mean(axis=1)
    _, s, V = _reference(averaged)
    V = V[:, first : first + 3]
    _assert_equal_up_to_sign(adata.varm["LSI"], V)
    np.testing.assert_allclose(adata.obsm["X_lsi"], matrix @ adata.varm["LSI"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(adata.uns["lsi"]["singular_values"], s[first : first + 3], rtol=1e-10)
    assert adata.uns["lsi"]["params"]["n_neighbors"] == 4
    # one neighbour is the plain SVD
    plain, one = make_adata(sp.csr_matrix(matrix)), make_adata(sp.csr_matrix(matrix))
    sm.pp.lsi(plain, n_comps=3, drop_first=drop_first)
    sm.pp.lsi(one, n_comps=3, drop_first=drop_first, n_neighbors=1)
    np.testing.assert_array_equal(one.obsm["X_lsi"], plain.obsm["X_lsi"])
    assert one.uns["lsi"]["params"]["n_neighbors"] is None


def test_neighbour_basis_capped_with_message(matrix, caplog):
    # with every cell among every cell's neighbours the averaged matrix has rank one: compare its one component
    capped, every = make_adata(sp.csr_matrix(matrix)), make_adata(sp.csr_matrix(matrix))
    with caplog.at_level(logging.INFO, logger="scmatch"):
        sm.pp.lsi(capped, n_comps=1, drop_first=False, n_neighbors=40)
    assert "n_neighbors=40 is more than the 15 cells; using 15" in caplog.text
    sm.pp.lsi(every, n_comps=1, drop_first=False, n_neighbors=15)
    assert capped.uns["lsi"]["params"]["n_neighbors"] == 15
    _assert_equal_up_to_sign(capped.varm["LSI"], every.varm["LSI"])
    # that component is the direction of the mean profile
    mean = matrix.mean(axis=0)
    _assert_equal_up_to_sign(capped.varm["LSI"], (mean / np.linalg.norm(mean))[:, None])


def test_mudata_copy_and_layer(small_mdata):
    atac = small_mdata["atac"]
    atac.layers["tfidf"] = atac.X.copy()
    before = snapshot(atac)
    out = sm.pp.lsi(small_mdata, layer="tfidf", n_comps=5, copy=True)
    assert_unchanged(atac, before)
    assert out["atac"].obsm["X_lsi"].shape == (60, 5)
    assert out["atac"].uns["lsi"]["params"]["layer"] == "tfidf"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_comps": 0}, "`n_comps` must be an integer >= 1"),
        ({"n_comps": 2.5}, "`n_comps` must be an integer >= 1"),
        ({"mask_var": "missing"}, r"`\.var\['missing'\]` not found.*select_peaks"),
        ({"mask_var": "name"}, "must be boolean"),
        ({"mask_var": "none"}, "selects no peaks"),
        ({"layer": "missing"}, "Layer 'missing' not found"),
        ({"n_neighbors": 0}, "`n_neighbors` must be a positive integer or None"),
        ({"n_neighbors": 2.5}, "`n_neighbors` must be a positive integer or None"),
        ({"n_neighbors": True}, "`n_neighbors` must be a positive integer or None"),
    ],
)
def test_bad_arguments(matrix, kwargs, message):
    adata = make_adata(sp.csr_matrix(matrix))
    adata.var["name"] = adata.var_names.to_numpy()
    adata.var["none"] = False
    before = snapshot(adata)
    with pytest.raises(ValueError, match=message):
        sm.pp.lsi(adata, **kwargs)
    assert_unchanged(adata, before)


def test_too_small_matrix():
    adata = make_adata(np.ones((2, 5)))
    with pytest.raises(ValueError, match="LSI needs at least 3 cells and 3 peaks with drop_first=True"):
        sm.pp.lsi(adata)


def test_real_data_depth_and_muon(multiome_data):
    atac = multiome_data["atac"].copy()
    atac.layers["counts"] = atac.X.copy()
    sm.pp.tfidf(atac)
    kept = sm.pp.lsi(atac, n_comps=20, copy=True)
    full = sm.pp.lsi(atac, n_comps=20, drop_first=False, copy=True)
    # the first component tracks depth; the kept ones barely do
    assert abs(full.uns["lsi"]["depth_corr"][0]) > 0.9
    assert abs(kept.uns["lsi"]["dropped_component"]["depth_corr"]) > 0.9
    assert np.abs(kept.uns["lsi"]["depth_corr"]).max() < 0.3
    np.testing.assert_allclose(kept.obsm["X_lsi"][:, :19], full.obsm["X_lsi"][:, 1:], rtol=1e-6, atol=1e-8)
    # muon's lsi returns U (unscaled with scale_embeddings=False) and the same stdev
    muon = pytest.importorskip("muon")
    reference = atac.copy()
    muon.atac.tl.lsi(reference, scale_embeddings=False, n_comps=20)
    s = full.uns["lsi"]["singular_values"]
    np.testing.assert_allclose(full.uns["lsi"]["stdev"], reference.uns["lsi"]["stdev"], rtol=1e-5)
    _assert_equal_up_to_sign_loose(full.obsm["X_lsi"] / s, reference.obsm["X_lsi"])


def _assert_equal_up_to_sign_loose(a: np.ndarray, b: np.ndarray) -> None:
    for j in range(a.shape[1]):
        assert abs(np.corrcoef(a[:, j], b[:, j])[0, 1]) > 0.999, j
