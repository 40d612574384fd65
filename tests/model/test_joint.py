"""The shared projection of the two modalities' embeddings (scmatch.model._joint)."""

import numpy as np
import pytest

from scmatch.metrics import celltype_knn_purity, modality_mixing
from scmatch.model._joint import fit_shared_projection, from_json, shared_projection, to_json


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _gapped_pairs(n=400, seed=0):
    """Paired embeddings sharing 4 cell-type directions, each modality with 8 strong directions of its own."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=n)
    shared = np.eye(4)[labels] * 2.0 + 0.3 * rng.normal(size=(n, 4))
    own1, own2 = rng.normal(size=(n, 8)) * 1.5, rng.normal(size=(n, 8)) * 1.5
    e1 = _unit(np.hstack([shared, own1, np.zeros((n, 8))]) + 3.0 * np.r_[np.zeros(12), np.ones(8)])
    e2 = _unit(np.hstack([shared + 0.3 * rng.normal(size=(n, 4)), np.zeros((n, 8)), own2]))
    return e1, e2, labels


def test_projection_mixes_the_modalities_and_keeps_the_types():
    e1, e2, labels = _gapped_pairs()
    state = fit_shared_projection(e1[:300], e2[:300], rank=4)
    z1 = shared_projection(e1[300:], state, modality=1)
    z2 = shared_projection(e2[300:], state, modality=2)
    raw = modality_mixing(e1[300:], e2[300:])
    mixed = modality_mixing(z1, z2)
    assert raw < 0.1  # two separate clouds (measured 0.063)
    assert mixed > 0.4  # measured 0.49 (0.5 is perfect mixing)
    purity = celltype_knn_purity(z1, z2, labels[300:], labels[300:])
    # measured 0.92 against 0.51 in the raw space, where a cell's neighbours are its own modality's
    assert purity > 0.9 and purity > celltype_knn_purity(e1[300:], e2[300:], labels[300:], labels[300:])
    np.testing.assert_allclose(np.linalg.norm(z1, axis=1), 1.0, atol=1e-5)


def test_rank_is_capped_and_signs_are_deterministic():
    e1, e2, _ = _gapped_pairs(n=30)
    assert fit_shared_projection(e1, e2, rank=100)["basis1"].shape == (20, 20)
    assert fit_shared_projection(e1[:5], e2[:5], rank=10)["basis1"].shape == (20, 4)  # at most n - 1 directions
    # the same pairs in another order give the same directions, signs included
    order = np.random.default_rng(1).permutation(len(e1))
    a, b = fit_shared_projection(e1, e2), fit_shared_projection(e1[order], e2[order])
    np.testing.assert_allclose(a["basis1"], b["basis1"], atol=1e-5)
    np.testing.assert_allclose(a["basis2"], b["basis2"], atol=1e-5)
    U = a["basis1"]
    assert np.all(U[np.abs(U).argmax(axis=0), np.arange(U.shape[1])] > 0)


def test_json_roundtrip_and_damage():
    e1, e2, _ = _gapped_pairs(n=50)
    state = fit_shared_projection(e1, e2, rank=3)
    back = from_json(to_json(state))
    for name in state:
        np.testing.assert_array_equal(back[name], state[name])
    assert from_json(None) is None
    damaged = to_json(state)
    del damaged["basis2"]
    with pytest.raises(ValueError, match="invalid 'joint' projection"):
        from_json(damaged)
    with pytest.raises(ValueError, match="same shape"):
        fit_shared_projection(e1, e2[:10])
