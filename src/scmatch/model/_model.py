"""MatchModel: fit a cross-modal metric on paired cells, then match unpaired cells with probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._utils import _device, _rng, logger
from . import _inputs
from ._fit import MIN_REFERENCE_PAIRS, Members, check_reference_size, combine_temperatures, fit_members, fitted_history
from ._held_out import HeldOut, n_held_out
from ._joint import fit_shared_projection, shared_projection
from ._legacy import MOVED, from_flat, warn_deprecated
from ._prior import PairPrior
from ._saved import read_model, write_model
from ._settings import ModelSettings
from .nn._ensemble import EnsembleMatcher
from .nn._losses import DISTANCE_LOSSES
from .nn._modules import CrossAttentionMatcher
from .solvers._matching import MATCHINGS, match_groups
from .solvers._search import Search, encode, search_candidates
from .train._plan import TrainingPlan
from .train._self_supervised import SelfSupervision

__all__ = ["MIN_REFERENCE_PAIRS", "MatchModel"]


class MatchModel(ModelSettings):
    """Cross-attention metric model matching cells of two modalities.

    Self-attention embeddings ``i0`` (mod1) and ``c0`` (mod2) and cross-attention embeddings ``i1``, ``c1`` give
    the similarity ``S(R, A) = i0 . c0 + alpha * i1 . c1``, trained on paired reference cells with symmetric
    InfoNCE (default) or a bidirectional triplet ranking loss on the hardest in-batch negative.

    The settings are split by role: the network's here; how it trains in a :class:`TrainingPlan` (``fit(...,
    plan=...)``); how candidates are searched when matching in a :class:`Search` (``predict_proba(...,
    search=...)``). The model carries a plan and a search (``model.plan``, ``model.search``, defaults until set),
    which :func:`scmatch.tl.match_modalities` uses. Distance losses are in :mod:`scmatch.experimental`.

    Parameters
    ----------
    n_tokens, d_model, d_embed, n_heads, n_layers, dropout
        Architecture: tokens per cell, token width, embedding size, attention heads, self-attention layers, dropout.
    alpha
        Weight of the cross-attention term; 0 switches it off (faster, scores only ``i0 . c0``).
    loss
        ``"infonce"`` (symmetric cross-entropy over in-batch similarities; the default, which did better on the
        real sets, see benchmarks/README.md) or ``"triplet"`` (bidirectional ranking loss on the hardest in-batch
        negative, after the plan's ``warmup_epochs`` of the mean-over-negatives form).
    n_models
        Networks in the ensemble (default 3; see :mod:`scmatch.model.nn._ensemble`); ``1`` trains one network.
        Each member has its own seed, holds out its own slice of the reference pairs and is calibrated on it;
        matching scores the *average* of the members' similarities and runs the transport step once on it, at the
        geometric mean of the members' temperatures. The plan's ``max_steps`` budget is shared, so a large
        reference costs about what one network does, while a small one (under the budget) costs ``n_models``
        fits. The joint embedding (:meth:`transform`) is the members' embeddings side by side, scaled to unit
        length (``n_models * d_embed`` columns). On the real sets 3 networks scored 1.2 to 1.4x one network
        (benchmarks/README.md, Accuracy). On CPU the members train side by side in threads, each with its own
        random streams, so the fitted weights do not depend on the threads' timing.
    device
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"`` or ``"cuda"``.
    **deprecated
        The settings that moved to :class:`TrainingPlan` and :class:`Search` (``epochs``, ``n_candidates``, ...),
        accepted with a ``FutureWarning`` until scmatch 0.2.

    Notes
    -----
    :meth:`fit` needs at least ``MIN_REFERENCE_PAIRS = 50`` paired reference cells, and refuses fewer before
    training: at least 10 are held out for early stopping and temperature calibration, and at least 40 are left
    to train on, so that every minibatch holds enough in-batch negatives.

    Examples
    --------
    >>> import numpy as np
    >>> from scmatch.model import MatchModel, TrainingPlan
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(200, 5))
    >>> x1, x2 = z @ rng.normal(size=(5, 20)), z @ rng.normal(size=(5, 15))
    >>> model = MatchModel().fit(x1[:150], x2[:150], plan=TrainingPlan(max_epochs=5, progress_bar=False))
    >>> P = model.predict_proba(x1[150:], x2[150:])
    >>> P.shape
    (50, 50)
    """

    def __init__(
        self,
        *,
        n_tokens: int = 4,
        d_model: int = 64,
        d_embed: int = 64,
        n_heads: int = 4,
        n_layers: int = 1,
        dropout: float = 0.3,
        alpha: float = 1.0,
        loss: str = "infonce",
        n_models: int | None = None,
        device: str = "auto",
        **deprecated: Any,
    ) -> None:
        unknown = sorted(set(deprecated) - set(MOVED))
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword arguments {unknown}.")
        if deprecated or loss in DISTANCE_LOSSES:
            warn_deprecated(type(self).__name__, deprecated, loss=loss)
        architecture = {"n_tokens": n_tokens, "d_model": d_model, "d_embed": d_embed, "n_heads": n_heads}
        architecture |= {"n_layers": n_layers, "dropout": dropout, "alpha": alpha}
        self._setup(from_flat({**architecture, "loss": loss, "n_models": n_models, "device": device, **deprecated}))

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        X1: np.ndarray | sp.spmatrix,
        X2: np.ndarray | sp.spmatrix,
        *,
        plan: TrainingPlan | None = None,
        sample_weight: np.ndarray | None = None,
        feature_names1: Sequence[str] | None = None,
        feature_names2: Sequence[str] | None = None,
        random_state: int | None = 0,
        unpaired: tuple | None = None,
        self_supervision: SelfSupervision | None = None,
    ) -> MatchModel:
        """Learn the metric from paired cells: row ``i`` of ``X1`` and row ``i`` of ``X2`` are the same cell.

        Parameters
        ----------
        X1, X2
            Features of mod1 and mod2 (cells x features), dense or sparse; sparse inputs are densified one
            minibatch at a time. At least ``MIN_REFERENCE_PAIRS`` (50) pairs.
        plan
            How to train (:class:`TrainingPlan`); default ``model.plan``. The model keeps the plan it was trained
            with in ``model.plan``.
        sample_weight
            Optional non-negative weight per pair.
        feature_names1, feature_names2
            Names of the features, checked again when the model is applied to new data.
        random_state
            Seed of every random step (initialisation, validation split, minibatches, dropout, noise).
        unpaired
            Cells without a partner, ``(U1, U2)`` (either may be ``None``), with the features of ``X1`` and ``X2``:
            e.g. the query's. Only ``self_supervision`` uses them.
        self_supervision
            Pre-train each network's encoders on every cell given (paired and ``unpaired``) before the paired
            training (:class:`SelfSupervision`); ``None`` (the default) does not. Recorded in ``history_`` under
            ``self_supervision_*`` (its settings, ``n_cells`` per modality, and ``final_loss``, the mean loss of the
            last tenth of steps, network by network, mod1's then mod2's). See docs/unpaired.md.

        Returns
        -------
        The fitted model.

        Raises
        ------
        ValueError
            Fewer than ``MIN_REFERENCE_PAIRS`` pairs, or invalid inputs; nothing is trained then.
        """
        plan = self.plan if plan is None else plan
        if not isinstance(plan, TrainingPlan):
            raise TypeError(f"`plan` must be a scmatch.model.TrainingPlan, got {type(plan).__name__}.")
        X1, X2 = _inputs.check_pair(X1, X2)
        check_reference_size(X1.shape[0])
        names = (_inputs.feature_names(feature_names1, X1.shape[1]), _inputs.feature_names(feature_names2, X2.shape[1]))
        sample_weight = _inputs.check_sample_weight(sample_weight, X1.shape[0])
        pretraining = _inputs.check_pretraining(self_supervision, unpaired, X1, X2)
        self._check_search(self.search)
        members = Members(
            self.architecture, self.n_models, self._objective(plan), self._held_out_similarity, _device(self.device)
        )
        fitted = fit_members(
            members, X1, X2, plan=plan, sample_weight=sample_weight, rng=_rng(random_state), pretraining=pretraining
        )
        self.plan, self.module_, self.feature_names_ = plan, fitted.module, names
        self.fingerprints_, self.preprocessing_ = (None, None), (None, None)  # arrays carry no preprocessing
        self.temperature_ = combine_temperatures(fitted.temperatures)
        self.history_ = fitted_history(fitted, self.n_models)
        self.held_out_ = HeldOut(tuple(fitted.held_out)) if n_held_out(fitted) else None
        self.links_ = None  # links are weighed on this fit's held-out pairs (scmatch.tl._links)
        self.depth_ = None  # set by scmatch.tl.match_modalities when its inputs carried each cell's depth
        # the shared projection for joint plots, on every reference pair (see scmatch.model._joint)
        device = _device(self.device)
        emb1, _ = encode(fitted.module, X1, modality=1, device=device)
        emb2, _ = encode(fitted.module, X2, modality=2, device=device)
        self.joint_ = fit_shared_projection(emb1.numpy(), emb2.numpy())
        logger.info("fitted: best epoch %d, temperatures %s", self.history_["best_epoch"], self.temperature_)
        return self

    # ------------------------------------------------------------------ applying
    def _check_fitted(self) -> CrossAttentionMatcher | EnsembleMatcher:
        if self.module_ is None:
            raise ValueError("This MatchModel is not fitted yet: call `fit` first or load a saved model.")
        return self.module_

    def _checked_input(self, X, modality: int, feature_names: Sequence[str] | None):
        """``X`` checked against the features the model was fitted on."""
        module = self._check_fitted()
        X = _inputs.check_matrix(X, f"mod{modality} input")
        n_fitted = (module.shift1 if modality == 1 else module.shift2).shape[0]
        known = self.feature_names_[modality - 1]
        depth = getattr(self, "depth_", None) is not None
        _inputs.check_features(X, modality, feature_names, n_fitted=n_fitted, known=known, depth=depth)
        return X

    def transform(
        self, X: np.ndarray | sp.spmatrix, *, modality: int, feature_names: Sequence[str] | None = None
    ) -> np.ndarray:
        """Unit-length joint-space embedding (``i0`` for ``modality=1``, ``c0`` for 2) of every row of ``X``."""
        if modality not in (1, 2):
            raise ValueError(f"`modality` must be 1 or 2, got {modality!r}.")
        X = self._checked_input(X, modality, feature_names)
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
        """Sparse similarities ``S`` on each mod1 cell's best ``n_candidates`` mod2 cells (default: the search's)."""
        search = self._check_search(self.search)
        return self._similarity(self._check_fitted(), X1, X2, n_candidates=n_candidates or search.n_candidates)

    def _held_out_similarity(self, module, X1, X2) -> sp.csr_matrix:
        """Similarities of held-out pairs for calibration: matched as a query is, on each cell's candidates."""
        return self._similarity(module, X1, X2, n_candidates=min(X1.shape[0], self.search.n_candidates))

    def _similarity(self, module, X1, X2, *, n_candidates: int, search: Search | None = None) -> sp.csr_matrix:
        device = _device(self.device)
        keep = bool(module.alpha)
        emb1, tok1 = encode(module, X1, modality=1, device=device, keep_tokens=keep)
        emb2, tok2 = encode(module, X2, modality=2, device=device, keep_tokens=keep)
        return search_candidates(
            module, emb1, emb2, metric=self.metric, search=search or self.search, n_candidates=n_candidates,
            tokens1=tok1, tokens2=tok2, device=device,
        )  # fmt: skip

    def predict_proba(
        self,
        X1: np.ndarray | sp.spmatrix,
        X2: np.ndarray | sp.spmatrix,
        *,
        search: Search | None = None,
        matching: str = "sinkhorn",
        top_k: int = 100,
        batch1: Sequence | None = None,
        batch2: Sequence | None = None,
        feature_names1: Sequence[str] | None = None,
        feature_names2: Sequence[str] | None = None,
        info: dict | None = None,
        prior: PairPrior | None = None,
    ) -> sp.csr_matrix:
        """Match probabilities of mod1 cells (rows) to mod2 cells (columns).

        Parameters
        ----------
        X1, X2
            Query features of mod1 and mod2, processed like the reference.
        search
            How each cell's candidates are found (:class:`Search`); default ``model.search``.
        matching
            ``"softmax"`` (row softmax, calibrated temperature), ``"sinkhorn"`` (entropic optimal transport with
            uniform marginals: each mod2 cell is used about once) or ``"assignment"`` (one-to-one matching, each
            matched row puts all its mass on one cell).
        top_k
            Non-zeros kept per row (the challenge allows at most 1000).
        batch1, batch2
            Optional batch label per cell; cells are matched only within the same batch.
        feature_names1, feature_names2
            Optional feature names, checked against those given to :meth:`fit`.
        info
            A dict to fill with how the sparse Sinkhorn ended: ``sinkhorn_iterations`` and
            ``sinkhorn_marginal_error`` (the largest over batches) and ``sinkhorn_converged`` (all batches).
        prior
            Optional :class:`~scmatch.model._prior.PairPrior` (one profile per row of ``X1`` and of ``X2``): its
            weighted dot products are added to the candidates' similarities before matching (feature links,
            :mod:`scmatch.links`).

        Returns
        -------
        CSR matrix (n1 x n2): non-negative, each row sums to one, at most ``top_k`` non-zeros per row.
        """
        module = self._check_fitted()
        search = self._check_search(self.search if search is None else search)
        if matching not in MATCHINGS:
            raise ValueError(f"Unknown matching {matching!r}; use one of {MATCHINGS}.")
        if top_k < 1:
            raise ValueError(f"`top_k` must be at least 1, got {top_k}.")
        X1, X2 = self._checked_input(X1, 1, feature_names1), self._checked_input(X2, 2, feature_names2)
        groups = _inputs.batch_groups(batch1, batch2, X1.shape[0], X2.shape[0])
        if prior is not None:
            prior.check_shapes(X1.shape[0], X2.shape[0])
        device = _device(self.device)
        emb1, tok1 = encode(module, X1, modality=1, device=device, keep_tokens=bool(module.alpha))
        emb2, tok2 = encode(module, X2, modality=2, device=device, keep_tokens=bool(module.alpha))

        def similarity(rows: np.ndarray, cols: np.ndarray) -> sp.csr_matrix:
            S = search_candidates(
                module, emb1[rows], emb2[cols], metric=self.metric, search=search,
                n_candidates=max(search.n_candidates, top_k), device=device,
                tokens1=None if tok1 is None else tok1[rows], tokens2=None if tok2 is None else tok2[cols],
            )  # fmt: skip
            return S if prior is None else prior.added(S, rows, cols)

        tau = self.temperature_["softmax" if matching == "softmax" else "sinkhorn"]
        shape = (X1.shape[0], X2.shape[0])
        return match_groups(similarity, groups, shape=shape, matching=matching, temperature=tau, top_k=top_k, info=info)

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
        write_model(self, path, overwrite=overwrite, preprocessing=preprocessing)

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
        return read_model(cls, path, device=device)
