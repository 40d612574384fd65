"""Pair sampling: the training pairs of each epoch, in shuffled minibatches."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class Pairs:
    """Every training pair each epoch, in shuffled minibatches, weighted by the user's ``sample_weight``.

    :class:`~scmatch.model.train._coreset.CoresetPairs` trains on a re-selected subset instead.
    """

    def __init__(self, n: int, *, batch_size: int, sample_weight: np.ndarray | None) -> None:
        self.n_all = n
        self.sample_weight = sample_weight
        self.subset = np.arange(n)
        self.batch_size = min(batch_size, n)

    @property
    def per_epoch(self) -> int:
        """Pairs trained on per epoch (constant over the epochs)."""
        return self.n_all

    def describe(self) -> str:
        """The pairs of an epoch, in words (for error messages)."""
        return f"{self.per_epoch} pairs"

    def steps_per_epoch(self, world: int = 1) -> int:
        """Optimizer steps of one process per epoch, with ``world`` processes sharing the minibatches."""
        return max(1, (self.per_epoch // self.batch_size) // world)

    def check_world(self, world: int) -> None:
        """Refuse to split fewer minibatches than processes (each process needs at least one per epoch)."""
        n_batches = self.per_epoch // self.batch_size
        if world > 1 and n_batches < world:
            raise ValueError(
                f"{self.describe()} give {n_batches} minibatches of {self.batch_size}, too few for {world} "
                "processes; lower `batch_size`, raise `coreset_fraction`, or use fewer processes."
            )

    def refresh(self, epoch: int, *, module, X1, X2, rng: np.random.Generator, device) -> None:
        """Re-select the pairs before epoch ``epoch`` (every pair: nothing to do)."""

    def weights(self, idx: np.ndarray) -> np.ndarray | None:
        """Weights of the pairs ``idx`` (positions in the training pairs), or None for equal weights."""
        return None if self.sample_weight is None else self.sample_weight[idx]

    def batches(self, rng: np.random.Generator, *, rank: int = 0, world: int = 1) -> Iterator[np.ndarray]:
        """Sorted pair positions of each minibatch of one epoch, in a fresh random order.

        With ``world`` processes, every process draws the same order and takes minibatches ``rank``,
        ``rank + world``, ...; each takes the same number of steps, or the gradient all-reduce would wait forever.
        """
        n = len(self.subset)
        order = self.subset[rng.permutation(n)]
        starts = range(0, n - self.batch_size + 1, self.batch_size)
        if world > 1:
            starts = starts[rank : len(starts) - len(starts) % world : world]
        for start in starts:
            yield np.sort(order[start : start + self.batch_size])
