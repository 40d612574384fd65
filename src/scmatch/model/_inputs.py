"""Checks of the arrays given to a model, and what is computed from them before training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._utils import _check_finite


def check_matrix(X, what: str) -> np.ndarray | sp.csr_matrix:
    """``X`` as a float32 array or CSR matrix (cells x features), refused when not numeric, 2-D, non-empty, finite."""
    if isinstance(X, pd.DataFrame):
        X = X.to_numpy()
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float32)
    else:
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise TypeError(f"{what} must be numeric, got dtype {X.dtype}.")
        X = X.astype(np.float32, copy=False)
    if X.ndim != 2:
        raise ValueError(f"{what} must be 2-D (cells x features), got shape {X.shape}.")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{what} is empty (shape {X.shape}).")
    _check_finite(X, what=what)
    return X


def check_pair(X1, X2) -> tuple:
    """Both modalities of paired cells, checked by :func:`check_matrix`, with the same number of cells."""
    X1, X2 = check_matrix(X1, "mod1 input"), check_matrix(X2, "mod2 input")
    if X1.shape[0] != X2.shape[0]:
        raise ValueError(
            f"Paired inputs need the same number of cells, got {X1.shape[0]} (mod1) and {X2.shape[0]} (mod2)."
        )
    return X1, X2


def check_sample_weight(sample_weight, n: int) -> np.ndarray | None:
    """One non-negative float32 weight per pair, not all zero (or None)."""
    if sample_weight is None:
        return None
    sample_weight = np.asarray(sample_weight, dtype=np.float32)
    if sample_weight.shape != (n,) or np.any(sample_weight < 0) or sample_weight.sum() <= 0:
        raise ValueError("`sample_weight` must hold one non-negative weight per pair, not all zero.")
    return sample_weight


def standardization(X) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and one global scale (root mean feature variance), so relative variances are kept."""
    if sp.issparse(X):
        mean = np.asarray(X.mean(axis=0)).ravel()
        var = np.asarray(X.multiply(X).mean(axis=0)).ravel() - mean**2
    else:
        mean, var = X.mean(axis=0), X.var(axis=0)
    scale = float(np.sqrt(max(np.mean(var), 1e-12)))
    return mean.astype(np.float32), np.full_like(mean, scale, dtype=np.float32)


def feature_names(names: Sequence[str] | None, n: int) -> list[str] | None:
    """The names of ``n`` features as strings (or None), refused when there is not one per feature."""
    if names is None:
        return None
    names = [str(x) for x in names]
    if len(names) != n:
        raise ValueError(f"Got {len(names)} feature names for {n} features; pass one name per column of the input.")
    return names


def check_features(
    X, modality: int, names: Sequence[str] | None, *, n_fitted: int, known: list | None, depth: bool = False
) -> None:
    """Refuse a query whose features differ in number (``n_fitted``) or names (``known``) from the training data's.

    ``depth``: the model's last input column is each cell's depth (``model.depth_``), which the message explains.
    """
    if X.shape[1] != n_fitted:
        hint = (
            " Its last input is each cell's sequencing depth (`model.depth_`), which scm.tl.match_modalities adds "
            "from the counts: match with it, or append that column as it describes."
            if depth and X.shape[1] == n_fitted - 1
            else ""
        )
        raise ValueError(
            f"mod{modality} input has {X.shape[1]} features but the model was fitted on {n_fitted}. "
            f"Use the same preprocessing (and the same .obsm key) as for the reference.{hint}"
        )
    if names is not None and known is not None and list(map(str, names)) != list(known):
        given = set(map(str, names))
        missing, extra = [f for f in known if f not in given], sorted(given - set(known))
        problem = f"missing {missing[:5]}, unexpected {extra[:5]}" if missing or extra else "same, other order"
        raise ValueError(
            f"mod{modality} features differ from those the model was fitted on ({problem}). "
            "Subset and order the query's features like the reference's, e.g. `adata[:, model_features]`."
        )


def batch_groups(batch1, batch2, n1: int, n2: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Row and column indices of each batch present in both modalities."""
    if batch1 is None and batch2 is None:
        return [(np.arange(n1), np.arange(n2))]
    if batch1 is None or batch2 is None:
        raise ValueError("Pass batch labels for both modalities (`batch1` and `batch2`) or for neither.")
    b1, b2 = np.asarray(batch1).astype(str), np.asarray(batch2).astype(str)
    if len(b1) != n1 or len(b2) != n2:
        raise ValueError("Batch labels must have one entry per cell.")
    only1, only2 = sorted(map(str, set(b1) - set(b2))), sorted(map(str, set(b2) - set(b1)))
    if only1 or only2:
        raise ValueError(
            f"Batches must be present in both modalities; only in mod1: {only1}, only in mod2: {only2}. "
            "Drop those cells or match without `batch_key`."
        )
    return [(np.flatnonzero(b1 == b), np.flatnonzero(b2 == b)) for b in sorted(set(b1))]


def check_pretraining(settings, unpaired, X1, X2) -> tuple | None:
    """``(settings, (cells1, cells2))`` for self-supervised pre-training: the paired cells, then the unpaired ones.

    ``None`` without ``settings``; unpaired cells without settings, or with other features than the pairs', are
    refused.
    """
    from .train._self_supervised import SelfSupervision, all_cells

    if settings is None:
        if unpaired is not None:
            raise ValueError(
                "`unpaired` cells are used only for self-supervised pre-training: pass "
                "`self_supervision=SelfSupervision()` too, or leave `unpaired` out."
            )
        return None
    if not isinstance(settings, SelfSupervision):
        raise TypeError(f"`self_supervision` must be a scmatch.model.SelfSupervision, got {type(settings).__name__}.")
    if unpaired is None:
        unpaired = (None, None)
    if not isinstance(unpaired, tuple | list) or len(unpaired) != 2:
        raise ValueError("`unpaired` must be a pair (U1, U2) of cells x features arrays (either may be None).")
    cells = []
    for modality, (X, U) in enumerate(zip((X1, X2), unpaired, strict=True), start=1):
        if U is not None:
            U = check_matrix(U, f"unpaired mod{modality} cells")
            if U.shape[1] != X.shape[1]:
                raise ValueError(
                    f"The unpaired mod{modality} cells have {U.shape[1]} features and the pairs {X.shape[1]}; pass "
                    "them in the same representation."
                )
        cells.append(all_cells(X, U))
    return settings, tuple(cells)
