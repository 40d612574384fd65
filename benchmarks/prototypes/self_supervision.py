"""Prototype (issue 29, lever 2): self-supervised pre-training on every cell. Not part of the package's defaults.

Each ensemble member's encoders are pre-trained (``pretrain`` below) on the cells of
each modality, with InfoNCE between two noisy, masked views of a cell, before the usual paired training. Methods:

- ``scmatch_ssl``: pre-trained on the reference's cells and the query's (both modalities, no pairing used);
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

from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import run_matching  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from scmatch.model.nn._modules import CrossAttentionMatcher  # noqa: E402
from scmatch.model.train._stopping import _batch  # noqa: E402


@dataclass(frozen=True, kw_only=True)
class SelfSupervision:
    """Pre-training of each modality's encoder on single cells, before the paired training.

    Parameters
    ----------
    steps
        Optimizer steps per modality (and per ensemble member).
    batch_size
        Cells per minibatch; the other cells of the minibatch are the negatives.
    mask
        Share of a view's input features set to the reference mean.
    noise
        Standard deviation of the Gaussian noise added to each view, in units of the input's scale.
    temperature
        Temperature of the within-modality InfoNCE loss.
    lr
        AdamW learning rate.
    """

    steps: int = 300
    batch_size: int = 256
    mask: float = 0.2
    noise: float = 0.3
    temperature: float = 0.1
    lr: float = 1e-3


def _view(module: CrossAttentionMatcher, x: torch.Tensor, modality: int, settings: SelfSupervision, generator):
    """A noisy view of raw inputs ``x``: masked features at the reference mean, noise scaled like the input."""
    shift, scale = getattr(module, f"shift{modality}"), getattr(module, f"scale{modality}")
    noisy = x + settings.noise * scale * torch.randn(x.shape, generator=generator, device=x.device)
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= settings.mask
    return torch.where(keep, noisy, shift.expand_as(x))


def pretrain(
    module: CrossAttentionMatcher,
    cells: tuple,
    *,
    settings: SelfSupervision,
    rng: np.random.Generator,
    generator: torch.Generator,
    device: torch.device,
) -> list[float]:
    """Pre-train ``module``'s two encoders in place on ``cells = (X1, X2)`` (either may be ``None``).

    Returns the mean loss of each modality's last tenth of steps.
    """
    module.generator = generator
    module.train()
    final = []
    try:
        for modality, X in ((1, cells[0]), (2, cells[1])):
            if X is None or X.shape[0] < 2:
                continue
            encoder = module.encoder1 if modality == 1 else module.encoder2
            head = module.head1 if modality == 1 else module.head2
            params = [*encoder.parameters(), *head.parameters()]
            optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=1e-4)
            size = min(settings.batch_size, X.shape[0])
            losses = []
            for _ in range(settings.steps):
                x = _batch(X, rng.choice(X.shape[0], size=size, replace=False), device)
                z = [module.embed(module.tokens(_view(module, x, modality, settings, generator), modality), modality)
                     for _ in range(2)]  # fmt: skip
                logits = z[0] @ z[1].T / settings.temperature
                target = torch.arange(size, device=device)
                loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 5.0)
                optimizer.step()
                losses.append(loss.item())
            final.append(float(np.mean(losses[-max(1, settings.steps // 10) :])))
    finally:
        module.generator = None
        module.eval()
    return final


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


run_matching.METHODS["scmatch_ssl"] = {**run_matching.METHODS["scmatch"], "ssl": {"query": True}}
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
