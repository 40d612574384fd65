"""Training that is interrupted or diverges leaves the user's MuData (and the model) untouched; a save or a
prediction write that is interrupted leaves the previous model or file as it was."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch

import scmatch as scm
from scmatch.model import MatchModel, _persist
from scmatch.model.nn._modules import CrossAttentionMatcher
from scmatch.model.train._loop import TrainingDivergedError

from .cases import LSIS, N_REF, PCS, fitted_model, reps, saved_model, tiny_model, toy_mudata
from .snapshot import assert_unchanged, snapshot

SMALL_BATCHES = 8  # 50 reference pairs, 40 trained on: 5 batches per epoch


def _failing_second_batch(monkeypatch, outcome):
    """Make the training step's similarity run once, then ``outcome`` (raise, or return a bad tensor)."""
    calls = []
    original = CrossAttentionMatcher.batch_similarity

    def step(self, x1, x2, **kwargs):
        calls.append(x1.shape[0])
        if len(calls) == 2:
            return outcome(original(self, x1, x2, **kwargs))
        return original(self, x1, x2, **kwargs)

    monkeypatch.setattr(CrossAttentionMatcher, "batch_similarity", step)
    return calls


def _interrupt(sim):
    raise KeyboardInterrupt


def _uninterrupted_calls(monkeypatch) -> int:
    """Training and validation similarities of the same fit, run to its end."""
    monkeypatch.undo()
    calls = []
    original = CrossAttentionMatcher.batch_similarity

    def counting(self, x1, x2, **kwargs):
        calls.append(x1.shape[0])
        return original(self, x1, x2, **kwargs)

    monkeypatch.setattr(CrossAttentionMatcher, "batch_similarity", counting)
    scm.tl.match_modalities(toy_mudata(), reference="is_reference", model=tiny_model(batch_size=SMALL_BATCHES))
    return len(calls)


@pytest.mark.parametrize("copy", [False, True])
def test_keyboard_interrupt_mid_epoch_leaves_mudata_unchanged(monkeypatch, copy):
    mdata = toy_mudata()
    before = snapshot(mdata)
    calls = _failing_second_batch(monkeypatch, _interrupt)
    model = tiny_model(batch_size=SMALL_BATCHES)
    assert model.n_models == 3  # three members, trained side by side in threads
    with pytest.raises(KeyboardInterrupt):
        scm.tl.match_modalities(mdata, reference="is_reference", model=model, copy=copy)
    # the second training batch (of whichever member) was interrupted: mid-epoch; the other members stopped at their
    # next step instead of training on: far fewer steps than the whole fit takes
    assert calls[:2] == [8, 8]
    assert N_REF // SMALL_BATCHES > 2
    assert len(calls) < _uninterrupted_calls(monkeypatch) / 3
    assert_unchanged(mdata, before)
    assert model.module_ is None and model.history_ == {} and model.temperature_ == {}


def test_nan_loss_mid_training_writes_nothing(monkeypatch):
    mdata = toy_mudata()
    before = snapshot(mdata)
    calls = _failing_second_batch(monkeypatch, lambda sim: sim * torch.nan)
    model = tiny_model(batch_size=SMALL_BATCHES)
    with pytest.raises(TrainingDivergedError, match=r"Training diverged: the loss became nan at epoch 0\. Lower `lr`"):
        scm.tl.match_modalities(mdata, reference="is_reference", model=model)
    # the error of the member that diverged, not the cancellation of the others, which stopped at their next step
    assert len(calls) < _uninterrupted_calls(monkeypatch) / 3
    assert_unchanged(mdata, before)
    assert model.module_ is None


def test_infinite_loss_through_the_model_api(monkeypatch):
    x = toy_mudata()["rna"].obsm["X_pca"][:N_REF]
    before = snapshot(x)
    _failing_second_batch(monkeypatch, lambda sim: sim + torch.inf)
    model = tiny_model(loss="triplet", batch_size=SMALL_BATCHES)
    with pytest.raises(TrainingDivergedError, match=r"the loss became (inf|nan)"):
        model.fit(x, x)
    assert_unchanged(x, before)
    assert model.module_ is None


def _half_then_interrupt(obj, target, *args, **kwargs):
    """A writer (torch.save, AnnData.write_h5ad) that dies part-way: half a file, then Ctrl-C."""
    with open(target, "wb") as handle:
        handle.write(b"half a file")
    raise KeyboardInterrupt


def _interrupt_call(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("where", "replacement"),
    [("torch.save", _half_then_interrupt), ("json.dumps", _interrupt_call)],
    ids=["while-writing-model.pt", "between-model.pt-and-config.json"],
)
def test_keyboard_interrupt_mid_save_keeps_the_saved_model(tmp_path, monkeypatch, where, replacement):
    folder = saved_model(tmp_path)  # the shared fitted model, saved
    before = snapshot(tmp_path)
    x1, x2 = reps()
    other = tiny_model().fit(x1[:N_REF], x2[:N_REF], feature_names1=PCS, feature_names2=LSIS, random_state=1)
    expected = fitted_model().predict_proba(x1[N_REF:], x2[N_REF:])
    assert (other.predict_proba(x1[N_REF:], x2[N_REF:]) != expected).nnz > 0  # a finished save would change them
    module, name = where.split(".")
    monkeypatch.setattr(getattr(_persist, module), name, replacement)
    with pytest.raises(KeyboardInterrupt):
        other.save(folder, overwrite=True)
    monkeypatch.undo()
    assert_unchanged(tmp_path, before)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left beside it
    loaded = MatchModel.load(folder, device="cpu")
    assert (loaded.predict_proba(x1[N_REF:], x2[N_REF:]) != expected).nnz == 0


def test_keyboard_interrupt_mid_prediction_write_keeps_the_file(tmp_path, monkeypatch):
    target = tmp_path / "prediction.h5ad"
    old = sp.csr_matrix(np.eye(4))
    scm.io.write_prediction(old, target, dataset_id="toy", method_id="old")
    before = snapshot(tmp_path)
    monkeypatch.setattr(ad.AnnData, "write_h5ad", _half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        scm.io.write_prediction(np.full((4, 4), 0.25), target, dataset_id="toy", method_id="new")
    monkeypatch.undo()
    assert_unchanged(tmp_path, before)
    assert [p.name for p in tmp_path.iterdir()] == ["prediction.h5ad"]
    pred = scm.io.read_prediction(target)
    assert (pred.X != old).nnz == 0 and pred.uns["method_id"] == "old"
