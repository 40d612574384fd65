"""The reference's own cell types kept out of the loss's negatives (issue 26, a bound, not a method).

    python benchmarks/prototypes/label_negatives.py --datasets snare2 snare2_rev --seeds 0 1 2 \
        --variants none labels --out benchmarks/results/label_negatives

Issue 26 asks for a cell-type mass of 0.65 on SNARE-seq2. The default loss (InfoNCE) pushes every other pair of a
minibatch away from each pair, nuclei of the same type included. Here, with ``labels``, the pairs of the same
annotated type (the source's unassigned group ``Mis`` excepted) are left out of each other's negatives: the loss
no longer pushes a type apart, using labels that a user's reference need not have. If even this leaves the
cell-type mass where it is, the mass is set by what the inputs carry, not by the loss. ``none`` is the default loss
in the same run.

The change is made in this process only, by wrapping the function that trains one network of the ensemble (to
know which reference pairs it trains on), the training loop's minibatch reader (to know each step's rows) and the
InfoNCE loss (to mask those entries); ``run_matching.run_one`` then fits, matches and scores as everywhere else
(method ``scmatch_depth``, the default on RNA + ATAC). A record's ``preprocessing`` is ``joint_negatives_{variant}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch

BENCH = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(BENCH), str(BENCH / "prototypes")]
import neighbour_negatives as nn_negatives  # noqa: E402  (its minibatch reader and masked loss)
import run_matching  # noqa: E402
from _data import UNASSIGNED, load_split  # noqa: E402

import scmatch.model._fit as fit  # noqa: E402
import scmatch.model.nn._losses as losses  # noqa: E402
import scmatch.model.train._loop as loop  # noqa: E402

_local = threading.local()  # the networks of an ensemble train in threads: each keeps its own labels
#: the reference pairs' cell types in the order of the fitted rows, and the labels that name no type
_setting: dict = {"labels": None, "unassigned": ()}
_info_nce, _fit_member = losses.info_nce, fit._fit_member


def _member(members, module, X1, X2, val_idx, train_idx, stop, **kw):
    """The package's training of one network, with the cell types of the pairs it trains on noted."""
    labels = _setting["labels"]
    _local.labels = None if labels is None else labels[np.asarray(train_idx)]
    return _fit_member(members, module, X1, X2, val_idx, train_idx, stop, **kw)


def _masked_info_nce(sim: torch.Tensor, *, temperature: float = 0.1, weight: torch.Tensor | None = None):
    """InfoNCE with the pairs of the step's own cell types left out of each other's negatives."""
    labels, rows = getattr(_local, "labels", None), getattr(nn_negatives._local, "rows", None)
    if labels is None or rows is None or len(rows[1]) != sim.shape[0]:
        return _info_nce(sim, temperature=temperature, weight=weight)
    nn_negatives._local.rows = None
    types = labels[np.asarray(rows[1])]
    same = (types[:, None] == types[None, :]) & ~np.isin(types, list(_setting["unassigned"]))[:, None]
    np.fill_diagonal(same, False)
    return nn_negatives.info_nce_without(sim, same, temperature=temperature, weight=weight)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["snare2"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=["none", "labels"], choices=["none", "labels"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=BENCH / "results" / "label_negatives")
    args = p.parse_args(argv)
    command = "python benchmarks/prototypes/label_negatives.py " + " ".join(argv)
    loop._batch, losses.info_nce, fit._fit_member = nn_negatives._batch, _masked_info_nce, _member
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            split = load_split(dataset, preprocessing="joint")
            for variant in args.variants:
                name = f"joint_negatives_{variant}"
                meta = {**json.loads(split.meta), "preprocessing": name}
                cache = str(Path(tmp) / f"{dataset}__{name}.npz")
                dataclasses.replace(split, meta=json.dumps(meta)).save(cache)
                _setting["labels"] = np.asarray(split.labels_train) if variant == "labels" else None
                _setting["unassigned"] = UNASSIGNED.get(dataset, ())
                for seed in args.seeds:
                    out = args.out / f"{dataset}__scmatch_depth__{name}__seed{seed}.json"
                    rec = run_matching.run_one(cache, dataset, "scmatch_depth", seed, str(out), command, args.threads)
                    print(f"{dataset} {name} seed {seed}: match {rec['match_score']:.4f} ct-mass "
                          f"{rec['celltype_mass']:.3f} foscttm {rec['foscttm']:.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
