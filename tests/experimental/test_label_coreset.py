import numpy as np
import pytest

from scmatch.experimental._label_coreset import stratified_coreset


def test_every_label_keeps_a_cell_and_weights_sum_per_label():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(700, int), np.ones(290, int), np.full(10, 2)]
    X = rng.normal(size=(1000, 5))
    idx, w = stratified_coreset(X, labels, fraction=0.02, rng=rng)
    assert np.all(np.diff(idx) > 0)
    # 2% of 1000 = 20, split 14 / 6 / 0.2 -> the rare label still gets its one cell
    assert np.bincount(labels[idx]).tolist() == [14, 6, 1]
    for lab, size in enumerate((700, 290, 10)):
        assert w[labels[idx] == lab].sum() == pytest.approx(size)


@pytest.mark.parametrize("method", ["wasserstein", "craig"])
def test_facility_location_represents_both_modes_of_a_label(method):
    """One label made of two far-apart blobs (900 and 100 cells): both are represented, each weighted by its size."""
    rng = np.random.default_rng(1)
    X = np.r_[rng.normal(size=(900, 3)), 20 + rng.normal(size=(100, 3))]
    idx, w = stratified_coreset(X, np.zeros(1000, int), fraction=0.01, method=method, rng=rng)
    far = idx >= 900
    assert len(idx) == 10 and 1 <= far.sum() <= 3
    assert w[far].sum() == pytest.approx(100) and w[~far].sum() == pytest.approx(900)


def test_chunks_bound_the_blocks_and_keep_the_budget():
    rng = np.random.default_rng(2)
    labels = np.r_[np.zeros(2500, int), np.ones(500, int)]
    idx, w = stratified_coreset(rng.normal(size=(3000, 4)), labels, fraction=0.1, chunk_size=600, rng=rng)
    assert len(idx) == 300 and len(np.unique(idx)) == 300
    assert np.bincount(labels[idx]).tolist() == [250, 50]
    assert w.sum() == pytest.approx(3000)


def test_stratified_coreset_rejects_bad_settings():
    X, labels = np.zeros((10, 2)), np.zeros(10, int)
    with pytest.raises(ValueError, match="method"):
        stratified_coreset(X, labels, fraction=0.5, method="kmeans", rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="fraction"):
        stratified_coreset(X, labels, fraction=0, rng=np.random.default_rng(0))
