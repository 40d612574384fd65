"""Negatives that leave out each pair's nearest reference pairs (issue 26, a prototype).

    python benchmarks/prototypes/neighbour_negatives.py --datasets snare2 totalvi --seeds 0 1 2 \
        --fractions 0 0.06 --out benchmarks/results/neighbour_negatives

The default loss (InfoNCE) takes every other pair of a minibatch as a negative of each pair. On single-nucleus
ATAC, a nucleus's partner cannot be told from the nuclei of the same state, so the loss pushes apart nuclei that
are alike, which may spend the network's capacity on noise and blur the cell types. Here each pair's negatives
leave out the reference pairs nearest to it in the first modality's input (cosine; ``fraction`` of the network's
training pairs, so 0.06 is about 140 on SNARE-seq2 and under 20 on the CITE starter): they are neither
pulled together nor pushed apart. ``fraction=0`` is the default loss, in the same run.

The change is made by wrapping, in this process only, the training loop's minibatch reader (to know the
minibatch's rows) and the InfoNCE loss (to mask those entries); ``run_matching.run_one`` then fits, matches and
scores as everywhere else (default method ``scmatch_depth``, what ``tl.match_modalities`` does by default on RNA +
ATAC; on CITE-seq that rule leaves the depth out, so it is the network alone). A record's ``preprocessing`` is
``joint_negatives_{fraction}``.
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
import scipy.sparse as sp
import torch
from sklearn.neighbors import NearestNeighbors
from torch.nn import functional as F

BENCH = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(BENCH)]
import run_matching  # noqa: E402
from _data import load_split  # noqa: E402

import scmatch.model.nn._losses as losses  # noqa: E402
import scmatch.model.train._loop as loop  # noqa: E402

_local = threading.local()  # the networks of an ensemble train in threads: each keeps its own minibatch rows
_masks: dict = {}
_setting = {"fraction": 0.0}
_read_batch, _info_nce = loop._batch, losses.info_nce


def neighbour_mask(X, fraction: float) -> torch.Tensor:
    """Boolean (n x n): the ``fraction`` of rows nearest each row (cosine, both directions), self excluded."""
    key = (id(X), X.shape, fraction)
    if key not in _masks:
        dense = X.toarray() if sp.issparse(X) else np.asarray(X)
        n = dense.shape[0]
        k = min(max(1, round(fraction * n)) + 1, n)
        idx = NearestNeighbors(n_neighbors=k, metric="cosine").fit(dense).kneighbors(dense, return_distance=False)
        mask = np.zeros((n, n), dtype=bool)
        mask[np.repeat(np.arange(n), k), idx.ravel()] = True
        mask |= mask.T
        np.fill_diagonal(mask, False)
        _masks[key] = torch.as_tensor(mask)
    return _masks[key]


def _batch(X, idx, device):
    """The loop's minibatch reader, noting the rows of each step's first-modality read."""
    if getattr(_local, "expect", "x1") == "x1":
        _local.rows, _local.expect = (X, np.asarray(idx)), "x2"
    else:
        _local.expect = "x1"
    return _read_batch(X, idx, device)


def _masked_info_nce(sim: torch.Tensor, *, temperature: float = 0.1, weight: torch.Tensor | None = None):
    """InfoNCE with the step's neighbour entries left out of the negatives (the default loss where none apply)."""
    rows = getattr(_local, "rows", None)
    if not _setting["fraction"] or rows is None or len(rows[1]) != sim.shape[0]:
        return _info_nce(sim, temperature=temperature, weight=weight)
    X, idx = rows
    _local.rows = None
    at = torch.as_tensor(idx)
    mask = neighbour_mask(X, _setting["fraction"])[at][:, at]
    return info_nce_without(sim, mask, temperature=temperature, weight=weight)


def info_nce_without(sim: torch.Tensor, mask, *, temperature: float, weight: torch.Tensor | None) -> torch.Tensor:
    """The package's bidirectional InfoNCE with the entries of ``mask`` (B x B, diagonal False) left out."""
    logits = (sim / temperature).masked_fill(torch.as_tensor(mask, device=sim.device), float("-inf"))
    target = torch.arange(sim.shape[0], device=sim.device)
    per_pair = F.cross_entropy(logits, target, reduction="none") + F.cross_entropy(logits.T, target, reduction="none")
    return losses._weighted_mean(per_pair / 2, weight)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["snare2"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--fractions", nargs="+", type=float, default=[0.0, 0.06])
    p.add_argument("--method", default="scmatch_depth", choices=run_matching.METHODS)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=BENCH / "results" / "neighbour_negatives")
    args = p.parse_args(argv)
    command = "python benchmarks/prototypes/neighbour_negatives.py " + " ".join(argv)
    loop._batch, losses.info_nce = _batch, _masked_info_nce
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            split = load_split(dataset, preprocessing="joint")
            for fraction in args.fractions:
                name = f"joint_negatives_{fraction:g}"
                meta = {**json.loads(split.meta), "preprocessing": name}
                cache = str(Path(tmp) / f"{dataset}__{name}.npz")
                dataclasses.replace(split, meta=json.dumps(meta)).save(cache)
                _setting["fraction"] = fraction
                for seed in args.seeds:
                    out = args.out / f"{dataset}__{args.method}__{name}__seed{seed}.json"
                    rec = run_matching.run_one(cache, dataset, args.method, seed, str(out), command, args.threads)
                    print(f"{dataset} {name} seed {seed}: match {rec['match_score']:.4f} ct-mass "
                          f"{rec['celltype_mass']:.3f} foscttm {rec['foscttm']:.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
