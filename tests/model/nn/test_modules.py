"""The cross term of candidate pairs, computed from per-cell projections, against its definition."""

import pytest
import torch

from scmatch.model.nn._ensemble import EnsembleMatcher
from scmatch.model.nn._modules import CrossAttentionMatcher


def _network(seed: int, **kwargs) -> CrossAttentionMatcher:
    torch.manual_seed(seed)
    net = CrossAttentionMatcher(12, 9, dropout=0.0, **kwargs).eval()
    with torch.no_grad():  # biases are zero at initialisation: make every parameter count
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


@pytest.mark.parametrize("shape", [{}, {"n_tokens": 3, "d_model": 16, "d_embed": 8, "n_heads": 2}])
def test_candidate_cross_similarity_equals_definition(shape):
    net = _network(0, **shape)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        tok1 = net.tokens(torch.randn(30, 12, generator=gen), 1)
        tok2 = net.tokens(torch.randn(40, 9, generator=gen), 2)
        idx = torch.randint(0, 40, (30, 7), generator=gen)
        expected = net.cross_similarity(tok1, tok2[idx])  # (30, 7), the attention written out
        got = net.candidate_cross_similarity(
            net.cross_projections(tok1, 1), net.gather_candidates(net.cross_projections(tok2, 2), idx)
        )
        full = net.cross_similarity(tok1, tok2)  # all pairs, another path of the definition
    assert got.shape == (30, 7)
    assert expected.abs().mean() > 0.05  # not a degenerate all-zero case
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(got, full.gather(1, idx), atol=1e-5, rtol=0)


def test_cross_term_on_candidates_and_its_gradient():
    """Training's restricted cross term: the best columns get the exact value and the same gradient as all pairs."""
    net = _network(2).double()  # float64: the two paths sum in different orders
    gen = torch.Generator().manual_seed(3)
    x1, x2 = torch.randn(16, 12, generator=gen).double(), torch.randn(16, 9, generator=gen).double()
    tok1, tok2 = net.tokens(x1, 1), net.tokens(x2, 2)
    base = net.embed(tok1, 1) @ net.embed(tok2, 2).T
    part = net.cross_term(tok1, tok2, base, n_cross=4)
    full = net.cross_term(tok1, tok2, base)
    score = base.detach().clone()
    score.diagonal().fill_(float("inf"))
    idx = torch.topk(score, 4, dim=1).indices
    torch.testing.assert_close(part.gather(1, idx), full.gather(1, idx), atol=1e-12, rtol=0)
    assert (idx == torch.arange(16)[:, None]).any(dim=1).all()  # each row's own partner is among its candidates
    # every other entry of a row holds the row's smallest computed value
    mask = torch.zeros(16, 16, dtype=torch.bool).scatter(1, idx, True)
    lowest = part.gather(1, idx).amin(dim=1, keepdim=True).expand(16, 16)
    torch.testing.assert_close(part[~mask], lowest[~mask])
    # the gradients of the candidates' values equal those of the all-pairs definition
    weights = torch.randn(16, 4, generator=gen).double()
    params = [p for p in net.parameters() if p.requires_grad]
    g_part = torch.autograd.grad((part.gather(1, idx) * weights).sum(), params, retain_graph=True, allow_unused=True)
    g_full = torch.autograd.grad((full.gather(1, idx) * weights).sum(), params, allow_unused=True)
    # the same parameters take part (all but the self-attention embedding heads), with the same gradients
    assert [g is None for g in g_part] == [g is None for g in g_full]
    assert sum(g is not None for g in g_part) == len(params) - 4
    for a, b in zip(g_part, g_full, strict=True):
        if a is not None:
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)


def test_ensemble_candidate_cross_similarity_is_member_mean():
    members = [_network(seed) for seed in (4, 5)]
    ens = EnsembleMatcher(members)
    gen = torch.Generator().manual_seed(6)
    with torch.no_grad():
        x1, x2 = torch.randn(10, 12, generator=gen), torch.randn(20, 9, generator=gen)
        idx = torch.randint(0, 20, (10, 5), generator=gen)
        tok1, tok2 = ens.tokens(x1, 1), ens.tokens(x2, 2)
        got = ens.candidate_cross_similarity(
            ens.cross_projections(tok1, 1), ens.gather_candidates(ens.cross_projections(tok2, 2), idx)
        )
        each = [m.cross_similarity(m.tokens(x1, 1), m.tokens(x2, 2)).gather(1, idx) for m in members]
    torch.testing.assert_close(got, (each[0] + each[1]) / 2, atol=1e-5, rtol=0)


def test_cross_term_of_unequal_batches_equals_definition():
    """Rows and columns of different sizes (validation, scoring): the candidates' values are the definition's."""
    net = _network(7)
    gen = torch.Generator().manual_seed(8)
    with torch.no_grad():
        tok1 = net.tokens(torch.randn(10, 12, generator=gen), 1)
        tok2 = net.tokens(torch.randn(14, 9, generator=gen), 2)
        base = net.embed(tok1, 1) @ net.embed(tok2, 2).T
        part = net.cross_term(tok1, tok2, base, n_cross=5)
        idx = torch.topk(base, 5, dim=1).indices  # no partner column when the batches differ in size
        expected = net.cross_similarity(tok1, tok2).gather(1, idx)
    torch.testing.assert_close(part.gather(1, idx), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_training_forward_is_torchs_encoder(n_layers):
    """Training mode runs the layers one by one (own dropout); without dropout it is torch's encoder, to 1e-6."""
    torch.manual_seed(9)
    net = CrossAttentionMatcher(12, 9, dropout=0.0, n_layers=n_layers).train()
    x = torch.randn(25, 12)
    encoder = net.encoder1
    z = (x - net.shift1) / net.scale1
    expected = encoder.attention(encoder.norm(encoder.mlp(z).view(-1, 4, 64) + encoder.position))
    torch.testing.assert_close(net.tokens(x, 1), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(net.eval().tokens(x, 1), expected, atol=1e-6, rtol=0)


def test_dropout_masks_come_from_the_network_generator():
    torch.manual_seed(10)
    net = CrossAttentionMatcher(12, 9, dropout=0.3).train()
    x = torch.randn(40, 12)
    net.generator = torch.Generator().manual_seed(11)
    first = net.tokens(x, 1)
    torch.manual_seed(12)  # the global generator plays no part
    net.generator.manual_seed(11)
    again = net.tokens(x, 1)
    net.generator.manual_seed(13)
    other = net.tokens(x, 1)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_dropout_keeps_the_expectation():
    from scmatch.model.nn._modules import _dropout

    gen = torch.Generator().manual_seed(14)
    out = _dropout(torch.ones(200_000), 0.3, gen)
    assert abs((out == 0).float().mean().item() - 0.3) < 0.005  # 0.3 of the entries dropped (sd 0.001)
    torch.testing.assert_close(torch.unique(out), torch.tensor([0.0, 1 / 0.7]))  # kept entries scaled by 1 / (1 - p)
    assert abs(out.mean().item() - 1.0) < 0.01
    x = torch.randn(5, 3)
    assert _dropout(x, 0.0, gen) is x
