"""tl.match_modalities: the functional front door of the matching engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from .._keys import Key
from .._utils import _check_finite, _get_matrix, logger
from ..model import MatchModel, Refinement, SelfSupervision
from ..model._fit import MIN_REFERENCE_PAIRS, MIN_TRAINING_PAIRS
from ..model._inputs import batch_groups
from ..model._joint import shared_projection
from ..model._prior import PairPrior
from ..model._refine import as_refinement
from ..model._refine import refine as refine_model
from ..model.solvers._matching import MATCHINGS
from ..pp._project import recorded_fingerprint
from ._confidence import match_confidence
from ._depth import plan_depth, record_depth, strip_depth
from ._held_out import global_held_out, held_out_key, held_out_summary
from ._links import plan_links, weigh_links
from ._spaces import (
    PendingProjection,
    check_same_space,
    plan_projection,
    reference_state,
    verify_reference,
    write_pending,
)

#: the ``.obsm`` representation used for a modality when ``rep1``/``rep2`` is not given
DEFAULT_REPS = {"rna": "X_pca", "atac": "X_lsi", "adt": "X_pca", "prot": "X_pca", "protein": "X_pca"}


@dataclass
class _Inputs:
    """Everything checked and extracted before a single byte is written."""

    ref1: Any
    ref2: Any
    query1: np.ndarray
    query2: np.ndarray
    full1: Any
    full2: Any
    names1: list[str] | None
    names2: list[str] | None
    n_ref: int
    batch1: np.ndarray | None
    batch2: np.ndarray | None
    keys: tuple[str, str]
    ref_adatas: tuple[AnnData, AnnData]
    pending: list[PendingProjection]
    query_masks: tuple[np.ndarray, np.ndarray]
    ref_positions: tuple[np.ndarray, np.ndarray] | None = None  # the pairs' rows in mdata (None: a separate MuData)
    ref_pairs: tuple[np.ndarray, np.ndarray] | None = None  # the pairs' rows in ref_adatas


@dataclass
class _Result:
    """What the model computed for the query: probabilities, embeddings, confidences, the solver's report."""

    probabilities: sp.csr_matrix
    embeddings: tuple[np.ndarray, np.ndarray]
    joint: tuple[np.ndarray, np.ndarray] | None
    confidence: tuple[np.ndarray, np.ndarray]
    solver: dict
    refinement: dict | None = None
    held_out: sp.csr_matrix | None = None  # n_obs x n_obs probabilities of the held-out reference pairs
    links: dict | None = None  # what the feature links did (tl._links)
    depth: dict | None = None  # whether each cell's depth was an input (tl._depth)


def match_modalities(
    mdata: MuData,
    *,
    mod1: str = "rna",
    mod2: str = "atac",
    rep1: str | None = None,
    rep2: str | None = None,
    reference: MuData | str | None = None,
    batch_key: str | None = None,
    matching: str = "sinkhorn",
    top_k: int = 100,
    model: MatchModel | None = None,
    refine: bool | Refinement = False,
    links: str | pd.DataFrame | None = "auto",
    depth: bool | str | None = "auto",
    self_supervision: bool | SelfSupervision | None = None,
    random_state: int | None = 0,
    key_added: str = "match",
    copy: bool = False,
) -> MuData | None:
    """Learn a cross-modal metric on paired cells and match the cells of two modalities.

    Before anything is trained or written, the representations are checked to live in one space: when both the
    query's ``.obsm[rep]`` and the reference's (or the fitted model's training data) come from a scmatch.pp recipe,
    their fingerprints must agree. A query preprocessed on its own is refused with the fix
    (``recipe_*(mdata, reference=...)``); a representation without a fingerprint (your own) is used with a logged
    note.

    Parameters
    ----------
    mdata
        MuData holding modalities ``mod1`` and ``mod2``, each with the representation named by ``rep1``/``rep2``
        in ``.obsm`` (see :mod:`scmatch.pp`).
    mod1, mod2
        Modality names; probabilities have mod1 cells as rows and mod2 cells as columns.
    rep1, rep2
        ``.obsm`` keys of the inputs; default ``X_pca`` for ``rna``/``adt``, ``X_lsi`` for ``atac``.
    reference
        The paired cells to learn from:

        - ``None``: cells present in both modalities under the same obs name; every cell of both modalities is
          then matched (a paired MuData has its pairing rediscovered).
        - a column name of both modalities' ``.obs`` holding booleans (e.g. ``"is_train"``): cells marked True
          are the reference (they must be paired), the others are the query to match.
        - a separate MuData with the same modalities and representations: all of its paired cells are the
          reference and every cell of ``mdata`` is matched.
    batch_key
        ``.obs`` column present in both modalities; cells are matched only within the same batch.
    matching
        ``"sinkhorn"`` (optimal transport, each cell used about once), ``"softmax"`` or ``"assignment"``
        (one-to-one); see :meth:`scmatch.model.MatchModel.predict_proba`.
    top_k
        Non-zeros kept per row.
    model
        A :class:`~scmatch.model.MatchModel` to use: unfitted (trained here with its ``model.plan``, a
        :class:`~scmatch.model.TrainingPlan`) or fitted (applied as is, no training, and no reference needed); it
        matches with its ``model.search``. Default: ``MatchModel()``. A model trained here on representations
        written by the :mod:`scmatch.pp` recipes remembers their fingerprints and fitted state
        (``model.preprocessing_``), which :meth:`~scmatch.model.MatchModel.save` bundles. A fitted model with
        preprocessing matches raw counts: a modality without ``.obsm[rep]`` is projected from its counts
        (``.layers['counts']`` if present, else ``.X``) as ``recipe_*(mdata, reference=model)`` would.
    refine
        Fine-tune a copy of the model once the query is known and match with it (see
        :mod:`scmatch.model._refine`): ``True`` for the default :class:`~scmatch.model.Refinement` (a low learning
        rate phase on the reference pairs), or a :class:`~scmatch.model.Refinement` (e.g. with query pseudo-pairs).
        Needs the reference pairs, also with a fitted model. The ``model`` given keeps its reference weights; the
        embeddings and probabilities written come from the refined copy, and ``uns[key_added]["refinement"]``
        records what it did. Measured in benchmarks/README.md, Refinement.
    links
        Feature links used as a prior on the match (:mod:`scmatch.links`): ``"auto"`` links each protein to the
        gene coding it when one modality holds proteins and the other genes (a curated table of antibody names,
        :func:`scmatch.links.protein_gene_links`; at least 3 links), and each gene to the peaks within 100 kb of
        it when one modality holds peaks and the other genes with coordinates (``var['interval']``, as Cell
        Ranger ARC writes it; :func:`scmatch.links.peak_gene_links`); a DataFrame gives them by hand, with
        columns ``protein`` and ``genes`` (``;`` between several) or ``gene`` and ``peak`` (for example
        ``peak_gene_links(..., annotation="genes.gtf")`` where the genes carry no coordinates); ``None`` switches
        them off. Each candidate pair's
        similarity gets the correlation of the two cells' linked values (from the counts, standardised within
        each batch of the cells matched), times a weight chosen on the reference pairs the networks held out; a
        weight of 0 (the links do not help there) leaves the network alone. The weight is chosen by a model
        trained in this call; a weight above 0 is kept with the model (``model.links_``, saved by
        :meth:`~scmatch.model.MatchModel.save`), and a fitted or loaded model carrying links matches with them
        under ``"auto"``, at that weight. On the CITE starter it lifted the match score from 0.109 to 0.146 (8
        seeds), on totalVI from 0.411 to 0.471 (3 seeds; benchmarks/README.md, Feature links; docs/links.md).
        Links that barely tell a cell's partner from other cells (separation below
        :data:`scmatch.links.MIN_LINK_SEPARATION`, as peak-gene links on sparse single-nucleus ATAC) get weight 0.
        ``uns[key_added]["links"]`` records what was used.
    depth
        Each cell's sequencing depth (the ``log1p`` of its total count, from ``.layers['counts']`` or ``.X``) as one
        more input of each modality's network, standardised among the cells of its own set (reference pairs, query)
        and scaled like an average input feature (:mod:`scmatch.tl._depth`). The recipes normalise depth away, but
        in a co-assay the two profiles of one nucleus were captured together: on SNARE-seq2 their log depths
        correlate 0.54 over the reference pairs. ``"auto"`` (the default) adds it when one modality holds chromatin
        accessibility (``recipe_atac``'s output, or peak-named features) and the reference pairs' log depths
        correlate at least :data:`scmatch.tl._depth.MIN_DEPTH_CORRELATION`; on CITE-seq sets the relation
        measured on the reference did not hold for the query's donor, and the column lowered the match there
        (docs/atac.md, benchmarks/README.md, Depth). ``True`` adds it whenever both modalities have counts;
        ``None`` never. A model trained with it keeps it (``model.depth_``, saved) and reads the depth of every
        cell it matches. ``uns[key_added]["depth"]`` records what was decided and the correlation.
    self_supervision
        Pre-train each network's encoders on every cell of both modalities, the query's included (unpaired), before
        the paired training: ``True`` (the settings of :class:`~scmatch.model.SelfSupervision`) or a
        :class:`~scmatch.model.SelfSupervision`; ``None`` (the default) does not. It needs a model trained in this
        call. It helped most where the query was preprocessed apart, projected onto the reference's recipes, and
        differs from it (totalVI, the CITE starter), but lowered the match on two other such sets; it costs
        several times the fit's time (docs/unpaired.md, benchmarks/README.md, Self-supervision).
        ``uns[key_added]["history"]`` records it under ``self_supervision_*``.
    random_state
        Seed of training (and of the refinement).
    key_added
        Prefix of the written keys.
    copy
        Return a modified copy instead of writing into ``mdata``.

    Returns
    -------
    ``None``, or a copy of ``mdata`` if ``copy=True``. Written fields:

    - ``mdata.obsp[f"{key_added}_probabilities"]``: CSR (n_obs x n_obs) indexed by position in
      ``mdata.obs_names``; entry (i, j) is the probability that mod1 cell ``obs_names[i]`` is mod2 cell
      ``obs_names[j]``. Only rows of query mod1 cells and columns of query mod2 cells are filled; each such row
      sums to one.
    - ``mdata.obsp[f"{key_added}_held_out"]``: when the model was trained in this call on reference pairs of
      ``mdata``, the probabilities among the pairs its networks held out of training (each row scored by a network
      that never saw it; same layout, rows of held-out mod1 cells only). :func:`~scmatch.tl.transfer_labels`
      chooses its temperature on them when there are enough; removed when a later match has none.
    - ``mdata[mod1].obsm[f"X_{key_added}"]`` and ``mdata[mod2].obsm[f"X_{key_added}"]``: unit-length
      embeddings of every cell in the joint space (``i0`` and ``c0``; an ensemble's members side by side).
    - ``mdata[mod1].obsm[f"X_{key_added}_joint"]`` and the same in ``mod2``: the shared projection of those
      embeddings, the directions in which the reference pairs' two modalities vary together (unit length, 10
      columns; see :meth:`~scmatch.model.MatchModel.joint_transform`). Cells of both modalities mix there, so
      :func:`scmatch.pl.embedding` draws it by default; matching does not use it.
    - ``mdata[mod1].obs[f"{key_added}_confidence"]`` and the same in ``mod2``: each query cell's largest match
      probability (its row's maximum for mod1 cells; its column's maximum after scaling the column to sum to one
      for mod2 cells), the mass on its single most likely partner; NaN for cells outside the match. It speaks of
      the cell's own partner, not of its cell type: on the four benchmark sets it barely separated cells whose
      transferred cell type is right from the others (AUROC 0.44 to 0.65; one minus the normalised entropy of
      the same probabilities did no better, 0.41 to 0.65), while the confidence of
      :func:`~scmatch.tl.transfer_labels` did (0.62 to 0.83) and is the one to threshold (benchmarks/README.md,
      Transfer).
    - ``mdata.uns[key_added]``: ``params`` (the arguments; ``model``, the model's settings under their flat
      names; ``settings``, the same grouped by role as :meth:`~scmatch.model.MatchModel.get_params` gives them),
      ``probabilities_key``, ``embedding_key``, ``confidence_key``,
      ``joint_embedding_key``, ``query`` (counts of matched cells), ``n_reference``, ``temperature``, ``history``
      (epoch, train_loss, val_score, val_smoothed, best_epoch), ``matching_solver`` (for the sparse Sinkhorn:
      ``sinkhorn_iterations``, ``sinkhorn_marginal_error``, ``sinkhorn_converged``), ``fingerprints`` (modality
      -> fingerprint of the preprocessing the model was trained on, for recipe outputs), ``projected_by_model``
      (modalities whose counts the model projected), ``depth`` (``used``, and the ``correlation`` of the reference
      pairs' log depths or why not), with ``refine``, ``refinement``, and with held-out pairs, ``held_out``
      (``probabilities_key``, ``n_pairs``, ``n_networks``).
    - for those modalities, what ``recipe_*(mdata, reference=model)`` writes: ``.layers['counts']``, ``.X``,
      ``.obsm[rep]``, loadings and ``.uns['scmatch_recipe']``.

    Examples
    --------
    >>> import scmatch as scm
    >>> mdata = scm.datasets.simulate_multiome(600, n_genes=300, n_peaks=800, random_state=0)
    >>> scm.pp.recipe_rna(mdata, mod="rna", n_top_genes=200, n_comps=20)
    >>> scm.pp.recipe_atac(mdata, mod="atac", n_comps=20)
    >>> model = scm.model.MatchModel()
    >>> model.plan = scm.model.TrainingPlan(max_epochs=5, progress_bar=False)
    >>> scm.tl.match_modalities(mdata, reference=None, batch_key="batch", model=model)
    >>> mdata.obsp["match_probabilities"].shape
    (600, 600)
    """
    _check_settings(model, matching, top_k)
    refinement = as_refinement(refine)
    model = MatchModel() if model is None else model
    pretraining = _self_supervision(self_supervision, model)
    inputs = _inputs(
        mdata, mod1=mod1, mod2=mod2, rep1=rep1, rep2=rep2, reference=reference, batch_key=batch_key, model=model
    )
    link_plan = plan_links(links, mdata, inputs, mods=(mod1, mod2), batch_key=batch_key, model=model)
    inputs, depth_report = plan_depth(depth, mdata, inputs, mods=(mod1, mod2), model=model)
    if refinement is not None and inputs.n_ref < MIN_TRAINING_PAIRS:
        raise ValueError(
            f"`refine` fine-tunes on the reference pairs, and there are {inputs.n_ref} (at least "
            f"{MIN_TRAINING_PAIRS} are needed). Pass the model's reference as `reference=`, or `refine=False`."
        )
    trained = _train(model, inputs, mods=(mod1, mod2), random_state=random_state, self_supervision=pretraining)
    if trained:
        record_depth(model, depth_report)
    query_prior, held_prior, link_report = weigh_links(link_plan, model, inputs, top_k=top_k)
    result = _match(
        model, inputs, matching=matching, top_k=top_k, refinement=refinement, random_state=random_state,
        prior=query_prior,
    )  # fmt: skip
    result.links = link_report
    if trained and refinement is None:  # the fit's held-out pairs, for tl.transfer_labels (tl._held_out)
        result.held_out = global_held_out(
            mdata, model, inputs, mods=(mod1, mod2), batch_key=batch_key, matching=matching, top_k=top_k,
            prior=held_prior,
        )  # fmt: skip
    # all checks and computations are done: only now write
    target = mdata.copy() if copy else mdata
    params = {
        "mod1": mod1,
        "mod2": mod2,
        "rep1": inputs.keys[0],
        "rep2": inputs.keys[1],
        "reference": reference if isinstance(reference, str) else ("MuData" if reference is not None else None),
        "batch_key": batch_key,
        "matching": matching,
        "top_k": top_k,
        "links": links if isinstance(links, str) else ("table" if links is not None else None),
        "depth": depth,
        "self_supervision": pretraining is not None,
        "random_state": random_state,
    }
    result.depth = depth_report
    _write(target, inputs, result, model=model, mods=(mod1, mod2), params=params, key_added=key_added)
    return target if copy else None


def _train(
    model: MatchModel,
    inputs: _Inputs,
    *,
    mods: tuple[str, str],
    random_state: int | None,
    self_supervision: SelfSupervision | None = None,
) -> bool:
    """Fit an unfitted model on the reference pairs; a fitted model is used as given. True if it trained.

    With ``self_supervision``, the encoders are first pre-trained on the reference's and the query's cells. The
    model remembers the reference's preprocessing: its fingerprints, and the fitted recipes to save.
    """
    if model.module_ is not None:
        logger.info("using the fitted model as given; no training")
        return False
    unpaired = (inputs.query1, inputs.query2) if self_supervision is not None else None
    model.fit(
        inputs.ref1, inputs.ref2, feature_names1=inputs.names1, feature_names2=inputs.names2,
        random_state=random_state, unpaired=unpaired, self_supervision=self_supervision,
    )  # fmt: skip
    found = [
        reference_state(ad, key, mod=mod) for ad, key, mod in zip(inputs.ref_adatas, inputs.keys, mods, strict=True)
    ]
    model.preprocessing_ = tuple(state for state, _ in found)
    model.fingerprints_ = tuple(fingerprint for _, fingerprint in found)
    return True


def _match(
    model: MatchModel,
    inputs: _Inputs,
    *,
    matching: str,
    top_k: int,
    refinement: Refinement | None,
    random_state: int | None,
    prior: PairPrior | None = None,
) -> _Result:
    """Probabilities of the query cells, embeddings of every cell (and their shared projection), confidences.

    With a ``refinement``, a refined copy of the model matches (:mod:`scmatch.model._refine`).
    """
    solver: dict = {}
    predict = {
        "batch1": inputs.batch1, "batch2": inputs.batch2, "matching": matching, "top_k": top_k,
        "feature_names1": inputs.names1, "feature_names2": inputs.names2, "info": solver, "prior": prior,
    }  # fmt: skip
    refinement_info = None
    if refinement is None:
        P_query = model.predict_proba(inputs.query1, inputs.query2, **predict)
        matcher = model
    else:  # a refined copy matches; the model given keeps its reference weights
        matcher, P_query, refinement_info = refine_model(
            model, (inputs.ref1, inputs.ref2), (inputs.query1, inputs.query2), settings=refinement,
            predict=predict, random_state=random_state,
        )  # fmt: skip
    emb1 = matcher.transform(inputs.full1, modality=1, feature_names=inputs.names1)
    emb2 = matcher.transform(inputs.full2, modality=2, feature_names=inputs.names2)
    joint = None
    if matcher.joint_ is not None:  # the shared projection for joint plots (scmatch.model._joint)
        joint = (
            shared_projection(emb1, matcher.joint_, modality=1),
            shared_projection(emb2, matcher.joint_, modality=2),
        )
    return _Result(P_query, (emb1, emb2), joint, match_confidence(P_query), solver, refinement_info)


def _write(target: MuData, inputs: _Inputs, result: _Result, *, model, mods, params: dict, key_added: str) -> None:
    """Write the match into ``target``: probabilities, embeddings, confidences and ``uns[key_added]``."""
    (mod1, mod2), (qmask1, qmask2) = mods, inputs.query_masks
    write_pending(target, inputs.pending)
    rows = target.obs_names.get_indexer(target[mod1].obs_names[qmask1])
    cols = target.obs_names.get_indexer(target[mod2].obs_names[qmask2])
    P = result.probabilities.tocoo()
    target.obsp[Key.probabilities(key_added)] = sp.csr_matrix(
        (P.data, (rows[P.row], cols[P.col])), shape=(target.n_obs, target.n_obs)
    )
    emb_key, joint_key, conf_key = Key.embedding(key_added), Key.joint_embedding(key_added), Key.confidence(key_added)
    target[mod1].obsm[emb_key], target[mod2].obsm[emb_key] = result.embeddings
    if result.joint is not None:
        target[mod1].obsm[joint_key], target[mod2].obsm[joint_key] = result.joint
    held_key = held_out_key(key_added)
    if result.held_out is not None:
        target.obsp[held_key] = result.held_out
    elif held_key in target.obsp:  # an earlier match's held-out pairs would not be this match's
        del target.obsp[held_key]
    for mod, qmask, conf in zip(mods, inputs.query_masks, result.confidence, strict=True):
        column = np.full(target[mod].n_obs, np.nan)
        column[qmask] = conf
        target[mod].obs[conf_key] = column
    target.uns[key_added] = {
        "params": {**params, "model": _without_none(model._flat_params()), "settings": _settings(model)},
        "probabilities_key": Key.probabilities(key_added),
        "embedding_key": emb_key,
        "confidence_key": conf_key,
        **({"joint_embedding_key": joint_key} if result.joint is not None else {}),
        "fingerprints": {mod: fp for mod, fp in zip(mods, model.fingerprints_, strict=True) if fp is not None},
        "projected_by_model": [item.mod for item in inputs.pending],
        "n_reference": inputs.n_ref,
        "query": {"n_mod1": int(qmask1.sum()), "n_mod2": int(qmask2.sum())},
        "temperature": dict(model.temperature_),
        "matching_solver": result.solver,
        "history": {k: np.asarray(v) for k, v in model.history_.items()},
        **({"refinement": result.refinement} if result.refinement is not None else {}),
        **({"links": _without_none(result.links)} if result.links is not None else {}),
        **({"depth": _without_none(result.depth)} if result.depth is not None else {}),
        **({"held_out": held} if (held := held_out_summary(result.held_out, key_added, model.n_models)) else {}),
    }


def _without_none(values: dict) -> dict:
    """``values`` without its None entries (an .h5mu cannot store None)."""
    return {k: v for k, v in values.items() if v is not None}


def _settings(model: MatchModel) -> dict:
    """The model's settings grouped by role (``model``, ``plan``, ``search``), without None values."""
    return {group: _without_none(dict(values)) for group, values in dict(model.get_params()).items()}


def _rep(adata: AnnData, key: str | None) -> np.ndarray:
    if key is None:
        raise ValueError("No default representation for this modality: pass `rep1=`/`rep2=` naming an .obsm key.")
    return _get_matrix(adata, obsm=key)


def _self_supervision(setting, model: MatchModel) -> SelfSupervision | None:
    """The pre-training settings asked for (``None``: none), refused when they cannot be used."""
    if setting is None or setting is False:
        return None
    settings = SelfSupervision() if setting is True else setting
    if not isinstance(settings, SelfSupervision):
        raise TypeError(f"`self_supervision` must be True, None or a scmatch.model.SelfSupervision, got {setting!r}.")
    if model.module_ is not None:
        raise ValueError(
            "`self_supervision` pre-trains a model before its fit, and this model is fitted already. Pass an "
            "unfitted model, or `self_supervision=None`."
        )
    return settings


def _check_settings(model, matching: str, top_k: int) -> None:
    """Arguments that would otherwise only fail after training."""
    if model is not None and not isinstance(model, MatchModel):
        raise TypeError(f"`model` must be a scmatch.model.MatchModel or None, got {type(model).__name__}.")
    if matching not in MATCHINGS:
        raise ValueError(f"Unknown matching {matching!r}; use one of {MATCHINGS}.")
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise ValueError(f"`top_k` must be an integer >= 1, got {top_k!r}.")


def _checked_rep(adata: AnnData, key: str, what: str) -> tuple[Any, list[str] | None]:
    """The representation (numeric, finite) and its column names when ``.obsm[key]`` is a DataFrame."""
    X = _rep(adata, key)
    what = f"{what}.obsm[{key!r}]"
    _check_finite(X, what=what)
    if X.ndim != 2:
        raise ValueError(f"{what} must be 2-D (cells x features), got shape {X.shape}.")
    columns = adata.obsm[key].columns if isinstance(adata.obsm[key], pd.DataFrame) else None
    return X, None if columns is None else [str(c) for c in columns]


def _align(X: Any, names: list[str] | None, target: list[str] | None, n_target: int, what: str, against: str) -> Any:
    """Columns of ``X`` in the order of ``target`` (matched by name when both are named), or a clear refusal."""
    if names is not None and target is not None:
        missing = [name for name in target if name not in set(names)]
        if missing:
            raise ValueError(
                f"{what} lacks {len(missing)} of the {len(target)} features of {against} (e.g. {missing[:5]}). "
                "Compute the query's representation with the same features as the reference's."
            )
        if names != target:
            logger.info("aligning the columns of %s to %s by name", what, against)
            position = {name: i for i, name in enumerate(names)}
            X = X[:, [position[name] for name in target]]
        return X
    if X.shape[1] != n_target:
        raise ValueError(
            f"{what} has {X.shape[1]} features but {against} has {n_target}. Compute both with the same "
            "preprocessing (the same .obsm key, e.g. the query projected on the reference's PCA), or store them as "
            "DataFrames with column names so scmatch can align them by name."
        )
    return X


def _flag(adata: AnnData, column: str, mod: str) -> np.ndarray:
    """The reference flags of ``.obs[column]``: numpy booleans, or pandas' nullable "boolean" without missing values."""
    if column not in adata.obs:
        raise ValueError(f"`reference={column!r}` is not a column of mdata[{mod!r}].obs; add a boolean column.")
    values = adata.obs[column]
    if isinstance(values.dtype, pd.BooleanDtype):
        missing = values.isna()
        if missing.any():
            raise ValueError(
                f"mdata[{mod!r}].obs[{column!r}] has {int(missing.sum())} missing values (<NA>, e.g. cells "
                f"{list(values.index[missing][:3])}): every cell must be marked True (reference) or False (query). "
                f"Fill them first, e.g. `obs = mdata[{mod!r}].obs; obs[{column!r}] = obs[{column!r}].fillna(False)`."
            )
        return values.to_numpy(dtype=bool)
    if values.dtype != bool:
        raise TypeError(
            f"mdata[{mod!r}].obs[{column!r}] must be boolean (True = reference), got {values.dtype}; store bool "
            "values (or pandas' 'boolean' without missing values)."
        )
    return values.to_numpy()


def _query_masks(mdata: MuData, mod1: str, mod2: str, reference) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(reference, str):
        return ~_flag(mdata[mod1], reference, mod1), ~_flag(mdata[mod2], reference, mod2)
    return np.ones(mdata[mod1].n_obs, bool), np.ones(mdata[mod2].n_obs, bool)


def _paired(ad1: AnnData, ad2: AnnData) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the cells present in both modalities, in mod1 order."""
    shared = ad1.obs_names.intersection(ad2.obs_names, sort=False)
    shared = ad1.obs_names[ad1.obs_names.isin(shared)]
    return ad1.obs_names.get_indexer(shared), ad2.obs_names.get_indexer(shared)


def _check_mudata(data: MuData, mod1: str, mod2: str, what: str) -> None:
    if not isinstance(data, MuData):
        raise TypeError(f"{what} must be a MuData, got {type(data).__name__}; build one with mudata.MuData(...).")
    for mod in (mod1, mod2):
        if mod not in data.mod:
            raise ValueError(f"Modality {mod!r} is not in {what}; it has {list(data.mod)}. Pass `mod1=`/`mod2=`.")
        if not data[mod].obs_names.is_unique:
            raise ValueError(f"{what}[{mod!r}] has duplicate obs names; make them unique (obs_names_make_unique).")
        unknown = data[mod].obs_names[~data[mod].obs_names.isin(data.obs_names)]
        if len(unknown):
            raise ValueError(
                f"{what}[{mod!r}].obs_names are out of sync with {what}.obs_names ({len(unknown)} cells, e.g. "
                f"{list(unknown[:3])}, are missing from the global obs): call `{what}.update()` after changing a "
                "modality."
            )
    if mod1 == mod2:
        raise ValueError(
            f"`mod1` and `mod2` must be different modalities, got {mod1!r} twice; pass two of {list(data.mod)}."
        )
    if not data.obs_names.is_unique:
        raise ValueError(f"{what} has duplicate global obs names; make them unique.")


def _inputs(mdata, *, mod1, mod2, rep1, rep2, reference, batch_key, model) -> _Inputs:
    """Check everything and extract the arrays: the reference pairs, the query, the batches; nothing is written."""
    _check_mudata(mdata, mod1, mod2, "mdata")
    fitted = model.module_ is not None
    states = model.preprocessing_ if fitted else (None, None)
    keys = tuple(
        rep or (state.obsm_key if state is not None else DEFAULT_REPS.get(mod))
        for rep, state, mod in ((rep1, states[0], mod1), (rep2, states[1], mod2))
    )
    pending, (X1, names1), (X2, names2) = _representations(mdata, (mod1, mod2), keys, states)
    projected = {item.mod for item in pending}
    ref = _reference(mdata, reference, (mod1, mod2), keys, projected, X=(X1, X2), names=(names1, names2))
    (X1, X2), (names1, names2) = ref["X"], ref["names"]
    if fitted:  # the query must live in the space the model was trained in
        for mod, key, fingerprint in zip((mod1, mod2), keys, model.fingerprints_, strict=True):
            if mod not in projected:
                check_same_space(
                    mdata[mod], key, fingerprint, mod=mod, against="the model's training data", source="model"
                )
    elif len(ref["pairs"][0]) < MIN_REFERENCE_PAIRS:  # only training needs a reference
        raise ValueError(
            f"Too few paired reference cells: {len(ref['pairs'][0])} (cells present in both modalities under the same "
            f"obs name, marked True in the reference column if one is given); training a model needs at least "
            f"{MIN_REFERENCE_PAIRS}. Pass `reference=` with a larger paired MuData, mark more paired cells as "
            "reference, rename paired cells to share names, or pass a fitted `model=`."
        )
    q1, q2 = _query_masks(mdata, mod1, mod2, reference)
    if not q1.any() or not q2.any():
        raise ValueError(
            "No query cells to match: every cell is marked as reference. Mark the cells to match False in the "
            "reference column, or pass `reference=None` to match every cell."
        )
    b1, b2 = _batches(mdata, (mod1, mod2), batch_key, (q1, q2))
    if fitted:  # a fitted model: the query must have its features
        (X1, names1), (X2, names2) = (
            _model_features(model, X, names, modality, f"mdata[{mod!r}].obsm[{key!r}]")
            for X, names, modality, mod, key in ((X1, names1, 1, mod1, keys[0]), (X2, names2, 2, mod2, keys[1]))
        )
    (R1, R2), (i1, i2) = ref["R"], ref["pairs"]
    return _Inputs(
        ref1=R1[i1], ref2=R2[i2], query1=X1[q1], query2=X2[q2], full1=X1, full2=X2, names1=names1, names2=names2,
        n_ref=len(i1), batch1=b1, batch2=b2, keys=keys, ref_adatas=ref["adatas"], pending=pending,
        query_masks=(q1, q2), ref_positions=None if isinstance(reference, MuData) else (i1, i2), ref_pairs=(i1, i2),
    )  # fmt: skip


def _representations(mdata: MuData, mods: tuple[str, str], keys: tuple, states: tuple) -> tuple:
    """Each modality's representation and its column names.

    Raw counts that a fitted model preprocesses are projected; the projections are pending, written at the end.
    """
    pending: list[PendingProjection] = []
    inputs = []
    for mod, key, state in zip(mods, keys, states, strict=True):
        if state is not None and key == state.obsm_key and key not in mdata[mod].obsm:
            pending.append(plan_projection(mdata[mod], state, mod=mod))  # raw counts: the model preprocesses them
            inputs.append((pending[-1].projection.embedding.astype(np.float32), None))
        else:
            inputs.append(_checked_rep(mdata[mod], key, f"mdata[{mod!r}]"))
    return pending, inputs[0], inputs[1]


def _reference(mdata: MuData, reference, mods, keys, projected: set, *, X: tuple, names: tuple) -> dict:
    """The reference: its AnnDatas, representations and paired positions; the query aligned to it by feature name.

    Returns a dict with ``adatas``, ``R`` (the reference's representations), ``pairs`` (positions of the paired
    cells in each), and ``X`` and ``names`` (the query's representations and column names, aligned).
    """
    (mod1, mod2), (key1, key2) = mods, keys
    if isinstance(reference, MuData):
        _check_mudata(reference, mod1, mod2, "reference")
        ref_ad1, ref_ad2 = reference[mod1], reference[mod2]
        R1, ref_names1 = _checked_rep(ref_ad1, key1, f"reference[{mod1!r}]")
        R2, ref_names2 = _checked_rep(ref_ad2, key2, f"reference[{mod2!r}]")
        for mod, key, ref_ad in ((mod1, key1, ref_ad1), (mod2, key2, ref_ad2)):
            verify_reference(ref_ad, key, mod=mod)
            if mod not in projected:
                expected = recorded_fingerprint(ref_ad, key)
                check_same_space(mdata[mod], key, expected, mod=mod, against="the reference", source="reference")
        X1 = _align(X[0], names[0], ref_names1, R1.shape[1], f"mdata[{mod1!r}].obsm[{key1!r}]", "the reference")
        X2 = _align(X[1], names[1], ref_names2, R2.shape[1], f"mdata[{mod2!r}].obsm[{key2!r}]", "the reference")
        names = (ref_names1 if names[0] is not None else None, ref_names2 if names[1] is not None else None)
        return {
            "adatas": (ref_ad1, ref_ad2),
            "R": (R1, R2),
            "pairs": _paired(ref_ad1, ref_ad2),
            "X": (X1, X2),
            "names": names,
        }
    if not (isinstance(reference, str) or reference is None):
        raise TypeError(f"`reference` must be None, an .obs column name or a MuData, got {type(reference).__name__}.")
    ref_ad1, ref_ad2 = mdata[mod1], mdata[mod2]
    i1, i2 = _paired(ref_ad1, ref_ad2)
    if isinstance(reference, str):
        keep = _flag(ref_ad1, reference, mod1)[i1] & _flag(ref_ad2, reference, mod2)[i2]
        i1, i2 = i1[keep], i2[keep]
    return {"adatas": (ref_ad1, ref_ad2), "R": X, "pairs": (i1, i2), "X": X, "names": names}


def _batches(mdata: MuData, mods: tuple[str, str], batch_key: str | None, query_masks: tuple) -> tuple:
    """The query cells' batch labels per modality (None without ``batch_key``), checked to be in both modalities."""
    if batch_key is None:
        return None, None
    for mod in mods:
        if batch_key not in mdata[mod].obs:
            raise ValueError(
                f"`batch_key={batch_key!r}` is not a column of mdata[{mod!r}].obs; add it to both modalities or "
                "pass `batch_key=None`."
            )
    b1, b2 = (
        pd.Series(mdata[mod].obs[batch_key]).astype(str).to_numpy()[q] for mod, q in zip(mods, query_masks, strict=True)
    )
    batch_groups(b1, b2, len(b1), len(b2))  # refuses batches present in one modality only, before training
    return b1, b2


def _model_features(model: MatchModel, X, names, modality: int, what: str) -> tuple:
    """The query's columns in the order of the fitted model's features (by name when both are named)."""
    n_fitted = (model.module_.shift1 if modality == 1 else model.module_.shift2).shape[0]
    known, n_fitted = strip_depth(model, model.feature_names_[modality - 1], n_fitted)  # tl._depth adds it back
    return _align(X, names, known, n_fitted, what, "the model"), (known if names is not None else None)
