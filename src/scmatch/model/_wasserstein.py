"""Wasserstein-1 distance between embeddings read as histograms on an ordered 1-D ground metric.

Definition used throughout scmatch: an embedding ``x`` (d values) becomes the histogram
``h(x) = softmax(x / t)`` over its d dimensions; the dimensions sit at the points ``k / (d - 1)``,
``k = 0 .. d-1``, of the unit interval, with the ground cost ``|k - l| / (d - 1)``. For two histograms on the same
ordered support the Wasserstein-1 distance has the closed form

``W1(h, g) = (1 / (d - 1)) * sum_{k < d-1} |H_k - G_k|``,  ``H``, ``G`` the cumulative sums of ``h``, ``g``,

so it is differentiable, costs O(d) per pair and lies in ``[0, 1]`` (the scale of a cosine similarity, so the
temperature grid and margins of :class:`~scmatch.model.MatchModel` keep their meaning). All pairs of two batches
are one ``torch.cdist(H, G, p=1)``. The histogram temperature ``t`` sets how peaked the histograms are; the order
of the dimensions is arbitrary at initialisation and is learned by the network in front of it.
"""

from __future__ import annotations

import numpy as np
import torch

from ._scoring import _rerank

#: default temperature of the softmax turning a unit-length embedding into a histogram
HIST_TEMPERATURE = 0.1


def histogram(x: torch.Tensor, *, temperature: float = HIST_TEMPERATURE) -> torch.Tensor:
    """Histogram ``softmax(x / temperature)`` over the last dimension."""
    return torch.softmax(x / temperature, dim=-1)


def cdf(x: torch.Tensor, *, temperature: float = HIST_TEMPERATURE) -> torch.Tensor:
    """Cumulative histogram, without its last entry (always 1), scaled by ``1 / (d - 1)`` (the bin spacing)."""
    d = x.shape[-1]
    if d < 2:
        raise ValueError(f"The Wasserstein distance needs embeddings of at least 2 dimensions, got {d}.")
    return torch.cumsum(histogram(x, temperature=temperature), dim=-1)[..., :-1] / (d - 1)


def w1_pairwise(x: torch.Tensor, y: torch.Tensor, *, temperature: float = HIST_TEMPERATURE) -> torch.Tensor:
    """W1 distance of every row of ``x`` (n, d) to every row of ``y`` (m, d): an (n, m) matrix in ``[0, 1]``.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[10.0, 0.0, 0.0]])  # ~ all mass on the first bin
    >>> y = torch.tensor([[0.0, 0.0, 10.0]])  # ~ all mass on the last bin
    >>> round(float(w1_pairwise(x, y, temperature=0.01)), 4)
    1.0
    """
    return torch.cdist(cdf(x, temperature=temperature), cdf(y, temperature=temperature), p=1)


def w1_paired(x: torch.Tensor, y: torch.Tensor, *, temperature: float = HIST_TEMPERATURE) -> torch.Tensor:
    """W1 distance of row ``i`` of ``x`` to row ``i`` of ``y`` (both (n, d)): a vector of n distances."""
    return (cdf(x, temperature=temperature) - cdf(y, temperature=temperature)).abs().sum(-1)


def euclidean_pairwise(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Euclidean distance of every row of ``x`` to every row of ``y`` (the like-for-like counterpart of W1)."""
    sq = (x * x).sum(-1)[:, None] + (y * y).sum(-1)[None, :] - 2 * x @ y.T
    return sq.clamp(min=1e-12).sqrt()


METRICS = ("cosine", "euclidean", "wasserstein")


def pairwise_distance(x: torch.Tensor, y: torch.Tensor, *, metric: str, temperature: float = HIST_TEMPERATURE):
    """All-pairs distance for ``metric`` (``"cosine"``: ``1 - x . y`` on unit vectors)."""
    if metric == "wasserstein":
        return w1_pairwise(x, y, temperature=temperature)
    if metric == "euclidean":
        return euclidean_pairwise(x, y)
    if metric == "cosine":
        return 1.0 - x @ y.T
    raise ValueError(f"Unknown metric {metric!r}; use one of {METRICS}.")


def w1_numpy(x: np.ndarray, y: np.ndarray, *, temperature: float = HIST_TEMPERATURE) -> np.ndarray:
    """NumPy convenience wrapper of :func:`w1_pairwise` (float64)."""
    with torch.no_grad():
        x64, y64 = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
        return w1_pairwise(x64, y64, temperature=temperature).numpy()


def metric_similarity(
    module, x1: torch.Tensor, x2: torch.Tensor, *, metric: str, temperature: float, n_cross: int | None = None
) -> torch.Tensor:
    """In-batch similarity (B1 x B2) of a :class:`CrossAttentionMatcher` under ``metric``.

    ``"cosine"`` is the module's own ``i0 . c0 + alpha * i1 . c1``; a distance metric gives
    ``-d(i0, c0) + alpha * i1 . c1``, so that ``-sim`` is the distance the distance losses see (up to the cross
    term) and the rest of the pipeline (softmax, Sinkhorn, calibration) keeps working on a similarity. ``n_cross``
    restricts the cross term to each row's best candidates (see ``CrossAttentionMatcher.cross_term``).
    """
    if metric == "cosine":
        return module.batch_similarity(x1, x2, n_cross=n_cross)
    tok1, tok2 = module.tokens(x1, 1), module.tokens(x2, 2)
    sim = -pairwise_distance(module.embed(tok1, 1), module.embed(tok2, 2), metric=metric, temperature=temperature)
    if module.alpha:
        sim = sim + module.alpha * module.cross_term(tok1, tok2, sim, n_cross=n_cross)
    return sim


@torch.no_grad()
def distance_candidates(
    module,
    emb1: torch.Tensor,
    emb2: torch.Tensor,
    *,
    metric: str,
    temperature: float,
    tokens1: torch.Tensor | None = None,
    tokens2: torch.Tensor | None = None,
    n_candidates: int = 100,
    device: torch.device | None = None,
    chunk_entries: int = 8_000_000,
    rerank_chunk: int = 256,
    n_rerank: int | None = None,
):
    """Sparse (n1 x n2) similarities ``-d(i0, c0) [+ alpha * i1 . c1]`` on each row's ``n_candidates`` nearest.

    The distance counterpart of :func:`scmatch.model._scoring.candidate_similarities`: candidates are the
    columns nearest under ``metric`` (W1 or Euclidean), not the largest ``i0 . c0``, so the candidate search is
    consistent with the learned space. ``n_rerank`` as in :func:`~scmatch.model._scoring.candidate_similarities`.
    """
    import scipy.sparse as sp

    device = device or torch.device("cpu")
    n1, n2 = emb1.shape[0], emb2.shape[0]
    k = min(n_candidates, n2)
    rows = max(1, chunk_entries // max(n2, 1))
    emb2_dev = emb2.to(device)
    idx = torch.empty(n1, k, dtype=torch.long)
    val = torch.empty(n1, k, dtype=torch.float32)
    for start in range(0, n1, rows):
        part = slice(start, min(start + rows, n1))
        sim = -pairwise_distance(emb1[part].to(device), emb2_dev, metric=metric, temperature=temperature)
        top = torch.topk(sim, k, dim=1, sorted=False)
        idx[part], val[part] = top.indices.cpu(), top.values.float().cpu()
    if module.alpha and tokens1 is not None and tokens2 is not None:
        _rerank(module, val, idx, tokens1, tokens2, device, rerank_chunk, n_rerank)
    indptr = np.arange(0, n1 * k + 1, k)
    return sp.csr_matrix((val.numpy().ravel(), idx.numpy().ravel(), indptr), shape=(n1, n2))
