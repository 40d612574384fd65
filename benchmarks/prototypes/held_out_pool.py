"""Prototype (issue 30): held-out calibration pools of the reference's size. Not part of the package.

Each held-out mod2 cell is matched against every reference mod1 cell (its owner network's similarities), so the
label vote on which ``transfer_labels`` chooses its temperature has as many candidates as a query of the
reference's size, instead of only the other held-out cells. It replaces ``tl._match.global_held_out`` for one run
of ``run_transfer.py`` (records in ``benchmarks/results/transfer_wide_pool``)::

    python benchmarks/prototypes/held_out_pool.py --datasets cite totalvi multiome --seeds 0 1 2 --skip-peers \
        --out benchmarks/results/transfer_wide_pool
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def wide_block(model, X1, X2, *, batch, matching, top_k):
    """Probabilities of every reference mod1 cell (rows) over the held-out mod2 cells (columns), n x n."""
    import numpy as np
    import scipy.sparse as sp

    from scmatch.model._inputs import batch_groups
    from scmatch.model.nn._ensemble import EnsembleMatcher
    from scmatch.model.solvers._matching import match_groups

    n = X1.shape[0]
    module = model._check_fitted()
    members = list(module.members) if isinstance(module, EnsembleMatcher) else [module]
    owner = np.full(n, -1)
    for k, part in enumerate(model.held_out_.slices):
        owner[part] = k
    pool = np.flatnonzero(owner >= 0)
    b = None if batch is None else np.asarray(batch)
    groups = batch_groups(b, None if b is None else b[pool], n, len(pool))

    def similarity(rows, cols):
        blocks = []
        for k, member in enumerate(members):
            mine = cols[owner[pool[cols]] == k]
            if len(mine):
                n_candidates = min(len(mine), max(model.search.n_candidates, top_k))
                S = model._similarity(member, X1[rows], X2[pool[mine]], n_candidates=n_candidates).tocoo()
                blocks.append((S.row, np.searchsorted(cols, mine[S.col]), S.data))
        r, c, v = (np.concatenate(p) for p in zip(*blocks, strict=True))
        return sp.csr_matrix((v, (r, c)), shape=(len(rows), len(cols)))

    tau = model.temperature_["softmax" if matching == "softmax" else "sinkhorn"]
    shape = (n, len(pool))
    P = match_groups(similarity, groups, shape=shape, matching=matching, temperature=tau, top_k=max(top_k, 1000))
    P = P.tocoo()
    return sp.csr_matrix((P.data, (P.row, pool[P.col])), shape=(n, n))


def global_held_out(mdata, model, inputs, *, mods, batch_key, matching, top_k):
    """Drop-in for ``tl._match.global_held_out`` with the wide pool."""
    import scipy.sparse as sp

    if getattr(model, "held_out_", None) is None or inputs.ref_positions is None:
        return None
    (mod1, mod2), (i1, i2) = mods, inputs.ref_positions
    batch = None if batch_key is None else mdata[mod1].obs[batch_key].astype(str).to_numpy()[i1]
    H = wide_block(model, inputs.ref1, inputs.ref2, batch=batch, matching=matching, top_k=top_k).tocoo()
    rows = mdata.obs_names.get_indexer(mdata[mod1].obs_names[i1])
    cols = mdata.obs_names.get_indexer(mdata[mod2].obs_names[i2])
    return sp.csr_matrix((H.data, (rows[H.row], cols[H.col])), shape=(mdata.n_obs, mdata.n_obs))


def main() -> None:
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE.parent.parent / "src"))
    import run_transfer

    import scmatch.tl._match as tm

    tm.global_held_out = global_held_out
    run_transfer.main(sys.argv[1:])


if __name__ == "__main__":
    main()
