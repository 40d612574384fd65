"""Ensembles of cross-attention matchers, averaged in similarity before the final transport step.

:class:`EnsembleMatcher` wraps ``K`` trained :class:`~scmatch.model.nn.CrossAttentionMatcher` members and
exposes the interface that scoring uses (``tokens``, ``embed``, ``cross_projections``, ``gather_candidates``,
``candidate_cross_similarity``), so that every search and solver works on it unchanged:

- ``tokens`` stacks the members' tokens along the token axis;
- ``embed`` concatenates the members' unit embeddings and divides by ``sqrt(K)``: the result is unit length and
  the dot product of two such embeddings is the *mean* of the members' ``i0 . c0``, so the exhaustive candidate
  search ranks by the averaged self-attention similarity;
- the cross term of a candidate pair is the mean of the members' ``i1 . c1``.

The similarity an ensemble scores is therefore ``mean_k S_k(R, A)``, the average of its members' similarities,
and the Sinkhorn step runs once on that average.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._modules import CrossAttentionMatcher

#: tensors per member returned by :meth:`CrossAttentionMatcher.cross_projections`: for the rows (mod1) and for
#: the candidates (mod2)
N_PROJECTIONS = {1: 4, 2: 3}


class EnsembleMatcher(nn.Module):
    """Average of ``K`` :class:`CrossAttentionMatcher` members with the same architecture and inputs."""

    def __init__(self, members: list[CrossAttentionMatcher]) -> None:
        super().__init__()
        if not members:
            raise ValueError("An ensemble needs at least one member.")
        self.members = nn.ModuleList(members)
        first = members[0]
        self.alpha = first.alpha
        self.head1 = first.head1  # shared reference for the embedding width of an empty input (not a copy)

    @property
    def n_models(self) -> int:
        return len(self.members)

    # the standardisation of the inputs is the same for every member (fitted on the same training pairs)
    @property
    def shift1(self) -> torch.Tensor:
        return self.members[0].shift1

    @property
    def shift2(self) -> torch.Tensor:
        return self.members[0].shift2

    def tokens(self, x: torch.Tensor, modality: int) -> torch.Tensor:
        """Every member's tokens of ``x``, stacked along the token axis: (n, K * n_tokens, d_model)."""
        return torch.cat([member.tokens(x, modality) for member in self.members], dim=-2)

    def _split(self, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.split(tokens, tokens.shape[-2] // self.n_models, dim=-2)

    def embed(self, tokens: torch.Tensor, modality: int) -> torch.Tensor:
        """Concatenated member embeddings over ``sqrt(K)``: unit length, dot product = mean member cosine."""
        parts = [member.embed(tok, modality) for member, tok in zip(self.members, self._split(tokens), strict=True)]
        return torch.cat(parts, dim=-1) / math.sqrt(self.n_models)

    def batch_similarity(self, x1: torch.Tensor, x2: torch.Tensor, *, n_cross: int | None = None) -> torch.Tensor:
        """Mean over members of :meth:`CrossAttentionMatcher.batch_similarity` (B1 x B2)."""
        total = sum(member.batch_similarity(x1, x2, n_cross=n_cross) for member in self.members)
        return total / self.n_models

    def cross_projections(self, tokens: torch.Tensor, modality: int) -> tuple[torch.Tensor, ...]:
        """The members' :meth:`CrossAttentionMatcher.cross_projections`, one flat tuple (member after member)."""
        out: list[torch.Tensor] = []
        for member, tok in zip(self.members, self._split(tokens), strict=True):
            out.extend(member.cross_projections(tok, modality))
        return tuple(out)

    def gather_candidates(self, proj2: tuple[torch.Tensor, ...], idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Each member's :meth:`CrossAttentionMatcher.gather_candidates`, one flat tuple (member after member)."""
        size = N_PROJECTIONS[2]
        out: list[torch.Tensor] = []
        for k, member in enumerate(self.members):
            out.extend(member.gather_candidates(proj2[k * size : (k + 1) * size], idx))
        return tuple(out)

    def candidate_cross_similarity(
        self, proj1: tuple[torch.Tensor, ...], proj2: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """Mean over members of the cross term ``i1 . c1`` of each cell and its gathered candidates."""
        total = None
        for k, member in enumerate(self.members):
            rows = slice(k * N_PROJECTIONS[1], (k + 1) * N_PROJECTIONS[1])
            candidates = slice(k * N_PROJECTIONS[2], (k + 1) * N_PROJECTIONS[2])
            value = member.candidate_cross_similarity(proj1[rows], proj2[candidates])
            total = value if total is None else total + value
        return total / self.n_models
