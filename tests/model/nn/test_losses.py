import torch

from scmatch.model.nn._losses import info_nce, triplet_hardest


def test_triplet_hardest_hand_computed():
    sim = torch.tensor([[0.9, 0.8, 0.1], [0.2, 0.5, 0.6], [0.0, 0.3, 0.7]])
    # row hardest negatives: 0.8, 0.6, 0.3; column hardest: 0.2, 0.8, 0.6 (margin 0.2)
    rows = torch.tensor([max(0, 0.2 - 0.9 + 0.8), max(0, 0.2 - 0.5 + 0.6), max(0, 0.2 - 0.7 + 0.3)])
    cols = torch.tensor([max(0, 0.2 - 0.9 + 0.2), max(0, 0.2 - 0.5 + 0.8), max(0, 0.2 - 0.7 + 0.6)])
    expected = (rows + cols).mean()
    torch.testing.assert_close(triplet_hardest(sim, margin=0.2), expected)


def test_triplet_mean_form_and_weights():
    sim = torch.tensor([[0.9, 0.8], [0.2, 0.5]])
    # with two cells the mean over negatives equals the hardest one
    torch.testing.assert_close(triplet_hardest(sim, hardest=False), triplet_hardest(sim, hardest=True))
    weight = torch.tensor([1.0, 0.0])
    per0 = max(0, 0.2 - 0.9 + 0.8) + max(0, 0.2 - 0.9 + 0.2)
    torch.testing.assert_close(triplet_hardest(sim, weight=weight), torch.tensor(per0))


def test_info_nce_matches_cross_entropy():
    sim = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.exp(torch.tensor(10.0)) / (torch.exp(torch.tensor(10.0)) + 1)
    torch.testing.assert_close(info_nce(sim, temperature=0.1), -torch.log(p))
