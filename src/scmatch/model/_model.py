"""MatchModel: fit a cross-modal metric on paired cells, then match unpaired cells with probabilities."""

from __future__ import annotations

import dataclasses
import functools
import numbers
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .._errors import InvalidFileError
from .._paths import check_output
from .._utils import _check_finite, _device, _rng, logger
from ._checks import check_joint, check_weights
from ._coreset import CORESETS
from ._ensemble import EnsembleMatcher, combine_temperatures, member_split
from ._joint import fit_shared_projection, from_json, shared_projection, to_json
from ._matching import MATCHINGS, match_block, match_block_temperatures
from ._modules import CrossAttentionMatcher
from ._parallel import member_threads, run_members
from ._persist import load_model, save_model
from ._preprocessing import read_states, states_from_adatas, writer
from ._scoring import SEARCHES, candidate_similarities, encode
from ._train import LOSS_METRIC, LOSSES, TrainConfig, _distributed, train
from ._wasserstein import distance_candidates

ARCHITECTURE = ("n_tokens", "d_model", "d_embed", "n_heads", "n_layers", "dropout", "alpha")
TEMPERATURE_GRID = np.geomspace(0.002, 1.0, 45)
CALIBRATIONS = ("nll", "match_score")
#: matchings with a calibrated temperature ("assignment" starts from the Sinkhorn plan)
CALIBRATED = ("softmax", "sinkhorn")
#: most held-out pairs used for early stopping and calibration (scored densely every epoch)
MAX_VALIDATION = 1000
#: fewest held-out pairs (with ``validation_fraction > 0``): early stopping and temperature calibration on fewer
#: are noise, and calibrating on training pairs gives temperatures too sharp for new cells
MIN_VALIDATION_PAIRS = 10
#: fewest pairs left for training: the negatives of every pair come from its minibatch
MIN_TRAINING_PAIRS = 40
#: fewest paired reference cells ``fit`` accepts: a validation slice plus enough training pairs
MIN_REFERENCE_PAIRS = MIN_VALIDATION_PAIRS + MIN_TRAINING_PAIRS
#: ensemble size with the cosine losses when ``n_models`` is not given (benchmarks/README.md, Accuracy)
DEFAULT_N_MODELS = 3


class MatchModel:
    """Cross-attention metric model matching cells of two modalities.

    Self-attention embeddings ``i0`` (mod1) and ``c0`` (mod2) and cross-attention embeddings ``i1``, ``c1`` give
    the similarity ``S(R, A) = i0 . c0 + alpha * i1 . c1``, trained on paired reference cells with symmetric
    InfoNCE (default) or a bidirectional triplet ranking loss on the hardest in-batch negative.

    Parameters
    ----------
    alpha
        Weight of the cross-attention term; 0 switches it off (faster, scores only ``i0 . c0``).
    loss
        ``"infonce"`` (symmetric cross-entropy over in-batch similarities; the default, which did better on the
        real sets, see benchmarks/README.md) or ``"triplet"`` (bidirectional ranking loss on the hardest
        in-batch negative, after ``warmup_epochs`` of the mean-over-negatives form).
    margin
        Triplet margin.
    temperature
        InfoNCE temperature (training only; matching temperatures are calibrated on the reference).
    n_tokens, d_model, d_embed, n_heads, n_layers, dropout
        Architecture: tokens per cell, token width, embedding size, attention heads, self-attention layers.
    epochs, batch_size, lr, weight_decay, warmup_epochs, patience, noise
        Optimisation: maximum epochs, in-batch size (the negatives come from the batch), AdamW learning rate and
        weight decay, warm-up epochs, early-stopping patience (epochs without a rise of the moving average of
        the validation score; the weights of the best epoch's own score are kept), and the standard deviation of
        Gaussian noise added to standardised inputs during training.
    validation_fraction
        Share of the reference pairs held out for early stopping and temperature calibration: at least 10 pairs,
        at most 1000, and never so many that fewer than 40 are left for training. ``0`` holds out nothing:
        training runs all ``epochs`` (no early stopping) and the temperatures are calibrated on the training
        pairs, which makes them sharper than new cells warrant.
    calibration
        How the matching temperatures are chosen on the held-out pairs. ``"match_score"`` (the default) maximises
        the mean probability on the true partner, the challenge's score: the probabilities are sharp, close to a
        hard assignment where the model is sure, and a row's largest probability is a ranking of confidence rather
        than a frequency. ``"nll"`` minimises the negative log-likelihood of the true partner: probabilities
        that mean what they say (of the cells given 0.3, about 3 in 10 are right), flatter, and a lower match
        score. On the real sets the default scored 1.2 to 2.1x ``"nll"`` (benchmarks/README.md, Accuracy).
    n_candidates
        Candidates per cell kept from the ``i0 . c0`` search; the cross term re-ranks only these.
    rerank_candidates
        When matching, compute the cross term only for each cell's ``rerank_candidates`` best candidates by
        ``i0 . c0``; its other candidates get the smallest cross term computed for that cell, as in training
        (``cross_candidates``), so they stay in the support below them. ``None`` (the default) re-ranks every
        candidate. 50 of 100 halves the cost of re-ranking; it kept the match score at 10,000 x 10,000 cells
        (0.1149) but lowered it at 100,000 x 100,000 (0.0260 to 0.0244) and by about 1% on the real sets
        (benchmarks/README.md, Speed and Accuracy).
    candidates
        How candidates are searched: ``"exact"`` (every pair's ``i0 . c0``, in memory-bounded chunks) or
        ``"pynndescent"`` (an approximate nearest-neighbour graph: sub-quadratic, a few true candidates may be
        missed; see benchmarks/README.md for recall and speed). Cosine losses only.
    device
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"`` or ``"cuda"``.
    progress_bar
        Show a tqdm progress bar while training.
    hist_temperature
        Distance losses on the Wasserstein-1 metric (``loss="wtriplet"``, ``"wcontrastive"``, ``"winfonce"``):
        temperature of the softmax turning each unit embedding into a histogram over its dimensions (see
        :mod:`scmatch.model._wasserstein`). The similarity is then ``-W1(i0, c0) + alpha * i1 . c1`` and
        candidates are searched by W1, so training, calibration and matching use the same metric;
        ``"etriplet"``/``"econtrastive"`` do the same with the Euclidean distance.
    coreset
        ``None`` (train on every reference pair), ``"craig"`` or ``"random"``, re-selected every
        ``coreset_every`` epochs. ``"craig"``: greedy facility location (see :mod:`scmatch.model._coreset`) on
        each pair's gradient proxy, the gradient of the loss with respect to its own ``i0`` and ``c0`` (on the
        standardised inputs for the first selection, before any training); each selected pair is weighted by the
        number of pairs it represents. ``"random"``: a uniform random subset of the same size, equal weights;
        the control. Measured on a 20,000-pair simulated reference (benchmarks/README.md), neither beats
        training on every pair for fewer ``epochs`` at the same fit time; if you want a subset anyway,
        ``coreset="random", coreset_every=1`` (a fresh subset each epoch) scored best of the subset options.
    coreset_fraction, coreset_every
        Share of the training pairs in the coreset, and epochs between re-selections.
    max_steps
        Training budget in optimizer steps: at most ``min(epochs, ceil(max_steps / steps_per_epoch))`` epochs
        (``None``: ``epochs``). References up to ``max_steps * batch_size / epochs`` pairs (2,560 with the
        defaults) are unaffected; above that the number of steps, and so the training time, stops growing with
        the reference (about a minute per 4,000 steps on one CPU core with the defaults). The warm-up shrinks
        with the budget, to a quarter of it at most.
    cross_candidates
        In training, the cross term of each minibatch row is computed only for its ``cross_candidates`` best
        columns by ``i0 . c0`` (and its partner), as matching re-ranks only each cell's best candidates; the other
        columns of the row get the row's smallest computed cross value. ``None`` scores every in-batch pair (the
        design's original form; about 5x slower per epoch with ``alpha=1``). See benchmarks/README.md.
    n_models
        Networks in the ensemble (see :mod:`scmatch.model._ensemble`); ``1`` trains a single network. Default:
        3 with the cosine losses (``"infonce"``, ``"triplet"``), 1 with the distance losses. Each member has its
        own seed, holds out its own slice of the reference pairs (disjoint slices while they fit) and is
        calibrated on it; matching scores the *average* of the members' similarities and runs the transport step
        once on it, at the geometric mean of the members' temperatures. The ``max_steps`` budget is shared: each
        member trains for ``max_steps / n_models`` steps, so a large reference costs about what one network
        does, while a small one (under the budget) costs ``n_models`` fits. The joint embedding (``transform``)
        is the members' embeddings side by side, scaled to unit length (``n_models * d_embed`` columns). On the
        real sets 3 networks scored 1.2 to 1.4x one network (benchmarks/README.md, Accuracy). On CPU the members
        train side by side in threads, torch's intra-op threads shared out among them (:mod:`scmatch.model._parallel`);
        each draws from its own random streams, so the fitted weights do not depend on the threads' timing.

    Notes
    -----
    :meth:`fit` needs at least ``MIN_REFERENCE_PAIRS = 50`` paired reference cells, and refuses fewer before
    training: at least 10 are held out for early stopping and temperature calibration, and at least 40 are left
    to train on, so that every minibatch holds enough in-batch negatives.

    Examples
    --------
    >>> import numpy as np
    >>> from scmatch.model import MatchModel
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(200, 5))
    >>> x1, x2 = z @ rng.normal(size=(5, 20)), z @ rng.normal(size=(5, 15))
    >>> model = MatchModel(epochs=5, progress_bar=False).fit(x1[:150], x2[:150])
    >>> P = model.predict_proba(x1[150:], x2[150:])
    >>> P.shape
    (50, 50)
    """

    def __init__(
        self,
        *,
        alpha: float = 1.0,
        loss: str = "infonce",
        margin: float = 0.2,
        temperature: float = 0.1,
        n_tokens: int = 4,
        d_model: int = 64,
        d_embed: int = 64,
        n_heads: int = 4,
        n_layers: int = 1,
        dropout: float = 0.3,
        epochs: int = 200,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_epochs: int = 10,
        patience: int = 20,
        noise: float = 0.3,
        validation_fraction: float = 0.1,
        calibration: str = "match_score",
        n_candidates: int = 100,
        rerank_candidates: int | None = None,
        candidates: str = "exact",
        device: str = "auto",
        progress_bar: bool = True,
        hist_temperature: float = 0.1,
        coreset: str | None = None,
        coreset_fraction: float = 0.3,
        coreset_every: int = 5,
        cross_candidates: int | None = 32,
        max_steps: int | None = 4000,
        n_models: int | None = None,
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"Unknown loss {loss!r}; use one of {LOSSES}.")
        if alpha < 0:
            raise ValueError(f"`alpha` must be >= 0, got {alpha}.")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"Unknown calibration {calibration!r}; use one of {CALIBRATIONS}.")
        if coreset is not None and coreset not in CORESETS:
            raise ValueError(f"Unknown coreset {coreset!r}; use None (all pairs) or one of {CORESETS}.")
        if not 0 < coreset_fraction <= 1:
            raise ValueError(f"`coreset_fraction` must be in (0, 1], got {coreset_fraction}.")
        if hist_temperature <= 0:
            raise ValueError(f"`hist_temperature` must be > 0, got {hist_temperature}.")
        if not 0 <= validation_fraction < 1:
            raise ValueError(f"`validation_fraction` must be in [0, 1), got {validation_fraction}.")
        if candidates not in SEARCHES:
            raise ValueError(f"Unknown candidates {candidates!r}; use one of {SEARCHES}.")
        if candidates != "exact" and LOSS_METRIC[loss] != "cosine":
            raise ValueError(
                f"candidates={candidates!r} searches the i0 . c0 (cosine) space; loss={loss!r} learns a "
                f"{LOSS_METRIC[loss]} space. Use candidates='exact' or a cosine loss ('infonce', 'triplet')."
            )
        if batch_size < 2:
            raise ValueError(f"`batch_size` must be at least 2 (negatives come from the batch), got {batch_size}.")
        _check_numbers(
            counts={"n_tokens": n_tokens, "d_model": d_model, "d_embed": d_embed, "n_heads": n_heads, "epochs": epochs}
            | {"batch_size": batch_size, "n_candidates": n_candidates},
            counts_or_zero={"n_layers": n_layers, "warmup_epochs": warmup_epochs, "patience": patience},
            positive={"lr": lr, "temperature": temperature},
            non_negative={"margin": margin, "noise": noise, "weight_decay": weight_decay},
        )
        if n_models is None:  # the default: an ensemble where similarities can be averaged (cosine losses)
            n_models = DEFAULT_N_MODELS if LOSS_METRIC[loss] == "cosine" else 1
        _check_numbers(counts={"n_models": n_models}, counts_or_zero={}, positive={}, non_negative={})
        if n_models > 1 and LOSS_METRIC[loss] != "cosine":
            raise ValueError(
                f"n_models={n_models} averages i0 . c0 similarities; loss={loss!r} learns a {LOSS_METRIC[loss]} "
                "space. Use n_models=1 or a cosine loss ('infonce', 'triplet')."
            )
        optional = {
            "cross_candidates": cross_candidates,
            "max_steps": max_steps,
            "rerank_candidates": rerank_candidates,
        }
        optional = {name: value for name, value in optional.items() if value is not None}
        _check_numbers(counts=optional, counts_or_zero={}, positive={}, non_negative={})
        if not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must be in [0, 1), got {dropout!r}.")
        if d_model % n_heads:
            raise ValueError(f"`d_model` ({d_model}) must be divisible by `n_heads` ({n_heads}).")
        self.architecture = {
            "n_tokens": n_tokens,
            "d_model": d_model,
            "d_embed": d_embed,
            "n_heads": n_heads,
            "n_layers": n_layers,
            "dropout": dropout,
            "alpha": float(alpha),
        }
        self.train_config = TrainConfig(
            loss=loss,
            margin=margin,
            temperature=temperature,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            warmup_epochs=warmup_epochs,
            patience=patience,
            noise=noise,
            hist_temperature=hist_temperature,
            coreset=coreset,
            coreset_fraction=coreset_fraction,
            coreset_every=coreset_every,
            cross_candidates=cross_candidates,
            max_steps=max_steps,
        )
        self.n_models = n_models
        self.validation_fraction = validation_fraction
        self.calibration = calibration
        self.n_candidates = n_candidates
        self.rerank_candidates = rerank_candidates
        self.candidates = candidates
        self.device = device
        self.progress_bar = progress_bar
        self.module_: CrossAttentionMatcher | None = None
        self.temperature_: dict[str, float] = {}
        self.history_: dict = {}
        self.feature_names_: tuple[list[str] | None, list[str] | None] = (None, None)
        #: per modality: the fingerprint of the scmatch.pp recipe fit behind the training representation (or None)
        self.fingerprints_: tuple[str | None, str | None] = (None, None)
        #: per modality: the reference's fitted recipe (:class:`scmatch.pp._project.RecipeState`), or None
        self.preprocessing_: tuple = (None, None)
        #: the shared projection of the joint-space embeddings (:mod:`scmatch.model._joint`), set by ``fit``
        self.joint_: dict | None = None

    # ------------------------------------------------------------------ settings
    def get_params(self) -> dict:
        """All constructor settings as a JSON-serialisable dict."""
        return {
            **self.architecture,
            **dataclasses.asdict(self.train_config),
            "n_models": self.n_models,
            "validation_fraction": self.validation_fraction,
            "calibration": self.calibration,
            "n_candidates": self.n_candidates,
            "rerank_candidates": self.rerank_candidates,
            "candidates": self.candidates,
            "device": self.device,
            "progress_bar": self.progress_bar,
        }

    @property
    def alpha(self) -> float:
        """Weight of the cross-attention term."""
        return self.architecture["alpha"]

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        X1: np.ndarray | sp.spmatrix,
        X2: np.ndarray | sp.spmatrix,
        *,
        sample_weight: np.ndarray | None = None,
        feature_names1: Sequence[str] | None = None,
        feature_names2: Sequence[str] | None = None,
        random_state: int | None = 0,
    ) -> MatchModel:
        """Learn the metric from paired cells: row ``i`` of ``X1`` and row ``i`` of ``X2`` are the same cell.

        Parameters
        ----------
        X1, X2
            Features of mod1 and mod2 (cells x features), dense or sparse; sparse inputs are densified one
            minibatch at a time. At least ``MIN_REFERENCE_PAIRS`` (50) pairs.
        sample_weight
            Optional non-negative weight per pair (e.g. coreset weights).
        feature_names1, feature_names2
            Names of the features, checked again when the model is applied to new data.
        random_state
            Seed of every random step (initialisation, validation split, minibatches, dropout, noise).

        Returns
        -------
        The fitted model.

        Raises
        ------
        ValueError
            Fewer than ``MIN_REFERENCE_PAIRS`` pairs, or invalid inputs; nothing is trained then.
        """
        X1, X2 = _check_pair(X1, X2)
        if X1.shape[0] < MIN_REFERENCE_PAIRS:
            raise ValueError(
                f"Too few paired reference cells ({X1.shape[0]}): fitting needs at least {MIN_REFERENCE_PAIRS} "
                f"({MIN_VALIDATION_PAIRS} held out for early stopping and temperature calibration, "
                f"{MIN_TRAINING_PAIRS} to train on). Add paired cells to the reference, or apply a model fitted on "
                "a larger reference (MatchModel.load)."
            )
        names = (_names(feature_names1, X1.shape[1]), _names(feature_names2, X2.shape[1]))  # checked before training
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float32)
            if sample_weight.shape != (X1.shape[0],) or np.any(sample_weight < 0) or sample_weight.sum() <= 0:
                raise ValueError("`sample_weight` must hold one non-negative weight per pair, not all zero.")
        device = _device(self.device)
        rng = _rng(random_state)
        n = X1.shape[0]
        n_val = 0
        if self.validation_fraction > 0:  # else: no early stopping, calibration on the training pairs
            # the validation slice is scored as a dense n_val x n_val block every epoch: cap it
            n_val = max(MIN_VALIDATION_PAIRS, round(self.validation_fraction * n))
            n_val = min(n_val, MAX_VALIDATION, n - MIN_TRAINING_PAIRS)
        order = rng.permutation(n)
        # each member holds out its own slice of the pairs (member 0: the slice a single model holds out); the
        # optimizer-step budget is shared, so an ensemble of K trains each member for 1/K of it
        cfg = self.train_config
        if self.n_models > 1 and cfg.max_steps is not None:
            cfg = dataclasses.replace(cfg, max_steps=-(-cfg.max_steps // self.n_models))
        # every member's random streams come from its own seed, so members can train side by side (_parallel)
        seeds = [int(seed) for seed in rng.integers(2**31 - 1, size=self.n_models)]
        jobs = []
        for k, seed in enumerate(seeds):
            val_idx, train_idx = member_split(order, n_val=n_val, member=k)
            module = self._new_member(X1, X2, train_idx, seed=seed, device=device)
            jobs.append(
                functools.partial(
                    self._fit_member, module, X1, X2, val_idx, train_idx,
                    seed=seed, cfg=cfg, device=device, sample_weight=sample_weight, member=k,
                )
            )  # fmt: skip
        n_threads = member_threads(self.n_models, device, world=_distributed()[1])
        members, histories, temperatures, seconds = [], [], [], 0.0
        for module, history, temperature, calibration_seconds in run_members(jobs, n_threads=n_threads):
            members.append(module)
            histories.append(history)
            temperatures.append(temperature)
            seconds += calibration_seconds
        module = members[0] if self.n_models == 1 else EnsembleMatcher(members)
        self.module_ = module
        history = histories[0]
        self.history_ = history.as_dict()
        self.feature_names_ = names
        self.fingerprints_, self.preprocessing_ = (None, None), (None, None)  # arrays carry no preprocessing
        self.temperature_ = combine_temperatures(temperatures)
        self.history_["calibration_seconds"] = seconds
        # the shared projection for joint plots, on every reference pair (see scmatch.model._joint)
        emb1, _ = encode(module, X1, modality=1, device=device)
        emb2, _ = encode(module, X2, modality=2, device=device)
        self.joint_ = fit_shared_projection(emb1.numpy(), emb2.numpy())
        if self.n_models > 1:
            self.history_["n_models"] = self.n_models
            self.history_["member_best_epoch"] = [h.best_epoch for h in histories]
            self.history_["member_epochs"] = [len(h.epoch) for h in histories]
            self.history_["member_temperature_sinkhorn"] = [t["sinkhorn"] for t in temperatures]
        logger.info("fitted: best epoch %d, temperatures %s", history.best_epoch, self.temperature_)
        return self

    def _new_member(self, X1, X2, train_idx, *, seed: int, device: torch.device) -> CrossAttentionMatcher:
        """An untrained network initialised from ``seed``, its inputs standardised on ``train_idx``."""
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            module = CrossAttentionMatcher(X1.shape[1], X2.shape[1], **self.architecture).to(device)
        for m, X in ((1, X1), (2, X2)):
            shift, scale = _standardization(X[train_idx])
            module.set_standardization(m, torch.as_tensor(shift), torch.as_tensor(scale))
        return module

    def _fit_member(self, module, X1, X2, val_idx, train_idx, stop, *, seed, cfg, device, sample_weight, member):
        """Train one network on ``train_idx`` (early stopping on ``val_idx``) and calibrate it.

        Its minibatches come from a NumPy generator seeded with ``seed`` and its noise and dropout from a torch
        generator seeded from that NumPy generator's first draw (the initial weights came from torch's generator
        seeded with ``seed`` itself: the masks must not replay the numbers the weights were drawn from). Returns
        ``(module, history, temperatures, calibration seconds)``.
        """
        rng = np.random.default_rng(seed)
        generator = torch.Generator(device=device)
        generator.manual_seed(int(rng.integers(2**63 - 1)))
        validation = (X1[val_idx], X2[val_idx]) if len(val_idx) else None
        history = train(
            module,
            X1[train_idx],
            X2[train_idx],
            cfg=cfg,
            rng=rng,
            device=device,
            sample_weight=None if sample_weight is None else sample_weight[train_idx],
            validation=validation,
            progress_bar=self.progress_bar,
            generator=generator,
            stop=stop,
            desc="training" if self.n_models == 1 else f"training member {member + 1}/{self.n_models}",
            bar_position=None if self.n_models == 1 else member,
        )
        calib = val_idx if len(val_idx) else train_idx
        started = time.perf_counter()
        temperature = self._calibrate(X1[calib], X2[calib], module=module)
        return module, history, temperature, time.perf_counter() - started

    def _calibrate(self, X1, X2, *, module=None) -> dict[str, float]:
        """Temperatures chosen on held-out pairs.

        ``calibration="nll"`` minimises the negative log-likelihood of the true partner (probabilities that mean
        what they say); ``"match_score"`` maximises the mean probability on the true partner (the challenge
        metric; sharper, close to a hard assignment). The held-out cells are matched the way a query is: on each
        cell's ``n_candidates`` best candidates (all of them when there are fewer), with the same solvers. The
        grid is searched coarse to fine (every 4th temperature, then the neighbours of the best), which finds
        the grid's minimum whenever the objective is unimodal in the temperature.
        """
        sim = self._similarity(module or self._check_fitted(), X1, X2, min(X1.shape[0], self.n_candidates))
        n = sim.shape[0]

        def objective(name: str, temperatures: np.ndarray) -> list[float]:
            values = []
            for P in match_block_temperatures(sim, matching=name, temperatures=temperatures, top_k=n):
                p_true = P.diagonal()
                if self.calibration == "nll":
                    values.append(float(-np.mean(np.log(np.clip(p_true, 1e-12, None)))))
                else:
                    values.append(float(-np.mean(p_true)))
            return values

        return {name: float(TEMPERATURE_GRID[_grid_argmin(functools.partial(objective, name))]) for name in CALIBRATED}

    # ------------------------------------------------------------------ applying
    def _check_fitted(self) -> CrossAttentionMatcher:
        if self.module_ is None:
            raise ValueError("This MatchModel is not fitted yet: call `fit` first or load a saved model.")
        return self.module_

    def _check_features(self, X, modality: int, feature_names: Sequence[str] | None) -> None:
        module = self._check_fitted()
        expected = (module.shift1 if modality == 1 else module.shift2).shape[0]
        if X.shape[1] != expected:
            raise ValueError(
                f"mod{modality} input has {X.shape[1]} features but the model was fitted on {expected}. "
                "Use the same preprocessing (and the same .obsm key) as for the reference."
            )
        known = self.feature_names_[modality - 1]
        if feature_names is not None and known is not None and list(map(str, feature_names)) != list(known):
            given = set(map(str, feature_names))
            missing, extra = [f for f in known if f not in given], sorted(given - set(known))
            problem = f"missing {missing[:5]}, unexpected {extra[:5]}" if missing or extra else "same, other order"
            raise ValueError(
                f"mod{modality} features differ from those the model was fitted on ({problem}). "
                "Subset and order the query's features like the reference's, e.g. `adata[:, model_features]`."
            )

    def transform(
        self, X: np.ndarray | sp.spmatrix, *, modality: int, feature_names: Sequence[str] | None = None
    ) -> np.ndarray:
        """Unit-length joint-space embedding (``i0`` for ``modality=1``, ``c0`` for 2) of every row of ``X``."""
        if modality not in (1, 2):
            raise ValueError(f"`modality` must be 1 or 2, got {modality!r}.")
        X = _check_matrix(X, f"mod{modality} input")
        self._check_features(X, modality, feature_names)
        emb, _ = encode(self.module_, X, modality=modality, device=_device(self.device))
        return emb.numpy()

    def joint_transform(
        self, X: np.ndarray | sp.spmatrix, *, modality: int, feature_names: Sequence[str] | None = None
    ) -> np.ndarray:
        """Unit-length coordinates of every row of ``X`` in the shared projection of both modalities.

        The matching embedding (:meth:`transform`) projected on the directions in which the reference pairs' two
        modalities vary together (:mod:`scmatch.model._joint`): cells of both modalities mix there, which is what
        a joint UMAP should show. Used for plots; matching uses :meth:`transform`'s space.
        """
        if self._check_fitted() is not None and self.joint_ is None:
            raise ValueError(
                "This model has no shared projection (it was saved by an older scmatch): fit it again, or plot "
                "the matching embedding (scm.pl.embedding(..., space='match'))."
            )
        return shared_projection(
            self.transform(X, modality=modality, feature_names=feature_names), self.joint_, modality=modality
        )

    def similarity(self, X1, X2, *, n_candidates: int | None = None) -> sp.csr_matrix:
        """Sparse similarities ``S`` on each mod1 cell's best ``n_candidates`` mod2 cells."""
        return self._similarity(self._check_fitted(), X1, X2, n_candidates or self.n_candidates)

    def _similarity(self, module, X1, X2, n_candidates: int) -> sp.csr_matrix:
        device = _device(self.device)
        keep = bool(module.alpha)
        emb1, tok1 = encode(module, X1, modality=1, device=device, keep_tokens=keep)
        emb2, tok2 = encode(module, X2, modality=2, device=device, keep_tokens=keep)
        return self._candidates(
            module,
            emb1,
            emb2,
            tokens1=tok1,
            tokens2=tok2,
            n_candidates=n_candidates,
            device=device,
        )

    def _candidates(self, module, emb1, emb2, **kwargs) -> sp.csr_matrix:
        """Candidate similarities under the trained metric (``i0 . c0`` search, or nearest by W1/Euclidean)."""
        cfg = self.train_config
        kwargs["n_rerank"] = self.rerank_candidates
        if cfg.metric == "cosine":
            return candidate_similarities(module, emb1, emb2, search=self.candidates, **kwargs)
        return distance_candidates(module, emb1, emb2, metric=cfg.metric, temperature=cfg.hist_temperature, **kwargs)

    def predict_proba(
        self,
        X1: np.ndarray | sp.spmatrix,
        X2: np.ndarray | sp.spmatrix,
        *,
        batch1: Sequence | None = None,
        batch2: Sequence | None = None,
        matching: str = "sinkhorn",
        top_k: int = 100,
        feature_names1: Sequence[str] | None = None,
        feature_names2: Sequence[str] | None = None,
        info: dict | None = None,
    ) -> sp.csr_matrix:
        """Match probabilities of mod1 cells (rows) to mod2 cells (columns).

        Parameters
        ----------
        X1, X2
            Query features of mod1 and mod2, processed like the reference.
        batch1, batch2
            Optional batch label per cell; cells are matched only within the same batch.
        matching
            ``"softmax"`` (row softmax, calibrated temperature), ``"sinkhorn"`` (entropic optimal transport with
            uniform marginals: each mod2 cell is used about once) or ``"assignment"`` (one-to-one matching, each
            matched row puts all its mass on one cell).
        top_k
            Non-zeros kept per row (the challenge allows at most 1000).
        feature_names1, feature_names2
            Optional feature names, checked against those given to :meth:`fit`.
        info
            A dict to fill with how the sparse Sinkhorn ended: ``sinkhorn_iterations`` and
            ``sinkhorn_marginal_error`` (the largest over batches) and ``sinkhorn_converged`` (all batches).

        Returns
        -------
        CSR matrix (n1 x n2): non-negative, each row sums to one, at most ``top_k`` non-zeros per row.
        """
        module = self._check_fitted()
        if matching not in MATCHINGS:
            raise ValueError(f"Unknown matching {matching!r}; use one of {MATCHINGS}.")
        if top_k < 1:
            raise ValueError(f"`top_k` must be at least 1, got {top_k}.")
        X1, X2 = _check_matrix(X1, "mod1 input"), _check_matrix(X2, "mod2 input")
        self._check_features(X1, 1, feature_names1)
        self._check_features(X2, 2, feature_names2)
        groups = _batch_groups(batch1, batch2, X1.shape[0], X2.shape[0])
        device = _device(self.device)
        keep = bool(module.alpha)
        emb1, tok1 = encode(module, X1, modality=1, device=device, keep_tokens=keep)
        emb2, tok2 = encode(module, X2, modality=2, device=device, keep_tokens=keep)
        tau = self.temperature_["softmax" if matching == "softmax" else "sinkhorn"]
        n_cand = max(self.n_candidates, top_k)
        blocks = []
        for rows, cols in groups:
            sim = self._candidates(
                module,
                emb1[rows],
                emb2[cols],
                tokens1=None if tok1 is None else tok1[rows],
                tokens2=None if tok2 is None else tok2[cols],
                n_candidates=n_cand,
                device=device,
            )
            block_info: dict = {}
            P = match_block(sim, matching=matching, temperature=tau, top_k=top_k, info=block_info).tocoo()
            blocks.append((rows[P.row], cols[P.col], P.data))
            if info is not None and block_info:
                info["sinkhorn_iterations"] = max(info.get("sinkhorn_iterations", 0), int(block_info["n_iter"]))
                error = float(block_info["marginal_error"])
                info["sinkhorn_marginal_error"] = max(info.get("sinkhorn_marginal_error", 0.0), error)
                info["sinkhorn_converged"] = info.get("sinkhorn_converged", True) and bool(block_info["converged"])
        r, c, v = (np.concatenate(parts) for parts in zip(*blocks, strict=True))
        return sp.csr_matrix((v, (r, c)), shape=(X1.shape[0], X2.shape[0]))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str, *, overwrite: bool = False, preprocessing: Sequence | None = None) -> None:
        """Save the model into folder ``path``, all at once: a failed or interrupted save leaves ``path`` as it was.

        Files: ``config.json`` (settings, calibration, history, fingerprints), ``model.pt`` (the ``state_dict``)
        and, when the model carries its reference's preprocessing, ``preprocessing.json`` and
        ``preprocessing.npz`` (plain arrays, read back with ``allow_pickle=False``); and ``manifest.json``, with
        scmatch's format marker and version, the scmatch version, and the size and sha256 of every other file.
        A loaded model with preprocessing can match a new experiment's raw counts:
        ``scm.tl.match_modalities(query, model=loaded)``.

        Parameters
        ----------
        path
            The model folder: new, empty, or (with ``overwrite=True``) holding a model saved with a manifest.
        overwrite
            Replace a model saved at ``path``. A folder without scmatch's manifest (another tool's, one of yours,
            or a model saved by an scmatch before manifests) is never replaced; the error lists what it holds.
        preprocessing
            The reference's preprocessing to bundle: a pair ``(mod1 AnnData, mod2 AnnData)`` processed by the
            scmatch.pp recipes, e.g. ``(ref["rna"], ref["adt"])``; either may be None. Default: what the model
            carries already (set by :func:`scmatch.tl.match_modalities` when it trains on recipe outputs).

        Raises
        ------
        ValueError
            ``path`` is a file, a folder that is not (only) a saved model, a saved model and ``overwrite=False``, or
            holds a file ``preprocessing`` is backed by. Nothing is written then.
        """
        from .. import __version__

        module = self._check_fitted()
        n_features = (int(module.shift1.shape[0]), int(module.shift2.shape[0]))
        states, fingerprints = self.preprocessing_, self.fingerprints_
        if preprocessing is not None:
            states = states_from_adatas(preprocessing, n_features=n_features, fingerprints=fingerprints)
            fingerprints = tuple(
                state.fingerprint if state is not None else known
                for state, known in zip(states, fingerprints, strict=True)
            )
            backed = {
                f"`preprocessing[{i}]` (backed)": getattr(a, "filename", None) for i, a in enumerate(preprocessing)
            }
            check_output(path, backed, what="The model folder", folder=True)
        save_model(
            path,
            params=self.get_params(),
            state=module.state_dict(),
            extra={
                "n_features": list(n_features),
                "temperature": self.temperature_,
                "history": self.history_,
                "feature_names": list(self.feature_names_),
                "fingerprints": list(fingerprints),
                "joint": to_json(self.joint_),
            },
            version=__version__,
            overwrite=overwrite,
            extra_files=writer(states),
        )

    @classmethod
    def load(cls, path: str, *, device: str = "auto") -> MatchModel:
        """Load a model written by :meth:`save`, checking every file before anything is built.

        The manifest's checksums (of every file, ``config.json`` included), bounds on every number of
        ``config.json``, the weights' shapes (read first, with ``torch.load(weights_only=True)``) against the
        settings, and the preprocessing files against the model (modalities, shapes, dtypes, fingerprints). A
        folder saved before manifests loads too, with its checksums of the weights and files verified and a
        logged note.

        Raises
        ------
        InvalidFileError
            (a ValueError) Naming the file and what is wrong with it: damaged, edited, or not a saved model.
        """
        folder = Path(path)
        params, state, extra = load_model(folder)
        try:
            model = cls(**{**params, "device": device})
        except (TypeError, ValueError) as err:
            raise InvalidFileError(
                f"The settings in {str(path)!r}/config.json are not valid for this version of scmatch ({err}); "
                "save the model again.",
                path=folder / "config.json",
            ) from err
        n1, n2 = extra["n_features"]
        check_weights(
            state, architecture=model.architecture, n_models=model.n_models, n_features=(n1, n2), folder=folder
        )
        check_joint(extra.get("joint"), width=model.n_models * model.architecture["d_embed"], folder=folder)
        fingerprints = tuple(extra.get("fingerprints") or (None, None))
        preprocessing = read_states(folder, extra["files"], n_features=(n1, n2), fingerprints=fingerprints)
        # everything is checked: only now are the networks built
        members = [CrossAttentionMatcher(n1, n2, **model.architecture) for _ in range(model.n_models)]
        module = EnsembleMatcher(members) if model.n_models > 1 else members[0]
        module.load_state_dict(state)
        model.module_ = module.to(_device(device)).eval()
        model.temperature_ = extra["temperature"]
        model.history_ = extra["history"]
        model.feature_names_ = tuple(extra["feature_names"])
        model.fingerprints_ = fingerprints
        model.joint_ = from_json(extra.get("joint"))
        model.preprocessing_ = preprocessing
        return model


def _grid_argmin(objective, grid: np.ndarray = TEMPERATURE_GRID, step: int = 4) -> int:
    """Index of the smallest objective on ``grid``: every ``step``-th point, then the neighbours of the best.

    ``objective`` maps an array of grid values to their objective values; it is called once per stage, so a
    solver can run the values of a stage together.
    """
    values: dict[int, float] = {}

    def evaluate(indices) -> None:
        new = [i for i in dict.fromkeys(indices) if i not in values]
        if new:
            values.update(zip(new, objective(grid[new]), strict=True))

    evaluate([*range(0, len(grid), step), len(grid) - 1])
    best = min(values, key=lambda i: (values[i], i))
    evaluate(range(max(0, best - step + 1), min(len(grid), best + step)))
    return min(values, key=lambda i: (values[i], i))


def _check_numbers(*, counts: dict, counts_or_zero: dict, positive: dict, non_negative: dict) -> None:
    """Raise a ValueError naming the first setting outside its range (integers >= 1 or >= 0, numbers > 0 or >= 0)."""
    for minimum, group in ((1, counts), (0, counts_or_zero)):
        for name, value in group.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
                raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    for low, group in ((">", positive), (">=", non_negative)):
        for name, value in group.items():
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
            if not ok or value < 0 or (low == ">" and value == 0):
                raise ValueError(f"`{name}` must be a number {low} 0, got {value!r}.")


def _check_matrix(X, what: str) -> np.ndarray | sp.csr_matrix:
    if isinstance(X, pd.DataFrame):
        X = X.to_numpy()
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float32)
    else:
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise TypeError(f"{what} must be numeric, got dtype {X.dtype}.")
        X = X.astype(np.float32, copy=False)
    if X.ndim != 2:
        raise ValueError(f"{what} must be 2-D (cells x features), got shape {X.shape}.")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{what} is empty (shape {X.shape}).")
    _check_finite(X, what=what)
    return X


def _check_pair(X1, X2):
    X1, X2 = _check_matrix(X1, "mod1 input"), _check_matrix(X2, "mod2 input")
    if X1.shape[0] != X2.shape[0]:
        raise ValueError(
            f"Paired inputs need the same number of cells, got {X1.shape[0]} (mod1) and {X2.shape[0]} (mod2)."
        )
    return X1, X2


def _standardization(X) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and one global scale (root mean feature variance), so relative variances are kept."""
    if sp.issparse(X):
        mean = np.asarray(X.mean(axis=0)).ravel()
        var = np.asarray(X.multiply(X).mean(axis=0)).ravel() - mean**2
    else:
        mean, var = X.mean(axis=0), X.var(axis=0)
    scale = float(np.sqrt(max(np.mean(var), 1e-12)))
    return mean.astype(np.float32), np.full_like(mean, scale, dtype=np.float32)


def _names(names, n: int) -> list[str] | None:
    if names is None:
        return None
    names = [str(x) for x in names]
    if len(names) != n:
        raise ValueError(f"Got {len(names)} feature names for {n} features; pass one name per column of the input.")
    return names


def _batch_groups(batch1, batch2, n1: int, n2: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Row and column indices of each batch present in both modalities."""
    if batch1 is None and batch2 is None:
        return [(np.arange(n1), np.arange(n2))]
    if batch1 is None or batch2 is None:
        raise ValueError("Pass batch labels for both modalities (`batch1` and `batch2`) or for neither.")
    b1, b2 = np.asarray(batch1).astype(str), np.asarray(batch2).astype(str)
    if len(b1) != n1 or len(b2) != n2:
        raise ValueError("Batch labels must have one entry per cell.")
    only1, only2 = sorted(map(str, set(b1) - set(b2))), sorted(map(str, set(b2) - set(b1)))
    if only1 or only2:
        raise ValueError(
            f"Batches must be present in both modalities; only in mod1: {only1}, only in mod2: {only2}. "
            "Drop those cells or match without `batch_key`."
        )
    return [(np.flatnonzero(b1 == b), np.flatnonzero(b2 == b)) for b in sorted(set(b1))]
