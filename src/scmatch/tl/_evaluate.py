"""tl.evaluate_match: score the probabilities written by match_modalities against a known pairing."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import scipy.sparse as sp
from mudata import MuData

from ..metrics import evaluate


def checked_match(mdata: MuData, *, key: str = "match") -> tuple[dict, sp.csr_matrix, np.ndarray, np.ndarray]:
    """Check that ``mdata`` holds the match ``key``; return its ``uns`` record and :func:`query_block`.

    Raises a TypeError for anything but a MuData and a ValueError naming the fix when the match or its
    probabilities are missing.
    """
    if not isinstance(mdata, MuData):
        raise TypeError(f"Expected the MuData on which scmatch.tl.match_modalities ran, got {type(mdata).__name__}.")
    if key not in mdata.uns or "probabilities_key" not in mdata.uns[key]:
        raise ValueError(
            f"No match `mdata.uns[{key!r}]`: run scmatch.tl.match_modalities(mdata, ..., key_added={key!r}) first, "
            "or pass the `key_added` you used as `key=`."
        )
    info = mdata.uns[key]
    if info["probabilities_key"] not in mdata.obsp:
        raise ValueError(
            f"`mdata.obsp[{info['probabilities_key']!r}]` is missing although `mdata.uns[{key!r}]` exists; "
            "rerun scmatch.tl.match_modalities."
        )
    return (info, *query_block(mdata, key=key))


def query_block(mdata: MuData, *, key: str = "match") -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """The filled block of ``mdata.obsp[f"{key}_probabilities"]``.

    Returns
    -------
    The (query mod1 x query mod2) CSR block and the global positions of its rows and columns.
    """
    if key not in mdata.uns or "probabilities_key" not in mdata.uns[key]:
        raise ValueError(f"`mdata.uns[{key!r}]` not found: run scmatch.tl.match_modalities(..., key_added={key!r}).")
    info = mdata.uns[key]
    P = sp.csr_matrix(mdata.obsp[info["probabilities_key"]])
    params = info["params"]
    mod1, mod2, reference = params["mod1"], params["mod2"], params["reference"]
    mask1 = np.ones(mdata[mod1].n_obs, bool)
    mask2 = np.ones(mdata[mod2].n_obs, bool)
    if reference not in (None, "MuData"):
        mask1 = ~mdata[mod1].obs[reference].to_numpy(bool)
        mask2 = ~mdata[mod2].obs[reference].to_numpy(bool)
    rows = mdata.obs_names.get_indexer(mdata[mod1].obs_names[mask1])
    cols = mdata.obs_names.get_indexer(mdata[mod2].obs_names[mask2])
    if np.any(rows < 0) or np.any(cols < 0) or P.shape != (mdata.n_obs, mdata.n_obs):
        raise ValueError(
            "The modalities' obs names are out of sync with mdata.obs_names (cells were added, removed or renamed "
            "after matching); call mdata.update() and run scmatch.tl.match_modalities again."
        )
    return sp.csr_matrix(P[rows][:, cols]), rows, cols


def evaluate_match(
    mdata: MuData,
    *,
    key: str = "match",
    truth: np.ndarray | None = None,
    labels_key: str | None = None,
    unassigned: str | Collection[str] | None = None,
) -> dict[str, float]:
    """Score a match against the true pairing with :func:`scmatch.metrics.evaluate`.

    Parameters
    ----------
    mdata
        MuData on which :func:`~scmatch.tl.match_modalities` ran.
    key
        Its ``key_added``.
    truth
        For each query mod1 cell, the position of its partner among the query mod2 cells. Default: cells that
        share an obs name are partners (a paired MuData); every query mod1 cell must then have one.
    labels_key
        Optional ``.obs`` column of both modalities with cell types, for the cell-type mass.
    unassigned
        Label (or labels) in ``labels_key`` of cells without a cell type (``"Unassigned"``, ...): they are left out
        of the cell-type mass, and so are cells whose label is missing (see :func:`scmatch.metrics.celltype_mass`).

    Returns
    -------
    The metrics of :func:`scmatch.metrics.evaluate`.
    """
    P, rows, cols = query_block(mdata, key=key)
    if truth is None:
        names2 = mdata.obs_names[cols]
        truth = names2.get_indexer(mdata.obs_names[rows])
        if np.any(truth < 0):
            raise ValueError(
                "Some query mod1 cells have no mod2 cell of the same name: pass `truth=` with the true partners."
            )
    labels = (None, None)
    if labels_key is not None:
        params = mdata.uns[key]["params"]
        mod1, mod2 = params["mod1"], params["mod2"]
        for mod in (mod1, mod2):
            if labels_key not in mdata[mod].obs:
                raise ValueError(f"`labels_key={labels_key!r}` is not a column of mdata[{mod!r}].obs.")
        lab1 = mdata[mod1].obs[labels_key].reindex(mdata.obs_names[rows])
        lab2 = mdata[mod2].obs[labels_key].reindex(mdata.obs_names[cols])
        if unassigned is None:  # as before: a missing label is a label of its own, "nan"
            labels = (lab1.astype(str).to_numpy(), lab2.astype(str).to_numpy())
        else:
            labels = (lab1.astype(object).to_numpy(), lab2.astype(object).to_numpy())
    return evaluate(P, np.asarray(truth), labels_rows=labels[0], labels_cols=labels[1], unassigned=unassigned)
