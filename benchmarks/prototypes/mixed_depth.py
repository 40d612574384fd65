"""An ensemble whose members differ in whether they read each cell's depth (issues 26 and 29, a prototype).

    python benchmarks/prototypes/mixed_depth.py --datasets snare2 snare2_rev --seeds 0 1 2 \
        --without 0 1 --out benchmarks/results/mixed_depth

On RNA + ATAC, ``tl.match_modalities(depth="auto")`` gives every network of the ensemble each cell's log depth as
one more input. On the scaled genes that input helps some splits (SNARE-seq2 reversed, the PBMC multiome set) and
costs others (SNARE-seq2 09A-C -> 09D-F, the multiome starter; *RNA scaling*). Here ``--without k`` members of the
three read the depth column as a constant (its scale set so large that the standardised column is 0 for every
cell), so they train and match as networks without it, and the ensemble averages networks with and without it.
``--without 0`` is the default, in the same run. The change is made by wrapping, in this process only, the
function that builds each untrained member; ``run_matching.run_one`` then fits, matches and scores as everywhere
else (method ``scmatch_depth``). A record's ``preprocessing`` is ``joint_without_depth_{k}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(BENCH)]
import run_matching  # noqa: E402
from _data import load_split  # noqa: E402

import scmatch.model._fit as fit  # noqa: E402

_new_member = fit._new_member
_state = {"without": 0, "built": 0}
#: the standardised depth column of a member that does not read it: (x - shift) / HUGE is 0 to float precision
HUGE = 1e30


def _member(architecture, X1, X2, train_idx, *, seed, device):
    """The package's untrained member; the first ``without`` members of each ensemble get a constant depth column."""
    module = _new_member(architecture, X1, X2, train_idx, seed=seed, device=device)
    k = _state["built"] % 3
    _state["built"] += 1
    if k < _state["without"]:
        for m in (1, 2):
            scale = getattr(module, f"scale{m}")
            scale[-1] = HUGE
    return module


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["snare2"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--without", nargs="+", type=int, default=[0, 1])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=BENCH / "results" / "mixed_depth")
    args = p.parse_args(argv)
    command = "python benchmarks/prototypes/mixed_depth.py " + " ".join(argv)
    fit._new_member = _member
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            split = load_split(dataset, preprocessing="joint")
            for without in args.without:
                name = f"joint_without_depth_{without}"
                meta = {**json.loads(split.meta), "preprocessing": name}
                cache = str(Path(tmp) / f"{dataset}__{name}.npz")
                dataclasses.replace(split, meta=json.dumps(meta)).save(cache)
                _state["without"] = without
                for seed in args.seeds:
                    _state["built"] = 0
                    out = args.out / f"{dataset}__scmatch_depth__{name}__seed{seed}.json"
                    rec = run_matching.run_one(cache, dataset, "scmatch_depth", seed, str(out), command, args.threads)
                    print(f"{dataset} {name} seed {seed}: match {rec['match_score']:.4f} ct-mass "
                          f"{rec['celltype_mass']:.3f} foscttm {rec['foscttm']:.3f} "
                          f"depth {rec.get('depth', {}).get('used')}", flush=True)  # fmt: skip


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
