"""Candidate search: memory-bounded scoring of N x M cell pairs on each cell's best candidates.

The self-attention term ``i0 . c0`` is computed for all pairs, one chunk of rows at a time, keeping only each
row's ``n_candidates`` best columns. The cross-attention term, which needs both cells' tokens, is then computed
only for those candidates to re-rank them. Peak memory is O((N + M) * n_candidates + chunk_rows * M).

``search="pynndescent"`` replaces the exhaustive ``i0 . c0`` search with pynndescent's approximate
nearest-neighbour graph (the library scanpy's ``neighbors`` uses): O((N + M) * n_candidates) work instead of
O(N * M), at the price of missing a few true candidates (see :func:`ann_candidates`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from ..._utils import _dense
from .._numbers import check_choice, check_numbers
from ..nn._metric import Metric
from ..nn._modules import CrossAttentionMatcher

#: entries of one chunk of the dense ``i0 . c0`` block (float32), ~64 MB
CHUNK_ENTRIES = 16_000_000
#: candidate searches: exhaustive (chunked) or approximate (pynndescent)
SEARCHES = ("exact", "pynndescent")


@dataclass(frozen=True, kw_only=True)
class Search:
    """How a model finds each cell's candidate partners when it matches cells (and calibrates on held-out pairs).

    The self-attention term ``i0 . c0`` ranks every mod2 cell for each mod1 cell; the ``n_candidates`` best are
    kept, and the cross-attention term (which needs both cells' tokens) is added to the best ``n_cross`` of them.

    Parameters
    ----------
    method
        ``"exact"`` (every pair's ``i0 . c0``, in memory-bounded chunks) or ``"pynndescent"`` (an approximate
        nearest-neighbour graph: sub-quadratic, a few true candidates may be missed; see benchmarks/README.md for
        recall and speed). Cosine losses only.
    n_candidates
        Candidates kept per cell; the probabilities live on them (``predict_proba`` keeps at least ``top_k``).
    n_cross
        Compute the cross term only for each cell's ``n_cross`` best candidates by ``i0 . c0``; its other candidates
        get the smallest cross term computed for that cell, as in training (:attr:`TrainingPlan.n_cross`), so they
        stay in the support below them. ``None`` (the default) computes it for every candidate. 50 of 100 halves
        the cost of re-ranking; it kept the match score at 10,000 x 10,000 cells (0.1149) but lowered it at
        100,000 x 100,000 (0.0260 to 0.0244) and by about 1% on the real sets (benchmarks/README.md, Speed and
        Accuracy).

    Examples
    --------
    >>> from scmatch.model import Search
    >>> Search(method="pynndescent", n_candidates=50)
    Search(method='pynndescent', n_candidates=50, n_cross=None)
    """

    method: str = "exact"
    n_candidates: int = 100
    n_cross: int | None = None

    def __post_init__(self) -> None:
        check_choice("search method", self.method, SEARCHES)
        check_numbers(counts={"n_candidates": self.n_candidates})
        if self.n_cross is not None:
            check_numbers(counts={"n_cross": self.n_cross})


def iter_chunks(n: int, size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` rows."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


@torch.no_grad()
def encode(
    module: CrossAttentionMatcher,
    X: np.ndarray | sp.spmatrix,
    *,
    modality: int,
    device: torch.device,
    chunk_size: int = 4096,
    keep_tokens: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Unit embeddings (and optionally tokens, on CPU) of all rows of ``X``, densifying one chunk at a time."""
    embeddings, tokens = [], []
    for part in iter_chunks(X.shape[0], chunk_size):
        x = torch.as_tensor(_dense(X[part]), dtype=torch.float32, device=device)
        tok = module.tokens(x, modality)
        embeddings.append(module.embed(tok, modality).cpu())
        if keep_tokens:
            tokens.append(tok.cpu())
    emb = torch.cat(embeddings) if embeddings else torch.empty(0, module.head1.out_features)
    return emb, (torch.cat(tokens) if keep_tokens else None)


def ann_candidates(
    emb1: torch.Tensor, emb2: torch.Tensor, k: int, *, random_state: int = 0, epsilon: float = 0.2
) -> torch.Tensor:
    """Indices (n1 x k) of each row of ``emb1``'s approximate ``k`` nearest rows of ``emb2`` (pynndescent).

    For unit-length embeddings the Euclidean order is the ``i0 . c0`` order, so the graph is built with the
    Euclidean metric (pynndescent's fastest). ``epsilon`` widens the graph search (more recall, more time).
    """
    from pynndescent import NNDescent

    index = NNDescent(
        emb2.numpy(), metric="euclidean", n_neighbors=max(15, min(64, k)), random_state=random_state, n_jobs=1
    )
    idx, _ = index.query(emb1.numpy(), k=k, epsilon=epsilon)
    return torch.as_tensor(idx.astype(np.int64))


def _rerank(module, val, idx, tokens1, tokens2, device, rerank_chunk: int, n_rerank: int | None = None) -> None:
    """Add ``alpha * i1 . c1`` to the candidate values in place.

    With ``n_rerank`` smaller than the candidates per row, only each row's ``n_rerank`` best candidates by their
    current value (``i0 . c0``) get their cross term; the row's other candidates get the smallest cross term
    computed in the row, as in training (``TrainingPlan(n_cross=...)``), so they keep their order below.

    What the cross term needs from each cell is computed once per cell
    (:meth:`CrossAttentionMatcher.cross_projections`); for each row's candidates only their tokens and a few
    per-cell numbers are gathered, and the rest is one batched product per row chunk plus elementwise work
    (:meth:`CrossAttentionMatcher.candidate_cross_similarity`). An ensemble is re-ranked one member at a time (each
    adds ``alpha / K`` times its own cross term, with its own fill), so only one member's per-cell tensors of the
    candidate cells are held at once: about 140 MB per 100,000 cells with the default widths.
    """
    members = getattr(module, "members", None)
    if members is None:
        jobs = [(module, tokens1, tokens2, module.alpha)]
    else:
        weight = module.alpha / len(members)
        split = zip(members, module._split(tokens1), module._split(tokens2), strict=True)
        jobs = [(member, tok1, tok2, weight) for member, tok1, tok2 in split]
    pos = None
    if n_rerank is not None and n_rerank < idx.shape[1]:
        pos = torch.topk(val, n_rerank, dim=1, sorted=False).indices  # chosen before any cross term is added
        idx = idx.gather(1, pos)
    for network, tok1, tok2, weight in jobs:
        cross = _cross_terms(network, idx, tok1, tok2, device, rerank_chunk)
        if pos is None:
            val += weight * cross
        else:
            low = cross.amin(dim=1, keepdim=True)
            val += weight * low
            val.scatter_add_(1, pos, weight * (cross - low))


def _cross_terms(network, idx, tokens1, tokens2, device, rerank_chunk: int) -> torch.Tensor:
    """``i1 . c1`` of one network for every row and its candidates ``idx`` (n1 x K), on the CPU."""
    proj2 = [t.to(device) for t in _projections(network, tokens2, 2, device)]
    # rows per chunk: at most ``rerank_chunk``, and few enough that the gathered candidate tensors hold about
    # CHUNK_ENTRIES floats (1000 candidates gather 10x what 100 do)
    per_row = idx.shape[1] * sum(t[0].numel() for t in proj2)
    rows = max(1, min(rerank_chunk, CHUNK_ENTRIES // max(per_row, 1)))
    out = torch.empty(idx.shape, dtype=torch.float32)
    for part in iter_chunks(idx.shape[0], rows):
        proj1 = network.cross_projections(tokens1[part].to(device), 1)
        gathered = network.gather_candidates(proj2, idx[part].to(device))
        out[part] = network.candidate_cross_similarity(proj1, gathered).cpu()
    return out


def _projections(module, tokens: torch.Tensor, modality: int, device, chunk: int = 8192) -> list[torch.Tensor]:
    """:meth:`CrossAttentionMatcher.cross_projections` of all cells, one chunk at a time."""
    parts = [module.cross_projections(tokens[part].to(device), modality) for part in iter_chunks(len(tokens), chunk)]
    return [torch.cat(pieces) for pieces in zip(*parts, strict=True)]


@torch.no_grad()
def candidate_similarities(
    module: CrossAttentionMatcher,
    emb1: torch.Tensor,
    emb2: torch.Tensor,
    *,
    tokens1: torch.Tensor | None = None,
    tokens2: torch.Tensor | None = None,
    n_candidates: int = 100,
    device: torch.device | None = None,
    rerank_chunk: int = 256,
    search: str = "exact",
    random_state: int = 0,
    n_rerank: int | None = None,
) -> sp.csr_matrix:
    """Sparse (n1 x n2) similarities on each row's best ``n_candidates`` columns.

    Candidates are chosen by ``i0 . c0`` (exhaustively, or approximately with ``search="pynndescent"``); when
    the model's ``alpha`` is non-zero and tokens are given, the stored value is the full similarity
    ``i0 . c0 + alpha * i1 . c1``, with the cross term on each row's best ``n_rerank`` candidates (``None``: all;
    see :func:`_rerank`).
    """
    device = device or torch.device("cpu")
    n1, n2 = emb1.shape[0], emb2.shape[0]
    k = min(n_candidates, n2)
    if search == "pynndescent" and k < n2:
        idx = ann_candidates(emb1, emb2, k, random_state=random_state)
        val = torch.empty(n1, k, dtype=torch.float32)
        for part in iter_chunks(n1, 65536):
            val[part] = (emb1[part, None, :] * emb2[idx[part]]).sum(-1)
    else:
        rows_per_chunk = max(1, CHUNK_ENTRIES // max(n2, 1))
        emb2_dev = emb2.to(device)
        idx = torch.empty(n1, k, dtype=torch.long)
        val = torch.empty(n1, k, dtype=torch.float32)
        for part in iter_chunks(n1, rows_per_chunk):
            block = emb1[part].to(device) @ emb2_dev.T
            top = torch.topk(block, k, dim=1, sorted=False)
            idx[part], val[part] = top.indices.cpu(), top.values.cpu()
    if module.alpha and tokens1 is not None and tokens2 is not None:
        _rerank(module, val, idx, tokens1, tokens2, device, rerank_chunk, n_rerank)
    indptr = np.arange(0, n1 * k + 1, k)
    return sp.csr_matrix((val.numpy().ravel(), idx.numpy().ravel(), indptr), shape=(n1, n2))


@torch.no_grad()
def distance_candidates(
    module,
    emb1: torch.Tensor,
    emb2: torch.Tensor,
    *,
    metric: Metric,
    tokens1: torch.Tensor | None = None,
    tokens2: torch.Tensor | None = None,
    n_candidates: int = 100,
    device: torch.device | None = None,
    chunk_entries: int = 8_000_000,
    rerank_chunk: int = 256,
    n_rerank: int | None = None,
) -> sp.csr_matrix:
    """Sparse (n1 x n2) similarities ``-d(i0, c0) [+ alpha * i1 . c1]`` on each row's ``n_candidates`` nearest.

    The distance counterpart of :func:`candidate_similarities`: candidates are the columns nearest under the
    distance ``metric`` (W1 or Euclidean), not the largest ``i0 . c0``, so the candidate search is consistent
    with the learned space. ``n_rerank`` as in :func:`candidate_similarities`.
    """
    device = device or torch.device("cpu")
    n1, n2 = emb1.shape[0], emb2.shape[0]
    k = min(n_candidates, n2)
    emb2_dev = emb2.to(device)
    idx = torch.empty(n1, k, dtype=torch.long)
    val = torch.empty(n1, k, dtype=torch.float32)
    for part in iter_chunks(n1, max(1, chunk_entries // max(n2, 1))):
        sim = -metric.pairwise(emb1[part].to(device), emb2_dev)
        top = torch.topk(sim, k, dim=1, sorted=False)
        idx[part], val[part] = top.indices.cpu(), top.values.float().cpu()
    if module.alpha and tokens1 is not None and tokens2 is not None:
        _rerank(module, val, idx, tokens1, tokens2, device, rerank_chunk, n_rerank)
    indptr = np.arange(0, n1 * k + 1, k)
    return sp.csr_matrix((val.numpy().ravel(), idx.numpy().ravel(), indptr), shape=(n1, n2))


def search_candidates(
    module,
    emb1: torch.Tensor,
    emb2: torch.Tensor,
    *,
    metric: Metric,
    search: Search,
    n_candidates: int,
    tokens1: torch.Tensor | None = None,
    tokens2: torch.Tensor | None = None,
    device: torch.device | None = None,
) -> sp.csr_matrix:
    """Candidate similarities under the model's ``metric``: the ``search`` of ``i0 . c0``, or nearest by a distance."""
    kwargs = {"tokens1": tokens1, "tokens2": tokens2, "n_candidates": n_candidates, "device": device}
    if metric.is_cosine:
        return candidate_similarities(module, emb1, emb2, search=search.method, n_rerank=search.n_cross, **kwargs)
    return distance_candidates(module, emb1, emb2, metric=metric, n_rerank=search.n_cross, **kwargs)
