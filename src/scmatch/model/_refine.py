"""Transductive refinement: fine-tune a fitted model once more, with the query in view.

After the metric is learned on the reference and the query matched, each network of the model is trained a little
further, at a lower learning rate, on the reference pairs (the held-out slices included) and, optionally, on
*pseudo-pairs* of the query: the query cells whose best match is mutual (row ``i``'s most likely column is ``j``
and column ``j``'s most likely row is ``i``) and holds at least ``min_probability`` of the row's mass. The query is
then matched again with the refined networks, at the temperatures calibrated on the reference.

The strongest entries of the 2021 challenge and MatchCLOT fine-tuned on such pseudo-pairs. Measured here
(benchmarks/README.md, Refinement), their value follows the share of them that is right, which the data does not
reveal in advance: with a small query and a good match (totalVI) most mutual best matches are right and they help;
with a larger or harder query most are wrong and they hurt. The low-rate phase on the reference pairs alone helped
on more sets, so pseudo-pairs are off unless asked for.

The refinement works on a copy: the model given keeps the weights it learned on the reference, so it can still be
saved and applied to other queries. It is deterministic per seed and bounded: ``steps`` optimizer steps in all
(shared among the ensemble's networks), per round.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from .._utils import _device, logger
from ._joint import fit_shared_projection
from .solvers._search import encode
from .train._loop import _distributed, train
from .train._objective import Objective
from .train._parallel import member_threads, run_members
from .train._plan import TrainingPlan


@dataclass(frozen=True)
class Refinement:
    """Settings of the transductive refinement (a matching setting: it runs once the query is known).

    Parameters
    ----------
    steps
        Optimizer steps per round, shared among the ensemble's networks.
    lr_factor
        Learning rate of the refinement, as a share of the model's training learning rate.
    pseudo_pairs
        Also train on the query's confident mutual best matches (see the module's notes for when they help).
    min_probability
        Least probability of a mutual best match to be taken as a pseudo-pair.
    rounds
        Rounds of match, select pseudo-pairs, fine-tune. More than one only makes sense with ``pseudo_pairs``.
    """

    steps: int = 500
    lr_factor: float = 0.3
    pseudo_pairs: bool = False
    min_probability: float = 0.5
    rounds: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise ValueError(f"Refinement `steps` must be a positive integer, got {self.steps!r}.")
        if not (isinstance(self.rounds, int) and self.rounds >= 1):
            raise ValueError(f"Refinement `rounds` must be a positive integer, got {self.rounds!r}.")
        if not 0 < self.lr_factor <= 1:
            raise ValueError(f"Refinement `lr_factor` must be in (0, 1], got {self.lr_factor!r}.")
        if not 0 < self.min_probability <= 1:
            raise ValueError(f"Refinement `min_probability` must be in (0, 1], got {self.min_probability!r}.")


def as_refinement(refine: bool | Refinement | None) -> Refinement | None:
    """``True`` -> the default settings, ``False``/``None`` -> no refinement, a :class:`Refinement` as is."""
    if refine is None or refine is False:
        return None
    if refine is True:
        return Refinement()
    if isinstance(refine, Refinement):
        return refine
    raise TypeError(f"`refine` must be True, False or a scmatch.model.Refinement, not {type(refine).__name__}.")


def mutual_best(P: sp.spmatrix, *, min_probability: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the mutual best matches of ``P`` with at least ``min_probability`` of their row's mass.

    Row ``i`` and column ``j`` are a mutual best match when ``j`` is the row's largest entry and ``i`` the column's
    (ties to the first). Rows without any entry are never selected.
    """
    P = sp.csr_matrix(P)
    if P.nnz == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    best_col = np.asarray(P.argmax(axis=1)).ravel()
    best_row = np.asarray(P.argmax(axis=0)).ravel()
    top = P.max(axis=1).toarray().ravel()
    rows = np.flatnonzero((best_row[best_col] == np.arange(P.shape[0])) & (top >= min_probability) & (top > 0))
    return rows, best_col[rows]


def refine(
    model,
    reference: tuple,
    query: tuple,
    *,
    settings: Refinement,
    predict: dict,
    random_state: int | None = 0,
) -> tuple[object, sp.csr_matrix, dict]:
    """Fine-tune a copy of a fitted ``model`` (see the module's notes) and match the query with it.

    Parameters
    ----------
    model
        A fitted :class:`~scmatch.model.MatchModel`; left unchanged.
    reference
        ``(X1, X2)``: the paired reference cells the model was fitted on (row ``i`` of each is one cell).
    query
        ``(X1, X2)``: the query cells to match.
    settings
        The :class:`Refinement` settings.
    predict
        Keyword arguments of :meth:`~scmatch.model.MatchModel.predict_proba` (batches, matching, top_k, ...).
    random_state
        Seed of the refinement's minibatches, noise and dropout.

    Returns
    -------
    ``(refined model, probabilities, info)``; ``info`` holds ``settings`` and, one entry per round,
    ``n_pseudo_pairs`` and ``seconds``.
    """
    R1, R2 = reference
    Q1, Q2 = query
    refined = copy.deepcopy(model)
    refined.held_out_ = None  # fine-tuned on every reference pair: none is held out any more
    module = refined._check_fitted()
    members = list(module.members) if hasattr(module, "members") else [module]
    device = _device(refined.device)
    plan = _refinement_plan(refined.plan, settings, n_members=len(members))
    objective = refined._objective(plan)
    seed = 0 if random_state is None else int(random_state)
    P = refined.predict_proba(Q1, Q2, **predict) if settings.pseudo_pairs else None
    n_pseudo_pairs, seconds = [], []
    for r in range(settings.rounds):
        started = time.perf_counter()
        X1, X2, n_pseudo = R1, R2, 0
        if settings.pseudo_pairs:
            rows, cols = mutual_best(P, min_probability=settings.min_probability)
            n_pseudo = int(rows.size)
            X1, X2 = _stack(R1, Q1[rows]), _stack(R2, Q2[cols])
        plan_r = dataclasses.replace(plan, batch_size=min(plan.batch_size, X1.shape[0]))
        jobs = [
            _job(member, X1, X2, plan=plan_r, objective=objective, seed=[seed, k, r, 29], device=device)
            for k, member in enumerate(members)
        ]
        run_members(jobs, n_threads=member_threads(len(jobs), device, world=_distributed()[1]))
        P = refined.predict_proba(Q1, Q2, **predict)
        n_pseudo_pairs.append(n_pseudo)
        seconds.append(time.perf_counter() - started)
        logger.info("refinement round %d: %d pseudo-pairs", r + 1, n_pseudo)
    # the shared projection for joint plots, refitted on the refined embeddings of the reference pairs
    emb1, _ = encode(module, R1, modality=1, device=device)
    emb2, _ = encode(module, R2, modality=2, device=device)
    refined.joint_ = fit_shared_projection(emb1.numpy(), emb2.numpy())
    info = {
        "settings": dataclasses.asdict(settings),
        "n_pseudo_pairs": np.asarray(n_pseudo_pairs, dtype=np.int64),
        "seconds": np.asarray(seconds),
    }
    return refined, sp.csr_matrix(P), info


def _stack(A, B):
    if sp.issparse(A) or sp.issparse(B):
        return sp.vstack([sp.csr_matrix(A), sp.csr_matrix(B)]).tocsr()
    return np.vstack([np.asarray(A), np.asarray(B)])


def _refinement_plan(plan: TrainingPlan, settings: Refinement, *, n_members: int) -> TrainingPlan:
    """The model's training plan for the refinement.

    Every pair (no coreset), a lower learning rate, no warm-up, ``settings.steps`` shared among the members, no
    progress bar.
    """
    fields = {field.name: getattr(plan, field.name) for field in dataclasses.fields(TrainingPlan)}
    return TrainingPlan(
        **fields
        | {
            "lr": plan.lr * settings.lr_factor,
            "max_steps": -(-settings.steps // n_members),
            "warmup_epochs": 0,
            "progress_bar": False,
        }
    )


def _job(member, X1, X2, *, plan: TrainingPlan, objective: Objective, seed: list[int], device: torch.device):
    """One network's fine-tuning, with its own random streams (so threads do not change the result)."""

    def run(stop):
        rng = np.random.default_rng(seed)
        generator = torch.Generator(device=device)
        generator.manual_seed(int(rng.integers(2**63 - 1)))
        train(member, X1, X2, plan=plan, objective=objective, rng=rng, device=device, generator=generator, stop=stop)

    return run
