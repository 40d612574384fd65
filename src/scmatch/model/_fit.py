"""How a :class:`~scmatch.model.MatchModel` is fitted: members, their seeds and held-out slices, threads, calibration.

Each network of an ensemble (``n_models``) has its own seed, holds out its own slice of the reference pairs
(disjoint slices while they fit) for early stopping and calibration, and trains on the rest; on CPU the members
train side by side in threads (:mod:`scmatch.model.train._parallel`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ._inputs import standardization
from .nn._ensemble import EnsembleMatcher
from .nn._modules import CrossAttentionMatcher
from .solvers._calibration import calibrate
from .train._loop import History, _distributed, train
from .train._objective import Objective
from .train._parallel import member_threads, run_members
from .train._plan import TrainingPlan
from .train._self_supervised import SelfSupervision, pretrain

#: most held-out pairs used for early stopping and calibration (scored densely every epoch)
MAX_VALIDATION = 1000
#: fewest held-out pairs (with ``validation_fraction > 0``): early stopping and temperature calibration on fewer
#: are noise, and calibrating on training pairs gives temperatures too sharp for new cells
MIN_VALIDATION_PAIRS = 10
#: fewest pairs left for training: the negatives of every pair come from its minibatch
MIN_TRAINING_PAIRS = 40
#: fewest paired reference cells ``fit`` accepts: a validation slice plus enough training pairs
MIN_REFERENCE_PAIRS = MIN_VALIDATION_PAIRS + MIN_TRAINING_PAIRS


def check_reference_size(n: int) -> None:
    """Refuse fewer than :data:`MIN_REFERENCE_PAIRS` reference pairs, before anything is trained."""
    if n < MIN_REFERENCE_PAIRS:
        raise ValueError(
            f"Too few paired reference cells ({n}): fitting needs at least {MIN_REFERENCE_PAIRS} "
            f"({MIN_VALIDATION_PAIRS} held out for early stopping and temperature calibration, "
            f"{MIN_TRAINING_PAIRS} to train on). Add paired cells to the reference, or apply a model fitted on "
            "a larger reference (MatchModel.load)."
        )


def held_out_size(n: int, fraction: float) -> int:
    """Pairs each member holds out (0 with ``fraction=0``: no early stopping, calibration on training pairs)."""
    if fraction <= 0:
        return 0
    # the validation slice is scored as a dense n_val x n_val block every epoch: cap it
    n_val = max(MIN_VALIDATION_PAIRS, round(fraction * n))
    return min(n_val, MAX_VALIDATION, n - MIN_TRAINING_PAIRS)


def member_split(order: np.ndarray, *, n_val: int, member: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out and training pair indices of ensemble member ``member``, from one permutation of the pairs.

    Member ``k`` holds out the ``k``-th consecutive slice of ``n_val`` pairs of ``order`` (wrapping around), so the
    members hold out disjoint slices while ``K * n_val <= n`` and every pair trains all but at most one member.
    Member 0 holds out ``order[:n_val]``, the slice a single model holds out.
    """
    n = len(order)
    held = order[np.arange(member * n_val, (member + 1) * n_val) % n] if n_val else order[:0]
    mask = np.ones(n, dtype=bool)
    mask[held] = False
    return np.sort(held), np.flatnonzero(mask)


def combine_temperatures(temperatures: list[dict[str, float]]) -> dict[str, float]:
    """The ensemble's matching temperatures: the geometric mean of the members' calibrated ones.

    Each member is calibrated on the pairs it held out; no pair is held out from every member, so the averaged
    similarity has no held-out pairs of its own to be calibrated on.
    """
    return {name: float(np.exp(np.mean([np.log(t[name]) for t in temperatures]))) for name in temperatures[0]}


@dataclasses.dataclass
class Fitted:
    """What fitting produced: the network (an ensemble for ``n_models > 1``), histories, temperatures."""

    module: CrossAttentionMatcher | EnsembleMatcher
    histories: list[History]
    temperatures: list[dict[str, float]]
    calibration_seconds: float
    held_out: list[np.ndarray] = dataclasses.field(default_factory=list)  # each member's held-out pair indices
    pretraining: dict | None = None  # what self-supervised pre-training did (None: none)


@dataclasses.dataclass(frozen=True)
class Members:
    """The networks to fit: their architecture and number, the objective, and how held-out pairs are scored.

    ``similarity(module, X1, X2)`` gives the candidate similarities of held-out pairs, as a query's would be
    scored, for calibration.
    """

    architecture: dict[str, Any]
    n_models: int
    objective: Objective
    similarity: Callable[[Any, Any, Any], sp.csr_matrix]
    device: torch.device


def fit_members(
    members: Members,
    X1,
    X2,
    *,
    plan: TrainingPlan,
    sample_weight: np.ndarray | None,
    rng: np.random.Generator,
    pretraining: tuple[SelfSupervision, tuple] | None = None,
) -> Fitted:
    """Train and calibrate ``members.n_models`` networks on the paired rows of ``X1`` and ``X2``.

    Each member holds out its own slice of the pairs (member 0: the slice a single model holds out); the
    optimizer-step budget is shared, so an ensemble of K trains each member for 1/K of it. Every member's random
    streams come from its own seed, so members can train side by side (:mod:`scmatch.model.train._parallel`).
    ``pretraining = (settings, (cells1, cells2))`` first pre-trains each member's encoders on those cells
    (:mod:`scmatch.model.train._self_supervised`), one member after the other, each from its own seed.
    """
    n_models, device = members.n_models, members.device
    n_val = held_out_size(X1.shape[0], plan.validation_fraction)
    order = rng.permutation(X1.shape[0])
    if n_models > 1 and plan.max_steps is not None:
        plan = dataclasses.replace(plan, max_steps=-(-plan.max_steps // n_models))
    seeds = [int(seed) for seed in rng.integers(2**31 - 1, size=n_models)]
    jobs, held_out, losses = [], [], []
    for k, seed in enumerate(seeds):
        val_idx, train_idx = member_split(order, n_val=n_val, member=k)
        held_out.append(val_idx)
        module = _new_member(members.architecture, X1, X2, train_idx, seed=seed, device=device)
        if pretraining is not None:
            desc = "pre-training" if n_models == 1 else f"pre-training member {k + 1}/{n_models}"
            losses.append(
                _pretrain_member(module, *pretraining, seed=seed, device=device, bar=(plan.progress_bar, desc))
            )
        fit = functools.partial(_fit_member, members, module, X1, X2, val_idx, train_idx)
        jobs.append(functools.partial(fit, seed=seed, plan=plan, sample_weight=sample_weight, member=k))
    n_threads = member_threads(n_models, device, world=_distributed()[1])
    networks, histories, temperatures, seconds = zip(*run_members(jobs, n_threads=n_threads), strict=True)
    module = networks[0] if n_models == 1 else EnsembleMatcher(list(networks))
    report = None
    if pretraining is not None:
        settings, cells = pretraining
        # the final losses member by member, mod1's then mod2's
        report = {
            **dataclasses.asdict(settings),
            "n_cells": [int(c.shape[0]) for c in cells],
            "final_loss": [loss for member in losses for loss in member],
        }
    return Fitted(module, list(histories), list(temperatures), float(sum(seconds)), held_out, report)


def _pretrain_member(module, settings: SelfSupervision, cells: tuple, *, seed: int, device, bar: tuple) -> list[float]:
    """Pre-train one member's encoders; its minibatches and views come from streams of its own seed."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed + 1)
    rng = np.random.default_rng([seed, 29])
    progress_bar, desc = bar
    return pretrain(
        module, cells, settings=settings, rng=rng, generator=generator, device=device, progress_bar=progress_bar,
        desc=desc,
    )  # fmt: skip


def _new_member(architecture: dict, X1, X2, train_idx, *, seed: int, device: torch.device) -> CrossAttentionMatcher:
    """An untrained network initialised from ``seed``, its inputs standardised on ``train_idx``."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        module = CrossAttentionMatcher(X1.shape[1], X2.shape[1], **architecture).to(device)
    for m, X in ((1, X1), (2, X2)):
        shift, scale = standardization(X[train_idx])
        module.set_standardization(m, torch.as_tensor(shift), torch.as_tensor(scale))
    return module


def _fit_member(members: Members, module, X1, X2, val_idx, train_idx, stop, *, seed, plan, sample_weight, member):
    """Train one network on ``train_idx`` (early stopping on ``val_idx``) and calibrate it.

    Its minibatches come from a NumPy generator seeded with ``seed`` and its noise and dropout from a torch
    generator seeded from that NumPy generator's first draw (the initial weights came from torch's generator
    seeded with ``seed`` itself: the masks must not replay the numbers the weights were drawn from). Returns
    ``(module, history, temperatures, calibration seconds)``.
    """
    rng = np.random.default_rng(seed)
    generator = torch.Generator(device=members.device)
    generator.manual_seed(int(rng.integers(2**63 - 1)))
    one = members.n_models == 1
    history = train(
        module, X1[train_idx], X2[train_idx], plan=plan, objective=members.objective, rng=rng,
        device=members.device, sample_weight=None if sample_weight is None else sample_weight[train_idx],
        validation=(X1[val_idx], X2[val_idx]) if len(val_idx) else None, generator=generator, stop=stop,
        desc="training" if one else f"training member {member + 1}/{members.n_models}",
        bar_position=None if one else member,
    )  # fmt: skip
    calib = val_idx if len(val_idx) else train_idx
    started = time.perf_counter()
    temperature = calibrate(members.similarity(module, X1[calib], X2[calib]), calibration=plan.calibration)
    return module, history, temperature, time.perf_counter() - started


def fitted_history(fitted: Fitted, n_models: int) -> dict:
    """The training record kept by the model: the first member's history, and each member's summary."""
    history = fitted.histories[0].as_dict()
    history["calibration_seconds"] = fitted.calibration_seconds
    if fitted.pretraining is not None:  # flat, as config.json's history holds numbers and lists of numbers
        history.update({f"self_supervision_{k}": v for k, v in fitted.pretraining.items()})
    if n_models > 1:
        history["n_models"] = n_models
        history["member_best_epoch"] = [h.best_epoch for h in fitted.histories]
        history["member_epochs"] = [len(h.epoch) for h in fitted.histories]
        history["member_temperature_sinkhorn"] = [t["sinkhorn"] for t in fitted.temperatures]
    return history
