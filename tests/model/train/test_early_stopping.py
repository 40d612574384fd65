"""Early stopping: the moving average of the validation score decides when to stop, the raw score which weights."""

from __future__ import annotations

import numpy as np
import torch

from scmatch.model import TrainingPlan
from scmatch.model.nn._metric import Metric
from scmatch.model.nn._modules import CrossAttentionMatcher
from scmatch.model.train import _loop
from scmatch.model.train._loop import train
from scmatch.model.train._objective import Objective
from scmatch.model.train._stopping import VAL_SMOOTHING

#: a noise peak at epoch 2 (the best raw score), a smaller one at epoch 5 that lifts the average above its
#: epoch-2 value, then a plateau
SCORES = [0.1, 0.2, 0.5, 0.1, 0.1, 0.45] + [0.1] * 20


def _scripted_training(toy_pairs, monkeypatch, *, warmup: int, patience: int):
    """Train with ``SCORES`` as the validation scores; returns the history, the weights seen at each validation
    and the network's final weights."""
    seen = []

    def scripted(module, X1, X2, device, chunk=512, *, objective):
        seen.append({k: v.clone() for k, v in module.state_dict().items()})
        return SCORES[len(seen) - 1]

    monkeypatch.setattr(_loop, "validation_score", scripted)
    X1, X2 = toy_pairs[0][:96], toy_pairs[1][:96]
    torch.manual_seed(0)
    module = CrossAttentionMatcher(X1.shape[1], X2.shape[1], d_model=16, d_embed=16, n_tokens=2)
    plan = TrainingPlan(
        max_epochs=len(SCORES), batch_size=32, warmup_epochs=warmup, patience=patience, progress_bar=False
    )
    history = train(
        module, X1, X2, plan=plan, objective=Objective("infonce", Metric()), rng=np.random.default_rng(0),
        device=torch.device("cpu"), validation=(X1[:10], X2[:10]),
    )  # fmt: skip
    return history, seen, module.state_dict()


def test_stops_on_the_moving_average_and_keeps_the_best_raw_weights(toy_pairs, monkeypatch):
    history, seen, final = _scripted_training(toy_pairs, monkeypatch, warmup=2, patience=3)
    expected = [SCORES[0]]
    for score in SCORES[1:]:
        expected.append(VAL_SMOOTHING * expected[-1] + (1 - VAL_SMOOTHING) * score)
    # the average after the warm-up: 0.241 (epoch 2), lower, lower, 0.253 (epoch 5, a rise), then three epochs
    # lower: training stops at epoch 8. The raw score alone would have stopped at epoch 5 (three epochs after 0.5)
    assert history.epoch == list(range(9))
    np.testing.assert_allclose(history.val_smoothed, expected[:9])
    np.testing.assert_array_equal(history.val_score, SCORES[:9])
    assert np.argmax(history.val_smoothed[2:]) + 2 == 5
    # the weights kept are those of the best raw score (epoch 2), not of the average's peak (epoch 5)
    assert history.best_epoch == 2
    for name, value in final.items():
        torch.testing.assert_close(value, seen[2][name], rtol=0, atol=0)
    assert any(not torch.equal(seen[2][name], seen[5][name]) for name in final)


def test_warm_up_scores_neither_stop_nor_pick(toy_pairs, monkeypatch):
    """Within the warm-up nothing counts: with a warm-up of 3 the epoch-2 peak is never the best, and the
    patience starts from the average at epoch 3."""
    history, _, _ = _scripted_training(toy_pairs, monkeypatch, warmup=3, patience=3)
    assert history.best_epoch == 5  # 0.45, the best raw score from epoch 3 on
    # average from epoch 3: 0.199, 0.169, 0.253 (best), 0.207, 0.175, 0.153 -> stop at epoch 8
    assert len(history.epoch) == 9
