"""tl.transfer_labels / tl.transfer_features: exact numbers on a hand-made match, refusals, simulated and real data."""

from __future__ import annotations

import copy

import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

import scmatch as scm
from scmatch.tl._transfer import weighted_mean_std

NAMES = [f"c{i}" for i in range(8)]
IS_REF = np.array([True, True, False, False, False, False, False, False])
TYPES = np.array(["A", "B", "A", "A", "B", "B", "C", "C"])
QUERY = NAMES[2:]
#: P[i, j]: probability that rna cell QUERY[i] is atac cell QUERY[j] (rows sum to 1; columns do not)
P_QUERY = np.array(
    [
        [0.7, 0.1, 0.2, 0.0, 0.0, 0.0],
        [0.2, 0.4, 0.0, 0.4, 0.0, 0.0],
        [0.0, 0.0, 0.5, 0.5, 0.0, 0.0],
        [0.0, 0.0, 0.1, 0.6, 0.3, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.5, 0.5],
        [0.1, 0.0, 0.0, 0.0, 0.0, 0.9],
    ]
)
FEATURES = np.arange(8 * 3, dtype=float).reshape(8, 3) % 5  # 8 cells x 3 features, in NAMES order


def make_matched(*, with_batches: bool = False) -> md.MuData:
    """8 paired cells (2 reference, 6 query); the atac modality lists its cells in reverse order."""
    obs = pd.DataFrame({"is_reference": IS_REF, "cell_type": pd.Categorical(TYPES)}, index=NAMES)
    rna = AnnData(X=FEATURES.copy(), obs=obs.copy())
    rna.var_names = ["g0", "g1", "g2"]
    order = np.arange(8)[::-1]
    atac = AnnData(X=FEATURES[order] * 10, obs=obs.iloc[order].copy())
    atac.var_names = ["p0", "p1", "p2"]
    with md.set_options(pull_on_update=False):
        mdata = md.MuData({"rna": rna, "atac": atac})
    rows = mdata.obs_names.get_indexer(QUERY)
    i, j = np.nonzero(P_QUERY)
    P = sp.csr_matrix((P_QUERY[i, j], (rows[i], rows[j])), shape=(mdata.n_obs, mdata.n_obs))
    mdata.obsp["match_probabilities"] = P
    params = {"mod1": "rna", "mod2": "atac", "reference": "is_reference", "batch_key": None}
    mdata.uns["match"] = {"params": params, "probabilities_key": "match_probabilities"}
    return mdata


@pytest.fixture
def matched() -> md.MuData:
    return make_matched()


def _snapshot(mdata: md.MuData) -> dict:
    return {mod: (list(mdata[mod].obs.columns), list(mdata[mod].obsm), list(mdata[mod].uns)) for mod in mdata.mod} | {
        "obsp": list(mdata.obsp),
        "uns": copy.deepcopy(list(mdata.uns)),
    }


def test_labels_to_mod2_read_normalised_columns(matched):
    scm.tl.transfer_labels(matched, "cell_type", source="rna", target="atac", temperature=1)
    obs = matched["atac"].obs
    # column c2 of P: 0.7 (A), 0.2 (A), 0.1 (C), over 1.0 -> A with 0.9
    assert obs.loc["c2", "cell_type_transferred"] == "A"
    np.testing.assert_allclose(obs.loc["c2", "cell_type_transferred_confidence"], 0.9)
    # column c4: 0.2 (A, c2), 0.5 (B, c4), 0.1 (B, c5) over 0.8 -> B with 0.75
    assert obs.loc["c4", "cell_type_transferred"] == "B"
    np.testing.assert_allclose(obs.loc["c4", "cell_type_transferred_confidence"], 0.6 / 0.8)
    # column c7: 0.5 (C) + 0.9 (C) over 1.4 -> C with 1.0
    np.testing.assert_allclose(obs.loc["c7", "cell_type_transferred_confidence"], 1.0)
    masses = matched["atac"].obsm["cell_type_transferred_probabilities"]
    assert list(masses.columns) == ["A", "B", "C"]
    np.testing.assert_allclose(masses.loc[QUERY].sum(axis=1), 1.0)
    # reference cells are outside the match: no label, no confidence
    assert obs.loc[["c0", "c1"], "cell_type_transferred"].isna().all()
    assert obs.loc[["c0", "c1"], "cell_type_transferred_confidence"].isna().all()
    assert matched["atac"].uns["cell_type_transferred"]["params"]["source"] == "rna"


def test_labels_to_mod1_read_rows(matched):
    scm.tl.transfer_labels(matched, "cell_type", source="atac", target="rna", key_added="from_atac", temperature=1)
    obs = matched["rna"].obs
    # row c3: 0.2 (c2, A), 0.4 (c3, A), 0.4 (c5, B) -> A with 0.6
    assert obs.loc["c3", "from_atac"] == "A"
    np.testing.assert_allclose(obs.loc["c3", "from_atac_confidence"], 0.6)
    # row c5: 0.1 (A), 0.6 (B), 0.3 (C) -> B with 0.6
    assert obs.loc["c5", "from_atac"] == "B"
    predicted = obs.loc[QUERY, "from_atac"].astype(str).to_numpy()
    assert predicted.tolist() == ["A", "A", "B", "B", "C", "C"]


def test_min_confidence_marks_unassigned(matched):
    scm.tl.transfer_labels(matched, "cell_type", source="rna", target="atac", min_confidence=0.8)
    column = matched["atac"].obs["cell_type_transferred"]
    conf = matched["atac"].obs["cell_type_transferred_confidence"]
    low = conf < 0.8
    assert low.sum() >= 1
    assert (column[low] == "unassigned").all()
    assert (column[conf >= 0.8] != "unassigned").all()


def test_within_batches_labels_come_from_the_own_batch():
    """A match made within batches is block-diagonal: labels that are the batch name come back exactly."""
    rng = np.random.default_rng(0)
    names = [f"c{i}" for i in range(12)]
    batch = np.repeat(["b0", "b1", "b2"], 4)
    obs = pd.DataFrame({"batch": batch}, index=names)
    mdata = md.MuData({"rna": AnnData(obs=obs.copy()), "atac": AnnData(obs=obs.copy())})
    blocks = [rng.dirichlet(np.ones(4), size=4) for _ in range(3)]
    mdata.obsp["m_probabilities"] = sp.csr_matrix(sp.block_diag(blocks))
    params = {"mod1": "rna", "mod2": "atac", "reference": None, "batch_key": "batch"}
    mdata.uns["m"] = {"params": params, "probabilities_key": "m_probabilities"}
    for source, target in (("rna", "atac"), ("atac", "rna")):
        scm.tl.transfer_labels(mdata, "batch", source=source, target=target, key="m")
        out = mdata[target].obs
        assert (out["batch_transferred"].astype(str) == out["batch"]).all()
        np.testing.assert_allclose(out["batch_transferred_confidence"], 1.0)


def test_copy_leaves_the_input_untouched(matched):
    before = _snapshot(matched)
    out = scm.tl.transfer_labels(matched, "cell_type", source="rna", target="atac", copy=True)
    assert _snapshot(matched) == before
    assert "cell_type_transferred" in out["atac"].obs
    out = scm.tl.transfer_features(matched, source="rna", target="atac", copy=True)
    assert _snapshot(matched) == before
    assert "rna_transferred" in out["atac"].obsm


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"labels_key": "no_such_column", "source": "rna", "target": "atac"}, ValueError, "not a column"),
        ({"labels_key": "cell_type", "source": "rna", "target": "rna"}, ValueError, "both 'rna'"),
        ({"labels_key": "cell_type", "source": "rna", "target": "atac", "key": "other"}, ValueError, "No match"),
        ({"labels_key": "cell_type", "source": "prot", "target": "atac"}, ValueError, "not a modality of"),
        ({"labels_key": "cell_type", "source": "rna", "target": "atac", "min_confidence": 2}, ValueError, "in \\[0"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(matched, kwargs, error, message):
    before = _snapshot(matched)
    labels_key = kwargs.pop("labels_key")
    with pytest.raises(error, match=message):
        scm.tl.transfer_labels(matched, labels_key, **kwargs)
    assert _snapshot(matched) == before


def test_nan_labels_are_refused(matched):
    matched["rna"].obs["with_nan"] = matched["rna"].obs["cell_type"].astype(object)
    matched["rna"].obs.loc["c4", "with_nan"] = np.nan
    before = _snapshot(matched)
    with pytest.raises(ValueError, match="missing labels"):
        scm.tl.transfer_labels(matched, "with_nan", source="rna", target="atac")
    assert _snapshot(matched) == before


def test_missing_probabilities_are_refused(matched):
    del matched.obsp["match_probabilities"]
    before = _snapshot(matched)
    with pytest.raises(ValueError, match="is missing"):
        scm.tl.transfer_features(matched, source="rna", target="atac")
    assert _snapshot(matched) == before


def test_features_are_the_weighted_mean_and_spread(matched):
    scm.tl.transfer_features(matched, source="atac", target="rna", features=["p2", "p0"], temperature=1)
    mean = matched["rna"].obsm["atac_transferred"]
    std = matched["rna"].obsm["atac_transferred_std"]
    assert list(mean.columns) == ["p2", "p0"]
    X = pd.DataFrame(matched["atac"].X, index=matched["atac"].obs_names, columns=["p0", "p1", "p2"]).loc[QUERY]
    expected = P_QUERY @ X[["p2", "p0"]].to_numpy()
    np.testing.assert_allclose(mean.loc[QUERY].to_numpy(), expected, rtol=1e-6)
    spread = np.sqrt(P_QUERY @ X[["p2", "p0"]].to_numpy() ** 2 - expected**2)
    np.testing.assert_allclose(std.loc[QUERY].to_numpy(), spread, rtol=1e-5, atol=1e-6)
    assert mean.loc[["c0", "c1"]].isna().all().all()  # reference cells are outside the match


def test_features_to_mod2_use_normalised_columns(matched):
    scm.tl.transfer_features(matched, source="rna", target="atac", key_added="genes", temperature=1)
    W = P_QUERY.T / P_QUERY.sum(axis=0)[:, None]
    X = pd.DataFrame(matched["rna"].X, index=matched["rna"].obs_names).loc[QUERY].to_numpy()
    np.testing.assert_allclose(matched["atac"].obsm["genes"].loc[QUERY].to_numpy(), W @ X, rtol=1e-6)


def test_features_unknown_names_are_refused(matched):
    before = _snapshot(matched)
    with pytest.raises(ValueError, match=r"not in mdata\['atac'\].var_names"):
        scm.tl.transfer_features(matched, source="atac", target="rna", features=["p0", "nope"])
    with pytest.raises(ValueError, match="Layer 'counts' not found"):
        scm.tl.transfer_features(matched, source="atac", target="rna", layer="counts")
    assert _snapshot(matched) == before


def test_weighted_mean_std_chunks_agree_and_sparse_equals_dense():
    rng = np.random.default_rng(1)
    W = sp.random(30, 40, density=0.2, random_state=2, format="csr")
    W = sp.diags(1 / np.asarray(W.sum(1)).ravel()) @ W
    X = sp.random(40, 25, density=0.3, random_state=3, format="csr")
    m1, s1 = weighted_mean_std(W, X, chunk=4)
    m2, s2 = weighted_mean_std(W, X.toarray(), chunk=1000)
    np.testing.assert_allclose(m1, m2, rtol=1e-6)
    np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-6)
    Xd = X.toarray()
    i = rng.integers(30)
    w = W[i].toarray().ravel()
    np.testing.assert_allclose(m1[i], w @ Xd, rtol=1e-6)
    np.testing.assert_allclose(s1[i], np.sqrt(w @ (Xd - w @ Xd) ** 2), rtol=1e-4, atol=1e-6)


def test_round_trip_prefers_softening_when_the_match_is_sharp_and_noisy():
    """A sharp softmax match of noisy readouts of one latent state: a flatter vote labels more cells right."""
    from scmatch.tl._vote import TEMPERATURE_GRID, choose_temperature, label_masses, round_trip_nll, soften

    rng = np.random.default_rng(0)
    n = 150
    labels = np.repeat(["A", "B", "C"], n // 3)
    z = rng.normal(size=(3, 5))[np.repeat(np.arange(3), n // 3)] + 0.8 * rng.normal(size=(n, 5))
    x1, x2 = z + 0.8 * rng.normal(size=(n, 5)), z + 0.8 * rng.normal(size=(n, 5))
    S = -((x1[:, None] - x2[None]) ** 2).sum(-1)
    P = np.exp((S - S.max(axis=1, keepdims=True)) / 0.3)
    B = sp.csr_matrix(P / P.sum(axis=1, keepdims=True))  # rows: cells to label; columns: labelled cells
    chosen = choose_temperature(B, labels)
    assert len(chosen["round_trip_nll"]) == len(TEMPERATURE_GRID)
    assert chosen["temperature"] == 3.0  # measured: the NLL falls from 0.82 (t = 1) to 0.62 (t = 3), then rises
    accuracy = {}
    for t in (1.0, chosen["temperature"]):
        masses = label_masses(soften(B, t), labels)
        accuracy[t] = np.mean(masses.columns.to_numpy()[masses.to_numpy().argmax(axis=1)] == labels)
    assert accuracy[3.0] > accuracy[1.0]  # measured: 0.713 against 0.687
    # a match that only joins cells of the same label: the round trip finds every label (NLL at the floor)
    same = labels[:, None] == labels[None, :]
    block = sp.csr_matrix(same / same.sum(axis=1, keepdims=True))
    codes = pd.factorize(labels, sort=True)[0]
    assert round_trip_nll(block, codes, 3, 1.0) < 1e-3


def test_power_on_overconfident_masses_recovers_the_right_share_per_bin():
    """Labels drawn from flatter masses than those reported: the raw top mass is overconfident; the power fitted on
    (masses, labels) finds the flattening and the recalibrated top mass meets the share of right labels per bin."""
    from scmatch.metrics import calibration_bins, ece_under_calibration, expected_calibration_error
    from scmatch.tl._vote import fit_power, sharpen

    rng = np.random.default_rng(1)
    n, k = 4000, 5
    masses = rng.dirichlet(np.full(k, 0.3), size=n)
    truth = sharpen(masses, 0.5)  # the labels' real probabilities: the reported masses are too sharp
    codes = (rng.random(n)[:, None] > np.cumsum(truth, axis=1)).sum(axis=1)
    power = fit_power(masses, codes, k)
    assert power == pytest.approx(0.5, abs=0.03)  # measured: 0.493
    right = masses.argmax(axis=1) == codes
    recalibrated = sharpen(masses, power)
    np.testing.assert_array_equal(recalibrated.argmax(axis=1), masses.argmax(axis=1))  # the top label is kept
    assert expected_calibration_error(masses.max(axis=1), right) > 0.15  # measured: 0.165
    after = expected_calibration_error(recalibrated.max(axis=1), right)  # measured: 0.007
    assert after < np.quantile(ece_under_calibration(recalibrated.max(axis=1)), 0.95)  # within sampling noise (0.022)
    table = calibration_bins(recalibrated.max(axis=1), right)
    full = table[table["n_cells"] >= 50]
    assert len(full) == 7
    sd = np.sqrt(full["mean_confidence"] * (1 - full["mean_confidence"]) / full["n_cells"])
    assert np.all(np.abs(full["accuracy"] - full["mean_confidence"]) < 2 * sd)  # measured: at most 0.7 sd
    # rows of zeros stay zero; a single label cannot be recalibrated
    assert np.all(sharpen(np.zeros((2, 3)), 2.0) == 0)
    assert fit_power(np.ones((3, 1)), np.zeros(3, int), 1) == 1.0


def test_round_trip_recalibration_does_not_carry_over_to_one_hop():
    """The round trip (two hops) is flatter than the one-hop vote it would recalibrate: fitted on the source
    labels, its power sharpens a vote that the automatic temperature had already calibrated (this is why
    ``transfer_labels`` does not apply it), and only partly corrects the overconfident vote through ``P`` as it is."""
    from scmatch.metrics import expected_calibration_error
    from scmatch.tl._vote import choose_temperature, label_masses, round_trip_recalibration, sharpen, soften

    rng = np.random.default_rng(0)
    n = 600
    labels = np.repeat(np.array(list("ABCD")), n // 4)
    z = rng.normal(size=(4, 5))[np.repeat(np.arange(4), n // 4)] + 0.8 * rng.normal(size=(n, 5))
    x1, x2 = z + 0.8 * rng.normal(size=(n, 5)), z + 0.8 * rng.normal(size=(n, 5))
    S = -((x1[:, None] - x2[None]) ** 2).sum(-1)
    P = np.exp((S - S.max(axis=1, keepdims=True)) / 0.3)
    B = sp.csr_matrix(P / P.sum(axis=1, keepdims=True))  # cell i of each modality is the same cell
    measured = {}
    for t in (1.0, choose_temperature(B, labels)["temperature"]):
        masses = label_masses(soften(B, t), labels)
        right = masses.columns.to_numpy()[masses.to_numpy().argmax(axis=1)] == labels
        fitted = round_trip_recalibration(B, labels, t)
        after = sharpen(masses.to_numpy(), fitted["power"]).max(axis=1)
        before = expected_calibration_error(masses.to_numpy().max(axis=1), right)
        measured[t] = (before, fitted["power"], expected_calibration_error(after, right), fitted)
    assert sorted(measured) == [1.0, 3.0]
    # P as it is: overconfident (ECE 0.214); the round trip flattens it (power 0.67), to 0.152
    assert measured[1.0][0] > 0.2 and measured[1.0][1] < 0.75 and 0.1 < measured[1.0][2] < measured[1.0][0] - 0.05
    # the chosen temperature: calibrated already (0.030); the round trip, flatter still, asks to sharpen
    # (power 1.48) and the ECE triples (0.088)
    assert measured[3.0][0] < 0.05 and measured[3.0][1] > 1.3 and measured[3.0][2] > 2 * measured[3.0][0]
    fitted = measured[3.0][3]
    assert fitted["round_trip_confidence"] < fitted["round_trip_accuracy"]  # 0.63 against 0.73: two hops, flatter
    assert fitted["round_trip_nll_recalibrated"] < fitted["round_trip_nll"] and fitted["n_cells"] == n


def test_auto_temperature_is_recorded(matched):
    scm.tl.transfer_labels(matched, "cell_type", source="rna", target="atac")
    info = matched["atac"].uns["cell_type_transferred"]
    assert info["params"]["temperature"] == "auto"
    assert info["temperature"] in info["round_trip"]["grid"]
    assert np.argmin(info["round_trip"]["round_trip_nll"]) == info["round_trip"]["grid"].index(info["temperature"])


@pytest.mark.parametrize("temperature", [0.5, 0, "hot", True])
def test_bad_temperature_is_refused(matched, temperature):
    with pytest.raises(ValueError, match="temperature"):
        scm.tl.transfer_labels(matched, "cell_type", source="rna", target="atac", temperature=temperature)


# ------------------------------------------------------------------------------------------------------------------
# a real match: simulated multiome, and the CITE-seq starter with the default model


@pytest.fixture(scope="module")
def simulated_match():
    mdata = scm.datasets.simulate_multiome(600, n_genes=300, n_peaks=600, n_cell_types=5, random_state=0)
    for mod in ("rna", "atac"):
        mdata[mod].obs["is_reference"] = (mdata[mod].obs["batch"] == "batch0").to_numpy()
    scm.pp.recipe_rna(mdata, mod="rna", n_top_genes=200, n_comps=20)
    scm.pp.recipe_atac(mdata, mod="atac", n_comps=20)
    model = scm.model.MatchModel(n_models=1)
    model.plan = scm.model.TrainingPlan(max_epochs=30, progress_bar=False)
    scm.tl.match_modalities(mdata, reference="is_reference", batch_key="batch", model=model, random_state=0)
    return mdata


def test_simulated_labels_and_features(simulated_match):
    mdata = simulated_match.copy()
    q = ~mdata["atac"].obs["is_reference"].to_numpy(bool)
    scm.tl.transfer_labels(mdata, "cell_type", source="rna", target="atac")
    obs = mdata["atac"].obs[q]
    accuracy = np.mean(obs["cell_type_transferred"].astype(str) == obs["cell_type"].astype(str))
    assert accuracy > 0.8  # 5 simulated types, 30 epochs of one network (measured: 0.863, temperature 3)
    assert obs["cell_type_transferred_confidence"].between(0, 1).all()
    genes = mdata["rna"].var_names[:30]
    scm.tl.transfer_features(mdata, source="rna", target="atac", features=genes)
    pred = mdata["atac"].obsm["rna_transferred"].loc[obs.index]
    truth = mdata["rna"][obs.index, genes].X
    truth = np.asarray(truth.toarray() if sp.issparse(truth) else truth)
    r = [np.corrcoef(pred.iloc[:, k], truth[:, k])[0, 1] for k in range(len(genes)) if truth[:, k].std() > 0]
    assert np.mean(r) > 0.2  # 30 genes (measured: 0.298)
    assert (mdata["atac"].obsm["rna_transferred_std"].loc[obs.index] >= 0).all().all()


def test_match_confidence_is_written_for_both_modalities(simulated_match):
    mdata = simulated_match
    assert mdata.uns["match"]["confidence_key"] == "match_confidence"
    P, rows, cols = scm.tl.query_block(mdata)
    for mod, names, values in (
        ("rna", mdata.obs_names[rows], P.max(axis=1).toarray().ravel()),
        ("atac", mdata.obs_names[cols], (P.max(axis=0).toarray().ravel() / np.asarray(P.sum(axis=0)).ravel())),
    ):
        conf = mdata[mod].obs["match_confidence"]
        np.testing.assert_allclose(conf.loc[names].to_numpy(), values, rtol=1e-6)
        assert conf[mdata[mod].obs["is_reference"].to_numpy(bool)].isna().all()


def test_labels_from_annotated_cells_matched_with_a_fitted_model(simulated_match):
    """A fitted model matches every cell of a MuData: annotated cells in the source modality lend their labels."""
    sim = simulated_match
    model = scm.model.MatchModel(n_models=1)
    model.plan = scm.model.TrainingPlan(max_epochs=15, progress_bar=False)
    scm.tl.match_modalities(sim.copy(), reference="is_reference", model=model, random_state=0)
    ref = sim["rna"].obs["is_reference"].to_numpy(bool)
    rna = sim["rna"][ref].copy()  # annotated cells (here: the reference's)
    atac = sim["atac"][~sim["atac"].obs["is_reference"].to_numpy(bool)].copy()  # new, unannotated cells
    atac.obs_names = [f"new_{n}" for n in atac.obs_names]
    truth = atac.obs.pop("cell_type").astype(str)
    new = md.MuData({"rna": rna, "atac": atac})
    scm.tl.match_modalities(new, model=model)  # fitted: no training, every cell of both modalities is matched
    scm.tl.transfer_labels(new, "cell_type", source="rna", target="atac")
    predicted = new["atac"].obs["cell_type_transferred"].astype(str)
    assert predicted.notna().all()
    assert np.mean(predicted.to_numpy() == truth.to_numpy()) > 0.8  # measured: 0.887 (across batches, temperature 10)


@pytest.fixture(scope="module")
def cite_match(request):
    """The CITE-seq starter matched with the default model: reference donor s1d1, query s1d2."""
    mdata = md.read_h5mu(request.getfixturevalue("cite_path"))
    for mod in ("rna", "adt"):
        mdata[mod].obs["is_reference"] = (mdata[mod].obs["batch"] == "s1d1").to_numpy()
    scm.pp.recipe_rna(mdata, mod="rna")
    scm.pp.recipe_protein(mdata, mod="adt")
    model = scm.model.MatchModel()
    model.plan = scm.model.TrainingPlan(progress_bar=False)
    scm.tl.match_modalities(
        mdata, mod1="rna", mod2="adt", reference="is_reference", batch_key="batch", model=model, random_state=0
    )
    return mdata


def _query_names(mdata, mod):
    return mdata[mod].obs_names[~mdata[mod].obs["is_reference"].to_numpy(bool)]


@pytest.mark.slow
def test_cite_labels_to_protein_cells(cite_match):
    """Measured with seed 0: accuracy 0.699 ("auto": temperature 30, chosen on the 93 held-out pairs) against 0.637
    with P as it is; ECE 0.122 against 0.292. The sharp vote is overconfident (mean confidence 0.93); the softened
    one errs the other way on this set (0.61 against 0.70 right)."""
    from scmatch.metrics import expected_calibration_error

    mdata = cite_match.copy()
    names = _query_names(mdata, "adt")
    truth = mdata["adt"].obs.loc[names, "cell_type"].astype(str).to_numpy()
    result = {}
    for temperature in ("auto", 1):
        scm.tl.transfer_labels(mdata, "cell_type", source="rna", target="adt", temperature=temperature)
        obs = mdata["adt"].obs.loc[names]
        right = obs["cell_type_transferred"].astype(str).to_numpy() == truth
        conf = obs["cell_type_transferred_confidence"].to_numpy(float)
        result[temperature] = (right.mean(), expected_calibration_error(conf, right), conf.mean())
    assert result["auto"][0] > 0.65
    assert result["auto"][0] > result[1][0]
    assert result[1][1] > 0.15 and result[1][2] > result[1][0] + 0.15  # the sharp vote is overconfident
    assert result["auto"][1] < result[1][1] / 2  # the softening removes most of that error ...
    assert result["auto"][2] < result["auto"][0]  # ... and errs on the low side on this set


@pytest.mark.slow
def test_cite_round_trip_confidence_is_within_the_noise_of_a_calibrated_one(cite_match):
    """On the CITE starter (seed 0) the label confidence with the round trip's temperature (the rule "auto" uses
    below 50 held-out pairs, and with a loaded model) has the ECE a perfectly calibrated confidence shows on its
    289 cells, and the round trip asks for no recalibration (a power near 1 on the masses)."""
    from scmatch.metrics import ece_under_calibration, expected_calibration_error
    from scmatch.tl._transfer import _match_weights
    from scmatch.tl._vote import choose_temperature, round_trip_recalibration

    mdata = cite_match.copy()
    weights = _match_weights(mdata, key="match", source="rna", target="adt")
    source = mdata["rna"].obs["cell_type"].astype(str).reindex(weights.source_names).to_numpy()
    temperature = choose_temperature(weights.B, source)["temperature"]
    scm.tl.transfer_labels(mdata, "cell_type", source="rna", target="adt", temperature=temperature)
    names = _query_names(mdata, "adt")
    obs = mdata["adt"].obs.loc[names]
    right = obs["cell_type_transferred"].astype(str).to_numpy() == obs["cell_type"].astype(str).to_numpy()
    conf = obs["cell_type_transferred_confidence"].to_numpy(float)
    noise = ece_under_calibration(conf)
    # measured: 0.050 against 0.080 (temperature 15)
    assert expected_calibration_error(conf, right) < np.quantile(noise, 0.95)
    assert noise.mean() == pytest.approx(0.053, abs=0.005)
    fitted = round_trip_recalibration(weights.B, source, mdata["adt"].uns["cell_type_transferred"]["temperature"])
    assert 0.85 < fitted["power"] < 1.2  # measured: 1.071


@pytest.mark.slow
def test_cite_proteins_for_rna_cells(cite_match):
    """Measured with seed 0: mean per-protein Pearson 0.749 (auto: temperature 10) against 0.689 with P as it is."""
    mdata = cite_match.copy()
    names = _query_names(mdata, "rna")
    X = mdata["adt"][names].X
    measured = pd.DataFrame(X.toarray() if sp.issparse(X) else X, index=names, columns=mdata["adt"].var_names)
    pearson = {}
    for temperature in ("auto", 1):
        scm.tl.transfer_features(mdata, source="adt", target="rna", temperature=temperature)
        imputed = mdata["rna"].obsm["adt_transferred"].loc[names]
        pearson[temperature] = imputed.corrwith(measured).dropna().mean()
        assert (mdata["rna"].obsm["adt_transferred_std"].loc[names] >= 0).all().all()
    assert pearson["auto"] > 0.7
    assert pearson["auto"] > pearson[1]


def test_feature_temperature_scores_the_most_variable_features_of_sparse_input():
    from scmatch.tl._vote import MAX_ROUND_TRIP_FEATURES, choose_feature_temperature

    rng = np.random.default_rng(0)
    B = sp.csr_matrix(rng.dirichlet(np.ones(50), size=40))  # 40 target x 50 source cells
    X = sp.random(50, 500, density=0.1, random_state=1, format="csr")
    sparse = choose_feature_temperature(B, X)
    dense = choose_feature_temperature(B, X.toarray())
    assert sparse["n_features"] == MAX_ROUND_TRIP_FEATURES
    np.testing.assert_allclose(sparse["round_trip_pearson"], dense["round_trip_pearson"], rtol=1e-9)
    assert sparse["temperature"] == dense["temperature"]


@pytest.mark.slow
def test_cite_chooses_on_its_93_held_out_pairs(cite_match):
    """The CITE starter's 311 reference pairs give 3 networks x 31 held-out pairs, above the 50 with which the
    temperature is chosen on them (on the Transfer table's three small sets that rule gave higher accuracy and a
    better log-likelihood of the query's labels than the round trip)."""
    from scmatch.tl._held_out import MIN_HELD_OUT_PAIRS

    mdata = cite_match.copy()
    held = mdata.uns["match"]["held_out"]
    assert held["n_pairs"] == 93 and held["n_networks"] == 3 and held["n_pairs"] >= MIN_HELD_OUT_PAIRS
    scm.tl.transfer_labels(mdata, "cell_type", source="rna", target="adt")
    info = mdata["adt"].uns["cell_type_transferred"]
    assert info["calibration"] == "held_out" and info["held_out"]["n_cells"] == 93
    assert info["temperature"] == info["held_out"]["grid"][int(np.argmin(info["held_out"]["held_out_nll"]))]
    H = mdata.obsp["match_held_out"]
    rows = np.flatnonzero(np.diff(sp.csr_matrix(H).indptr) > 0)
    assert mdata["rna"].obs.loc[mdata.obs_names[rows], "is_reference"].all()  # reference cells of donor s1d1 only
