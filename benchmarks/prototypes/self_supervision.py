"""Prototype (issue 29, lever 2): self-supervised pre-training on every cell. Not part of the package's defaults.

Each ensemble member's encoders are pre-trained (``scmatch.model.train._self_supervised.pretrain``) on the cells of
each modality, with InfoNCE between two noisy, masked views of a cell, before the usual paired training. Methods:

- ``scmatch_ssl``: pre-trained on the reference's cells and the query's (both modalities, no pairing used); now
  ``run_matching.py``'s method of that name, through ``MatchModel.fit(unpaired=..., self_supervision=...)``. Its
  records in ``benchmarks/results/self_supervision`` were made by this prototype, before the code moved into the
  package, with the same computation (same seeds and random streams; checked to give the same scores);
- ``scmatch_ssl_ref``: on the reference's cells only (what pre-training alone gives, without the query);
- ``scmatch_fdropN``: no pre-training; in the paired training each input feature of both modalities is dropped
  (set to its reference mean, the others rescaled) with probability N/100 (issue 26: feature dropout).

It runs ``run_matching.py`` in one process (``--in-process``: the memory columns are not per run)::

    python benchmarks/prototypes/self_supervision.py --datasets cite --methods scmatch scmatch_ssl \
        --seeds 0 1 2 --out benchmarks/results/self_supervision
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

import numpy as np  # noqa: E402
import run_matching  # noqa: E402
import torch  # noqa: E402

from scmatch.model.nn._modules import CrossAttentionMatcher  # noqa: E402
from scmatch.model.train._self_supervised import SelfSupervision, pretrain  # noqa: E402

_STATE: dict = {}


def _install() -> None:
    import scmatch.model._fit as fit

    original_new_member, original_shuffled = fit._new_member, run_matching.MatchingSplit.shuffled
    original_run_one = run_matching.run_one

    def shuffled(self, seed):
        out = original_shuffled(self, seed)
        _STATE["split"] = out
        return out

    def run_one(cache, dataset, method, seed, out, command, threads):
        import json

        _STATE["ssl"] = run_matching.METHODS[method].get("ssl")
        _STATE["feature_dropout"] = run_matching.METHODS[method].get("feature_dropout")
        record = original_run_one(cache, dataset, method, seed, out, command, threads)
        # the command that made the record is this script's (run_matching.main writes its own name)
        record["command"] = command.replace("benchmarks/run_matching.py", "benchmarks/prototypes/self_supervision.py")
        record["command"] = record["command"].replace(" --in-process", "")
        record["self_supervision"] = _STATE["ssl"]  # what pre-training ran (None: none)
        record["feature_dropout"] = _STATE["feature_dropout"]
        Path(out).write_text(json.dumps(record, indent=1, default=float) + "\n")
        return record

    def new_member(architecture, X1, X2, train_idx, *, seed, device):
        module = original_new_member(architecture, X1, X2, train_idx, seed=seed, device=device)
        ssl = _STATE.get("ssl")
        if ssl is None:
            return module
        split = _STATE["split"]
        cells = (X1, X2)
        if ssl.get("query", True):
            cells = (np.vstack([X1, split.X1_test]), np.vstack([X2, split.X2_test]))
        generator = torch.Generator(device=device)
        generator.manual_seed(seed + 1)
        settings = SelfSupervision(**ssl.get("settings", {}))
        pretrain(module, cells, settings=settings, rng=np.random.default_rng([seed, 29]), generator=generator,
                 device=device)  # fmt: skip
        return module

    original_tokens = CrossAttentionMatcher.tokens

    def tokens(self, x, modality):
        p = _STATE.get("feature_dropout")
        if p and self.training:  # input-feature dropout on the raw inputs: a dropped feature sits at its mean
            shift = getattr(self, f"shift{modality}")
            keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= p
            x = torch.where(keep, shift + (x - shift) / (1 - p), shift.expand_as(x))
        return original_tokens(self, x, modality)

    CrossAttentionMatcher.tokens = tokens
    fit._new_member = new_member
    run_matching.MatchingSplit.shuffled = shuffled
    run_matching.run_one = run_one


run_matching.METHODS["scmatch_ssl_ref"] = {**run_matching.METHODS["scmatch"], "ssl": {"query": False}}
run_matching.METHODS["scmatch_ssl_long"] = {
    **run_matching.METHODS["scmatch"],
    "ssl": {"query": True, "settings": {"steps": 1000}},
}

for _p in (0.1, 0.2, 0.4):
    run_matching.METHODS[f"scmatch_fdrop{int(_p * 100)}"] = {**run_matching.METHODS["scmatch"], "feature_dropout": _p}

if __name__ == "__main__":
    _install()
    argv = sys.argv[1:]
    run_matching.main([*argv, "--in-process"] if "--in-process" not in argv else argv)
