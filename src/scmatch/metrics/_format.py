"""The NeurIPS 2021 challenge's constraints on a match-probability matrix."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp


def _first(indices: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(i) for i in indices[:limit])
    return shown + (", ..." if indices.size > limit else "")


def check_challenge_format(
    P: Any,
    *,
    shape: tuple[int, int] | None = None,
    max_nonzero: int = 1000,
    atol: float = 1e-6,
) -> None:
    """Raise a ValueError unless ``P`` is a valid challenge prediction.

    Task 2 of the NeurIPS 2021 multimodal challenge accepts a matrix of match
    probabilities (rows = mod1 cells, columns = mod2 cells) that is
    non-negative, has no NaN or infinite entries, has every row summing to 1 and
    stores at most 1000 non-zeros per row.

    Parameters
    ----------
    P
        The prediction, dense or sparse. Explicitly stored zeros in a sparse
        matrix do not count as non-zeros.
    shape
        The shape ``P`` must have, usually ``(n_test_mod1, n_test_mod2)``; not checked if None.
    max_nonzero
        Most non-zero entries allowed per row.
    atol
        Largest allowed ``|row sum - 1|``.

    Returns
    -------
    None; raises ValueError naming the first problem found and how to fix it.

    Examples
    --------
    >>> import numpy as np
    >>> check_challenge_format(np.full((3, 3), 1 / 3))
    >>> is_challenge_format(np.ones((3, 3)))
    False

    """
    if sp.issparse(P):
        csr = sp.csr_matrix(P)
        if not csr.has_canonical_format:
            csr = csr.copy()
            csr.sum_duplicates()
        values = csr.data
        nonzero_per_row = np.diff(csr.indptr) - np.bincount(
            np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr)), weights=values == 0, minlength=csr.shape[0]
        ).astype(np.int64)
        P_shape = csr.shape
    else:
        arr = np.asarray(P)
        if arr.ndim != 2:
            raise ValueError(
                f"The prediction must be a 2-D matrix (mod1 cells x mod2 cells), got {arr.ndim} dimension(s)."
            )
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValueError(f"The prediction must be numeric, got dtype {arr.dtype}.")
        values = arr
        nonzero_per_row = np.count_nonzero(arr, axis=1)
        P_shape = arr.shape
        csr = None
    if shape is not None and tuple(P_shape) != tuple(shape):
        raise ValueError(
            f"The prediction has shape {tuple(P_shape)} but {tuple(shape)} is required "
            "(rows = test mod1 cells, columns = test mod2 cells, in file order)."
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(
            "The prediction contains NaN or infinite values; replace them (e.g. by 0) and renormalize rows."
        )
    if values.size and values.min() < 0:
        raise ValueError(
            "The prediction has negative entries; probabilities must be >= 0 (clip or softmax the scores)."
        )
    too_many = np.flatnonzero(nonzero_per_row > max_nonzero)
    if too_many.size:
        raise ValueError(
            f"{too_many.size} row(s) have more than {max_nonzero} non-zero entries (rows {_first(too_many)}; "
            f"largest {int(nonzero_per_row.max())}). Keep the {max_nonzero} largest entries of each row "
            "and renormalize."
        )
    sums = (
        np.asarray(csr.sum(axis=1, dtype=np.float64)).ravel()
        if csr is not None
        else np.asarray(values, dtype=np.float64).sum(axis=1)
    )
    off = np.flatnonzero(np.abs(sums - 1.0) > atol)
    if off.size:
        raise ValueError(
            f"{off.size} row(s) do not sum to 1 within {atol:g} (rows {_first(off)}; e.g. row {off[0]} sums to "
            f"{sums[off[0]]:.6g}). Divide every row by its sum; rows must not be all zero."
        )


def is_challenge_format(
    P: Any,
    *,
    shape: tuple[int, int] | None = None,
    max_nonzero: int = 1000,
    atol: float = 1e-6,
) -> bool:
    """Whether ``P`` passes :func:`check_challenge_format`.

    Parameters
    ----------
    P
        The prediction, dense or sparse.
    shape
        The shape ``P`` must have; not checked if None.
    max_nonzero
        Most non-zero entries allowed per row.
    atol
        Largest allowed ``|row sum - 1|``.

    Returns
    -------
    True when ``P`` is a valid challenge prediction, else False.

    Examples
    --------
    >>> import numpy as np
    >>> is_challenge_format(np.eye(4))
    True

    """
    try:
        check_challenge_format(P, shape=shape, max_nonzero=max_nonzero, atol=atol)
    except ValueError:
        return False
    return True
