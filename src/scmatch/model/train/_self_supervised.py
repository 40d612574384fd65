"""Self-supervised pre-training of each modality's encoder on every cell, paired or not (issue 29).

Before the paired training, each encoder (with its ``i0``/``c0`` head) learns from the cells of its modality: two
noisy, partly masked views of a cell should embed closer to each other than to the other cells of the minibatch
(InfoNCE within one modality). The paired training then starts from those weights. The cells without a partner
(the query's, typically) take part, so the encoders also see the variation of cells the reference lacks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from .._numbers import check_numbers
from ..nn._modules import CrossAttentionMatcher
from ._stopping import _batch


@dataclass(frozen=True, kw_only=True)
class SelfSupervision:
    """Pre-training of each modality's encoder on single cells, before the paired training.

    Pass it to :meth:`MatchModel.fit <scmatch.model.MatchModel.fit>` with the cells that have no partner
    (``unpaired=``), or to :func:`scmatch.tl.match_modalities` (``self_supervision=``), which passes the query's
    cells. See docs/unpaired.md for what it gives.

    Parameters
    ----------
    steps
        Optimizer steps per modality and per network of the ensemble.
    batch_size
        Cells per minibatch; the other cells of the minibatch are the negatives (at least 2).
    mask
        Share of a view's input features set to their reference mean, in ``[0, 1)``.
    noise
        Standard deviation of the Gaussian noise added to each view, in units of the input's standardisation scale.
    temperature
        Temperature of the within-modality InfoNCE loss.
    lr
        AdamW learning rate.

    Examples
    --------
    >>> from scmatch.model import SelfSupervision
    >>> SelfSupervision().steps
    300
    """

    steps: int = 300
    batch_size: int = 256
    mask: float = 0.2
    noise: float = 0.3
    temperature: float = 0.1
    lr: float = 1e-3

    def __post_init__(self) -> None:
        check_numbers(
            counts={"steps": self.steps, "batch_size": self.batch_size},
            positive={"temperature": self.temperature, "lr": self.lr},
            non_negative={"noise": self.noise},
        )
        if self.batch_size < 2:
            raise ValueError(f"`batch_size` must be at least 2 (negatives come from the batch), got {self.batch_size}.")
        if not 0 <= self.mask < 1:
            raise ValueError(f"`mask` must be in [0, 1), got {self.mask}.")


def all_cells(paired, unpaired):
    """The paired rows followed by the unpaired ones (``None``: none), dense or sparse like the inputs."""
    if unpaired is None or unpaired.shape[0] == 0:
        return paired
    if sp.issparse(paired) or sp.issparse(unpaired):
        return sp.vstack([sp.csr_matrix(paired), sp.csr_matrix(unpaired)], format="csr")
    return np.vstack([paired, unpaired])


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
    progress_bar: bool = False,
    desc: str = "pre-training",
) -> list[float]:
    """Pre-train ``module``'s two encoders in place on ``cells = (X1, X2)``, one modality after the other.

    The minibatches come from ``rng``, the views' noise, masks and dropout from ``generator``. Returns the mean loss
    of each modality's last tenth of steps.
    """
    module.generator = generator
    module.train()
    final = []
    try:
        for modality, X in ((1, cells[0]), (2, cells[1])):
            encoder = module.encoder1 if modality == 1 else module.encoder2
            head = module.head1 if modality == 1 else module.head2
            params = [*encoder.parameters(), *head.parameters()]
            optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=1e-4)
            size = min(settings.batch_size, X.shape[0])
            losses = []
            bar = tqdm(range(settings.steps), desc=f"{desc} mod{modality}", unit="step", disable=not progress_bar,
                       leave=False)  # fmt: skip
            for _ in bar:
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
