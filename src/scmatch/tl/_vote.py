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


def round_trip_nll(B: sp.spmatrix, codes: np.ndarray, n_labels: int, temperature: float) -> float:
    """Mean negative log-likelihood of each source cell's own label, voted by the source cells its matches match.

    ``B`` is the ``n_target x n_source`` match block. Each source cell's weights go to target cells
    (``soften(B.T)``), and theirs back to source cells (``soften(B)``); the cell's own share of that return
    trip is left out, so no cell votes for itself. Cells whose trip returns nowhere else are skipped.
    """
    to_target, to_source = soften(B.T, temperature), soften(B, temperature)
    hot = one_hot(codes, n_labels)
    masses = np.asarray((to_target @ (to_source @ hot)).todense())
    own = np.asarray(to_target.multiply(to_source.T).sum(axis=1)).ravel()  # the trip back to the cell itself
    rows = np.arange(len(codes))
    masses[rows, codes] -= own
    rest = masses.sum(axis=1)
    keep = rest > 1e-12
    right = np.clip(masses[keep, codes[keep]] / rest[keep], 0.0, 1.0)
    return float(-np.mean(np.log((1.0 - NLL_FLOOR) * right + NLL_FLOOR / n_labels)))


def choose_temperature(B: sp.spmatrix, labels: Sequence[str], grid: Sequence[float] = TEMPERATURE_GRID) -> dict:
    """The temperature of the grid with the smallest :func:`round_trip_nll` on the source labels.

    Returns
    -------
    ``{"temperature": best, "grid": [...], "round_trip_nll": [...]}``.
    """
    codes, uniques = encode(labels)
    nll = [round_trip_nll(B, codes, len(uniques), t) for t in grid]
    return {"temperature": float(grid[int(np.argmin(nll))]), "grid": list(map(float, grid)), "round_trip_nll": nll}


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
