"""Every bad input tried against scmatch's public entry points, with the error each must get.

Each :class:`Case` builds fresh inputs in a temporary folder, calls one entry point with one bad input, and
names the exception type and a pattern its message must contain. :func:`run_case` runs a case, checks the
error, and checks that every input (MuData, AnnData, arrays, models, files) is exactly as it was. The tests in
``test_bad_inputs.py`` run every case; ``docs/make_reliability_table.py`` renders the same cases, with the
messages they really get, into ``docs/reliability.md``.

This module imports no pytest, so the docs script can use it.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import io as _io
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

import scmatch as scm
from scmatch._cli import main as cli_main
from scmatch.model import MatchModel, TrainingPlan
from scmatch.model._model import MIN_REFERENCE_PAIRS
from scmatch.model.train._loop import TrainingDivergedError

from .snapshot import assert_unchanged, snapshot

#: tiny network settings, fast to train
TINY = {"n_tokens": 2, "d_model": 16, "d_embed": 16, "device": "cpu"}
#: its training plan: two epochs, fewer reference cells (50) than the batch size (64)
TINY_PLAN = TrainingPlan(max_epochs=2, batch_size=64, progress_bar=False)


def tiny_model(*, loss: str = "infonce", **plan) -> MatchModel:
    """An unfitted MatchModel of the TINY settings carrying TINY_PLAN (with the changes in ``plan``)."""
    model = MatchModel(**TINY, loss=loss)
    model.plan = dataclasses.replace(TINY_PLAN, **plan)
    return model


#: 50 reference cells, the fewest MatchModel.fit accepts (MIN_REFERENCE_PAIRS: 10 held out, 40 to train on)
N_CELLS, N_REF, D1, D2 = 62, 50, 8, 6
PCS = [f"PC{i + 1}" for i in range(D1)]
LSIS = [f"LSI{i + 1}" for i in range(D2)]


class CLIExit(Exception):
    """A non-zero exit of the ``scmatch`` command, with what it printed on stderr."""

    def __init__(self, code: int, stderr: str) -> None:
        super().__init__(f"exit code {code}; stderr: {stderr.strip()}")
        self.code = code


@dataclass(frozen=True)
class Case:
    """One bad input: how to build it, the call that must refuse it, and the error it must get."""

    id: str
    entry: str
    bad_input: str
    build: Callable[[Path], dict[str, Any]]
    call: Callable[[dict[str, Any]], Any]
    error: type[BaseException]
    match: str


# ---------------------------------------------------------------------------------------------------- inputs
def _count_mudata(cells: slice) -> md.MuData:
    """Raw counts only (rna: 30 genes, atac: 40 peaks) of the N_CELLS cells of one experiment, sliced."""
    rng = np.random.default_rng(5)
    z = rng.gamma(2.0, size=(N_CELLS, 1))
    rna = counts_adata(sp.csr_matrix(rng.poisson(z * rng.gamma(1.0, size=(1, 30))).astype(np.float32) + 1))
    atac = counts_adata(sp.csr_matrix(rng.poisson(0.3 + z * 0.2, size=(N_CELLS, 40)).astype(np.float32) + 1))
    atac.var_names = [f"peak{j}" for j in range(40)]
    return md.MuData({"rna": rna[cells].copy(), "atac": atac[cells].copy()})


def _genes(mdata: md.MuData, n: int) -> md.MuData:
    """The MuData with only the first ``n`` genes of its rna modality."""
    return md.MuData({"rna": mdata["rna"][:, :n].copy(), "atac": mdata["atac"].copy()})


def _preprocessed(mdata: md.MuData) -> md.MuData:
    scm.pp.recipe_rna(mdata, mod="rna", n_comps=8)
    scm.pp.recipe_atac(mdata, mod="atac", n_comps=6)
    return mdata


def _mapping(*, alone: bool, model: bool = False) -> Callable[[Path], dict[str, Any]]:
    """A reference (the first N_REF cells) processed by the recipes, and the other cells as a query: processed on
    their own (``alone``) or left as counts; with ``model``, a model trained on the reference through tl."""

    def build(tmp: Path) -> dict[str, Any]:
        reference = _preprocessed(_count_mudata(slice(0, N_REF)))
        query = _count_mudata(slice(N_REF, N_CELLS))
        out: dict[str, Any] = {"reference": reference, "query": _preprocessed(query) if alone else query}
        if model:
            out["model"] = tiny_model()
            scm.tl.match_modalities(reference, mod1="rna", mod2="atac", model=out["model"])
        return out

    return build


def reps(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Integer-valued float32 representations of N_CELLS paired cells sharing a 3-D latent state."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(N_CELLS, 3))
    x1 = np.round(4 * z @ rng.normal(size=(3, D1)))
    x2 = np.round(4 * z @ rng.normal(size=(3, D2)))
    return x1.astype(np.float32), x2.astype(np.float32)


def toy_mudata(*, names2: list[str] | None = None, d1: int = D1) -> md.MuData:
    """A paired MuData with counts, a layer, obsm reps, global obsp/uns: every slot a call could touch."""
    rng = np.random.default_rng(1)
    x1, x2 = reps()
    if d1 != D1:
        x1 = np.round(4 * rng.normal(size=(N_CELLS, d1))).astype(np.float32)
    names = [f"c{i}" for i in range(N_CELLS)]
    obs = pd.DataFrame(
        {"is_reference": np.arange(N_CELLS) < N_REF, "batch": ["b0", "b1"] * (N_CELLS // 2)}, index=names
    )
    counts1 = sp.csr_matrix(rng.poisson(1.0, size=(N_CELLS, 5)).astype(np.float32))
    rna = ad.AnnData(X=counts1, obs=obs.copy(), obsm={"X_pca": x1})
    rna.var_names = [f"g{j}" for j in range(5)]
    rna.layers["counts"] = counts1.copy()
    atac = ad.AnnData(X=rng.poisson(0.5, size=(N_CELLS, 7)).astype(np.float32), obs=obs.copy(), obsm={"X_lsi": x2})
    atac.var_names = [f"p{j}" for j in range(7)]
    if names2 is not None:
        atac.obs_names = names2
    mdata = md.MuData({"rna": rna, "atac": atac})
    mdata.uns["note"] = {"made_by": "user", "values": np.arange(3)}
    mdata.obsp["knn"] = sp.identity(mdata.n_obs, format="csr")
    return mdata


def counts_adata(X: Any) -> ad.AnnData:
    """An AnnData around a count matrix, with readable names."""
    adata = ad.AnnData(X=X)
    adata.obs_names = [f"c{i}" for i in range(X.shape[0])]
    adata.var_names = [f"f{j}" for j in range(X.shape[1])]
    return adata


def _counts(sparse: bool = True, value: float | None = None) -> ad.AnnData:
    X = np.random.default_rng(2).poisson(2.0, size=(12, 9)).astype(np.float32)
    X[:, 0] += 1
    if value is not None:
        X[3, 4] = value
    return counts_adata(sp.csr_matrix(X) if sparse else X)


@functools.cache
def fitted_model() -> MatchModel:
    """A tiny model fitted on the 50 reference pairs of :func:`toy_mudata` (with feature names). Do not modify."""
    x1, x2 = reps()
    model = tiny_model()
    return model.fit(x1[:N_REF], x2[:N_REF], feature_names1=PCS, feature_names2=LSIS, random_state=0)


@functools.cache
def _saved_template() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="scmatch_model_")) / "model"
    atexit.register(shutil.rmtree, folder.parent, ignore_errors=True)  # the template outlives no test session
    fitted_model().save(folder)
    return folder


def saved_model(tmp: Path) -> Path:
    """A fresh copy of the saved tiny model in ``tmp``."""
    target = tmp / "model"
    shutil.copytree(_saved_template(), target)
    return target


def _cli(args: list[str]) -> None:
    err = _io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(_io.StringIO()):
        code = cli_main(args)
    if code != 0:
        raise CLIExit(code, err.getvalue())


def _challenge_files(tmp: Path, *, text: bool = False) -> dict[str, Any]:
    """Five small, valid challenge-format files (or five text files with those names)."""
    files = {}
    for role in ("train_mod1", "train_mod2", "train_sol", "test_mod1", "test_mod2"):
        path = tmp / f"{role}.h5ad"
        if text:
            path.write_text("not an h5ad file\n")
        else:
            counts_adata(np.eye(4, dtype=np.float32)).write_h5ad(path)
        files[role] = path
    return files


def _match_args(files: dict[str, Path], output: Path, *extra: str) -> list[str]:
    args = ["match", "--output", str(output), *extra]
    for role, path in files.items():
        args += [f"--{role.replace('_', '-')}", str(path)]
    return args


def _prediction_pair(tmp: Path) -> dict[str, Any]:
    pred, sol = tmp / "pred.h5ad", tmp / "sol.h5ad"
    scm.io.write_prediction(sp.identity(3, format="csr"), pred, dataset_id="toy")
    ad.AnnData(X=sp.identity(4, format="csr", dtype=np.float32), uns={"dataset_id": "toy"}).write_h5ad(sol)
    return {"pred": pred, "sol": sol}


def _with_nan_rep(mod: str, key: str, row: int, value: float) -> Callable[[Path], dict[str, Any]]:
    def build(tmp: Path) -> dict[str, Any]:
        mdata = toy_mudata()
        mdata[mod].obsm[key][row, 1] = value
        return {"mdata": mdata}

    return build


def _renamed_without_update(tmp: Path) -> dict[str, Any]:
    mdata = toy_mudata()
    for mod in ("rna", "atac"):
        mdata[mod].obs_names = [f"renamed{i}" for i in range(N_CELLS)]
    return {"mdata": mdata}


def _duplicated_names(tmp: Path) -> dict[str, Any]:
    mdata = toy_mudata()
    mdata["rna"].obs_names = ["c0", "c0", *[f"c{i}" for i in range(2, N_CELLS)]]
    return {"mdata": mdata}


def _frame_reps(tmp: Path) -> dict[str, Any]:
    """Query and reference with named representations; the query lacks PC8 (it has PC9 instead)."""
    reference, query = toy_mudata(), toy_mudata(names2=[f"q{i}" for i in range(N_CELLS)])
    reference["rna"].obsm["X_pca"] = pd.DataFrame(
        reference["rna"].obsm["X_pca"], index=reference["rna"].obs_names, columns=PCS
    )
    query["rna"].obsm["X_pca"] = pd.DataFrame(
        query["rna"].obsm["X_pca"], index=query["rna"].obs_names, columns=[*PCS[:-1], "PC9"]
    )
    return {"mdata": query, "reference": reference}


def _matched(tmp: Path) -> dict[str, Any]:
    mdata = toy_mudata()
    scm.tl.match_modalities(mdata, reference="is_reference", model=fitted_model())
    return {"mdata": mdata}


def _matched_then_renamed(tmp: Path) -> dict[str, Any]:
    out = _matched(tmp)
    for mod in ("rna", "atac"):
        out["mdata"][mod].obs_names = [f"renamed{i}" for i in range(N_CELLS)]
    return out


def _all_zero_peaks(tmp: Path) -> dict[str, Any]:
    return {"adata": counts_adata(np.zeros((6, 5), np.float32))}


def _md(**kwargs: Any) -> Callable[[Path], dict[str, Any]]:
    """Builder of a fresh toy MuData."""
    return lambda tmp: {"mdata": toy_mudata(**kwargs)}


def _tl(*, reference: Any = "is_reference", **kwargs: Any) -> Callable[[dict[str, Any]], Any]:
    """The call ``tl.match_modalities(mdata, ...)``; ``model``/``reference`` come from the inputs when given."""

    def call(o: dict[str, Any]) -> Any:
        model = o.get("model", tiny_model())
        return scm.tl.match_modalities(o["mdata"], reference=o.get("reference", reference), model=model, **kwargs)

    return call


def _pairs(tmp: Path) -> dict[str, Any]:
    x1, x2 = reps()
    return {"x1": x1, "x2": x2, "model": tiny_model()}


def _fitted_pairs(tmp: Path) -> dict[str, Any]:
    x1, x2 = reps()
    return {"x1": x1, "x2": x2, "model": fitted_model()}


def _set(d: dict[str, Any], **values: Any) -> dict[str, Any]:
    d.update(values)
    return d


# ---------------------------------------------------------------------------------------------------- the cases
TL = "tl.match_modalities"
CASES: list[Case] = [
    # -------------------------------------------------------------- tl.match_modalities: the MuData
    Case(
        "tl-not-mudata",
        TL,
        "an AnnData instead of a MuData",
        lambda t: {"mdata": toy_mudata()["rna"]},
        _tl(),
        TypeError,
        r"mdata must be a MuData, got AnnData",
    ),
    Case(
        "tl-missing-modality",
        TL,
        "`mod2` names a modality the MuData lacks",
        _md(),
        _tl(mod2="adt"),
        ValueError,
        r"Modality 'adt' is not in mdata; it has \['rna', 'atac'\]",
    ),
    Case(
        "tl-same-modality",
        TL,
        "`mod1` and `mod2` are the same modality",
        _md(),
        _tl(mod1="rna", mod2="rna", rep2="X_pca"),
        ValueError,
        r"must be different modalities",
    ),
    Case(
        "tl-missing-rep",
        TL,
        "the `.obsm` representation does not exist",
        _md(),
        _tl(rep1="X_umap"),
        ValueError,
        r"`\.obsm\['X_umap'\]` not found; available keys: \['X_pca'\]",
    ),
    Case(
        "tl-no-default-rep",
        TL,
        "a modality with no default representation and no `rep1=`",
        lambda t: {"mdata": md.MuData({"foo": toy_mudata()["rna"], "atac": toy_mudata()["atac"]})},
        _tl(mod1="foo"),
        ValueError,
        r"No default representation for this modality: pass `rep1=`",
    ),
    Case(
        "tl-no-paired-cells",
        TL,
        "no cell of mod1 shares its name with a cell of mod2 (nothing to learn from)",
        _md(names2=[f"a{i}" for i in range(N_CELLS)]),
        _tl(reference=None),
        ValueError,
        r"Too few paired reference cells: 0 \(cells present in both modalities under the same obs name",
    ),
    Case(
        "tl-too-few-reference",
        TL,
        "49 paired reference cells, one fewer than training needs",
        lambda t: {"mdata": _set_obs(toy_mudata(), "is_reference", np.arange(N_CELLS) < MIN_REFERENCE_PAIRS - 1)},
        _tl(),
        ValueError,
        r"Too few paired reference cells: 49 .*training a model needs at least 50",
    ),
    Case(
        "tl-duplicate-obs-names",
        TL,
        "duplicate obs names in a modality",
        _duplicated_names,
        _tl(),
        ValueError,
        r"mdata\['rna'\] has duplicate obs names; make them unique",
    ),
    Case(
        "tl-out-of-sync",
        TL,
        "modality obs_names changed without `mdata.update()` (out of sync with the global obs)",
        _renamed_without_update,
        _tl(reference=None),
        ValueError,
        r"out of sync with mdata\.obs_names .* call `mdata\.update\(\)`",
    ),
    Case(
        "tl-reference-column-missing",
        TL,
        "`reference=` names a column that does not exist",
        _md(),
        _tl(reference="is_train"),
        ValueError,
        r"`reference='is_train'` is not a column of mdata\['rna'\]\.obs",
    ),
    Case(
        "tl-reference-column-not-bool",
        TL,
        "the reference column holds strings, not booleans",
        lambda t: {"mdata": _set_obs(toy_mudata(), "split", "train")},
        _tl(reference="split"),
        TypeError,
        r"mdata\['rna'\]\.obs\['split'\] must be boolean",
    ),
    Case(
        "tl-reference-wrong-type",
        TL,
        "`reference=` is a number",
        _md(),
        _tl(reference=3),
        TypeError,
        r"`reference` must be None, an \.obs column name or a MuData",
    ),
    Case(
        "tl-no-query",
        TL,
        "every cell is marked as reference: nothing to match",
        lambda t: {"mdata": _set_obs(toy_mudata(), "all", True)},
        _tl(reference="all"),
        ValueError,
        r"No query cells to match",
    ),
    Case(
        "tl-batch-key-missing",
        TL,
        "`batch_key=` names a column that does not exist",
        _md(),
        _tl(batch_key="donor"),
        ValueError,
        r"`batch_key='donor'` is not a column of mdata\['rna'\]\.obs",
    ),
    Case(
        "tl-batch-one-side",
        TL,
        "a batch present in one modality only",
        lambda t: {"mdata": _set_obs(toy_mudata(), "batch", "b9", mod="atac")},
        _tl(batch_key="batch"),
        ValueError,
        r"Batches must be present in both modalities; only in mod1: \['b0', 'b1'\], only in mod2: "
        r"\['b9'\]",
    ),
    # -------------------------------------------------------------- tl.match_modalities: the values
    Case(
        "tl-nan-query",
        TL,
        "NaN in a query cell's representation",
        _with_nan_rep("rna", "X_pca", 55, np.nan),
        _tl(),
        ValueError,
        r"mdata\['rna'\]\.obsm\['X_pca'\] contains NaN or infinite values",
    ),
    Case(
        "tl-inf-reference",
        TL,
        "+inf in a reference cell's representation",
        _with_nan_rep("atac", "X_lsi", 3, np.inf),
        _tl(),
        ValueError,
        r"mdata\['atac'\]\.obsm\['X_lsi'\] contains NaN or infinite values",
    ),
    Case(
        "tl-non-numeric-rep",
        TL,
        "a representation of strings",
        lambda t: {"mdata": _set_obsm(toy_mudata(), "rna", "X_pca", np.full((N_CELLS, 3), "x"))},
        _tl(),
        TypeError,
        r"mdata\['rna'\]\.obsm\['X_pca'\] must be numeric, got dtype <U1",
    ),
    Case(
        "tl-empty-rep",
        TL,
        "a representation with no columns",
        lambda t: {"mdata": _set_obsm(toy_mudata(), "rna", "X_pca", np.zeros((N_CELLS, 0), np.float32))},
        _tl(),
        ValueError,
        r"`\.obsm\['X_pca'\]` is empty \(shape \(62, 0\)\): it has no features",
    ),
    Case(
        "tl-diverging-training",
        TL,
        "extreme values (1e30) with a huge learning rate: the loss becomes NaN",
        lambda t: {"mdata": _set_obsm(toy_mudata(), "rna", "X_pca", reps()[0] * 1e30)},
        lambda o: scm.tl.match_modalities(o["mdata"], reference="is_reference", model=tiny_model(lr=1e30, noise=0.0)),
        TrainingDivergedError,
        r"Training diverged: the loss became nan at epoch \d+\. Lower `lr`",
    ),
    # -------------------------------------------------------------- tl.match_modalities: features
    Case(
        "tl-reference-feature-count",
        TL,
        "a reference MuData whose representation has another number of features",
        lambda t: {"mdata": toy_mudata(names2=[f"q{i}" for i in range(N_CELLS)]), "reference": toy_mudata(d1=9)},
        _tl(),
        ValueError,
        r"mdata\['rna'\]\.obsm\['X_pca'\] has 8 features but the reference has 9",
    ),
    Case(
        "tl-reference-features-by-name",
        TL,
        "named (DataFrame) representations: the query lacks a reference feature",
        _frame_reps,
        _tl(),
        ValueError,
        r"mdata\['rna'\]\.obsm\['X_pca'\] lacks 1 of the 8 features of the reference \(e\.g\. \['PC8'\]\)",
    ),
    Case(
        "tl-fitted-model-features",
        TL,
        "a fitted model applied to a representation with other features",
        lambda t: {"mdata": toy_mudata(d1=9), "model": fitted_model()},
        _tl(),
        ValueError,
        r"mdata\['rna'\]\.obsm\['X_pca'\] has 9 features but the model has 8",
    ),
    # -------------------------------------------------------------- tl.match_modalities: settings
    Case(
        "tl-unknown-matching",
        TL,
        "an unknown `matching=`",
        _md(),
        _tl(matching="hungarian"),
        ValueError,
        r"Unknown matching 'hungarian'; use one of \('softmax', 'sinkhorn', 'assignment'\)",
    ),
    Case("tl-top-k-zero", TL, "`top_k=0`", _md(), _tl(top_k=0), ValueError, r"`top_k` must be an integer >= 1"),
    Case(
        "tl-model-wrong-type",
        TL,
        "`model=` is not a MatchModel",
        lambda t: {"mdata": toy_mudata(), "model": "big"},
        _tl(),
        TypeError,
        r"`model` must be a scmatch\.model\.MatchModel or None, got str",
    ),
    # -------------------------------------------------------------- tl.evaluate_match
    Case(
        "evaluate-not-matched",
        "tl.evaluate_match",
        "a MuData on which match_modalities did not run",
        _md(),
        lambda o: scm.tl.evaluate_match(o["mdata"]),
        ValueError,
        r"`mdata\.uns\['match'\]` not found: run scmatch\.tl\.match_modalities",
    ),
    Case(
        "evaluate-labels-missing",
        "tl.evaluate_match",
        "`labels_key=` names a column that does not exist",
        _matched,
        lambda o: scm.tl.evaluate_match(o["mdata"], labels_key="cell_type"),
        ValueError,
        r"`labels_key='cell_type'` is not a column of mdata\['rna'\]\.obs",
    ),
    Case(
        "evaluate-out-of-sync",
        "tl.evaluate_match",
        "modality obs_names renamed after matching, without `mdata.update()`",
        _matched_then_renamed,
        lambda o: scm.tl.evaluate_match(o["mdata"]),
        ValueError,
        r"out of sync with mdata\.obs_names .* call mdata\.update\(\)",
    ),
    # -------------------------------------------------------------- MatchModel settings
    Case(
        "model-epochs-zero",
        "model.TrainingPlan",
        "`max_epochs=0`",
        lambda t: {},
        lambda o: TrainingPlan(max_epochs=0),
        ValueError,
        r"`max_epochs` must be an integer >= 1, got 0",
    ),
    Case(
        "model-negative-lr",
        "model.TrainingPlan",
        "a negative learning rate",
        lambda t: {},
        lambda o: TrainingPlan(lr=-1e-3),
        ValueError,
        r"`lr` must be a number > 0, got -0\.001",
    ),
    Case(
        "model-dropout-one",
        "model.MatchModel",
        "`dropout=1` (drops everything)",
        lambda t: {},
        lambda o: MatchModel(dropout=1.0),
        ValueError,
        r"`dropout` must be in \[0, 1\)",
    ),
    Case(
        "model-unknown-loss",
        "model.MatchModel",
        "an unknown loss",
        lambda t: {},
        lambda o: MatchModel(loss="hinge"),
        ValueError,
        r"Unknown loss 'hinge'; use one of",
    ),
    Case(
        "model-heads",
        "model.MatchModel",
        "`d_model` not divisible by `n_heads`",
        lambda t: {},
        lambda o: MatchModel(d_model=30, n_heads=4),
        ValueError,
        r"`d_model` \(30\) must be divisible",
    ),
    # -------------------------------------------------------------- MatchModel.fit
    Case(
        "fit-unequal-cells",
        "MatchModel.fit",
        "paired inputs with different numbers of cells",
        _pairs,
        lambda o: o["model"].fit(o["x1"], o["x2"][:30]),
        ValueError,
        r"Paired inputs need the same number of cells, got 62 \(mod1\) and 30 \(mod2\)",
    ),
    Case(
        "fit-one-cell",
        "MatchModel.fit",
        "a single paired cell",
        _pairs,
        lambda o: o["model"].fit(o["x1"][:1], o["x2"][:1]),
        ValueError,
        r"Too few paired reference cells \(1\): fitting needs at least 50",
    ),
    Case(
        "fit-too-few-pairs",
        "MatchModel.fit",
        "49 paired cells, one fewer than the minimum (10 to hold out, 40 to train on)",
        _pairs,
        lambda o: o["model"].fit(o["x1"][: MIN_REFERENCE_PAIRS - 1], o["x2"][: MIN_REFERENCE_PAIRS - 1]),
        ValueError,
        r"Too few paired reference cells \(49\): fitting needs at least 50 \(10 held out for early stopping and "
        r"temperature calibration, 40 to train on\)",
    ),
    Case(
        "fit-nan",
        "MatchModel.fit",
        "NaN in the mod1 input",
        lambda t: _set(_pairs(t), x1=_nan(reps()[0])),
        lambda o: o["model"].fit(o["x1"], o["x2"]),
        ValueError,
        r"mod1 input contains NaN or infinite values",
    ),
    Case(
        "fit-1d",
        "MatchModel.fit",
        "a 1-D array",
        _pairs,
        lambda o: o["model"].fit(o["x1"][:, 0], o["x2"]),
        ValueError,
        r"mod1 input must be 2-D \(cells x features\), got shape \(62,\)",
    ),
    Case(
        "fit-object-dtype",
        "MatchModel.fit",
        "an object array",
        _pairs,
        lambda o: o["model"].fit(o["x1"].astype(object), o["x2"]),
        TypeError,
        r"mod1 input must be numeric, got dtype object",
    ),
    Case(
        "fit-negative-weight",
        "MatchModel.fit",
        "a negative `sample_weight`",
        _pairs,
        lambda o: o["model"].fit(o["x1"], o["x2"], sample_weight=-np.ones(N_CELLS)),
        ValueError,
        r"`sample_weight` must hold one non-negative weight per pair",
    ),
    Case(
        "fit-feature-names-length",
        "MatchModel.fit",
        "3 feature names for 8 features",
        _pairs,
        lambda o: o["model"].fit(o["x1"], o["x2"], feature_names1=["a", "b", "c"]),
        ValueError,
        r"Got 3 feature names for 8 features",
    ),
    # -------------------------------------------------------------- MatchModel.predict_proba / transform
    Case(
        "predict-unfitted",
        "MatchModel.predict_proba",
        "a model that was never fitted",
        _pairs,
        lambda o: o["model"].predict_proba(o["x1"], o["x2"]),
        ValueError,
        r"This MatchModel is not fitted yet",
    ),
    Case(
        "predict-feature-count",
        "MatchModel.predict_proba",
        "a query with another number of features",
        _fitted_pairs,
        lambda o: o["model"].predict_proba(o["x1"][:, :7], o["x2"]),
        ValueError,
        r"mod1 input has 7 features but the model was fitted on 8",
    ),
    Case(
        "predict-feature-names",
        "MatchModel.predict_proba",
        "query features with other names",
        _fitted_pairs,
        lambda o: o["model"].predict_proba(o["x1"], o["x2"], feature_names1=[*PCS[:-1], "CD3"]),
        ValueError,
        r"mod1 features differ from those the model was fitted on \(missing \['PC8'\], unexpected "
        r"\['CD3'\]\)",
    ),
    Case(
        "predict-feature-order",
        "MatchModel.predict_proba",
        "the same features in another order",
        _fitted_pairs,
        lambda o: o["model"].predict_proba(o["x1"], o["x2"], feature_names1=PCS[::-1]),
        ValueError,
        r"differ from those the model was fitted on \(same, other order\)",
    ),
    Case(
        "predict-batch-one-side",
        "MatchModel.predict_proba",
        "batch labels for mod1 only",
        _fitted_pairs,
        lambda o: o["model"].predict_proba(o["x1"], o["x2"], batch1=["b"] * N_CELLS),
        ValueError,
        r"Pass batch labels for both modalities",
    ),
    Case(
        "transform-modality",
        "MatchModel.transform",
        "`modality=3`",
        _fitted_pairs,
        lambda o: o["model"].transform(o["x1"], modality=3),
        ValueError,
        r"`modality` must be 1 or 2, got 3",
    ),
    # -------------------------------------------------------------- pp
    Case(
        "tfidf-negative",
        "pp.tfidf",
        "negative counts",
        lambda t: {"adata": _counts(value=-3)},
        lambda o: scm.pp.tfidf(o["adata"]),
        ValueError,
        r"The matrix in `\.X` has negative values",
    ),
    Case(
        "tfidf-non-integer",
        "pp.tfidf",
        "non-integer counts (already normalised data)",
        lambda t: {"adata": _counts(sparse=False, value=2.5)},
        lambda o: scm.pp.tfidf(o["adata"]),
        ValueError,
        r"has non-integer values, but raw counts are required",
    ),
    Case(
        "tfidf-nan",
        "pp.tfidf",
        "NaN in sparse counts",
        lambda t: {"adata": _counts(value=np.nan)},
        lambda o: scm.pp.tfidf(o["adata"]),
        ValueError,
        r"contains NaN or infinite values",
    ),
    Case(
        "tfidf-empty-cell",
        "pp.tfidf",
        "a cell with no counts (all-zero row)",
        lambda t: {"adata": _zero_row(_counts(sparse=False))},
        lambda o: scm.pp.tfidf(o["adata"]),
        ValueError,
        r"1 cells have no counts in `\.X` \(e\.g\. \['c5'\]\)",
    ),
    Case(
        "pp-no-features",
        "pp.select_peaks",
        "a matrix with no features",
        lambda t: {"adata": counts_adata(np.zeros((5, 0), np.float32))},
        lambda o: scm.pp.select_peaks(o["adata"]),
        ValueError,
        r"`\.X` is empty \(shape \(5, 0\)\): it has no features",
    ),
    Case(
        "lsi-all-zero",
        "pp.lsi",
        "an all-zero matrix (no accessible peaks)",
        _all_zero_peaks,
        lambda o: scm.pp.lsi(o["adata"], n_comps=2),
        ValueError,
        r"is all zeros on the peaks used",
    ),
    Case(
        "pp-non-numeric",
        "pp.clr",
        "a matrix of strings",
        lambda t: {"adata": counts_adata(np.full((4, 3), "7", dtype=object))},
        lambda o: scm.pp.clr(o["adata"]),
        TypeError,
        r"The matrix in `\.X` must be numeric, got dtype object",
    ),
    Case(
        "tl-query-preprocessed-alone",
        TL,
        "a query whose PCA/LSI were fitted on its own cells, matched against a separately processed reference",
        _mapping(alone=True),
        lambda o: scm.tl.match_modalities(
            o["query"], mod1="rna", mod2="atac", reference=o["reference"], model=tiny_model()
        ),
        ValueError,
        r"obsm\['X_pca'\] comes from a different fit of the preprocessing than the reference.*"
        r"scmatch\.pp\.recipe_rna\(mdata, mod='rna', reference=reference\)",
    ),
    Case(
        "tl-query-other-fit-than-model",
        TL,
        "a query processed on its own, given to a model trained on a recipe-processed reference",
        _mapping(alone=True, model=True),
        lambda o: scm.tl.match_modalities(o["query"], mod1="rna", mod2="atac", model=o["model"]),
        ValueError,
        r"different fit of the preprocessing than the model's training data.*reference=model\)",
    ),
    Case(
        "tl-counts-missing-reference-genes",
        TL,
        "raw counts holding 10 of the reference's 30 genes, given to a model that preprocesses counts",
        lambda t: _set(_mapping(alone=False, model=True)(t), query=_genes(_mapping(alone=False)(t)["query"], 10)),
        lambda o: scm.tl.match_modalities(o["query"], mod1="rna", mod2="atac", model=o["model"]),
        ValueError,
        r"mdata\['rna'\] has only 10 of the 30 reference features .*at least 50% are needed",
    ),
    Case(
        "recipe-reference-too-few-features",
        "pp.recipe_rna",
        "`reference=` a processed reference, and a query holding 14 of its 30 genes",
        lambda t: {"reference": _mapping(alone=False)(t)["reference"], "query": _count_mudata(slice(0, 12))[:, 16:]},
        lambda o: scm.pp.recipe_rna(o["query"], mod="rna", reference=o["reference"]),
        ValueError,
        r"the query has only 14 of the 30 reference features that enter the embedding .*at least 50%",
    ),
    Case(
        "recipe-reference-not-processed",
        "pp.recipe_rna",
        "`reference=` an AnnData of raw counts that no recipe processed",
        lambda t: {"reference": _count_mudata(slice(0, N_REF))["rna"], "query": _count_mudata(slice(N_REF, N_CELLS))},
        lambda o: scm.pp.recipe_rna(o["query"], mod="rna", reference=o["reference"]),
        ValueError,
        r"was not processed by scmatch\.pp\.recipe_rna.*Run scmatch\.pp\.recipe_rna on the reference first",
    ),
    Case(
        "recipe-reference-other-recipe",
        "pp.recipe_rna",
        "`reference=` an ATAC modality processed by recipe_atac",
        lambda t: {"reference": _mapping(alone=False)(t)["reference"], "query": _count_mudata(slice(0, 12))},
        lambda o: scm.pp.recipe_rna(o["query"], mod="rna", reference=o["reference"]["atac"]),
        ValueError,
        r"processed by scmatch\.pp\.recipe_atac, not scmatch\.pp\.recipe_rna",
    ),
    Case(
        "recipe-rna-no-counts",
        "pp.recipe_rna",
        "all-zero counts (no expressed gene)",
        lambda t: {"adata": counts_adata(np.zeros((10, 6), np.float32))},
        lambda o: scm.pp.recipe_rna(o["adata"]),
        ValueError,
        r"Only 0 genes have counts",
    ),
    Case(
        "recipe-rna-two-cells",
        "pp.recipe_rna",
        "two cells",
        lambda t: {"adata": counts_adata(np.ones((2, 6)))},
        lambda o: scm.pp.recipe_rna(o["adata"]),
        ValueError,
        r"recipe_rna needs at least 3 cells and 3 genes",
    ),
    Case(
        "pp-missing-modality",
        "pp.recipe_atac",
        "a MuData without the named modality",
        _md(),
        lambda o: scm.pp.recipe_atac(o["mdata"], mod="peaks"),
        ValueError,
        r"Modality 'peaks' is not in the MuData",
    ),
    Case(
        "pp-missing-layer",
        "pp.lsi",
        "a layer that does not exist",
        lambda t: {"adata": _counts()},
        lambda o: scm.pp.lsi(o["adata"], layer="counts"),
        ValueError,
        r"Layer 'counts' not found",
    ),
    Case(
        "lsi-mask-not-bool",
        "pp.lsi",
        "`mask_var=` names a non-boolean column",
        lambda t: {"adata": _set_var(_counts(), "score", 1.5)},
        lambda o: scm.pp.lsi(o["adata"], mask_var="score"),
        ValueError,
        r"`\.var\['score'\]` must be boolean",
    ),
    Case(
        "select-peaks-bounds",
        "pp.select_peaks",
        "`max_frac` below `min_frac`",
        lambda t: {"adata": _counts()},
        lambda o: scm.pp.select_peaks(o["adata"], min_frac=0.5, max_frac=0.1),
        ValueError,
        r"`max_frac` \(0\.1\) is below `min_frac` \(0\.5\)",
    ),
    Case(
        "clr-axis",
        "pp.clr",
        "`axis=2`",
        lambda t: {"adata": _counts()},
        lambda o: scm.pp.clr(o["adata"], axis=2),
        ValueError,
        r"`axis` must be 0 \(per protein, across cells\) or 1",
    ),
    Case(
        "pp-not-anndata",
        "pp.tfidf",
        "a numpy array instead of an AnnData",
        lambda t: {"x": np.ones((3, 3))},
        lambda o: scm.pp.tfidf(o["x"]),
        TypeError,
        r"Expected an AnnData or MuData, got ndarray",
    ),
    # -------------------------------------------------------------- io
    Case(
        "io-not-a-folder",
        "io.read_match_modality",
        "a folder that does not exist",
        lambda t: {"folder": t / "missing"},
        lambda o: scm.io.read_match_modality(o["folder"]),
        FileNotFoundError,
        r"is not a directory",
    ),
    Case(
        "io-rows-not-normalised",
        "io.write_prediction",
        "probabilities whose rows do not sum to one",
        lambda t: {"target": t / "pred.h5ad", "P": np.full((3, 3), 0.5)},
        lambda o: scm.io.write_prediction(o["P"], o["target"], dataset_id="toy"),
        ValueError,
        r"sum to 1",
    ),
    # -------------------------------------------------------------- the scmatch command
    Case(
        "cli-missing-input",
        "scmatch (CLI)",
        "an input path that does not exist",
        lambda t: {"files": t},
        lambda o: _cli(
            ["evaluate", "--prediction", str(o["files"] / "nope.h5ad"), "--solution", str(o["files"] / "sol.h5ad")]
        ),
        CLIExit,
        r"exit code 2; stderr: scmatch: error: --prediction .*nope\.h5ad does not exist or is not a file",
    ),
    Case(
        "cli-not-h5ad",
        "scmatch (CLI)",
        "input files that are not .h5ad (text files)",
        lambda t: {"files": _challenge_files(t, text=True), "folder": t},
        lambda o: _cli(_match_args(o["files"], o["folder"] / "out.h5ad")),
        CLIExit,
        r"exit code 2; stderr: scmatch: error: --train-mod1 .* is not an HDF5 file, so neither an AnnData \.h5ad",
    ),
    Case(
        "cli-output-folder-missing",
        "scmatch (CLI)",
        "an output path in a folder that does not exist",
        lambda t: {"files": _challenge_files(t), "folder": t},
        lambda o: _cli(_match_args(o["files"], o["folder"] / "no" / "out.h5ad")),
        CLIExit,
        r"exit code 2; stderr: scmatch: error: --output .* must be a file path in an existing folder",
    ),
    Case(
        "cli-top-k",
        "scmatch (CLI)",
        "`--top-k 5000` (the challenge allows 1000)",
        lambda t: {"files": _challenge_files(t), "folder": t},
        lambda o: _cli(_match_args(o["files"], o["folder"] / "out.h5ad", "--top-k", "5000")),
        CLIExit,
        r"exit code 2; stderr: scmatch: error: --top-k must be between 1 and 1000",
    ),
    Case(
        "cli-shape-mismatch",
        "scmatch (CLI)",
        "a prediction and a solution of different shapes",
        _prediction_pair,
        lambda o: _cli(["evaluate", "--prediction", str(o["pred"]), "--solution", str(o["sol"])]),
        CLIExit,
        r"exit code 2; stderr: scmatch: error: Prediction has shape \(3, 3\) but the solution \(4, 4\)",
    ),
]


def _nan(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[7, 2] = np.nan
    return x


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _zero_row(adata: ad.AnnData) -> ad.AnnData:
    adata.X[5] = 0
    return adata


def _set_obs(mdata: md.MuData, column: str, value: Any, *, mod: str | None = None) -> md.MuData:
    for name in (mod,) if mod else ("rna", "atac"):
        mdata[name].obs[column] = value
    return mdata


def _set_obsm(mdata: md.MuData, mod: str, key: str, value: Any) -> md.MuData:
    mdata[mod].obsm[key] = value
    return mdata


def _set_var(adata: ad.AnnData, column: str, value: Any) -> ad.AnnData:
    adata.var[column] = value
    return adata


# ---------------------------------------------------------------------------------------------------- running
def _watched(objects: dict[str, Any]) -> dict[str, Any]:
    """Everything a case hands to the call, plus the shared fitted model (never to be changed by any call)."""
    watched = dict(objects)
    for name, value in objects.items():
        if isinstance(value, dict):  # e.g. the challenge files
            watched.pop(name)
            watched.update({f"{name}.{k}": v for k, v in value.items()})
    watched["shared fitted model"] = fitted_model()
    return watched


def run_case(case: Case, tmp: Path) -> tuple[str, str]:
    """Run ``case`` in folder ``tmp``; check its error and that every input is unchanged.

    Returns the exception's type name and message.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # building inputs (duplicate names, renamed modalities) makes mudata warn
        objects = case.build(tmp)
    before = {name: snapshot(value) for name, value in _watched(objects).items()}
    try:
        case.call(objects)
    except case.error as err:
        caught = err
    else:
        raise AssertionError(f"{case.id}: no {case.error.__name__} was raised")
    message = str(caught)
    if not re.search(case.match, message, flags=re.DOTALL):
        raise AssertionError(f"{case.id}: message {message!r} does not match {case.match!r}")
    for name, value in _watched(objects).items():
        assert_unchanged(value, before[name], where=f"{case.id}: {name}")
    return type(caught).__name__, message


#: a recipe fit's fingerprint (16 hex digits): it hashes fitted numbers, which differ in their last bits between
#: releases of numpy, SciPy and scikit-learn, so the docs show a placeholder and the page holds on every version
FINGERPRINT = re.compile(r"\b[0-9a-f]{16}\b")


def message_for_docs(message: str, tmp: Path) -> str:
    """The message as the table shows it: ``<tmp>``, ``<fingerprint>`` in their places, whitespace collapsed."""
    message = message.replace(str(tmp.resolve()), "<tmp>").replace(str(tmp), "<tmp>")
    return " ".join(FINGERPRINT.sub("<fingerprint>", message).split())
