"""The label vote behind tl.transfer_labels: label masses, softened weights and the round trip choosing them.

The softening is chosen on the source labels alone, by a round trip (source -> target -> source).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

#: temperatures tried by ``temperature="auto"``: the weights are ``P ** (1 / temperature)``, rows renormalised
TEMPERATURE_GRID = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0)
#: floor of a label's mass in the round trip's log-likelihood (a share of the uniform mass over labels)
NLL_FLOOR = 1e-3


def normalise_rows(W: sp.spmatrix) -> sp.csr_matrix:
    """CSR with every non-empty row scaled to sum to one (empty rows stay empty)."""
    W = sp.csr_matrix(W, dtype=np.float64)
    mass = np.asarray(W.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(np.divide(1.0, mass, out=np.zeros_like(mass), where=mass > 0)) @ W)


def soften(B: sp.spmatrix, temperature: float) -> sp.csr_matrix:
    """``B ** (1 / temperature)`` entry-wise on the non-zeros, rows renormalised to sum to one.

    For probabilities ``exp(s / T)`` of a softmax or a transport plan this is the same matching at temperature
    ``T * temperature`` on the same candidates: a flatter vote over more of them.
    """
    W = sp.csr_matrix(B, dtype=np.float64, copy=True)
    W.eliminate_zeros()
    W.data = W.data ** (1.0 / temperature)
    return normalise_rows(W)


def encode(labels: Sequence[str]) -> tuple[np.ndarray, pd.Index]:
    """Integer code of each label and the sorted distinct labels."""
    codes, uniques = pd.factorize(pd.Series(np.asarray(labels, dtype=object).astype(str)), sort=True)
    return codes, pd.Index(uniques, dtype=object)


def one_hot(codes: np.ndarray, n_labels: int) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), n_labels))


def label_masses(W: sp.spmatrix, labels: Sequence[str]) -> pd.DataFrame:
    """Probability mass per label: ``W @ one_hot(labels)``.

    Parameters
    ----------
    W
        ``n_target x n_source`` weights, each row summing to one (or zero).
    labels
        Label of each source cell.

    Returns
    -------
    A dense ``n_target x n_labels`` DataFrame; columns are the sorted distinct labels.
    """
    codes, uniques = encode(labels)
    return pd.DataFrame(np.asarray((W @ one_hot(codes, len(uniques))).todense()), columns=uniques)


def round_trip_masses(
    B: sp.spmatrix, codes: np.ndarray, n_labels: int, temperature: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each source cell's label masses, voted by the source cells its matches match (its own share left out).

    ``B`` is the ``n_target x n_source`` match block. Each source cell's weights go to target cells
    (``soften(B.T)``), and theirs back to source cells (``soften(B)``); the cell's own share of that return
    trip is left out, so no cell votes for itself, and the rest is normalised to sum to one.

    Returns
    -------
    The ``n_kept x n_labels`` masses and the boolean mask of the source cells kept: those whose trip returns
    somewhere else.
    """
    to_target, to_source = soften(B.T, temperature), soften(B, temperature)
    masses = np.asarray((to_target @ (to_source @ one_hot(codes, n_labels))).todense())
    own = np.asarray(to_target.multiply(to_source.T).sum(axis=1)).ravel()  # the trip back to the cell itself
    masses[np.arange(len(codes)), codes] -= own
    masses = np.clip(masses, 0.0, None)
    rest = masses.sum(axis=1)
    keep = rest > 1e-12
    return masses[keep] / rest[keep, None], keep


def label_nll(masses: np.ndarray, codes: np.ndarray, n_labels: int) -> float:
    """Mean negative log-likelihood of the labels ``codes`` under the rows of ``masses`` (floored, see NLL_FLOOR)."""
    right = np.clip(masses[np.arange(len(codes)), codes], 0.0, 1.0)
    return float(-np.mean(np.log((1.0 - NLL_FLOOR) * right + NLL_FLOOR / n_labels)))


def round_trip_nll(B: sp.spmatrix, codes: np.ndarray, n_labels: int, temperature: float) -> float:
    """Mean negative log-likelihood of each source cell's own label under :func:`round_trip_masses`.

    Cells whose trip returns nowhere else are skipped.
    """
    masses, keep = round_trip_masses(B, codes, n_labels, temperature)
    return label_nll(masses, codes[keep], n_labels)


def choose_temperature(B: sp.spmatrix, labels: Sequence[str], grid: Sequence[float] = TEMPERATURE_GRID) -> dict:
    """The temperature of the grid with the smallest :func:`round_trip_nll` on the source labels.

    Returns
    -------
    ``{"temperature": best, "grid": [...], "round_trip_nll": [...]}``.
    """
    codes, uniques = encode(labels)
    nll = [round_trip_nll(B, codes, len(uniques), t) for t in grid]
    return {"temperature": float(grid[int(np.argmin(nll))]), "grid": list(map(float, grid)), "round_trip_nll": nll}


def held_out_nll(B: sp.spmatrix, source_labels: Sequence[str], truth: Sequence[str], temperature: float) -> float:
    """Mean negative log-likelihood of the labels ``truth`` of the target cells (rows of ``B``) under their vote.

    ``B`` is a block of held-out pairs (target x source), whose true labels are known; a label no source cell
    carries gets the floor (:data:`NLL_FLOOR`).
    """
    masses = label_masses(soften(B, temperature), source_labels)
    codes = masses.columns.get_indexer(pd.Index(np.asarray(truth, dtype=object).astype(str)))
    n_labels = max(len(masses.columns), len(set(truth) | set(masses.columns)))
    right = np.where(codes >= 0, masses.to_numpy()[np.arange(len(codes)), np.clip(codes, 0, None)], 0.0)
    return float(-np.mean(np.log((1.0 - NLL_FLOOR) * np.clip(right, 0.0, 1.0) + NLL_FLOOR / n_labels)))


def choose_temperature_held_out(
    B: sp.spmatrix, source_labels: Sequence[str], truth: Sequence[str], grid: Sequence[float] = TEMPERATURE_GRID
) -> dict:
    """The temperature of the grid with the smallest :func:`held_out_nll` on held-out pairs of known labels.

    Returns
    -------
    ``{"temperature": best, "grid": [...], "held_out_nll": [...], "n_cells": rows of B}``.
    """
    nll = [held_out_nll(B, source_labels, truth, t) for t in grid]
    return {
        "temperature": float(grid[int(np.argmin(nll))]),
        "grid": list(map(float, grid)),
        "held_out_nll": nll,
        "n_cells": int(B.shape[0]),
    }


#: bounds of the power that ``calibration="round_trip"`` fits on the label masses
POWER_BOUNDS = (0.1, 10.0)


def sharpen(masses: np.ndarray, power: float) -> np.ndarray:
    """Rows of ``masses`` raised to ``power`` and renormalised to sum to one (rows of zeros stay zero).

    The order of the labels within a row is kept, so the top label is too; ``power < 1`` flattens a row towards
    uniform over its labels with mass, ``power > 1`` sharpens it. On log masses this is temperature scaling.
    """
    out = np.power(np.clip(np.asarray(masses, dtype=np.float64), 0.0, None), power)
    total = out.sum(axis=1, keepdims=True)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 0)


def fit_power(masses: np.ndarray, codes: np.ndarray, n_labels: int, bounds: tuple = POWER_BOUNDS) -> float:
    """The power (within ``bounds``) for which :func:`sharpen` gives the labels ``codes`` the smallest NLL."""
    from scipy.optimize import minimize_scalar

    if n_labels < 2 or len(codes) == 0:
        return 1.0
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    found = minimize_scalar(
        lambda x: label_nll(sharpen(masses, np.exp(x)), codes, n_labels),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(found.x))


def round_trip_recalibration(B: sp.spmatrix, labels: Sequence[str], temperature: float) -> dict:
    """The power on the label masses fitted on the round trip of the source labels at ``temperature``.

    Each source cell's own label is predicted by :func:`round_trip_masses`; the power of :func:`sharpen` that
    gives those predictions the smallest negative log-likelihood is returned, with what the round trip saw.

    Returns
    -------
    ``{"power", "round_trip_accuracy", "round_trip_confidence", "round_trip_nll", "round_trip_nll_recalibrated",
    "n_cells"}``: the fitted power; the share of source cells whose round trip's top label is their own and the
    mean mass on that top label (before the power); the NLL before and after; the source cells used.
    """
    codes, uniques = encode(labels)
    masses, keep = round_trip_masses(B, codes, len(uniques), temperature)
    own = codes[keep]
    power = fit_power(masses, own, len(uniques))
    right = masses.argmax(axis=1) == own if len(own) else np.zeros(0, bool)
    return {
        "power": power,
        "round_trip_accuracy": float(right.mean()) if len(own) else float("nan"),
        "round_trip_confidence": float(masses.max(axis=1).mean()) if len(own) else float("nan"),
        "round_trip_nll": label_nll(masses, own, len(uniques)) if len(own) else float("nan"),
        "round_trip_nll_recalibrated": label_nll(sharpen(masses, power), own, len(uniques))
        if len(own)
        else float("nan"),
        "n_cells": int(keep.sum()),
    }


#: most features the feature round trip scores (the most variable ones), so choosing costs the same for 20,000 genes
MAX_ROUND_TRIP_FEATURES = 200


def _mean_pearson(A: np.ndarray, B: np.ndarray) -> float:
    """Mean over columns of the Pearson correlation between ``A`` and ``B`` (columns constant in either skipped)."""
    a, b = A - A.mean(axis=0), B - B.mean(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    ok = den > 1e-12
    return float(np.mean((a * b).sum(axis=0)[ok] / den[ok])) if ok.any() else float("nan")


def round_trip_pearson(B: sp.spmatrix, X: np.ndarray, temperature: float) -> float:
    """Mean per-feature Pearson between each source cell's values and those its round trip predicts.

    As :func:`round_trip_nll`, with the source cells' feature values (``X``: n_source x features) in place of
    their labels: each source cell's features are predicted from the source cells its target cells match, its
    own share of the trip left out.
    """
    to_target, to_source = soften(B.T, temperature), soften(B, temperature)
    own = np.asarray(to_target.multiply(to_source.T).sum(axis=1)).ravel()
    predicted = np.asarray(to_target @ (to_source @ X)) - own[:, None] * X
    rest = 1.0 - own
    keep = rest > 1e-12
    return _mean_pearson(predicted[keep] / rest[keep, None], X[keep])


def choose_feature_temperature(B: sp.spmatrix, X, grid: Sequence[float] = TEMPERATURE_GRID) -> dict:
    """The temperature of the grid with the largest :func:`round_trip_pearson` on (at most 200 of) the features.

    Returns
    -------
    ``{"temperature": best, "grid": [...], "round_trip_pearson": [...], "n_features": scored}``.
    """
    if X.shape[1] > MAX_ROUND_TRIP_FEATURES:  # pick the columns before densifying: 20,000 genes stay sparse
        if sp.issparse(X):
            X = sp.csc_matrix(X, dtype=np.float64)
            variance = np.asarray(X.multiply(X).mean(axis=0)).ravel() - np.asarray(X.mean(axis=0)).ravel() ** 2
        else:
            variance = np.asarray(X, dtype=np.float64).var(axis=0)
        X = X[:, np.sort(np.argsort(-variance, kind="stable")[:MAX_ROUND_TRIP_FEATURES])]
    X = (X.toarray() if sp.issparse(X) else np.asarray(X)).astype(np.float64)
    scores = [round_trip_pearson(B, X, t) for t in grid]
    best = int(np.nanargmax(scores)) if np.isfinite(scores).any() else 0
    return {
        "temperature": float(grid[best]),
        "grid": list(map(float, grid)),
        "round_trip_pearson": scores,
        "n_features": int(X.shape[1]),
    }
