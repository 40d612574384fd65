"""The held-out reference pairs of a match: written by tl.match_modalities, read by tl.transfer_labels.

When :func:`~scmatch.tl.match_modalities` trains its model on reference pairs of ``mdata``, each network of the
fit holds some pairs out (:mod:`scmatch.model._held_out`). Matched by the network that never saw them, those
pairs are a small labelled query in the reference's conditions: ``mdata.obsp[f"{key_added}_held_out"]`` keeps
their probabilities, indexed like the match's own, and ``uns[key_added]["held_out"]`` says how many there are.
:func:`~scmatch.tl.transfer_labels` chooses its vote's temperature on them when they are enough
(:data:`MIN_HELD_OUT_PAIRS`), since there the right labels are known: the partner's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from mudata import MuData

from ..model._held_out import held_out_probabilities

#: fewest held-out pairs with which transfer_labels chooses its temperature on them (else: the round trip). On the
#: three small sets of the benchmarks' Transfer table (66 to 93 held-out pairs) choosing on them gave higher accuracy
#: and a better log-likelihood of the query's true labels than the round trip on every set; 50 guards against a
#: choice on a handful of cells (a fit holds out at least 10 pairs per network)
MIN_HELD_OUT_PAIRS = 50


def held_out_key(key_added: str) -> str:
    """``mdata.obsp`` key of the held-out pairs' probabilities."""
    return f"{key_added}_held_out"


def global_held_out(
    mdata: MuData,
    model,
    inputs,
    *,
    mods: tuple[str, str],
    batch_key: str | None,
    matching: str,
    top_k: int,
    prior=None,
) -> sp.csr_matrix | None:
    """The held-out pairs' probabilities as an ``n_obs x n_obs`` CSR of ``mdata``, or None where there are none.

    Only for a model trained in this call on reference pairs of ``mdata`` itself (``inputs.ref_positions``).
    ``prior`` (a :class:`~scmatch.model._prior.PairPrior` over the reference pairs) is added as the query's is.
    """
    if getattr(model, "held_out_", None) is None or inputs.ref_positions is None:
        return None
    (mod1, mod2), (i1, i2) = mods, inputs.ref_positions
    batch = None if batch_key is None else mdata[mod1].obs[batch_key].astype(str).to_numpy()[i1]
    H = held_out_probabilities(
        model, inputs.ref1, inputs.ref2, batch=batch, matching=matching, top_k=top_k, prior=prior
    ).tocoo()
    rows = mdata.obs_names.get_indexer(mdata[mod1].obs_names[i1])
    cols = mdata.obs_names.get_indexer(mdata[mod2].obs_names[i2])
    return sp.csr_matrix((H.data, (rows[H.row], cols[H.col])), shape=(mdata.n_obs, mdata.n_obs))


@dataclass
class HeldOutVote:
    """The held-out block seen from the target: its weights over held-out source cells and the true labels."""

    B: sp.csr_matrix  # n_target_held_out x n_source_held_out, the block of probabilities as stored
    source_labels: np.ndarray  # label of each source cell (columns of B)
    truth: np.ndarray  # label of each target cell's partner (rows of B)


def held_out_vote(mdata: MuData, *, key: str, source: str, target: str, labels_key: str) -> HeldOutVote | None:
    """The held-out pairs of match ``key`` for a vote from ``source`` to ``target``, or None if it has none.

    A target cell's true label is its partner's: the ``source`` cell of the same obs name.
    """
    info = mdata.uns.get(key, {})
    held = info.get("held_out") if isinstance(info, dict) else None
    if not held or held.get("probabilities_key") not in mdata.obsp:
        return None
    H = sp.csr_matrix(mdata.obsp[held["probabilities_key"]], dtype=np.float64)
    if target == info["params"]["mod2"]:
        H = sp.csr_matrix(H.T)  # target cells as rows
    H.eliminate_zeros()
    rows = np.flatnonzero(np.diff(H.indptr) > 0)
    cols = np.unique(H.indices)
    if len(rows) == 0:
        return None
    labels = mdata[source].obs[labels_key]
    names = mdata.obs_names
    truth = labels.reindex(names[rows])
    if truth.isna().any():  # a held-out cell whose partner is not in the source modality: cannot be scored
        return None
    return HeldOutVote(
        sp.csr_matrix(H[rows][:, cols]),
        labels.reindex(names[cols]).astype(str).to_numpy(),
        truth.astype(str).to_numpy(),
    )


def held_out_summary(H: sp.csr_matrix | None, key_added: str, n_networks: int) -> dict | None:
    """What ``uns[key_added]["held_out"]`` records of the held-out block (None without one)."""
    if H is None:
        return None
    return {
        "probabilities_key": held_out_key(key_added),
        "n_pairs": int((np.diff(sp.csr_matrix(H).indptr) > 0).sum()),
        "n_networks": int(n_networks),
    }


def enough(vote: HeldOutVote | None) -> bool:
    """Whether the held-out pairs are enough to choose a temperature on (:data:`MIN_HELD_OUT_PAIRS`)."""
    return vote is not None and len(vote.truth) >= MIN_HELD_OUT_PAIRS
