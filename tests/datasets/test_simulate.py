from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats
from threadpoolctl import threadpool_limits

from scmatch.datasets import _simulate
from scmatch.datasets._sim_counts import CSRBuilder, sample_nb, sample_poisson
from scmatch.datasets._simulate import simulate_multiome

SMALL = {"n_genes": 200, "n_peaks": 1000}


@pytest.fixture(scope="module", autouse=True)
def _single_threaded_blas():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def small():
    return simulate_multiome(300, n_cell_types=4, n_batches=2, random_state=0, **SMALL)


@pytest.fixture(scope="module")
def default_size():
    """Default feature numbers and parameters; 600 cells (two batches of 300)."""
    return simulate_multiome(600, random_state=1)


def _csr_parts_to_dense(parts, shape):
    per_row, cols, counts = parts
    return sp.csr_matrix((counts, cols, np.r_[0, np.cumsum(per_row)]), shape=shape).toarray()


# --- structure -----------------------------------------------------------------------------------------------


def test_shapes_names_and_fields(small):
    rna, atac = small.mod["rna"], small.mod["atac"]
    assert list(small.mod) == ["rna", "atac"]
    assert rna.shape == (300, 200) and atac.shape == (300, 1000)
    assert small.n_obs == 300
    # the pairing: identical obs_names everywhere
    assert list(rna.obs_names[:3]) == ["cell0", "cell1", "cell2"]
    assert rna.obs_names.equals(atac.obs_names) and rna.obs_names.equals(small.obs_names)
    assert rna.var_names[0] == "gene0" and atac.var_names[-1] == "peak999"
    for obs in (rna.obs, atac.obs, small.obs):
        assert isinstance(obs["cell_type"].dtype, pd.CategoricalDtype)
        assert isinstance(obs["batch"].dtype, pd.CategoricalDtype)
        assert list(obs["cell_type"].cat.categories) == ["type0", "type1", "type2", "type3"]
        assert list(obs["batch"].cat.categories) == ["batch0", "batch1"]
    assert (rna.obs["cell_type"] == small.obs["cell_type"]).all()
    assert (atac.obs["batch"] == small.obs["batch"]).all()
    assert small.obsm["X_latent"].shape == (300, 10)
    assert rna.obsm["X_latent"].shape == atac.obsm["X_latent"].shape == (300, 10)
    assert rna.varm["loadings"].shape == (200, 10) and atac.varm["loadings"].shape == (1000, 10)
    assert rna.varm["batch_factors"].shape == (200, 2) and atac.varm["batch_factors"].shape == (1000, 2)
    assert small.uns["simulation"]["n_cells"] == 300
    assert small.uns["simulation"]["within_type_sd"] == 0.75
    assert small.uns["simulation"]["random_state"] == 0


def test_counts_are_sparse_float32_integers(small):
    for mod in ("rna", "atac"):
        X = small.mod[mod].X
        assert isinstance(X, sp.csr_matrix) and X.dtype == np.float32
        assert X.has_canonical_format  # sorted indices, no duplicates
        assert np.all(X.data > 0)  # only non-zeros are stored
        np.testing.assert_array_equal(X.data, np.round(X.data))
    assert small.mod["rna"].X.max() > 10  # NB counts are not binary


def test_private_noise_separates_the_modality_states(small):
    z, zr, za = (
        np.asarray(a)
        for a in (small.obsm["X_latent"], small.mod["rna"].obsm["X_latent"], small.mod["atac"].obsm["X_latent"])
    )
    # z^m = z + 0.4 * N(0, 1): the residual sd is private_sd
    assert np.std(zr - z) == pytest.approx(0.4, rel=0.05)
    assert np.std(za - z) == pytest.approx(0.4, rel=0.05)
    assert abs(np.corrcoef((zr - z).ravel(), (za - z).ravel())[0, 1]) < 0.05


def test_batches_and_cell_types_have_requested_counts():
    m = simulate_multiome(301, n_cell_types=7, n_batches=3, random_state=3, **SMALL)
    counts = m.obs["batch"].value_counts().sort_index()
    assert counts.index.tolist() == ["batch0", "batch1", "batch2"]
    assert counts.tolist() == [100, 101, 100]
    assert m.obs["batch"].is_monotonic_increasing  # batch0 first
    assert m.obs["cell_type"].nunique() == 7
    # as many cells as types: every type gets exactly one cell
    m = simulate_multiome(5, n_cell_types=5, n_batches=1, random_state=0, **SMALL)
    assert sorted(m.obs["cell_type"].astype(str)) == [f"type{k}" for k in range(5)]


def test_type_proportions_give_rare_types():
    props = [0.6, 0.3, 0.095, 0.005]
    m = simulate_multiome(4000, n_cell_types=4, type_proportions=props, random_state=0, **SMALL)
    counts = m.obs["cell_type"].value_counts().reindex([f"type{k}" for k in range(4)]).to_numpy()
    expected = 4000 * np.asarray(props)
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected))  # binomial sd: the rare type has 20 +- 4.5
    assert m.uns["simulation"]["type_proportions"] == pytest.approx(props)
    # proportions are normalised; the draws that do not depend on the types are unchanged
    same = simulate_multiome(200, n_cell_types=4, type_proportions=[6, 3, 0.95, 0.05], random_state=1, **SMALL)
    other = simulate_multiome(200, n_cell_types=4, random_state=1, **SMALL)
    assert same.uns["simulation"]["type_proportions"] == pytest.approx([0.6, 0.3, 0.095, 0.005])
    assert "type_proportions" not in other.uns["simulation"]
    assert np.allclose(same["rna"].varm["loadings"], other["rna"].varm["loadings"])


def test_write_h5mu_round_trip(small, tmp_path):
    import warnings

    import mudata as md

    path = tmp_path / "sim.h5mu"
    with warnings.catch_warnings():  # mudata's own FutureWarning about pull_on_update
        warnings.simplefilter("ignore", FutureWarning)
        small.write(path)
        back = md.read_h5mu(path)
    assert isinstance(back.obs["cell_type"].dtype, pd.CategoricalDtype)
    assert (back.mod["atac"].X != small.mod["atac"].X).nnz == 0
    assert back.uns["simulation"]["n_peaks"] == 1000


# --- distributions -------------------------------------------------------------------------------------------


def test_atac_sparsity_and_values(default_size):
    X = default_size.mod["atac"].X
    assert X.shape == (600, 5000)
    frac_cells = np.diff(X.indptr) / X.shape[1]
    assert 0.02 <= X.nnz / np.prod(X.shape) <= 0.10
    assert 0.03 <= np.median(frac_cells) <= 0.07
    assert np.quantile(frac_cells, 0.05) >= 0.015 and np.quantile(frac_cells, 0.95) <= 0.12
    values = np.bincount(X.data.astype(np.int64))
    assert values[1:3].sum() / values[1:].sum() > 0.95  # mostly 1 and 2
    assert values[1] / values[1:].sum() > 0.8


def test_single_nucleus_sparsity():
    """The realistic-sparsity setting: about 100 of 25,000 peaks non-zero per cell, as in SNARE-seq2."""
    mdata = simulate_multiome(400, n_genes=200, atac_sparsity="single_nucleus", random_state=0)
    X = mdata.mod["atac"].X
    assert X.shape == (400, 25_000)
    nnz_per_cell = np.diff(X.indptr)
    assert 80 <= nnz_per_cell.mean() <= 120
    assert 0.002 <= nnz_per_cell.mean() / X.shape[1] <= 0.005
    sim = mdata.uns["simulation"]
    assert sim["atac_sparsity"] == "single_nucleus" and sim["n_peaks"] == 25_000 and sim["atac_depth"] == 100.0
    # explicit sizes win over the setting's defaults
    other = simulate_multiome(100, n_genes=50, n_peaks=3000, atac_sparsity="single_nucleus", random_state=0)
    assert other.mod["atac"].shape == (100, 3000) and other.uns["simulation"]["atac_depth"] == 100.0
    with pytest.raises(ValueError, match="`atac_sparsity` must be one of"):
        simulate_multiome(50, atac_sparsity="sparse")


def test_rna_depth_and_sparsity(default_size):
    X = default_size.mod["rna"].X
    lib = np.asarray(X.sum(axis=1)).ravel()
    # median 1000 times a batch shift exp(N(0, 0.25^2)): within a factor 2 for any sane draw
    assert 500 < np.median(lib) < 2000
    assert 0.05 < X.nnz / np.prod(X.shape) < 0.4


def test_same_seed_same_data_other_seed_other_data():
    a = simulate_multiome(120, n_cell_types=3, random_state=7, **SMALL)
    b = simulate_multiome(120, n_cell_types=3, random_state=7, **SMALL)
    c = simulate_multiome(120, n_cell_types=3, random_state=8, **SMALL)
    for mod in ("rna", "atac"):
        Xa, Xb, Xc = a.mod[mod].X, b.mod[mod].X, c.mod[mod].X
        np.testing.assert_array_equal(Xa.indptr, Xb.indptr)
        np.testing.assert_array_equal(Xa.indices, Xb.indices)
        np.testing.assert_array_equal(Xa.data, Xb.data)
        assert Xa.shape != Xc.shape or (Xa != Xc).nnz > 0
    assert (a.obs["cell_type"] == b.obs["cell_type"]).all()
    np.testing.assert_array_equal(a.obsm["X_latent"], b.obsm["X_latent"])
    assert not np.allclose(a.obsm["X_latent"], c.obsm["X_latent"])
    # a Generator works too, and is reproducible from the same seed
    g1 = simulate_multiome(120, n_cell_types=3, random_state=np.random.default_rng(5), **SMALL)
    g2 = simulate_multiome(120, n_cell_types=3, random_state=np.random.default_rng(5), **SMALL)
    assert (g1.mod["atac"].X != g2.mod["atac"].X).nnz == 0
    assert "random_state" not in g1.uns["simulation"]


def test_batch_effect_shifts_gene_means_by_the_stored_factors():
    m = simulate_multiome(
        2000, n_cell_types=2, n_genes=100, n_peaks=200, batch_effect=0.5, batch_depth_shift=0.0, random_state=2
    )
    rna = m.mod["rna"]
    batch = rna.obs["batch"].to_numpy()
    X = rna.X.toarray()
    X = X / X.sum(axis=1, keepdims=True)  # shares: the depth shift is 0 anyway, factors act on shares
    observed = np.log(X[batch == "batch1"].mean(axis=0) / X[batch == "batch0"].mean(axis=0))
    beta = rna.varm["batch_factors"]
    expected = np.log(beta[:, 1] / beta[:, 0])
    # same cell states in both batches, so the log-ratio of mean shares tracks the factors up to a constant
    assert np.corrcoef(observed, expected)[0, 1] > 0.9
    # without batch effects the factors are exactly 1
    m0 = simulate_multiome(50, n_cell_types=2, batch_effect=0.0, random_state=0, **SMALL)
    np.testing.assert_array_equal(m0.mod["atac"].varm["batch_factors"], 1.0)


def test_poisson_sampler_matches_poisson_moments():
    rng = np.random.default_rng(0)
    n, lam = 4000, np.array([0.01, 0.05, 0.2, 0.5, 1.0, 3.0])
    weights = np.tile(lam.astype(np.float32), (n, 1))
    X = _csr_parts_to_dense(sample_poisson(rng, weights, np.full(n, lam.sum())), weights.shape)
    se = np.sqrt(lam / n)
    assert np.all(np.abs(X.mean(axis=0) - lam) < 4 * se)
    p0 = np.exp(-lam)
    assert np.all(np.abs((X == 0).mean(axis=0) - p0) < 4 * np.sqrt(p0 * (1 - p0) / n))
    np.testing.assert_allclose(X.var(axis=0), lam, rtol=0.15)


@pytest.mark.parametrize(("mu", "phi"), [(0.2, 0.5), (2.0, 0.5), (5.0, 2.0), (20.0, 0.3)])
def test_nb_sampler_matches_scipy_pmf(mu, phi):
    rng = np.random.default_rng(1)
    n = 100_000
    mean = np.full((n // 100, 100), mu, dtype=np.float32)
    X = _csr_parts_to_dense(sample_nb(rng, mean, np.full(100, phi)), mean.shape).ravel()
    # scipy's nbinom(n=1/phi, p=1/(1 + mu*phi)): mean mu, variance mu + phi mu^2
    ref = stats.nbinom(1 / phi, 1 / (1 + mu * phi))
    ks = np.arange(0, int(ref.ppf(0.99)) + 1)
    freq = np.bincount(X.astype(np.int64), minlength=ks.size + 1)[: ks.size] / n
    pmf = ref.pmf(ks)
    assert np.all(np.abs(freq - pmf) < 5 * np.sqrt(pmf * (1 - pmf) / n) + 1e-4)
    assert X.mean() == pytest.approx(mu, rel=0.03)
    assert X.var() == pytest.approx(mu + phi * mu**2, rel=0.1)


def test_csr_builder_equals_vstack():
    rng = np.random.default_rng(0)
    blocks = [sp.random(n, 30, density=d, format="csr", random_state=rng) for n, d in [(5, 0.01), (7, 0.5), (3, 0.9)]]
    builder = CSRBuilder(15, 30)
    for b in blocks:
        b.sort_indices()
        builder.append(np.diff(b.indptr), b.indices, b.data.astype(np.float32))
    np.testing.assert_allclose(builder.finish().toarray(), sp.vstack(blocks).toarray(), rtol=1e-6)


def test_many_blocks_give_a_valid_matrix(monkeypatch):
    monkeypatch.setattr(_simulate, "_BLOCK_ENTRIES", 4096)  # 4 cells per ATAC block, 20 per RNA block
    m = simulate_multiome(97, n_cell_types=3, n_batches=3, random_state=0, **SMALL)
    for mod in ("rna", "atac"):
        X = m.mod[mod].X
        assert X.has_canonical_format and X.indptr[-1] == X.nnz == X.data.size
        assert np.all(np.diff(X.indptr) > 0)  # no empty cell at these depths


# --- the two modalities are paired -----------------------------------------------------------------------------


def _rna_embedding(X: sp.csr_matrix, n: int = 20) -> np.ndarray:
    from sklearn.decomposition import PCA

    X = sp.diags(1e4 / np.asarray(X.sum(axis=1)).ravel()) @ X
    return PCA(n, random_state=0).fit_transform(np.log1p(X.toarray()))


def _atac_embedding(X: sp.csr_matrix, n: int = 20) -> np.ndarray:
    from sklearn.decomposition import TruncatedSVD

    tf = sp.diags(1 / np.asarray(X.sum(axis=1)).ravel()) @ X
    tfidf = (tf @ sp.diags(X.shape[0] / np.maximum(np.asarray(X.sum(axis=0)).ravel(), 1))).tocsr()
    tfidf.data = np.log1p(1e4 * tfidf.data)
    return TruncatedSVD(n + 1, random_state=0).fit_transform(tfidf)[:, 1:]


def test_cell_types_recoverable_and_partners_linked_beyond_type(default_size):
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    rna, atac = default_size.mod["rna"], default_size.mod["atac"]
    E1, E2 = _rna_embedding(rna.X), _atac_embedding(atac.X)
    labels = default_size.obs["cell_type"].astype(str).to_numpy()
    majority = pd.Series(labels).value_counts(normalize=True).iloc[0]
    for E in (E1, E2):
        acc = cross_val_score(KNeighborsClassifier(15), E, labels, cv=5).mean()
        assert acc > max(0.7, majority + 0.3)

    # ridge RNA -> ATAC on batch0, then on batch1: rank of each cell's own partner among cells of its type
    ref = (default_size.obs["batch"] == "batch0").to_numpy()
    pred = Ridge(alpha=1.0).fit(E1[ref], E2[ref]).predict(E1[~ref])
    target, lq = E2[~ref], labels[~ref]
    pred /= np.linalg.norm(pred, axis=1, keepdims=True)
    target = target / np.linalg.norm(target, axis=1, keepdims=True)
    S = pred @ target.T
    fractions = []
    for i in range(len(S)):
        same = np.flatnonzero(lq == lq[i])
        if same.size > 1:
            fractions.append(np.mean(S[i, same] > S[i, i]) * same.size / (same.size - 1))
    # 0.5 would mean no link within a type (FOSCTTM-style, within type); measured 0.15
    assert np.mean(fractions) < 0.3


# --- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_cells": 5, "n_cell_types": 8}, "n_cell_types"),
        ({"n_cells": 3, "n_cell_types": 2, "n_batches": 4}, "n_batches"),
        ({"n_cells": 0}, "n_cells"),
        ({"n_genes": -1}, "n_genes"),
        ({"within_type_sd": -0.1}, "within_type_sd"),
        ({"batch_effect": -1.0}, "batch_effect"),
        ({"rna_depth": 0.0}, "rna_depth"),
        ({"atac_depth": float("nan")}, "atac_depth"),
        ({"rna_dispersion": 20.0}, "rna_dispersion"),
        ({"n_cell_types": 3, "type_proportions": [0.5, 0.5]}, "type_proportions"),
        ({"n_cell_types": 2, "type_proportions": [1.0, -0.1]}, "type_proportions"),
        ({"n_cell_types": 2, "type_proportions": [0.0, 0.0]}, "type_proportions"),
    ],
)
def test_bad_values_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_multiome(**{"n_cells": 50, **SMALL, **kwargs})


@pytest.mark.parametrize(("kwargs", "match"), [({"n_cells": 10.5}, "n_cells"), ({"private_sd": "0.3"}, "private_sd")])
def test_bad_types_raise_type_error(kwargs, match):
    with pytest.raises(TypeError, match=match):
        simulate_multiome(**{"n_cells": 50, **SMALL, **kwargs})
