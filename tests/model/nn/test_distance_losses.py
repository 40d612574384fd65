import itertools

import pytest
import torch

from scmatch.model.nn._losses import distance_contrastive, distance_triplet

D = torch.tensor([[0.3, 0.4], [0.1, 0.2]])


def test_distance_triplet_hand_computed():
    # rows: a0 [0.3-0.4+0.2]=0.1, a1 [0.2-0.1+0.2]=0.3; columns: c0 [0.3-0.1+0.2]=0.4, c1 [0.2-0.4+0.2]=0
    assert float(distance_triplet(D, margin=0.2)) == pytest.approx(((0.1 + 0.4) / 2 + (0.3 + 0.0) / 2) / 2)
    assert float(distance_triplet(D, margin=0.2, weight=torch.tensor([1.0, 0.0]))) == pytest.approx(0.25)


def test_distance_contrastive_hand_computed():
    # rows: 0.3 + [0.2-0.4]+ = 0.3, 0.2 + [0.2-0.1]+ = 0.3; columns: 0.3 + 0.1 = 0.4, 0.2 + 0 = 0.2
    assert float(distance_contrastive(D, margin=0.2)) == pytest.approx(((0.3 + 0.4) / 2 + (0.3 + 0.2) / 2) / 2)


def test_label_masks_match_brute_force():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, generator=g)
    dist = torch.cdist(x, x)
    y = torch.tensor([0, 0, 1, 1, 1, 2])
    pos = (y[:, None] == y[None, :]) & ~torch.eye(6, dtype=torch.bool)
    neg = y[:, None] != y[None, :]
    m = 0.5
    tri, con = [], []
    for a in range(6):
        ps, ns = pos[a].nonzero().ravel().tolist(), neg[a].nonzero().ravel().tolist()
        terms = [max(0.0, float(dist[a, p] - dist[a, n]) + m) for p, n in itertools.product(ps, ns)]
        tri.append(sum(terms) / max(len(terms), 1))
        pull = sum(float(dist[a, p]) for p in ps) / max(len(ps), 1)
        con.append(pull + sum(max(0.0, m - float(dist[a, n])) for n in ns) / len(ns))
    # the distance is symmetric, so rows and columns give the same per-anchor terms
    assert float(distance_triplet(dist, margin=m, positive=pos, negative=neg)) == pytest.approx(sum(tri) / 6)
    assert float(distance_contrastive(dist, margin=m, positive=pos, negative=neg)) == pytest.approx(sum(con) / 6)
