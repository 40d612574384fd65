"""Modality mixing and cell-type kNN purity of a joint embedding."""

from __future__ import annotations

import mudata as md
import numpy as np
import pytest

import scmatch as scm
from scmatch.metrics import celltype_knn_purity, modality_mixing


def test_mixed_and_separated_clouds():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
    assert modality_mixing(a, b) == pytest.approx(0.5, abs=0.03)  # one cloud: half of the neighbours each
    assert modality_mixing(a, b + 50) == 0.0  # two clouds: none
    # 100 cells against 300: a mod1 cell's neighbours are mostly mod2 (3/4 of the pool), and the reverse
    mixed = modality_mixing(a[:100], b)
    assert mixed == pytest.approx((100 * 300 / 399 + 300 * 100 / 399) / 400, abs=0.03)


def test_purity_counts_both_modalities():
    emb = np.r_[np.zeros((20, 2)), np.full((20, 2), 10.0)] + 0.01 * np.arange(40)[:, None]
    labels = np.r_[["a"] * 20, ["b"] * 20]
    assert celltype_knn_purity(emb, emb, labels, labels, k=10) == 1.0
    swapped = np.r_[["b"] * 20, ["a"] * 20]  # the other modality's labels disagree: half the neighbours
    assert celltype_knn_purity(emb, emb, labels, swapped, k=10) == pytest.approx(0.5, abs=0.1)


def test_cite_donors_in_one_protein_pca(data_dir):
    # two donors of the CITE starter in one CLR-PCA space, scored as if they were two modalities
    adt = md.read_h5mu(data_dir / "bmmc_cite_starter.h5mu")["adt"].copy()
    scm.pp.recipe_protein(adt, n_comps=20)
    donor = adt.obs["batch"].to_numpy()
    X, labels = adt.obsm["X_pca"], adt.obs["cell_type"].astype(str).to_numpy()
    one, two = donor == "s1d1", donor == "s1d2"
    # measured: 0.262 (the donors share the space but each donor's cells cluster a little); 0 once apart
    assert modality_mixing(X[one], X[two]) == pytest.approx(0.262, abs=0.005)
    assert modality_mixing(X[one], X[two] + 100) == 0.0
    # measured: 0.618 pooled, 0.588 within donors only; chance (random labels of the same sizes) is 0.067
    purity = celltype_knn_purity(X[one], X[two], labels[one], labels[two])
    assert purity == pytest.approx(0.618, abs=0.005)
    assert celltype_knn_purity(X[one], X[two] + 100, labels[one], labels[two]) == pytest.approx(0.588, abs=0.005)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.ones((5, 2)), np.ones((5, 3))), "same number of columns"),
        ((np.full((5, 2), np.nan), np.ones((5, 2))), "NaN or infinite"),
    ],
)
def test_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        modality_mixing(*args)
    with pytest.raises(ValueError, match=r"`k` must be an integer between 1 and 9"):
        modality_mixing(np.ones((5, 2)), np.zeros((5, 2)), k=10)
