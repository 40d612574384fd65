"""Torch modules of the cross-attention metric model; they know nothing of AnnData."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

#: floor of a squared norm before dividing by it (``F.normalize``'s eps, squared)
_EPS2 = 1e-24


class TokenEncoder(nn.Module):
    """Turn one modality's cell vector into a small set of tokens refined by self-attention.

    Parameters
    ----------
    n_features
        Input dimension (e.g. 50 PCA or LSI components).
    n_tokens
        Number of tokens per cell.
    d_model
        Token width.
    n_heads
        Attention heads of the self-attention layer.
    n_layers
        Number of self-attention (transformer encoder) layers.
    dropout
        Dropout inside the encoder.
    """

    def __init__(
        self, n_features: int, *, n_tokens: int, d_model: int, n_heads: int, n_layers: int, dropout: float
    ) -> None:
        super().__init__()
        hidden = max(2 * d_model, 128)
        self.n_tokens, self.d_model = n_tokens, d_model
        self.mlp = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_tokens * d_model),
        )
        self.position = nn.Parameter(torch.zeros(n_tokens, d_model))
        nn.init.normal_(self.position, std=0.02)
        self.norm = nn.LayerNorm(d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=2 * d_model, dropout=dropout, batch_first=True, norm_first=True
        )
        self.attention = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Return tokens of shape (cells, n_tokens, d_model).

        In training mode the layers are run one by one (:func:`_encoder_layer`) so that every dropout mask is
        drawn from ``generator``: ensemble members then train side by side in threads, each from its own random
        stream, and give the same weights whatever the threads' timing. In evaluation mode torch's own
        (fused) encoder runs; both compute the same function.
        """
        if not self.training:
            tokens = self.mlp(x).view(-1, self.n_tokens, self.d_model) + self.position
            return self.attention(self.norm(tokens))
        hidden = _dropout(self.mlp[1](self.mlp[0](x)), self.mlp[2].p, generator)
        tokens = self.norm(self.mlp[3](hidden).view(-1, self.n_tokens, self.d_model) + self.position)
        for layer in self.attention.layers:
            tokens = _encoder_layer(layer, tokens, generator)
        return tokens


class CrossAttentionMatcher(nn.Module):
    """Two-modality metric network.

    Self-attention within each modality gives the embeddings ``i0`` (mod1) and ``c0`` (mod2); cross-attention
    between the two token sets gives ``i1`` (mod1 tokens attending to mod2) and ``c1`` (the reverse). The
    similarity of a mod1 cell R and a mod2 cell A is ``S(R, A) = i0 . c0 + alpha * i1 . c1``, all vectors unit
    length.

    The cross embeddings keep a residual to the cell's own pooled tokens:
    ``i1(R | A) = normalize(proj(mean_t tok_R[t]) + sum_s wbar[s] proj(value(tok_A[s])))`` where ``wbar`` is the
    attention of R's tokens over A's tokens, averaged over R's tokens.
    """

    def __init__(
        self,
        n_features1: int,
        n_features2: int,
        *,
        n_tokens: int = 4,
        d_model: int = 64,
        d_embed: int = 64,
        n_heads: int = 4,
        n_layers: int = 1,
        dropout: float = 0.3,
        alpha: float = 1.0,
    ) -> None:
        super().__init__()
        kwargs = {"n_tokens": n_tokens, "d_model": d_model, "n_heads": n_heads, "n_layers": n_layers}
        self.encoder1 = TokenEncoder(n_features1, dropout=dropout, **kwargs)
        self.encoder2 = TokenEncoder(n_features2, dropout=dropout, **kwargs)
        self.head1 = nn.Linear(d_model, d_embed)
        self.head2 = nn.Linear(d_model, d_embed)
        self.alpha = alpha
        # cross-attention: queries of one modality, keys and values of the other
        self.query1, self.key1, self.value1 = (nn.Linear(d_model, d_model) for _ in range(3))
        self.query2, self.key2, self.value2 = (nn.Linear(d_model, d_model) for _ in range(3))
        self.cross_head1 = nn.Linear(d_model, d_embed)
        self.cross_head2 = nn.Linear(d_model, d_embed)
        self._scale = 1.0 / math.sqrt(d_model)
        #: random stream of the dropout masks in training (not saved; ``None``: torch's global generator)
        self.generator: torch.Generator | None = None
        # input standardisation, set from the reference by MatchModel.fit and saved with the weights
        for m, n in ((1, n_features1), (2, n_features2)):
            self.register_buffer(f"shift{m}", torch.zeros(n))
            self.register_buffer(f"scale{m}", torch.ones(n))

    def set_standardization(self, modality: int, shift: torch.Tensor, scale: torch.Tensor) -> None:
        """Store the per-feature centre and scale applied to inputs of one modality."""
        getattr(self, f"shift{modality}").copy_(shift)
        getattr(self, f"scale{modality}").copy_(scale)

    def tokens(self, x: torch.Tensor, modality: int) -> torch.Tensor:
        """Self-attention tokens of mod1 (``modality=1``) or mod2 (``modality=2``) cells.

        In training mode, dropout draws from :attr:`generator` (the global generator when it is ``None``).
        """
        if modality == 1:
            return self.encoder1((x - self.shift1) / self.scale1, generator=self.generator)
        return self.encoder2((x - self.shift2) / self.scale2, generator=self.generator)

    def embed(self, tokens: torch.Tensor, modality: int) -> torch.Tensor:
        """Unit-length self-attention embedding (``i0`` or ``c0``) from tokens."""
        head = self.head1 if modality == 1 else self.head2
        return F.normalize(head(tokens.mean(dim=-2)), dim=-1)

    def cross_similarity(self, tok1: torch.Tensor, tok2: torch.Tensor) -> torch.Tensor:
        """Cross term ``i1 . c1``.

        All pairs: ``tok1`` (B1, T, d) and ``tok2`` (B2, T, d) give (B1, B2). Candidates: ``tok1`` (N, T, d)
        and ``tok2`` (N, K, T, d), K candidates per cell, give (N, K).
        """
        pairs = tok2.dim() == 4
        i1 = self._attend(tok1, tok2, self.query1, self.key2, self.value2, self.cross_head1, first=True, pairs=pairs)
        c1 = self._attend(tok2, tok1, self.query2, self.key1, self.value1, self.cross_head2, first=False, pairs=pairs)
        return (i1 * c1).sum(-1)

    def _attend(self, own, other, query, key, value, head, *, first: bool, pairs: bool) -> torch.Tensor:
        """Unit cross embeddings, shaped (rows, columns, d_embed) with mod1 cells along the rows.

        ``head(mean_t own[t] + sum_s wbar[s] value(other[s]))`` with ``wbar`` the attention of ``own``'s tokens
        over ``other``'s, averaged over ``own``'s tokens; ``head`` is linear, so it is applied to the values
        first and every step is one large matrix product.
        """
        q, k = query(own), key(other)
        v = value(other) @ head.weight.T  # project values to the embedding space first
        base = head(own.mean(dim=-2))
        if not pairs:  # own: (B_own, T, d), other: (B_other, T, d) -> every pair
            scores = torch.einsum("itd,jsd->ijts", q, k) * self._scale
            wbar = torch.softmax(scores, dim=-1).mean(dim=-2)  # (B_own, B_other, S)
            out = base[:, None, :] + torch.einsum("ijs,jse->ije", wbar, v)
            return F.normalize(out if first else out.transpose(0, 1), dim=-1)
        if first:  # own: (N, T, d), other: (N, K, T, d)
            scores = torch.einsum("ntd,nksd->nkts", q, k) * self._scale
            wbar = torch.softmax(scores, dim=-1).mean(dim=-2)  # (N, K, S)
            return F.normalize(base[:, None, :] + torch.einsum("nks,nkse->nke", wbar, v), dim=-1)
        # own: (N, K, T, d), other: (N, T, d)
        scores = torch.einsum("nktd,nsd->nkts", q, k) * self._scale
        wbar = torch.softmax(scores, dim=-1).mean(dim=-2)  # (N, K, S)
        return F.normalize(base + torch.einsum("nks,nse->nke", wbar, v), dim=-1)

    def cross_projections(self, tokens: torch.Tensor, modality: int) -> tuple[torch.Tensor, ...]:
        """Everything the cross term of a candidate pair needs from one side, computed once per cell.

        The cross term of a mod1 cell R and a mod2 cell A is a function of a few dot products between vectors of R
        and vectors of A (see :meth:`candidate_cross_similarity`). Every vector of A that enters them is an affine
        map of A's tokens, so the maps are moved to R's side, once per row, and re-ranking gathers only A's
        tokens and a few per-cell numbers for each (cell, candidate) pair (:meth:`gather_candidates`): about 345
        floats per pair with 4 tokens of width 64, where gathering A's queries, keys and values took 830.

        ``modality=1`` (the rows, mod1) returns ``(maps, offsets, values, gram)``:

        - ``maps`` (n, 3 T + 1, d_model, padded with zero rows to a multiple of 8): the vectors that A's tokens
          are multiplied by, giving in one batched product the attention logits of R's queries on A's keys, those
          of A's queries on R's keys, and the dot products of A's projected values with R's projected values and
          R's pooled embedding;
        - ``offsets`` (n, 3 T + 1, padded likewise): the bias terms of those products (for the first T logits the
          same for all of A's tokens, so it cancels in the softmax; kept so every parameter takes part in the
          graph, as DistributedDataParallel requires);
        - ``values`` (n, T + 1, d_embed): R's values projected into the space of ``c1``, and R's pooled, projected
          tokens (the residual of ``i1``);
        - ``gram`` (n, T + 1, T + 1): the dot products among ``values``.

        ``modality=2`` (the candidates, mod2) returns ``(tokens, base, gram)``: A's tokens, A's pooled, projected
        tokens (the residual of ``c1``) and the dot products among A's values projected into the space of ``i1``
        and ``base`` ((n, T + 1, T + 1)).
        """
        if modality == 2:
            values = self.value2(tokens) @ self.cross_head1.weight.T  # (n, T, e), in the space of i1
            base = self.cross_head2(tokens.mean(dim=-2))
            stacked = torch.cat([values, base.unsqueeze(-2)], dim=-2)
            return tokens, base, stacked @ stacked.transpose(-1, -2)
        query, key = self.query1(tokens), self.key1(tokens)
        values = torch.cat(
            [self.value1(tokens) @ self.cross_head2.weight.T, self.cross_head1(tokens.mean(dim=-2)).unsqueeze(-2)],
            dim=-2,
        )  # (n, T + 1, e): R's values in the space of c1, then R's residual of i1
        # A's values in the space of i1 are tokens_A @ value_map.T + value_shift
        value_map = self.cross_head1.weight @ self.value2.weight  # (e, d)
        value_shift = self.cross_head1.weight @ self.value2.bias  # (e,)
        maps = torch.cat(
            [query @ self.key2.weight * self._scale, key @ self.query2.weight * self._scale, values @ value_map],
            dim=-2,
        )
        offsets = torch.cat(
            [query @ self.key2.bias * self._scale, key @ self.query2.bias * self._scale, values @ value_shift], dim=-1
        )
        # zero rows up to a multiple of 8: the batched product ran 1.5x faster with 16 rows than with 13
        pad = -maps.shape[-2] % 8
        return F.pad(maps, (0, 0, 0, pad)), F.pad(offsets, (0, pad)), values, values @ values.transpose(-1, -2)

    @staticmethod
    def gather_candidates(proj2: tuple[torch.Tensor, ...], idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The candidates' :meth:`cross_projections` at ``idx`` (N, K), for :meth:`candidate_cross_similarity`.

        Tokens come out as (N, T * K, d) in token-major order (all K candidates' first token, then their second...),
        the rest as (N, K, ...). With the candidates along the last axis of every intermediate, the elementwise work
        runs over contiguous runs of K values. ``index_select``, not advanced indexing: about 4x faster on CPU, and
        its backward (``index_add_``) sums in a fixed order.
        """
        tokens, base, gram = proj2
        n, k = idx.shape
        t = tokens.shape[-2]
        rows = (idx.unsqueeze(1) * t + torch.arange(t, device=idx.device).view(1, t, 1)).reshape(-1)
        gathered = tokens.reshape(-1, tokens.shape[-1]).index_select(0, rows).view(n, t * k, -1)
        flat = idx.reshape(-1)
        return gathered, base.index_select(0, flat).view(n, k, -1), gram.index_select(0, flat).view(n, k, t + 1, t + 1)

    def candidate_cross_similarity(
        self, proj1: tuple[torch.Tensor, ...], proj2: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """Cross term ``i1 . c1`` of N mod1 cells and their K candidates.

        ``proj1`` holds the rows' :meth:`cross_projections` (first axis N); ``proj2`` the candidates', from
        :meth:`gather_candidates`. Equals :meth:`cross_similarity` of the tokens, up to float rounding.

        With ``w`` (R's attention over A's T tokens, averaged over R's tokens) and ``u`` (A's attention over R's
        tokens), ``i1 = (base_R + sum_s w_s v_A[s]) / norm`` and ``c1 = (base_A + sum_r u_r v_R[r]) / norm``. Their
        dot product and both squared norms expand into the weights and the dot products between the vectors
        involved: those within one cell are precomputed (``gram``), and those across the pair come from one
        batched product of A's tokens with R's ``maps``. No (pair, d_embed) tensor is formed.
        """
        maps, offsets, values1, gram1 = proj1
        tokens2, base2, gram2 = proj2
        n, k = base2.shape[:2]
        t = gram1.shape[-1] - 1
        # (N, 3 T + 1, T_A, K): for R's vector c and A's token s, of every candidate (bmm then add: baddbmm with the
        # broadcast offsets was 15% slower)
        prod = (torch.bmm(maps, tokens2.transpose(1, 2)) + offsets.unsqueeze(-1)).view(n, -1, t, k)
        return self._cross_from_products(prod, values1, gram1, base2, gram2)

    @staticmethod
    def _cross_from_products(prod, values1, gram1, base2, gram2) -> torch.Tensor:
        """:meth:`candidate_cross_similarity` from the products of R's maps with A's tokens.

        ``prod`` (N, 3 T + 1 [+ padding], T_A, K) holds R's ``maps`` times A's tokens plus R's ``offsets``.
        """
        t = gram1.shape[-1] - 1
        w = _softmax(prod[:, :t], dim=2).mean(dim=1)  # (N, T_A, K): R's tokens attend over A's tokens
        u = _softmax(prod[:, t : 2 * t], dim=1).mean(dim=2)  # (N, T_R, K): A's tokens attend over R's tokens
        cross = prod[:, 2 * t : 3 * t + 1]  # (N, T_R + 1, T_A, K): v_R[r] . v_A[s], then base_R . v_A[s]
        across = torch.bmm(values1, base2.transpose(1, 2))  # (N, T_R + 1, K): v_R[r] . base_A, then base_R . base_A
        gram2 = gram2.permute(0, 2, 3, 1)  # (N, T_A + 1, T_A + 1, K)
        # i1 . c1 before normalising: base_R . base_A + u . (v_R . base_R) + w . (v_A . base_A) + w^T (v_A . v_R) u
        dot = (w * ((cross[:, :t] * u.unsqueeze(2)).sum(1) + gram2[:, :t, t])).sum(1)
        dot = dot + (u * gram1[:, :t, t, None]).sum(1) + across[:, t]
        # squared norms: |base_R|^2 + 2 w . (v_A . base_R) + w^T (v_A . v_A) w, and the same for c1
        norm1 = (w * ((w.unsqueeze(2) * gram2[:, :t, :t]).sum(1) + 2 * cross[:, t])).sum(1) + gram1[:, t, t, None]
        norm2 = (u * (torch.bmm(gram1[:, :t, :t], u) + 2 * across[:, :t])).sum(1) + gram2[:, t, t]
        return dot * (norm1.clamp_min(_EPS2) * norm2.clamp_min(_EPS2)).rsqrt()

    def batch_similarity(self, x1: torch.Tensor, x2: torch.Tensor, *, n_cross: int | None = None) -> torch.Tensor:
        """Similarity matrix S (B1 x B2) of all pairs between two batches of cells (see :meth:`cross_term`)."""
        tok1, tok2 = self.tokens(x1, 1), self.tokens(x2, 2)
        sim = self.embed(tok1, 1) @ self.embed(tok2, 2).T
        if self.alpha:
            sim = sim + self.alpha * self.cross_term(tok1, tok2, sim, n_cross=n_cross)
        return sim

    def cross_term(
        self, tok1: torch.Tensor, tok2: torch.Tensor, base: torch.Tensor, *, n_cross: int | None = None
    ) -> torch.Tensor:
        """The cross term ``i1 . c1`` of two batches (B1 x B2), for every pair or for each row's best candidates.

        With ``n_cross=None`` (or at least B2) every pair is computed. Otherwise, as when matching, only each
        row's ``n_cross`` best columns by ``base`` (the self-attention similarity, not differentiated) get the
        cross term, plus the row's own partner when the batches are paired (square); every other entry of the
        row gets the smallest cross value computed in that row (a constant, without gradient), so the columns
        left out are neither favoured nor trained. This costs O(B1 * n_cross) cross terms instead of O(B1 * B2).
        """
        b1, b2 = base.shape
        if n_cross is None or n_cross >= b2:
            return self.cross_similarity(tok1, tok2)
        with torch.no_grad():
            score = base.detach().clone()
            if b1 == b2:  # a training minibatch: row i's partner is column i
                score.diagonal().fill_(float("inf"))
            idx = torch.topk(score, n_cross, dim=1).indices
        maps, offsets, values1, gram1 = self.cross_projections(tok1, 1)
        tokens2, base2, gram2 = self.cross_projections(tok2, 2)
        t, d, k = tok2.shape[1], tok2.shape[2], idx.shape[1]
        # a minibatch is small: every row's maps times every column's tokens in one product, then each row's
        # candidates picked out of it, costs less than gathering the candidates' tokens per row (as when matching)
        # and the gradient of that gather (17% of a training step at 128 pairs with 32 candidates, measured). The
        # maps' zero padding is dropped, and the tokens go token-major so that the products come out as
        # (B1, 3 T + 1, T, B2) with no transposed copy in either direction.
        rows = 3 * t + 1
        maps, offsets = maps[:, :rows], offsets[:, :rows]
        every = (maps.reshape(-1, d) @ tokens2.transpose(0, 1).reshape(-1, d).T).view(b1, rows, t, b2)
        prod = every.gather(3, idx.view(b1, 1, 1, k).expand(b1, rows, t, k)) + offsets[:, :, None, None]
        # index_select, not t[idx]: its backward (index_add_) sums in a fixed order, where advanced indexing's
        # (index_put_ with accumulate) gave run-to-run differences once another OpenMP runtime (numba's) was loaded
        flat = idx.reshape(-1)
        base2 = base2.index_select(0, flat).view(b1, k, -1)
        gram2 = gram2.index_select(0, flat).view(b1, k, t + 1, t + 1)
        cross = self._cross_from_products(prod, values1, gram1, base2, gram2)
        fill = cross.detach().amin(dim=1, keepdim=True).expand(b1, b2)
        return fill.scatter(1, idx, cross)


def _dropout(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout (as ``F.dropout`` in training) with the mask drawn from ``generator``."""
    if p == 0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= p
    return x * keep * (1.0 / (1.0 - p))


def _encoder_layer(layer: nn.TransformerEncoderLayer, x: torch.Tensor, generator: torch.Generator | None):
    """A pre-norm ``nn.TransformerEncoderLayer`` in training mode, its dropout masks drawn from ``generator``.

    The same parameters and the same function as the layer's own forward: self-attention block
    ``x + dropout(out_proj(attention(norm1(x))))`` (dropout also on the attention weights), then the feed-forward
    block ``x + dropout(linear2(dropout(activation(linear1(norm2(x))))))``.
    """
    attention = layer.self_attn
    n, t, d = x.shape
    heads = attention.num_heads
    qkv = F.linear(layer.norm1(x), attention.in_proj_weight, attention.in_proj_bias)
    q, k, v = qkv.view(n, t, 3, heads, d // heads).permute(2, 0, 3, 1, 4)  # each (n, heads, t, d / heads)
    weights = _softmax(q @ k.transpose(-1, -2) * (d // heads) ** -0.5, dim=-1)
    mixed = (_dropout(weights, attention.dropout, generator) @ v).transpose(1, 2).reshape(n, t, d)
    x = x + _dropout(attention.out_proj(mixed), layer.dropout1.p, generator)
    hidden = _dropout(layer.activation(layer.linear1(layer.norm2(x))), layer.dropout.p, generator)
    return x + _dropout(layer.linear2(hidden), layer.dropout2.p, generator)


def _softmax(scores: torch.Tensor, *, dim: int) -> torch.Tensor:
    """Softmax along ``dim``, written out: ``torch.softmax`` over an axis of a few tokens was 4x slower on CPU."""
    weights = (scores - scores.amax(dim=dim, keepdim=True)).exp()
    return weights / weights.sum(dim=dim, keepdim=True)
