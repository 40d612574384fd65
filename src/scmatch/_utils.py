"""Shared helpers: the one AnnData/MuData dispatch, matrix access, device and random state."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("scmatch")


def _get_modality(data: AnnData | MuData, mod: str | None) -> AnnData:
    """Return the AnnData to work on.

    ``data`` may be an AnnData (``mod`` is ignored) or a MuData, in which case
    ``mod`` names the modality.
    """
    if isinstance(data, MuData):
        if mod is None:
            raise ValueError(f"`data` is a MuData: pass `mod=` with one of {list(data.mod)}.")
        if mod not in data.mod:
            raise ValueError(
                f"Modality {mod!r} is not in the MuData; it has {list(data.mod)}. Pass one of those as `mod=`."
            )
        return data.mod[mod]
    if isinstance(data, AnnData):
        return data
    raise TypeError(f"Expected an AnnData or MuData, got {type(data).__name__}.")


def _get_matrix(adata: AnnData, *, layer: str | None = None, obsm: str | None = None) -> np.ndarray | sp.spmatrix:
    """Return ``adata.X``, a layer or an ``.obsm`` entry, checking that the key exists."""
    if layer is not None and obsm is not None:
        raise ValueError("Pass at most one of `layer=` and `obsm=`.")
    if layer is not None:
        if layer not in adata.layers:
            raise ValueError(
                f"Layer {layer!r} not found; available layers: {list(adata.layers)}. Pass one of them as `layer=`, "
                "or `layer=None` for `.X`."
            )
        return _check_not_empty(adata.layers[layer], f"`.layers[{layer!r}]`")
    if obsm is not None:
        if obsm not in adata.obsm:
            raise ValueError(
                f"`.obsm[{obsm!r}]` not found; available keys: {list(adata.obsm)}. "
                "Run the preprocessing that writes it (e.g. scmatch.pp.recipe_rna) first."
            )
        X = adata.obsm[obsm]
        return _check_not_empty(X.to_numpy() if hasattr(X, "to_numpy") else X, f"`.obsm[{obsm!r}]`")
    if adata.X is None:
        raise ValueError("`.X` is empty: pass `layer=` or `obsm=` naming the data to use.")
    return _check_not_empty(adata.X, "`.X`")


def _check_not_empty(X: Any, where: str) -> Any:
    """Return ``X``; raise a ValueError if it has no cells or no features."""
    if len(X.shape) == 2 and 0 in X.shape:
        raise ValueError(
            f"{where} is empty (shape {X.shape}): it has no {'cells' if X.shape[0] == 0 else 'features'}. "
            "Subset the data to non-empty cells and features first."
        )
    return X


def _check_finite(X: np.ndarray | sp.spmatrix, *, what: str) -> None:
    """Raise a ValueError naming ``what`` if ``X`` holds NaN or infinite values (a TypeError if not numeric)."""
    values = X.data if sp.issparse(X) else np.asarray(X)
    if values.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be numeric, got dtype {values.dtype}; convert it, e.g. with `.astype(float)`.")
    if values.size and not np.all(np.isfinite(values)):
        raise ValueError(f"{what} contains NaN or infinite values; remove or impute them before calling scmatch.")


def _check_counts(X: np.ndarray | sp.spmatrix, *, what: str) -> None:
    """Raise a ValueError unless ``X`` holds non-negative integer counts."""
    values = X.data if sp.issparse(X) else np.asarray(X)
    _check_finite(X, what=what)
    if values.size and values.min() < 0:
        raise ValueError(
            f"{what} has negative values, but raw counts are required. Pass the counts layer with `layer=`."
        )
    if values.size and not np.allclose(values, np.round(values)):
        raise ValueError(
            f"{what} has non-integer values, but raw counts are required. "
            "Pass the raw counts layer with `layer=` (e.g. layer='counts')."
        )


def _dense(X: np.ndarray | sp.spmatrix) -> np.ndarray:
    """Dense, C-contiguous array (torch refuses negative strides)."""
    return X.toarray() if sp.issparse(X) else np.ascontiguousarray(X)


def _rng(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """A local numpy Generator; never touches global state."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


def _device(device: str = "auto") -> torch.device:
    """Choose the torch device: ``"auto"`` means CUDA when available, else CPU."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"Unknown device {device!r}; use 'auto', 'cpu' or 'cuda'.") from err
