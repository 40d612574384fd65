import numpy as np
import ot
import pytest
import torch

from scmatch.model.nn._metric import Metric, euclidean_pairwise, histogram, w1_paired, w1_pairwise
from scmatch.model.nn._modules import CrossAttentionMatcher
from scmatch.model.solvers._search import distance_candidates


def w1_numpy(x: np.ndarray, y: np.ndarray, *, temperature: float = 0.1) -> np.ndarray:
    """NumPy wrapper of :func:`w1_pairwise` in float64: the reference the tests compare with POT."""
    with torch.no_grad():
        x64, y64 = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
        return w1_pairwise(x64, y64, temperature=temperature).numpy()


def _hist(x, t):
    e = np.exp((x - x.max()) / t)
    return e / e.sum()


@pytest.mark.parametrize(("d", "t"), [(2, 1.0), (8, 0.1), (33, 0.5)])
def test_w1_matches_pot_wasserstein_1d(d, t):
    rng = np.random.default_rng(d)
    x, y = rng.normal(size=(5, d)), rng.normal(size=(4, d))
    ours = w1_numpy(x, y, temperature=t)
    support = np.arange(d) / (d - 1)
    for i in range(5):
        for j in range(4):
            ref = ot.wasserstein_1d(support, support, _hist(x[i], t), _hist(y[j], t), p=1)
            assert ours[i, j] == pytest.approx(ref, abs=1e-12)


def test_w1_matches_pot_emd2():
    rng = np.random.default_rng(1)
    d = 10
    support = np.arange(d, dtype=float) / (d - 1)
    cost = np.abs(support[:, None] - support[None, :])
    x, y = rng.normal(size=(3, d)), rng.normal(size=(3, d))
    ours = w1_numpy(x, y, temperature=0.2)
    for i in range(3):
        ref = ot.emd2(_hist(x[i], 0.2), _hist(y[i], 0.2), cost)
        assert ours[i, i] == pytest.approx(ref, abs=1e-9)


def test_w1_hand_case_and_paired():
    # all mass on the first bin vs all on the last: the whole unit interval
    x = torch.tensor([[50.0, 0.0, 0.0, 0.0]])
    y = torch.tensor([[0.0, 0.0, 0.0, 50.0]])
    assert float(w1_pairwise(x, y, temperature=1.0)) == pytest.approx(1.0, abs=1e-6)
    # half the mass moved by one bin of width 1/3: 1/6
    h = torch.log(torch.tensor([[0.5, 0.5, 1e-30, 1e-30]], dtype=torch.float64))
    g = torch.log(torch.tensor([[0.5, 1e-30, 0.5, 1e-30]], dtype=torch.float64))
    assert float(w1_pairwise(h, g, temperature=1.0)) == pytest.approx(1 / 6, abs=1e-9)
    rng = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 7, generator=rng), torch.randn(6, 7, generator=rng)
    torch.testing.assert_close(w1_paired(a, b), w1_pairwise(a, b).diagonal())
    assert torch.allclose(histogram(a).sum(-1), torch.ones(6))


def test_w1_is_differentiable():
    rng = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, dtype=torch.float64, generator=rng, requires_grad=True)
    y = torch.randn(4, 5, dtype=torch.float64, generator=rng, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: w1_pairwise(a, b, temperature=0.5), (x, y))


def test_euclidean_pairwise_matches_scipy():
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(6, 3))
    out = euclidean_pairwise(torch.as_tensor(x), torch.as_tensor(y)).numpy()
    np.testing.assert_allclose(out, cdist(x, y), atol=1e-6)


def test_distance_candidates_are_the_nearest_by_w1():
    torch.manual_seed(0)
    module = CrossAttentionMatcher(5, 4, d_model=16, d_embed=8, n_heads=2, alpha=0.0).eval()
    e1 = torch.nn.functional.normalize(torch.randn(7, 8), dim=-1)
    e2 = torch.nn.functional.normalize(torch.randn(9, 8), dim=-1)
    S = distance_candidates(module, e1, e2, metric=Metric("wasserstein", 0.1), n_candidates=3).toarray()
    D = w1_pairwise(e1, e2, temperature=0.1).numpy()
    for i in range(7):
        kept = np.flatnonzero(S[i])
        assert set(kept) == set(np.argsort(D[i])[:3])
        np.testing.assert_allclose(S[i, kept], -D[i, kept], atol=1e-6)


def test_metric_refuses_an_unknown_name():
    with pytest.raises(ValueError, match="Unknown metric 'manhattan'"):
        Metric("manhattan")
