import anndata as ad
import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import KNeighborsClassifier

import scmatch as scm


def _adata(n=400, seed=0):
    """Three cell types separated along 2 of 50 dimensions, under noise in all 50."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    X = rng.normal(size=(n, 50))
    X[:, :2] += 1.5 * np.stack([np.cos(2 * np.pi * labels / 3), np.sin(2 * np.pi * labels / 3)], 1)
    obs = pd.DataFrame({"ct": pd.Categorical(labels.astype(str)), "train": np.arange(n) < n // 2})
    obs.index = [f"c{i}" for i in range(n)]
    adata = ad.AnnData(obs=obs)
    adata.obsm["X_pca"] = X.astype(np.float32)
    return adata


def _knn_accuracy(adata, rep, metric="euclidean"):
    train = adata.obs["train"].to_numpy()
    y = adata.obs["ct"].to_numpy()
    clf = KNeighborsClassifier(n_neighbors=10, metric=metric).fit(adata.obsm[rep][train], y[train])
    return clf.score(adata.obsm[rep][~train], y[~train])


@pytest.mark.parametrize(("loss", "gain"), [("etriplet", 0.05), ("wtriplet", 0.02)])
def test_learn_metric_improves_held_out_knn(loss, gain):
    adata = _adata()
    scm.experimental.learn_metric(adata, labels_key="ct", loss=loss, train_key="train", epochs=30, random_state=0)
    metric = adata.uns["metric"]["neighbors_metric"]
    assert metric == ("manhattan" if loss.startswith("w") else "euclidean")
    emb = adata.obsm["X_metric"]
    assert emb.shape == (400, 32 if metric == "euclidean" else 31)
    base, learned = _knn_accuracy(adata, "X_pca"), _knn_accuracy(adata, "X_metric", metric)
    assert base == pytest.approx(0.66)  # raw kNN accuracy on the noisy input
    assert learned > base + gain
    assert len(adata.uns["metric"]["train_loss"]) == 30


def test_wasserstein_embedding_manhattan_is_w1():
    adata = _adata(100)
    scm.experimental.learn_metric(adata, labels_key="ct", loss="wtriplet", epochs=1, key_added="w")
    emb = adata.obsm["X_w"]
    # the cumulative histograms are monotone, end below 1 / (d - 1), and their L1 distance is W1 in [0, 1]
    assert np.all(np.diff(emb, axis=1) >= -1e-7) and emb.max() <= 1 / 31 + 1e-6
    l1 = np.abs(emb[:5, None] - emb[None, :5]).sum(-1)
    assert np.all((l1 >= 0) & (l1 <= 1))


def test_learn_metric_validates_before_writing():
    adata = _adata(50)
    with pytest.raises(ValueError, match="labels_key"):
        scm.experimental.learn_metric(adata, labels_key="nope")
    with pytest.raises(ValueError, match="loss"):
        scm.experimental.learn_metric(adata, labels_key="ct", loss="cosine")
    with pytest.raises(ValueError, match="train_key"):
        scm.experimental.learn_metric(adata, labels_key="ct", train_key="ct")
    assert "X_metric" not in adata.obsm
    out = scm.experimental.learn_metric(adata, labels_key="ct", epochs=1, copy=True)
    assert "X_metric" in out.obsm and "X_metric" not in adata.obsm


@pytest.mark.parametrize("progress_bar", [True, False])
def test_learn_metric_progress_bar(capsys, progress_bar):
    adata = _adata(60)
    scm.experimental.learn_metric(adata, labels_key="ct", epochs=2, progress_bar=progress_bar)
    err = capsys.readouterr().err
    assert ("learn_metric" in err and "loss=" in err) is progress_bar


@pytest.mark.parametrize("loss", ["etriplet", "econtrastive", "wtriplet", "wcontrastive"])
@pytest.mark.parametrize("coreset", ["wasserstein", "craig", "random"])
def test_coreset_training_runs_with_every_loss(loss, coreset):
    adata = _adata(400)
    scm.experimental.learn_metric(
        adata, labels_key="ct", loss=loss, train_key="train", epochs=4, batch_size=25, coreset=coreset,
        coreset_fraction=0.25, coreset_every=2, progress_bar=False,
    )  # fmt: skip
    uns = adata.uns["metric"]
    # 25% of the 200 training cells, 2 minibatches of 25 per epoch
    assert uns["coreset_size"] == 50 and uns["n_steps"] == 8
    assert uns["params"]["coreset"] == coreset and uns["coreset_seconds"] <= uns["fit_seconds"]
    assert adata.obsm["X_metric"].shape[0] == 400 and np.isfinite(adata.obsm["X_metric"]).all()


def test_coreset_training_learns_from_a_fifth_of_the_cells():
    adata = _adata()
    scm.experimental.learn_metric(
        adata, labels_key="ct", train_key="train", epochs=30, coreset="wasserstein", coreset_fraction=0.2,
        batch_size=40, random_state=0, progress_bar=False,
    )  # fmt: skip
    assert adata.uns["metric"]["n_steps"] == 30  # one minibatch of the 40 chosen cells per epoch
    # measured 0.75 (all 200 cells, five times the steps: 0.76); the input space gives 0.66
    assert _knn_accuracy(adata, "X_metric") > 0.66 + 0.05


def test_coreset_settings_are_validated_before_writing():
    adata = _adata(50)
    with pytest.raises(ValueError, match="coreset"):
        scm.experimental.learn_metric(adata, labels_key="ct", coreset="kmeans")
    with pytest.raises(ValueError, match="coreset_fraction"):
        scm.experimental.learn_metric(adata, labels_key="ct", coreset="random", coreset_fraction=0)
    with pytest.raises(ValueError, match="coreset_every"):
        scm.experimental.learn_metric(adata, labels_key="ct", coreset="random", coreset_every=0)
    assert "X_metric" not in adata.obsm and "metric" not in adata.uns
