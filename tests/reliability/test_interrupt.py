"""Training that is interrupted or diverges leaves the user's MuData (and the model) untouched."""

from __future__ import annotations

import pytest
import torch

import scmatch as scm
from scmatch.model import MatchModel
from scmatch.model._modules import CrossAttentionMatcher
from scmatch.model._train import TrainingDivergedError

from .cases import N_REF, TINY, toy_mudata
from .snapshot import assert_unchanged, snapshot

SMALL_BATCHES = {**TINY, "batch_size": 8}  # 28 reference pairs: 3 batches per epoch


def _failing_second_batch(monkeypatch, outcome):
    """Make the training step's similarity run once, then ``outcome`` (raise, or return a bad tensor)."""
    calls = []
    original = CrossAttentionMatcher.batch_similarity

    def step(self, x1, x2):
        calls.append(x1.shape[0])
        if len(calls) == 2:
            return outcome(original(self, x1, x2))
        return original(self, x1, x2)

    monkeypatch.setattr(CrossAttentionMatcher, "batch_similarity", step)
    return calls


def _interrupt(sim):
    raise KeyboardInterrupt


@pytest.mark.parametrize("copy", [False, True])
def test_keyboard_interrupt_mid_epoch_leaves_mudata_unchanged(monkeypatch, copy):
    mdata = toy_mudata()
    before = snapshot(mdata)
    calls = _failing_second_batch(monkeypatch, _interrupt)
    model = MatchModel(**SMALL_BATCHES)
    with pytest.raises(KeyboardInterrupt):
        scm.tl.match_modalities(mdata, reference="is_reference", model=model, copy=copy)
    assert calls == [8, 8]  # the first batch trained, the second was interrupted: mid-epoch
    assert N_REF // SMALL_BATCHES["batch_size"] > 2
    assert_unchanged(mdata, before)
    assert model.module_ is None and model.history_ == {} and model.temperature_ == {}


def test_nan_loss_mid_training_writes_nothing(monkeypatch):
    mdata = toy_mudata()
    before = snapshot(mdata)
    calls = _failing_second_batch(monkeypatch, lambda sim: sim * torch.nan)
    model = MatchModel(**SMALL_BATCHES)
    with pytest.raises(TrainingDivergedError, match=r"Training diverged: the loss became nan at epoch 0\. Lower `lr`"):
        scm.tl.match_modalities(mdata, reference="is_reference", model=model)
    assert len(calls) == 2
    assert_unchanged(mdata, before)
    assert model.module_ is None


def test_infinite_loss_through_the_model_api(monkeypatch):
    x = toy_mudata()["rna"].obsm["X_pca"][:N_REF]
    before = snapshot(x)
    _failing_second_batch(monkeypatch, lambda sim: sim + torch.inf)
    model = MatchModel(**{**SMALL_BATCHES, "loss": "triplet"})
    with pytest.raises(TrainingDivergedError, match=r"the loss became (inf|nan)"):
        model.fit(x, x)
    assert_unchanged(x, before)
    assert model.module_ is None
