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

from dataclasses import dataclass

import torch

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


@dataclass(frozen=True)
class Metric:
    """The metric of the joint space a model learns, and the similarity it scores.

    ``"cosine"`` (the core losses) scores ``i0 . c0 + alpha * i1 . c1``; a distance metric (the experimental
    distance losses, :mod:`scmatch.experimental`) scores ``-d(i0, c0) + alpha * i1 . c1``, so that ``-sim`` is the
    distance the distance losses see (up to the cross term) and the rest of the pipeline (softmax, Sinkhorn,
    calibration) keeps working on a similarity.

    Parameters
    ----------
    name
        ``"cosine"``, ``"euclidean"`` or ``"wasserstein"``.
    histogram_temperature
        Temperature of the softmax turning an embedding into a histogram (``"wasserstein"`` only).
    """

    name: str = "cosine"
    histogram_temperature: float = HIST_TEMPERATURE

    def __post_init__(self) -> None:
        if self.name not in METRICS:
            raise ValueError(f"Unknown metric {self.name!r}; use one of {METRICS}.")

    @property
    def is_cosine(self) -> bool:
        """Whether similarities are dot products of unit embeddings (what ensembles and approximate search need)."""
        return self.name == "cosine"

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """All-pairs distance of the rows of ``x`` and ``y`` under this metric."""
        return pairwise_distance(x, y, metric=self.name, temperature=self.histogram_temperature)

    def similarity(self, module, x1: torch.Tensor, x2: torch.Tensor, *, n_cross: int | None = None) -> torch.Tensor:
        """In-batch similarity (B1 x B2) of a :class:`~scmatch.model.nn.CrossAttentionMatcher` under this metric.

        ``n_cross`` restricts the cross term to each row's best candidates (``CrossAttentionMatcher.cross_term``).
        """
        if self.is_cosine:
            return module.batch_similarity(x1, x2, n_cross=n_cross)
        tok1, tok2 = module.tokens(x1, 1), module.tokens(x2, 2)
        sim = -self.pairwise(module.embed(tok1, 1), module.embed(tok2, 2))
        if module.alpha:
            sim = sim + module.alpha * module.cross_term(tok1, tok2, sim, n_cross=n_cross)
        return sim
