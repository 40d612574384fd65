"""Ensemble members trained side by side in threads (scmatch.model.train._parallel)."""

import threading
import time

import numpy as np
import pytest
import torch

from scmatch.model import MatchModel, TrainingPlan, _fit
from scmatch.model.train._loop import TrainingCancelledError, TrainingDivergedError
from scmatch.model.train._parallel import member_threads, run_members


def test_member_threads():
    cpu = torch.device("cpu")
    assert member_threads(3, cpu) == 3
    assert member_threads(1, cpu) == 1
    assert member_threads(3, cpu, world=2) == 1  # data-parallel processes train their members in turn
    assert member_threads(3, torch.device("meta")) == 1  # not CPU: one after the other


def test_results_in_order_and_threads_restored():
    before = torch.get_num_threads()
    seen = []

    def job(k):
        def run(stop):
            seen.append((k, threading.current_thread().name, torch.get_num_threads()))
            time.sleep(0.05 * (3 - k))  # the first job ends last
            return k * 10

        return run

    assert run_members([job(k) for k in range(3)], n_threads=3) == [0, 10, 20]
    assert torch.get_num_threads() == before
    assert all(name.startswith("scmatch-member") for _, name, _ in seen)
    assert all(n == max(1, before // 3) for _, _, n in seen)  # the intra-op threads are shared out
    assert run_members([job(k) for k in range(2)], n_threads=1) == [0, 10]  # in turn, in this thread


def test_first_error_stops_the_others():
    cancelled = []

    def failing(stop):
        time.sleep(0.05)
        raise TrainingDivergedError("member 0 diverged")

    def waiting(stop):
        for _ in range(400):  # up to 20 s unless stopped
            if stop.is_set():
                cancelled.append(True)
                raise TrainingCancelledError("stopped")
            time.sleep(0.05)
        return "finished"

    started = time.perf_counter()
    before = torch.get_num_threads()
    with pytest.raises(TrainingDivergedError, match="member 0 diverged"):  # the cause, not the cancellation
        run_members([waiting, failing, waiting], n_threads=3)
    assert time.perf_counter() - started < 5
    assert cancelled == [True, True]
    assert torch.get_num_threads() == before


def test_threaded_members_equal_members_in_turn(toy_pairs, monkeypatch):
    """Every member has its own random streams: threads change nothing, to the bit, at one torch thread."""
    X1, X2 = toy_pairs[0][:150], toy_pairs[1][:150]
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the same intra-op threads in both runs, so the same arithmetic
    try:
        plan = TrainingPlan(max_epochs=4, progress_bar=False)
        threaded = MatchModel(n_models=3).fit(X1, X2, plan=plan, random_state=5)
        monkeypatch.setattr(_fit, "member_threads", lambda *args, **kw: 1)
        in_turn = MatchModel(n_models=3).fit(X1, X2, plan=plan, random_state=5)
        again = MatchModel(n_models=3).fit(X1, X2, plan=plan, random_state=6)
    finally:
        torch.set_num_threads(before)
    a, b, c = (m.module_.state_dict() for m in (threaded, in_turn, again))
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert not all(torch.equal(a[name], c[name]) for name in a)
    assert threaded.temperature_ == in_turn.temperature_
    assert threaded.history_["member_best_epoch"] == in_turn.history_["member_best_epoch"]
    assert np.allclose(threaded.history_["train_loss"], in_turn.history_["train_loss"], rtol=0, atol=0)


def test_train_stops_when_told(toy_pairs):
    from scmatch.model.nn._metric import Metric
    from scmatch.model.nn._modules import CrossAttentionMatcher
    from scmatch.model.train._loop import train
    from scmatch.model.train._objective import Objective

    X1, X2 = toy_pairs[0][:100], toy_pairs[1][:100]
    stop = threading.Event()
    stop.set()
    module = CrossAttentionMatcher(X1.shape[1], X2.shape[1])
    with pytest.raises(TrainingCancelledError, match="stopped from outside at epoch 0"):
        train(
            module, X1, X2, plan=TrainingPlan(max_epochs=2, progress_bar=False),
            objective=Objective("infonce", Metric()), rng=np.random.default_rng(0), device=torch.device("cpu"),
            stop=stop,
        )  # fmt: skip
    assert module.generator is None  # the generator is not left on the network


def test_dropout_stream_is_not_the_initialisation_stream(toy_pairs, monkeypatch):
    """The weights come from torch's generator seeded with the member's seed; noise and dropout from another."""
    init_seeds, stream_seeds = [], []
    new_member, train = _fit._new_member, _fit.train

    def recording_new_member(*args, seed, **kwargs):
        init_seeds.append(seed)
        return new_member(*args, seed=seed, **kwargs)

    def recording_train(*args, generator, **kwargs):
        stream_seeds.append(generator.initial_seed())
        return train(*args, generator=generator, **kwargs)

    monkeypatch.setattr(_fit, "_new_member", recording_new_member)
    monkeypatch.setattr(_fit, "train", recording_train)
    plan = TrainingPlan(max_epochs=1, progress_bar=False)
    MatchModel(n_models=3).fit(toy_pairs[0][:120], toy_pairs[1][:120], plan=plan, random_state=1)
    assert len(set(init_seeds)) == 3 and len(set(stream_seeds)) == 3
    assert not set(init_seeds) & set(stream_seeds)
