"""Every plot drawn from one real match on the CITE-seq starter (RNA -> ADT, reference s1d1, query s1d2)."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import mudata as md
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

import scmatch as scm
from scmatch.model import MatchModel, TrainingPlan


@pytest.fixture(scope="module")
def cite(cite_path):
    """The starter matched once for this module (small model, 20 epochs: about 15 s on 2 cores)."""
    with warnings.catch_warnings(), md.set_options(pull_on_update=False):
        warnings.simplefilter("ignore", UserWarning)  # mudata: var names shared across modalities
        mdata = md.read_h5mu(cite_path)
    for mod in ("rna", "adt"):
        mdata[mod].obs["is_reference"] = (mdata[mod].obs["batch"] == "s1d1").to_numpy()
    scm.pp.recipe_rna(mdata, mod="rna")
    scm.pp.recipe_protein(mdata, mod="adt")
    model = MatchModel(n_tokens=4, d_model=32)
    model.plan = TrainingPlan(max_epochs=20, batch_size=128, progress_bar=False)
    scm.tl.match_modalities(mdata, mod1="rna", mod2="adt", reference="is_reference", batch_key="batch", model=model)
    return mdata, model


def _confusion_by_pandas(mdata) -> pd.DataFrame:
    """Mean mass per (rna type, adt type), computed without scmatch.pl."""
    P, rows, cols = scm.tl.query_block(mdata)
    lab1 = mdata["rna"].obs["cell_type"].astype(str).reindex(mdata.obs_names[rows]).to_numpy()
    lab2 = mdata["adt"].obs["cell_type"].astype(str).reindex(mdata.obs_names[cols]).to_numpy()
    per_cell = pd.DataFrame(P.toarray(), columns=lab2).T.groupby(level=0).sum().T  # cells x adt types
    return per_cell.groupby(lab1).mean()


@pytest.mark.slow
def test_every_plot_on_the_cite_starter(cite):
    mdata, model = cite
    scores = scm.tl.evaluate_match(mdata, labels_key="cell_type")
    n_query = int((~mdata["rna"].obs["is_reference"]).sum())
    assert n_query == 289

    # cell-type heatmap: the drawn values are the aggregated matrix, and its diagonal dominates
    ax = scm.pl.match_heatmap(mdata, groupby="cell_type", show=False)
    order = [t.get_text().rsplit(" (", 1)[0] for t in ax.get_yticklabels()]
    drawn = ax.images[0].get_array().filled(np.nan)
    expected = _confusion_by_pandas(mdata).reindex(index=order, columns=order, fill_value=0.0)
    np.testing.assert_allclose(drawn, expected.to_numpy(), atol=1e-9)
    np.testing.assert_allclose(np.nansum(drawn, axis=1), 1.0, rtol=1e-5)
    counts = mdata["rna"].obs.loc[~mdata["rna"].obs["is_reference"], "cell_type"].astype(str).value_counts()
    weights = counts.reindex(order).to_numpy(float)
    diagonal = float(np.sum(np.diag(drawn) * weights) / weights.sum())
    assert diagonal == pytest.approx(scores["celltype_mass"], rel=1e-6)
    chance = float(np.sum((weights / weights.sum()) ** 2))  # mass on the own type under random matching
    assert diagonal > 3 * chance
    big = [k for k, c in enumerate(order) if counts[c] >= 20]  # CD4+ T activated, CD14+ Mono, NK
    assert len(big) == 3 and all(np.argmax(drawn[k]) == k for k in big)
    plt.close("all")

    # cell-level heatmap
    ax = scm.pl.match_heatmap(mdata, groupby="cell_type", level="cell", n_cells=80, show=False)
    assert ax.images[0].get_array().shape == (80, 80)
    plt.close("all")

    # scores: the top-k curve at k = 1, 5, 10 is scmatch.metrics' top-k
    fig = scm.pl.match_scores(mdata, groupby="cell_type", show=False)
    curve = fig.axes[0].get_lines()[0]
    ks, acc = np.asarray(curve.get_xdata()), np.asarray(curve.get_ydata())
    for k in (1, 5, 10):
        assert acc[ks == k][0] == pytest.approx(scores[f"top{k}"], rel=1e-9)
    assert len(fig.axes[2].get_yticklabels()) == counts.size
    plt.close("all")

    # embedding through scanpy's UMAP: every cell of both modalities, one legend entry per type
    ax = scm.pl.embedding(mdata, color="cell_type", n_pairs=30, show=False)
    n_points = sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))
    assert n_points == 1200
    assert ax.get_xlabel() == "UMAP1"
    n_types = mdata["rna"].obs["cell_type"].nunique()
    assert len(ax.get_legend().get_texts()) == n_types + 2  # types, then correct / wrong pair lines
    plt.close("all")

    # training history from the fitted model and from the MuData agree
    ax = scm.pl.training_history(model, show=False)
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), mdata.uns["match"]["history"]["train_loss"])
    assert len(ax.figure.axes[-1].get_lines()[0].get_ydata()) == len(model.history_["val_score"])
