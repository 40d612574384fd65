"""Transfer benchmark: labels and features carried across modalities by a match, against baselines.

    python benchmarks/run_transfer.py --datasets cite totalvi multiome snare2_mop --seeds 0 1 2
    python benchmarks/make_table.py transfer

For each dataset x seed, the paired file is split into a reference (paired, used to train) and a query; the query's
mod2 cells are put in a seeded random order (their pairing is used only to score). Each modality is preprocessed
with its scmatch recipe on all cells (RNA PCA, protein CLR-PCA, ATAC LSI; as ``_data.load_split`` does) and
``scm.tl.match_modalities(reference="is_reference", batch_key="batch")`` runs with the default
``MatchModel()`` (progress bar off). Then, on the query:

- **labels** go from the RNA cells (their ``cell_type``) to the mod2 cells (protein or ATAC), whose own labels are
  the truth: ``scmatch`` = ``scm.tl.transfer_labels``; ``knn_joint`` = the majority label of the 15 nearest RNA
  cells of the same batch in the joint embedding ``X_match`` (what ``sc.tl.ingest`` does with its neighbours);
  ``moscot`` = ``TranslationProblem.annotation_mapping`` (``peers/transfer_runner.py``, peers' environment).
  Accuracy and cell-type-balanced accuracy (mean recall over true types); for scmatch the expected calibration
  error (10 equal-width bins) of the label confidence and of the match confidence written by
  ``match_modalities`` (``match_confidence``), the AUROC of each candidate confidence for "the label is right"
  (the label mass; the largest match probability and one minus the normalised entropy of the cell's column of
  ``P``), the negative log-likelihood of the true labels under the vote's label masses (``label_nll``, and
  ``label_nll_held_out`` / ``label_nll_round_trip`` with either rule's temperature), the temperature ``"auto"``
  chose, and the accuracy and ECE of the vote through ``P`` as it is
  (``temperature=1``: ``label_accuracy_t1``, ``label_ece_t1``). Calibration (``calibration_scores``): the mean
  confidence; the ECE a perfectly calibrated confidence would show on as many cells (``label_ece_if_calibrated``,
  mean of 1000 draws, and its 95th percentile); the round trip's accuracy on the RNA cells' own labels; and the
  ECE after two recalibrations fitted on that round trip alone (no mod2 label): a power on the label masses
  (``label_ece_round_trip_power``, the top label unchanged) and isotonic regression (``..._isotonic``), with the
  seconds the power's fit adds; and the accuracy and ECE of the flattest vote of the grid (``temperature=50``:
  ``label_accuracy_t50``, ``label_ece_t50``).
- **features** go the other way on CITE-seq sets (the proteins' CLR values to the RNA cells) and from RNA to ATAC
  cells on multiome sets (log-normalised expression of every gene): ``scmatch`` = ``scm.tl.transfer_features``;
  ``ridge`` = a ridge regression (RidgeCV) from the receiving modality's embedding to the features, trained on the
  reference pairs (the 2021 challenge's "predict modality" baseline); ``scmatch+ridge`` = the mean of the two
  predictions; ``moscot`` = its plan applied to the features as its ``impute`` does. Score: the mean over features of
  the Pearson correlation, across query cells, between prediction and truth (features constant in either skipped).
  For scmatch also the temperature ``"auto"`` chose and the Pearson of the average through ``P`` as it is
  (``feature_pearson_t1``).

One JSON record per dataset x method x seed goes to ``benchmarks/results/transfer/``. ``--datasets`` re-runs rows;
``--skip-peers`` leaves moscot's records (deterministic given the data and preprocessing) as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]
from _data import data_dir  # noqa: E402
from _provenance import git_state as _git  # noqa: E402

RESULTS = HERE / "results" / "transfer"
PEERS_PYTHON = Path("/work/peers-venv/bin/python")
RIDGE_ALPHAS = tuple(np.logspace(-2, 5, 15))
N_NEIGHBORS = 15
N_BINS = 10
# name -> (file, mod2, recipe of mod2, reference batches, query batches); None: first / second batch in sorted order
DATASETS = {
    "cite": ("bmmc_cite_starter.h5mu", "adt", "protein", ["s1d1"], ["s1d2"]),
    "totalvi": ("totalvi_sln_340.h5mu", "adt", "protein", None, None),
    "multiome": ("bmmc_multiome_starter.h5mu", "atac", "atac", ["s1d1"], ["s1d2"]),
    "snare2_mop": ("snare2_mop_5232.h5mu", "atac", "atac", ["09A", "09B", "09C"], ["09D", "09E", "09F"]),
}


def prepare(name: str, seed: int):
    """The MuData of one dataset: reference flag, labels and batch in both modalities, query mod2 cells shuffled."""
    import mudata as md

    import scmatch as scm

    file, mod2, kind, ref_batches, query_batches = DATASETS[name]
    mdata = md.read_h5mu(data_dir() / file)
    a1, a2 = mdata["rna"], mdata[mod2]
    obs = mdata.obs if {"batch", "cell_type"} <= set(mdata.obs.columns) else a1.obs
    batch = obs["batch"].astype(str).reindex(a1.obs_names).to_numpy()
    labels = obs["cell_type"].astype(str).reindex(a1.obs_names).to_numpy()
    if ref_batches is None:
        ref_batches, query_batches = [sorted(set(batch))[0]], [sorted(set(batch))[1]]
    is_ref, is_query = np.isin(batch, ref_batches), np.isin(batch, query_batches)
    keep = is_ref | is_query
    a1, a2 = a1[keep].copy(), a2[a1.obs_names[keep]].copy()
    for ad in (a1, a2):
        ad.obs = ad.obs.iloc[:, :0]
        ad.obs["batch"], ad.obs["cell_type"], ad.obs["is_reference"] = batch[keep], labels[keep], is_ref[keep]
    # the query's mod2 cells in a seeded random order: nothing can follow the mod1 order
    rng = np.random.default_rng([seed, 20211206])
    ref_pos, query_pos = np.flatnonzero(is_ref[keep]), np.flatnonzero(~is_ref[keep])
    a2 = a2[np.r_[ref_pos, rng.permutation(query_pos)]].copy()
    mdata = md.MuData({"rna": a1, mod2: a2})
    scm.pp.recipe_rna(mdata, mod="rna", n_top_genes=min(2000, a1.n_vars))
    if kind == "protein":
        scm.pp.recipe_protein(mdata, mod=mod2)
    else:
        scm.pp.recipe_atac(mdata, mod=mod2)
    return mdata, mod2, kind


def ece(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> float:
    """Expected calibration error over ``n_bins`` equal-width bins of [0, 1] (``scm.metrics``)."""
    import scmatch.metrics

    return scmatch.metrics.expected_calibration_error(confidence, correct, n_bins=n_bins)


def label_scores(pred: np.ndarray, truth: np.ndarray) -> dict:
    from sklearn.metrics import balanced_accuracy_score

    pred, truth = np.asarray(pred, str), np.asarray(truth, str)
    return {
        "label_accuracy": float(np.mean(pred == truth)),
        "label_balanced_accuracy": float(balanced_accuracy_score(truth, pred)),
    }


def label_nll(probabilities, rows: np.ndarray, truth: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels under a vote's label masses (a proper score of the whole vote).

    ``probabilities`` is ``transfer_labels``' ``obsm`` DataFrame; ``rows`` selects the query cells; a mass below
    ``tl._vote.NLL_FLOOR`` (or a true label no source cell has) counts as that floor.
    """
    from scmatch.tl._vote import NLL_FLOOR

    masses = probabilities.iloc[np.flatnonzero(rows)]
    codes = masses.columns.get_indexer(truth)
    mass = np.where(codes >= 0, masses.to_numpy()[np.arange(len(truth)), np.maximum(codes, 0)], 0.0)
    return float(np.mean(-np.log(np.maximum(mass, NLL_FLOOR))))


def mean_pearson(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean over features of the Pearson correlation across cells (features constant in either are skipped)."""
    pred, truth = np.asarray(pred, float), np.asarray(truth, float)
    pc, tc = pred - pred.mean(0), truth - truth.mean(0)
    den = np.sqrt((pc**2).sum(0) * (tc**2).sum(0))
    ok = den > 1e-12
    return float(np.mean((pc * tc).sum(0)[ok] / den[ok]))


def _auroc(score: np.ndarray, correct: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(correct, score)) if 0 < correct.mean() < 1 else float("nan")


def _dense(X) -> np.ndarray:
    return np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=np.float32)


def knn_joint(mdata, mod2: str, q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """The majority label of the 15 nearest query RNA cells of the same batch in ``X_match``, per mod2 cell."""
    from sklearn.neighbors import KNeighborsClassifier

    E1, E2 = mdata["rna"].obsm["X_match"][q1], mdata[mod2].obsm["X_match"][q2]
    lab1 = mdata["rna"].obs["cell_type"].to_numpy()[q1]
    b1, b2 = mdata["rna"].obs["batch"].to_numpy()[q1], mdata[mod2].obs["batch"].to_numpy()[q2]
    pred = np.empty(q2.sum(), dtype=object)
    for b in np.unique(b2):
        src = b1 == b
        clf = KNeighborsClassifier(n_neighbors=min(N_NEIGHBORS, int(src.sum()))).fit(E1[src], lab1[src])
        pred[b2 == b] = clf.predict(E2[b2 == b])
    return pred.astype(str)


def feature_task(mdata, mod2: str, kind: str) -> dict:
    """Which features go where: (source, target, source cells' values, embedding key of the target)."""
    if kind == "protein":
        return {"source": mod2, "target": "rna", "target_rep": "X_pca"}
    return {"source": "rna", "target": mod2, "target_rep": "X_lsi"}


def ridge_predict(mdata, task: dict, features, ref_t, ref_s, query_t) -> np.ndarray:
    from sklearn.linear_model import RidgeCV

    s, t = mdata[task["source"]], mdata[task["target"]]
    Y = _dense(s[:, features].X)
    E = np.asarray(t.obsm[task["target_rep"]], dtype=np.float64)
    model = RidgeCV(alphas=RIDGE_ALPHAS).fit(E[ref_t], Y[ref_s])
    return model.predict(E[query_t])


def run_moscot(mdata, mod2, task, features, q1, q2, ref1, ref2, python: Path) -> dict:
    """moscot's annotation mapping and imputation in the peers' environment (peers/transfer_runner.py)."""
    if not python.exists():
        return {"error": f"peers environment {python} not found"}
    emb2 = "X_pca" if task["source"] == mod2 else "X_lsi"
    X1, X2 = np.asarray(mdata["rna"].obsm["X_pca"]), np.asarray(mdata[mod2].obsm[emb2])
    on = 1 if task["source"] == "rna" else 2
    F = _dense(mdata[task["source"]][:, features].X)[q1 if on == 1 else q2]
    with tempfile.TemporaryDirectory() as tmp:
        fin, fout = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(
            fin,
            X1=X1[q1],
            X2=X2[q2],
            X1_train=X1[ref1],
            X2_train=X2[ref2],
            labels1=mdata["rna"].obs["cell_type"].to_numpy()[q1].astype(str),
            features=F,
            features_on=on,
        )
        env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"}
        t0 = time.perf_counter()
        subprocess.run([str(python), str(HERE / "peers" / "transfer_runner.py"), str(fin), str(fout)], env=env)
        seconds = time.perf_counter() - t0
        with np.load(fout, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    info = json.loads(str(out["info"]))
    if "error" in info:
        return {"error": f"moscot: {info['error']}"}
    return {"labels": out["labels"], "features": out["features"], "info": info, "seconds": seconds}


def _confidence_candidates(mdata, mod2: str) -> dict:
    """Label-free confidences of the mod2 query cells from their (normalised) columns of ``P``."""
    from scmatch.tl._confidence import entropy_confidence, top_probability
    from scmatch.tl._transfer import _match_weights

    W = _match_weights(mdata, key="match", source="rna", target=mod2).W
    return {"top_probability": top_probability(W), "entropy": entropy_confidence(W)}


def calibration_scores(mdata, mod2, q2, conf, correct, temperature: float, label_seconds: float) -> dict:
    """What a recalibration on the source labels alone does to the label confidence, and the ECE's noise floor.

    The round trip (RNA -> mod2 -> RNA, each cell's own share left out) predicts every query RNA cell's own label at
    the temperature ``transfer_labels`` used. Two maps are fitted on those (confidence, right) pairs and applied to
    the mod2 cells' label masses: a power on the masses (``tl._vote.round_trip_recalibration``: one parameter, the
    NLL of the own labels, the top label unchanged) and isotonic regression of right on the top mass. The noise
    floor: the ECE a perfectly calibrated confidence would show on these cells (``metrics.ece_under_calibration``).
    """
    from sklearn.isotonic import IsotonicRegression

    import scmatch as scm
    from scmatch.tl._transfer import _match_weights
    from scmatch.tl._vote import encode, round_trip_masses, round_trip_recalibration, sharpen

    ad2 = mdata[mod2]
    t0 = time.perf_counter()
    weights = _match_weights(mdata, key="match", source="rna", target=mod2)
    source = mdata["rna"].obs["cell_type"].astype(str).reindex(weights.source_names).to_numpy()
    fitted = round_trip_recalibration(weights.B, source, temperature)
    seconds = time.perf_counter() - t0
    masses = ad2.obsm["cell_type_transferred_probabilities"].to_numpy()[q2]
    recalibrated = sharpen(masses, fitted["power"])
    labels = ad2.obsm["cell_type_transferred_probabilities"].columns.to_numpy()
    if not np.array_equal(labels[recalibrated.argmax(axis=1)], labels[masses.argmax(axis=1)]):
        raise RuntimeError("the power changed a top label")
    codes, uniques = encode(source)
    rt_masses, keep = round_trip_masses(weights.B, codes, len(uniques), temperature)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(rt_masses.max(axis=1), rt_masses.argmax(axis=1) == codes[keep])
    null = scm.metrics.ece_under_calibration(conf, n_bins=N_BINS, n_draws=1000, random_state=0)
    return {
        "label_mean_confidence": float(np.mean(conf)),
        "label_ece_if_calibrated": float(null.mean()),
        "label_ece_if_calibrated_q95": float(np.quantile(null, 0.95)),
        "label_round_trip_accuracy": fitted["round_trip_accuracy"],
        "label_round_trip_confidence": fitted["round_trip_confidence"],
        "label_power": fitted["power"],
        "label_ece_round_trip_power": ece(recalibrated.max(axis=1), correct),
        "label_mean_confidence_round_trip_power": float(recalibrated.max(axis=1).mean()),
        "label_ece_round_trip_isotonic": ece(iso.predict(conf), correct),
        "label_recalibration_seconds": seconds,
        "label_recalibration_share": seconds / label_seconds,
    }


def choice_scores(mdata, mod2: str, q2: np.ndarray, truth2: np.ndarray) -> dict:
    """How the vote's temperature was chosen, and the labels with either rule (held-out pairs, round trip).

    ``transfer_labels(temperature="auto")`` chooses on the match's held-out reference pairs when there are at
    least ``tl._held_out.MIN_HELD_OUT_PAIRS`` of them, else by the round trip. Both rules are scored here on every
    set, whichever was used, with the held-out rule also below the threshold (``label_*_held_out``), and a power
    on the label masses fitted on the held-out pairs at their temperature (``label_ece_held_out_power``).
    """
    import scmatch as scm
    from scmatch.tl._held_out import held_out_vote
    from scmatch.tl._transfer import _match_weights
    from scmatch.tl._vote import choose_temperature, choose_temperature_held_out, fit_power, sharpen

    ad2 = mdata[mod2]
    record = ad2.uns["cell_type_transferred"]
    out = {"label_calibration": record.get("calibration", "round_trip")}
    weights = _match_weights(mdata, key="match", source="rna", target=mod2)
    source = mdata["rna"].obs["cell_type"].astype(str).reindex(weights.source_names).to_numpy()
    rules = {"round_trip": choose_temperature(weights.B, source)["temperature"]}
    vote = held_out_vote(mdata, key="match", source="rna", target=mod2, labels_key="cell_type")
    if vote is not None:
        out["label_held_out_pairs"] = len(vote.truth)
        rules["held_out"] = choose_temperature_held_out(vote.B, vote.source_labels, vote.truth)["temperature"]
    for rule, temperature in rules.items():
        key = f"rule_{rule}"
        scm.tl.transfer_labels(mdata, "cell_type", source="rna", target=mod2, temperature=temperature, key_added=key)
        pred = ad2.obs[key].to_numpy()[q2].astype(str)
        conf = ad2.obs[f"{key}_confidence"].to_numpy()[q2].astype(float)
        out[f"label_temperature_{rule}"] = temperature
        out[f"label_accuracy_{rule}"] = float(np.mean(pred == truth2))
        out[f"label_ece_{rule}"] = ece(conf, pred == truth2)
        out[f"label_nll_{rule}"] = label_nll(ad2.obsm[f"{key}_probabilities"], q2, truth2)
        if rule == "held_out":
            from scmatch.tl._vote import label_masses, soften

            held = label_masses(soften(vote.B, temperature), vote.source_labels)
            codes = held.columns.get_indexer(vote.truth)
            ok = codes >= 0
            power = fit_power(held.to_numpy()[ok], codes[ok], len(held.columns))
            masses = sharpen(ad2.obsm[f"{key}_probabilities"].to_numpy()[q2], power)
            out["label_power_held_out"] = power
            out["label_ece_held_out_power"] = ece(masses.max(axis=1), pred == truth2)
    return out


def _dump(mdata, mod2: str, path: Path) -> None:
    """The query block of P and the query labels, for analyses of the confidence (``--dump``)."""
    import scipy.sparse as sp

    import scmatch as scm

    P, rows, cols = scm.tl.query_block(mdata)
    names1, names2 = mdata.obs_names[rows], mdata.obs_names[cols]
    lab = {m: np.asarray(mdata[m].obs["cell_type"].astype(str), dtype=str) for m in ("rna", mod2)}
    path.parent.mkdir(parents=True, exist_ok=True)
    sp.save_npz(path.with_suffix(".P.npz"), P)
    np.savez(
        path,
        labels1=lab["rna"][mdata["rna"].obs_names.get_indexer(names1)],
        labels2=lab[mod2][mdata[mod2].obs_names.get_indexer(names2)],
        batch1=np.asarray(mdata["rna"].obs["batch"].astype(str), dtype=str)[mdata["rna"].obs_names.get_indexer(names1)],
        batch2=np.asarray(mdata[mod2].obs["batch"].astype(str), dtype=str)[mdata[mod2].obs_names.get_indexer(names2)],
    )


def run_one(
    name: str, seed: int, *, python: Path | None, command: str, out: Path, dump: Path | None = None
) -> list[dict]:
    """Match one dataset with one seed; score every method; write and return the records."""
    import torch

    import scmatch as scm

    torch.manual_seed(seed)  # the model seeds itself from random_state; this only pins stray global draws
    mdata, mod2, kind = prepare(name, seed)
    model = scm.model.MatchModel()
    model.plan = scm.model.TrainingPlan(progress_bar=False)
    t0 = time.perf_counter()
    scm.tl.match_modalities(
        mdata, mod1="rna", mod2=mod2, reference="is_reference", batch_key="batch", model=model, random_state=seed
    )
    match_seconds = time.perf_counter() - t0
    if dump is not None:
        _dump(mdata, mod2, dump / f"{name}__seed{seed}.npz")
    rna, ad2 = mdata["rna"], mdata[mod2]
    q1, q2 = ~rna.obs["is_reference"].to_numpy(bool), ~ad2.obs["is_reference"].to_numpy(bool)
    ref2 = ad2.obs_names[~q2]
    ref1 = rna.obs_names.get_indexer(ref2)  # reference pairs in the same order in both modalities
    ref2_pos = ad2.obs_names.get_indexer(ref2)
    truth2 = ad2.obs["cell_type"].to_numpy()[q2].astype(str)
    base = {
        "dataset": name,
        "seed": seed,
        "n_train": len(ref2),
        "n_test": int(q2.sum()),
        "match_seconds": match_seconds,
    }

    # labels: RNA -> mod2
    t0 = time.perf_counter()
    scm.tl.transfer_labels(mdata, "cell_type", source="rna", target=mod2)
    label_seconds = time.perf_counter() - t0
    pred = ad2.obs["cell_type_transferred"].to_numpy()[q2].astype(str)
    conf = ad2.obs["cell_type_transferred_confidence"].to_numpy()[q2].astype(float)
    correct = pred == truth2
    sc = {**label_scores(pred, truth2), "label_ece": ece(conf, correct), "label_seconds": label_seconds}
    sc["label_confidence_auroc"] = _auroc(conf, correct)
    sc["label_nll"] = label_nll(ad2.obsm["cell_type_transferred_probabilities"], q2, truth2)
    sc["label_temperature"] = float(ad2.uns["cell_type_transferred"]["temperature"])
    scm.tl.transfer_labels(mdata, "cell_type", source="rna", target=mod2, temperature=1, key_added="t1")
    pred1 = ad2.obs["t1"].to_numpy()[q2].astype(str)
    conf1 = ad2.obs["t1_confidence"].to_numpy()[q2].astype(float)
    sc["label_accuracy_t1"] = float(np.mean(pred1 == truth2))
    sc["label_ece_t1"] = ece(conf1, pred1 == truth2)
    # the flattest vote of the grid: what a weak target modality would need, which the source labels cannot ask for
    scm.tl.transfer_labels(mdata, "cell_type", source="rna", target=mod2, temperature=50, key_added="t50")
    pred50 = ad2.obs["t50"].to_numpy()[q2].astype(str)
    sc["label_accuracy_t50"] = float(np.mean(pred50 == truth2))
    sc["label_ece_t50"] = ece(ad2.obs["t50_confidence"].to_numpy()[q2].astype(float), pred50 == truth2)
    sc.update(calibration_scores(mdata, mod2, q2, conf, correct, sc["label_temperature"], label_seconds))
    sc.update(choice_scores(mdata, mod2, q2, truth2))
    if "match_confidence" in ad2.obs:
        match_conf = ad2.obs["match_confidence"].to_numpy()[q2].astype(float)
        sc["match_confidence_ece"] = ece(match_conf, correct)
        sc["match_confidence_auroc"] = _auroc(match_conf, correct)
    for cname, score in _confidence_candidates(mdata, mod2).items():
        sc[f"{cname}_auroc"] = _auroc(score, correct)
    knn = label_scores(knn_joint(mdata, mod2, q1, q2), truth2)

    # features: protein -> RNA cells (CITE-seq), RNA -> ATAC cells (multiome)
    task = feature_task(mdata, mod2, kind)
    features = mdata[task["source"]].var_names
    s_ad, t_ad = mdata[task["source"]], mdata[task["target"]]
    qt = ~t_ad.obs["is_reference"].to_numpy(bool)
    t0 = time.perf_counter()
    scm.tl.transfer_features(mdata, source=task["source"], target=task["target"], features=features)
    feature_seconds = time.perf_counter() - t0
    pred_f = t_ad.obsm[f"{task['source']}_transferred"].to_numpy()[qt]
    truth_f = _dense(s_ad[t_ad.obs_names[qt]].X)
    ref_t = t_ad.obs_names.get_indexer(ref2)
    ref_s = s_ad.obs_names.get_indexer(ref2)
    ridge = ridge_predict(mdata, task, features, ref_t, ref_s, qt)
    sc["feature_pearson"], sc["feature_seconds"] = mean_pearson(pred_f, truth_f), feature_seconds
    sc["feature_temperature"] = float(t_ad.uns[f"{task['source']}_transferred"]["temperature"])
    scm.tl.transfer_features(mdata, source=task["source"], target=task["target"], temperature=1, key_added="t1")
    sc["feature_pearson_t1"] = mean_pearson(t_ad.obsm["t1"].to_numpy()[qt], truth_f)
    feat = {"source": task["source"], "target": task["target"], "n_features": len(features)}
    records = [
        {**base, "method": "scmatch", **sc, "features": feat},
        {**base, "method": "knn_joint", **knn, "k": N_NEIGHBORS},
        {**base, "method": "ridge", "feature_pearson": mean_pearson(ridge, truth_f), "features": feat},
        {**base, "method": "scmatch+ridge", "feature_pearson": mean_pearson((pred_f + ridge) / 2, truth_f)},
    ]
    q1_pos, q2_pos = np.flatnonzero(q1), np.flatnonzero(q2)
    m = run_moscot(mdata, mod2, task, features, q1_pos, q2_pos, ref1, ref2_pos, python) if python else None
    if m is None:  # --skip-peers: moscot's records (deterministic) stay as they are
        pass
    elif "error" in m:
        records.append({**base, "method": "moscot", "error": m["error"]})
    else:
        # moscot's rows follow the query order of the receiving modality, as scmatch's do
        m_pred = mean_pearson(m["features"], truth_f)
        records.append(
            {
                **base,
                "method": "moscot",
                **label_scores(m["labels"], truth2),
                "feature_pearson": m_pred,
                "moscot": m["info"],
                "moscot_seconds": m["seconds"],
            }
        )
    meta = {**_git(), "command": command, "python": platform.python_version(), "n_cores": os.cpu_count()}
    meta["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out.mkdir(parents=True, exist_ok=True)
    for r in records:
        r.update(meta)
        (out / f"{name}__{r['method']}__seed{seed}.json").write_text(json.dumps(r, indent=1, default=float) + "\n")
    return records


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--peers-python", type=Path, default=PEERS_PYTHON)
    p.add_argument("--skip-peers", action="store_true", help="do not run moscot; its records stay as they are")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--dump", type=Path, help="also save each query block of P and its labels here (analyses)")
    args = p.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    command = "python benchmarks/run_transfer.py " + " ".join(argv)
    for name in args.datasets:
        for seed in args.seeds:
            records = run_one(
                name,
                seed,
                python=None if args.skip_peers else args.peers_python,
                command=command,
                out=args.out,
                dump=args.dump,
            )
            for r in records:
                keys = ("label_accuracy", "label_balanced_accuracy", "feature_pearson", "label_ece")
                shown = ", ".join(f"{k} {r[k]:.3f}" for k in keys if k in r)
                print(f"{name} seed {seed} {r['method']:>14}: {shown or r.get('error', '')}", flush=True)


if __name__ == "__main__":
    main()
