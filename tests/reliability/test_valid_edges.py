"""Edge cases that are valid input: they must work, and agree with their plain float counterparts."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

import scmatch as scm
from scmatch.model._fit import MIN_VALIDATION_PAIRS
from scmatch.model.nn._modules import CrossAttentionMatcher

from .cases import LSIS, N_CELLS, N_REF, PCS, TINY_PLAN, counts_adata, fitted_model, reps, tiny_model, toy_mudata


def _rows_are_distributions(P, top_k: int) -> None:
    P = sp.csr_matrix(P)
    assert np.all(P.data >= 0)
    np.testing.assert_allclose(np.asarray(P.sum(axis=1)).ravel(), 1.0, rtol=1e-6)
    assert np.diff(P.indptr).max() <= top_k


def _match(mdata, **kwargs):
    scm.tl.match_modalities(mdata, reference="is_reference", model=fitted_model(), **kwargs)
    return mdata.obsp["match_probabilities"]


def test_fewer_cells_than_batch_size_same_seed_and_integer_input(monkeypatch):
    """50 reference pairs with batch_size=64: 10 are held out and the batch shrinks to the other 40. The same seed on
    integer-typed input gives exactly the probabilities of the float model."""
    model = fitted_model()
    assert TINY_PLAN.batch_size > N_REF
    assert len(model.history_["train_loss"]) == TINY_PLAN.max_epochs
    assert np.all(np.isfinite(model.history_["train_loss"]))

    sizes = defaultdict(list)  # per member network: the members train side by side, in threads
    original = CrossAttentionMatcher.batch_similarity

    def recording(self, x1, x2, **kwargs):
        sizes[id(self)].append(x1.shape[0])
        return original(self, x1, x2, **kwargs)

    monkeypatch.setattr(CrossAttentionMatcher, "batch_similarity", recording)
    x1, x2 = reps()
    again = tiny_model().fit(
        x1[:N_REF].astype(np.int64), x2[:N_REF].astype(np.int32), feature_names1=PCS, feature_names2=LSIS
    )
    n_val = MIN_VALIDATION_PAIRS
    # each member: one training batch, then validation, every epoch
    assert len(sizes) == again.n_models == 3
    assert all(
        seen[: 2 * TINY_PLAN.max_epochs] == [N_REF - n_val, n_val] * TINY_PLAN.max_epochs for seen in sizes.values()
    )
    a = model.predict_proba(x1[N_REF:], x2[N_REF:])
    b = again.predict_proba(x1[N_REF:].astype(np.int64), x2[N_REF:].astype(np.int16))
    assert (a != b).nnz == 0
    assert a.nnz > 0
    for name, tensor in model.module_.state_dict().items():
        assert torch.equal(tensor, again.module_.state_dict()[name]), name


def test_top_k_above_the_number_of_candidates():
    x1, x2 = reps()
    P = fitted_model().predict_proba(x1[N_REF:], x2[N_REF : N_REF + 5], top_k=1000)
    assert P.shape == (N_CELLS - N_REF, 5)
    _rows_are_distributions(P, top_k=5)
    full = _match(toy_mudata(), top_k=1000)
    _rows_are_distributions(full[N_REF:][:, N_REF:], top_k=N_CELLS - N_REF)
    assert full[:N_REF].nnz == 0


def test_integer_sparse_and_named_representations_agree():
    base = _match(toy_mudata())
    as_int = toy_mudata()
    as_int["rna"].obsm["X_pca"] = as_int["rna"].obsm["X_pca"].astype(np.int64)
    as_sparse = toy_mudata()
    as_sparse["atac"].obsm["X_lsi"] = sp.csr_matrix(as_sparse["atac"].obsm["X_lsi"])
    reordered = toy_mudata()  # named columns in another order: aligned by name to the model's features
    rna = reordered["rna"]
    rna.obsm["X_pca"] = pd.DataFrame(rna.obsm["X_pca"], index=rna.obs_names, columns=PCS)[PCS[::-1]]
    for variant in (as_int, as_sparse, reordered):
        other = _match(variant)
        assert (other != base).nnz == 0


def test_named_reference_and_query_aligned_by_name():
    reference, query = toy_mudata(), toy_mudata()
    for mdata, columns in ((reference, PCS), (query, PCS[::-1])):
        rna = mdata["rna"]
        rna.obsm["X_pca"] = pd.DataFrame(rna.obsm["X_pca"], index=rna.obs_names, columns=PCS)[columns]
    scm.tl.match_modalities(query, reference=reference, model=fitted_model())
    plain = toy_mudata()
    scm.tl.match_modalities(plain, reference=toy_mudata(), model=fitted_model())
    assert (query.obsp["match_probabilities"] != plain.obsp["match_probabilities"]).nnz == 0


def test_all_zero_query_cell_is_matched():
    mdata = toy_mudata()
    mdata["rna"].obsm["X_pca"][N_REF + 1] = 0
    P = _match(mdata)
    _rows_are_distributions(P[N_REF:][:, N_REF:], top_k=100)


def test_tfidf_integer_dense_and_float_sparse_agree():
    X = np.random.default_rng(0).poisson(1.5, size=(20, 15))
    X[:, 0] += 1
    as_int, as_sparse = counts_adata(X.astype(np.int64)), counts_adata(sp.csr_matrix(X.astype(np.float32)))
    scm.pp.tfidf(as_int)
    scm.pp.tfidf(as_sparse)
    assert sp.issparse(as_sparse.X) and not sp.issparse(as_int.X)
    np.testing.assert_allclose(as_int.X, as_sparse.X.toarray(), rtol=1e-6)
