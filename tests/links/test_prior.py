import numpy as np
import pytest
import scipy.sparse as sp
from anndata import AnnData

from scmatch.links import PairPrior, choose_weight, linked_values, profiles
from scmatch.model import MatchModel, TrainingPlan


def test_profiles_give_pearson_correlations_within_each_group():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(40, 6)) * [1, 2, 3, 4, 5, 6] + [10, 0, -5, 1, 2, 3]
    groups = np.repeat(["a", "b"], 20)
    z = profiles(values, groups=groups)
    assert np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-6)
    # by hand: z-score each column within group a, then correlate two cells across the columns
    block = values[:20]
    za = (block - block.mean(0)) / block.std(0)
    assert z[0] @ z[1] == pytest.approx(np.corrcoef(za[0], za[1])[0, 1], abs=1e-5)
    # a constant cell after standardisation has no opinion
    flat = np.tile([1.0, 2.0, 3.0], (5, 1))
    assert np.all(profiles(flat) == 0)


def test_linked_values_from_counts():
    rna = AnnData(sp.csr_matrix(np.array([[1, 3, 6], [0, 0, 10]], dtype=np.float32)))
    rna.var_names = ["G1", "G2", "G3"]
    protein = AnnData(np.array([[5, 0], [1, 1]], dtype=np.float32))
    protein.var_names = ["P1", "P2"]
    import pandas as pd

    links = pd.DataFrame({"protein": ["P1", "P2"], "genes": ["G1;G2", "G3"]})
    v1, v2 = linked_values(rna, protein, links)
    assert np.allclose(v1, np.log1p(np.array([[4 / 10, 6 / 10], [0, 1]]) * 1e4))
    log = np.log1p(np.array([[5, 0], [1, 1]]))
    assert np.allclose(v2, log - log.mean(axis=1, keepdims=True))
    protein.X = protein.X + 0.5  # not counts
    with pytest.raises(ValueError, match="non-integer"):
        linked_values(rna, protein, links)


def test_prior_adds_on_candidates_and_checks_shapes():
    z1 = np.eye(3, dtype=np.float32)
    prior = PairPrior(z1, z1, 2.0)
    S = sp.csr_matrix(np.array([[0.1, 0.0], [0.0, 0.3]]))  # rows 0, 2 x cols 0, 2, two candidates
    out = prior.added(S, np.array([0, 2]), np.array([0, 2])).toarray()
    assert np.allclose(out, [[2.1, 0.0], [0.0, 2.3]])
    with pytest.raises(ValueError, match="one profile per row"):
        prior.check_shapes(3, 4)
    with pytest.raises(ValueError, match=">= 0"):
        PairPrior(z1, z1, -1.0)


def _linked_pairs(n: int, *, informative: bool, seed: int = 0):
    """Pairs whose network inputs are a weak view of a latent, and linked values that see the cell itself."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 4))
    x1 = latent @ rng.normal(size=(4, 12)) + 2.0 * rng.normal(size=(n, 12))
    x2 = latent @ rng.normal(size=(4, 10)) + 2.0 * rng.normal(size=(n, 10))
    own = rng.normal(size=(n, 8))  # each cell's own values on 8 linked features
    v1 = own + 0.5 * rng.normal(size=(n, 8))
    v2 = (own if informative else rng.normal(size=(n, 8))) + 0.5 * rng.normal(size=(n, 8))
    return x1, x2, v1, v2


@pytest.mark.parametrize("informative", [True, False])
def test_weight_is_chosen_on_held_out_pairs(informative):
    x1, x2, v1, v2 = _linked_pairs(600, informative=informative)
    model = MatchModel(n_tokens=4, d_model=32).fit(
        x1[:400], x2[:400], plan=TrainingPlan(max_epochs=10, progress_bar=False), random_state=0
    )
    chosen = choose_weight(model, x1[:400], x2[:400], v1[:400], v2[:400])
    truth = np.arange(200)
    base = model.predict_proba(x1[400:], x2[400:], top_k=200)
    if not informative:  # links that say nothing about the partner get no weight, before any matching
        assert chosen["weight"] == 0 and "do not correlate" in chosen["reason"] and "n_pairs" not in chosen
        assert abs(chosen["pair_correlation_t"]) < 3
        return
    # each linked feature correlates 0.8 between a cell's two views (noise sd 0.5 on unit-variance values), far
    # above the spread of mismatched pairs' correlations over 8 features
    assert chosen["pair_correlation"] == pytest.approx(0.8, abs=0.05) and chosen["pair_separation"] > 1.5
    assert chosen["weight"] > 0 and chosen["score_with"] > 2 * chosen["score_without"]
    prior = PairPrior(profiles(v1[400:]), profiles(v2[400:]), chosen["weight"])
    linked = model.predict_proba(x1[400:], x2[400:], top_k=200, prior=prior)
    assert linked[truth, truth].mean() > 2 * base[truth, truth].mean()


def test_faint_links_are_not_weighed():
    """Thousands of pairs make a faint linked correlation significant; its size (the separation) decides."""
    rng = np.random.default_rng(0)
    n, k = 3000, 200
    own = rng.normal(size=(n, k))
    v1 = own + rng.normal(size=(n, k))
    v2 = 0.05 * own + rng.normal(size=(n, k))  # each linked feature correlates about 0.035 between the views
    x = rng.normal(size=(n, 4))
    faint = choose_weight(None, x, x, v1, v2)  # refused before any network is asked (there is none here)
    assert faint["pair_correlation_t"] > 10 and faint["pair_correlation"] == pytest.approx(0.035, abs=0.01)
    # mismatched pairs' correlations spread about 1 / sqrt(k) = 0.07: the partner stands half of that above them
    assert faint["pair_separation"] == pytest.approx(0.5, abs=0.15)
    assert faint["weight"] == 0 and "too weakly" in faint["reason"] and "n_pairs" not in faint
