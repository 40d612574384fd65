"""Helpers private to :mod:`scmatch.pp`: where to write, argument checks, small matrix reductions."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from .._utils import _get_modality, logger


def _target(data: AnnData | MuData, mod: str | None, copy: bool) -> tuple[AnnData | MuData | None, AnnData]:
    """Return ``(returned, adata)``: the object to hand back (None in place) and the AnnData to write into.

    With ``copy=True`` the whole input (the whole MuData, if one was given) is copied first, so the user's object
    is never touched. In place, an AnnData view is made an actual AnnData first (as scanpy does), so writing does
    not warn.
    """
    if copy:
        new = data.copy()
        return new, _get_modality(new, mod)
    adata = _get_modality(data, mod)
    if adata.is_view:
        adata._init_as_actual(adata.copy())
    return None, adata


def _check_int(value: object, *, name: str, minimum: int = 1, allow_none: bool = False) -> None:
    """Raise unless ``value`` is an integer >= ``minimum`` (or None when allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        extra = " or None" if allow_none else ""
        raise ValueError(f"`{name}` must be an integer >= {minimum}{extra}, got {value!r}.")


def _check_fraction(value: object, *, name: str, allow_none: bool = False) -> None:
    """Raise unless ``value`` is a number in [0, 1] (or None when allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        extra = " or None" if allow_none else ""
        raise ValueError(f"`{name}` must be a fraction between 0 and 1{extra}, got {value!r}.")


def _check_nonnegative(X: np.ndarray | sp.spmatrix, *, what: str) -> None:
    """Raise a ValueError if ``X`` holds negative values (``X`` is assumed finite)."""
    values = X.data if sp.issparse(X) else np.asarray(X)
    if values.size and values.min() < 0:
        raise ValueError(f"{what} has negative values, but counts are required. Pass the raw counts with `layer=`.")


def _sums(X: np.ndarray | sp.spmatrix, axis: int) -> np.ndarray:
    """Return the sums along ``axis`` as a flat float64 array."""
    return np.asarray(X.sum(axis=axis), dtype=np.float64).ravel()


def _nonzero_per_column(X: np.ndarray | sp.spmatrix) -> np.ndarray:
    """Count the non-zero entries of each column (explicitly stored zeros do not count)."""
    if sp.issparse(X):
        return np.asarray((X != 0).sum(axis=0)).ravel()
    return np.count_nonzero(np.asarray(X), axis=0)


def _copy_matrix(X: np.ndarray | sp.spmatrix) -> np.ndarray | sp.csr_matrix:
    """Return a float32 copy that shares no memory with ``X``; sparse becomes CSR, dense stays dense."""
    if sp.issparse(X):
        return sp.csr_matrix(X, dtype=np.float32, copy=True)
    return np.array(X, dtype=np.float32, copy=True)


def _check_axis(axis: object) -> None:
    """Raise unless ``axis`` is 0 or 1 (the CLR direction)."""
    if isinstance(axis, bool) or axis not in (0, 1):
        raise ValueError(
            f"`axis` must be 0 (per protein, across cells) or 1 (per cell, across proteins), got {axis!r}."
        )


def _seed_record(random_state: object) -> int | None:
    """Return the seed to store in ``.uns``: an int, or None for generators and other unsaveable objects."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    return None


def _scratch(adata: AnnData, counts: np.ndarray | sp.spmatrix) -> AnnData:
    """Build a bare AnnData with a float32 copy of ``counts`` in X and the same cell and feature names."""
    return AnnData(
        X=_copy_matrix(counts),
        obs=pd.DataFrame(index=adata.obs_names.copy()),
        var=pd.DataFrame(index=adata.var_names.copy()),
    )


def _cap(value: int, limit: int, *, what: str, why: str) -> int:
    """Return ``min(value, limit)``, logging when the requested value is lowered."""
    if value > limit:
        logger.info("%s: %d requested but %s; using %d.", what, value, why, limit)
        return limit
    return value


def _where(layer: str | None) -> str:
    """Name the matrix read, for error messages."""
    return f"`.layers[{layer!r}]`" if layer is not None else "`.X`"
