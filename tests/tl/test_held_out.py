"""Held-out reference pairs: written by tl.match_modalities, used by tl.transfer_labels to choose its temperature."""

from __future__ import annotations

import logging

import mudata as md
import numpy as np
import pytest
import scipy.sparse as sp

import scmatch as scm
from scmatch.tl import _held_out
from scmatch.tl._vote import (
    NLL_FLOOR,
    TEMPERATURE_GRID,
    choose_temperature_held_out,
    held_out_nll,
    label_masses,
    soften,
)


def _noisy_block(n: int, share_right: float, seed: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """``n`` targets, each giving 0.9 to its partner and 0.1 to 9 other sources; 4 labels.

    The partner carries the target's true label with probability ``share_right``: a vote that trusts the sharp
    match is then overconfident.
    """
    rng = np.random.default_rng(seed)
    labels = np.array(list("ABCD"))[rng.integers(4, size=n)]
    rows, cols, values = [], [], []
    for i in range(n):
        others = rng.choice(np.delete(np.arange(n), i), size=9, replace=False)
        rows += [i] * 10
        cols += [i, *others]
        values += [0.9] + [0.1 / 9] * 9
    B = sp.csr_matrix((values, (rows, cols)), shape=(n, n))
    truth = labels.copy()
    wrong = rng.random(n) > share_right
    truth[wrong] = [rng.choice([x for x in "ABCD" if x != label]) for label in labels[wrong]]
    return B, labels, truth


def test_held_out_choice_is_sharp_when_the_partner_is_right_and_flat_when_not():
    B, labels, truth = _noisy_block(300, 1.0, seed=0)
    assert choose_temperature_held_out(B, labels, truth)["temperature"] == 1.0
    B, labels, truth = _noisy_block(300, 0.5, seed=0)
    chosen = choose_temperature_held_out(B, labels, truth)
    assert chosen["temperature"] > 1.0  # half the sharp votes are wrong: flatten towards the 9 others
    masses = label_masses(soften(B, chosen["temperature"]), labels)
    top = masses.to_numpy().max(axis=1)
    right = masses.columns.to_numpy()[masses.to_numpy().argmax(axis=1)] == truth
    assert abs(top.mean() - right.mean()) < 0.05  # the chosen vote says how often it is right (measured: 0.5, 0.5)
    sharp = label_masses(soften(B, 1.0), labels).to_numpy().max(axis=1)
    assert sharp.mean() - right.mean() > 0.3  # which the sharp vote does not
    assert chosen["n_cells"] == 300 and chosen["grid"] == list(TEMPERATURE_GRID)
    assert np.argmin(chosen["held_out_nll"]) == chosen["grid"].index(chosen["temperature"])


def test_held_out_nll_floors_a_label_no_source_carries():
    B = sp.csr_matrix(np.eye(3))
    right = held_out_nll(B, np.array(["A", "B", "C"]), np.array(["A", "B", "C"]), 1.0)
    unseen = held_out_nll(B, np.array(["A", "B", "C"]), np.array(["A", "B", "Z"]), 1.0)
    assert right == pytest.approx(0.0, abs=1e-3)
    # the unseen label's cell gets the floor's log-likelihood, over 4 labels (A, B, C and Z); the others ~0
    assert unseen == pytest.approx(-np.log(NLL_FLOOR / 4) / 3, rel=1e-3)


@pytest.fixture(scope="module")
def held_match():
    """600 simulated cells in 3 batches; batches 0 and 1 are the reference (400 pairs), batch 2 the query."""
    mdata = scm.datasets.simulate_multiome(600, n_genes=300, n_peaks=600, n_cell_types=5, n_batches=3, random_state=1)
    for mod in ("rna", "atac"):
        mdata[mod].obs["is_reference"] = (mdata[mod].obs["batch"] != "batch2").to_numpy()
    scm.pp.recipe_rna(mdata, mod="rna", n_top_genes=200, n_comps=20)
    scm.pp.recipe_atac(mdata, mod="atac", n_comps=20)
    model = scm.model.MatchModel(n_models=2)
    model.plan = scm.model.TrainingPlan(max_epochs=10, progress_bar=False)
    scm.tl.match_modalities(mdata, reference="is_reference", batch_key="batch", model=model, random_state=0)
    return mdata, model


def test_match_writes_the_held_out_pairs_of_its_networks(held_match):
    mdata, model = held_match
    info = mdata.uns["match"]["held_out"]
    slices = model.held_out_.slices
    assert len(slices) == 2 and len(np.intersect1d(*slices)) == 0  # disjoint slices, one per network
    assert info == {"probabilities_key": "match_held_out", "n_pairs": 80, "n_networks": 2}  # 2 x 10% of 400
    H = sp.csr_matrix(mdata.obsp["match_held_out"])
    rows = np.flatnonzero(np.diff(H.indptr) > 0)
    assert len(rows) == 80
    np.testing.assert_allclose(np.asarray(H[rows].sum(axis=1)).ravel(), 1.0, rtol=1e-6)
    names = mdata.obs_names
    # only reference cells, rows of rna cells and columns of atac cells of the same pairs, within batches
    held = names[rows]
    assert mdata["rna"].obs.loc[held, "is_reference"].all()
    assert set(names[np.unique(H.indices)]) <= set(held)
    batch = mdata["rna"].obs["batch"].astype(str).reindex(names).to_numpy()
    coo = H.tocoo()
    assert (batch[coo.row] == batch[coo.col]).all()
    assert set(batch[rows]) == {"batch0", "batch1"}
    # the query's own probabilities are untouched by it: no query row or column
    assert not mdata.obsp["match_probabilities"][rows].nnz


def test_a_fitted_model_writes_no_held_out_pairs_and_drops_stale_ones(held_match):
    mdata, model = held_match
    mdata = mdata.copy()
    scm.tl.match_modalities(mdata, reference="is_reference", batch_key="batch", model=model)
    assert "held_out" not in mdata.uns["match"]
    assert "match_held_out" not in mdata.obsp  # the earlier match's pairs would not be this match's


def test_no_validation_no_held_out_pairs():
    mdata = scm.datasets.simulate_multiome(300, n_genes=200, n_peaks=300, random_state=0)
    scm.pp.recipe_rna(mdata, mod="rna", n_top_genes=150, n_comps=15)
    scm.pp.recipe_atac(mdata, mod="atac", n_comps=15)
    model = scm.model.MatchModel(n_models=1)
    model.plan = scm.model.TrainingPlan(max_epochs=3, validation_fraction=0, progress_bar=False)
    scm.tl.match_modalities(mdata, batch_key="batch", model=model, random_state=0)
    assert model.held_out_ is None and "held_out" not in mdata.uns["match"]


def test_transfer_chooses_on_held_out_pairs_when_enough(held_match, monkeypatch, caplog):
    mdata = held_match[0].copy()
    with caplog.at_level(logging.WARNING, logger="scmatch"):
        scm.tl.transfer_labels(mdata, "cell_type", source="rna", target="atac")
    info = mdata["atac"].uns["cell_type_transferred"]
    assert _held_out.MIN_HELD_OUT_PAIRS == 50
    assert info["calibration"] == "held_out" and info["held_out"]["n_cells"] == 80
    assert info["temperature"] == info["held_out"]["grid"][int(np.argmin(info["held_out"]["held_out_nll"]))]
    assert "round trip" not in caplog.text  # calibrated on labelled pairs: nothing to warn about
    # the other way: the rna cells are the targets, the columns' atac cells the sources
    scm.tl.transfer_labels(mdata, "cell_type", source="atac", target="rna")
    assert mdata["rna"].uns["cell_type_transferred"]["calibration"] == "held_out"

    # with fewer held-out pairs than the threshold, the round trip chooses, and the user is told what that means
    monkeypatch.setattr(_held_out, "MIN_HELD_OUT_PAIRS", 100)
    with caplog.at_level(logging.WARNING, logger="scmatch"):
        scm.tl.transfer_labels(mdata, "cell_type", source="rna", target="atac")
    info = mdata["atac"].uns["cell_type_transferred"]
    assert info["calibration"] == "round_trip" and info["held_out_pairs"] == 80
    assert "calibrated by the round trip" in caplog.text and "80 held-out reference pairs" in caplog.text
    assert "fewer than the 100" in caplog.text and "scm.pl.confidence" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="scmatch"):
        scm.tl.transfer_labels(mdata.copy(), "cell_type", source="rna", target="atac", temperature=3)
    assert "round trip" not in caplog.text  # a temperature the user chose: no calibration to warn about


def test_held_out_pairs_survive_writing(held_match, tmp_path):
    mdata = held_match[0]
    path = tmp_path / "m.h5mu"
    mdata.write(path)
    back = md.read_h5mu(path)
    assert back.uns["match"]["held_out"]["n_pairs"] == 80
    assert (back.obsp["match_held_out"] != mdata.obsp["match_held_out"]).nnz == 0
