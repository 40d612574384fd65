"""Calibration: the matching temperatures chosen on held-out pairs, by a coarse-to-fine grid search."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from ._matching import match_block_temperatures

TEMPERATURE_GRID = np.geomspace(0.002, 1.0, 45)
#: what calibration optimises: the likelihood of the true partner, or its mean probability (the challenge's score)
CALIBRATIONS = ("nll", "match_score")
#: matchings with a calibrated temperature ("assignment" starts from the Sinkhorn plan)
CALIBRATED = ("softmax", "sinkhorn")


def grid_argmin(
    objective: Callable[[np.ndarray], list[float]], grid: np.ndarray = TEMPERATURE_GRID, step: int = 4
) -> int:
    """Index of the smallest objective on ``grid``: every ``step``-th point, then the neighbours of the best.

    ``objective`` maps an array of grid values to their objective values; it is called once per stage, so a
    solver can run the values of a stage together.
    """
    values: dict[int, float] = {}

    def evaluate(indices) -> None:
        new = [i for i in dict.fromkeys(indices) if i not in values]
        if new:
            values.update(zip(new, objective(grid[new]), strict=True))

    evaluate([*range(0, len(grid), step), len(grid) - 1])
    best = min(values, key=lambda i: (values[i], i))
    evaluate(range(max(0, best - step + 1), min(len(grid), best + step)))
    return min(values, key=lambda i: (values[i], i))


def calibrate(sim: sp.csr_matrix, *, calibration: str) -> dict[str, float]:
    """Temperatures of the calibrated matchings for held-out pairs whose similarities are ``sim``.

    Row ``i`` and column ``i`` of ``sim`` are the same cell. ``calibration="nll"`` minimises the negative
    log-likelihood of the true partner (probabilities that mean what they say); ``"match_score"`` maximises the
    mean probability on the true partner (the challenge metric; sharper, close to a hard assignment). The grid is
    searched coarse to fine (every 4th temperature, then the neighbours of the best), which finds the grid's
    minimum whenever the objective is unimodal in the temperature.
    """
    n = sim.shape[0]

    def objective(name: str, temperatures: np.ndarray) -> list[float]:
        values = []
        for P in match_block_temperatures(sim, matching=name, temperatures=temperatures, top_k=n):
            p_true = P.diagonal()
            if calibration == "nll":
                values.append(float(-np.mean(np.log(np.clip(p_true, 1e-12, None)))))
            else:
                values.append(float(-np.mean(p_true)))
        return values

    return {name: float(TEMPERATURE_GRID[grid_argmin(functools.partial(objective, name))]) for name in CALIBRATED}
