"""Write and read a match-modality prediction in the challenge's .h5ad format."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scmatch._atomic import atomic_file
from scmatch._utils import logger
from scmatch.io._files import PathLike, _read_h5ad
from scmatch.metrics._format import check_challenge_format


def write_prediction(
    P: Any,
    path: PathLike,
    *,
    dataset_id: str,
    method_id: str = "scmatch",
    obs_names: Sequence[str] | None = None,
    var_names: Sequence[str] | None = None,
    max_nonzero: int = 1000,
) -> None:
    """Write match probabilities as a prediction file the challenge accepts.

    Nothing is written unless ``P`` passes
    :func:`scmatch.metrics.check_challenge_format` (non-negative, finite, every
    row sums to 1, at most ``max_nonzero`` non-zeros per row).

    Parameters
    ----------
    P
        ``n_test_mod1 x n_test_mod2`` match probabilities, rows and columns in the
        order of the ``test_mod1`` / ``test_mod2`` files; dense or sparse.
    path
        The ``.h5ad`` file to write (its folder must exist); replaced if present. The file is written under a
        hidden temporary name in the same folder and renamed to ``path`` only once complete, so an
        interrupted or failed write leaves a previous file at ``path`` as it was, and no temporary file.
    dataset_id
        The ``uns['dataset_id']`` of the challenge files, e.g.
        ``mdata.uns['match_modality']['dataset_id']`` after
        :func:`read_match_modality`; the challenge checks it.
    method_id
        Name of the method, stored as ``uns['method_id']``.
    obs_names, var_names
        Optional names of the test mod1 cells (rows) and test mod2 cells
        (columns); when given their lengths must match ``P``.
    max_nonzero
        Most non-zeros allowed per row (the challenge allows 1000).

    Returns
    -------
    None. The file holds an AnnData with ``X`` the CSR matrix (float32 or
    float64, as given; other types become float64) and ``uns['dataset_id']``,
    ``uns['method_id']``, written with gzip compression.

    Examples
    --------
    >>> import numpy as np
    >>> write_prediction(np.eye(3), "prediction.h5ad", dataset_id="my_dataset")  # doctest: +SKIP

    """
    for name, value in (("dataset_id", dataset_id), ("method_id", method_id)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"`{name}` must be a non-empty string, got {value!r}.")
    shape = None
    if obs_names is not None or var_names is not None:
        n_rows = len(obs_names) if obs_names is not None else np.shape(P)[0]
        n_cols = len(var_names) if var_names is not None else np.shape(P)[1]
        shape = (n_rows, n_cols)
    check_challenge_format(P, shape=shape, max_nonzero=max_nonzero)
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"The folder {path.parent} does not exist; create it before writing {path.name}.")
    X = sp.csr_matrix(P)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    X.eliminate_zeros()
    X.sort_indices()
    out = ad.AnnData(X=X, uns={"dataset_id": dataset_id, "method_id": method_id})
    if obs_names is not None:
        out.obs_names = pd.Index(np.asarray(obs_names, dtype=str))
    if var_names is not None:
        out.var_names = pd.Index(np.asarray(var_names, dtype=str))
    with atomic_file(path) as tmp:  # an interrupted write leaves a previous file at `path` as it was
        out.write_h5ad(tmp, compression="gzip")
    logger.info("Wrote a %d x %d prediction (%d non-zeros) to %s.", X.shape[0], X.shape[1], X.nnz, path)


def read_prediction(path: PathLike, *, check: bool = True) -> ad.AnnData:
    """Read a match-modality prediction file.

    Parameters
    ----------
    path
        A prediction ``.h5ad`` (from :func:`write_prediction` or any challenge submission).
    check
        Raise a ValueError unless ``X`` passes
        :func:`scmatch.metrics.check_challenge_format` and ``uns`` holds
        ``dataset_id`` and ``method_id``.

    Returns
    -------
    The AnnData, with ``X`` as a CSR matrix (rows = test mod1 cells, columns =
    test mod2 cells).

    Examples
    --------
    >>> pred = read_prediction("prediction.h5ad")  # doctest: +SKIP
    >>> scmatch.metrics.match_score(pred.X, truth)  # doctest: +SKIP

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"The prediction file {path} does not exist.")
    adata = _read_h5ad(path)
    if adata.X is None:
        raise ValueError(f"{path} has no X matrix; it is not a prediction file.")
    adata.X = sp.csr_matrix(adata.X)
    if check:
        missing = [key for key in ("dataset_id", "method_id") if key not in adata.uns]
        if missing:
            raise ValueError(f"{path} lacks uns {missing}; write it with scmatch.io.write_prediction.")
        check_challenge_format(adata.X)
    return adata
