"""Write and read a match-modality prediction in the challenge's .h5ad format."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scmatch._atomic import atomic_file
from scmatch._errors import InvalidFileError
from scmatch._paths import check_output
from scmatch._utils import logger
from scmatch.io._files import PathLike, _read_h5ad
from scmatch.metrics._format import check_challenge_format

#: ``uns`` key of the checksum of a prediction's content, written by :func:`write_prediction`
CHECKSUM_KEY = "scmatch_sha256"


def write_prediction(
    P: Any,
    path: PathLike,
    *,
    dataset_id: str,
    method_id: str = "scmatch",
    obs_names: Sequence[str] | None = None,
    var_names: Sequence[str] | None = None,
    max_nonzero: int = 1000,
    inputs: Sequence[PathLike] = (),
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
        The ``.h5ad`` file to write (its folder must exist). An existing file there is replaced only if it is a
        prediction (an ``.h5ad`` with ``uns['method_id']`` and ``uns['dataset_id']``), never another file, and
        never one of ``inputs`` (links resolved). The file is written under a hidden temporary name in the same
        folder and renamed to ``path`` only once complete, so an interrupted or failed write leaves a previous
        file at ``path`` as it was, and no temporary file.
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
    inputs
        Files the caller read to make ``P`` (e.g. the challenge's ``test_mod1.h5ad``): ``path`` may not name one.
        A ``P`` backed by an HDF5 file counts as read from it.

    Returns
    -------
    None. The file holds an AnnData with ``X`` the CSR matrix (float32 or
    float64, as given; other types become float64) and ``uns['dataset_id']``,
    ``uns['method_id']`` and ``uns['scmatch_sha256']`` (a checksum of the content that
    :func:`read_prediction` verifies), written with gzip compression.

    Raises
    ------
    ValueError
        ``P`` is not a valid prediction (see :func:`scmatch.metrics.check_challenge_format`), or ``path`` names
        an input (:class:`~scmatch._errors.OutputIsInputError`) or an existing file that is not a prediction.
        Nothing is written then.

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
    path = Path(path)
    check_prediction_target(path, {f"`inputs[{i}]`": file for i, file in enumerate(inputs)} | _backing(P))
    check_challenge_format(P, shape=shape, max_nonzero=max_nonzero)
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
    out.uns[CHECKSUM_KEY] = content_sha256(out)
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
        ``dataset_id`` and ``method_id``; and, for a file written by
        :func:`write_prediction`, unless its content matches the checksum
        written with it (``uns['scmatch_sha256']``).

    Returns
    -------
    The AnnData, with ``X`` as a CSR matrix (rows = test mod1 cells, columns =
    test mod2 cells).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    InvalidFileError
        (a ValueError) The file is not an AnnData ``.h5ad`` (a text file, an ``.h5mu``, another HDF5 file), is
        damaged or truncated, or its content no longer matches its checksum.

    Examples
    --------
    >>> pred = read_prediction("prediction.h5ad")  # doctest: +SKIP
    >>> scmatch.metrics.match_score(pred.X, truth)  # doctest: +SKIP

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"The prediction file {path} does not exist.")
    adata = _read_h5ad(path, label=f"The prediction file {path}")
    if adata.X is None:
        raise InvalidFileError(f"{path} has no X matrix; it is not a prediction file.", path=path)
    try:
        adata.X = sp.csr_matrix(adata.X)
    except (TypeError, ValueError) as err:
        raise InvalidFileError(
            f"The X matrix of {path} cannot be read as a sparse matrix ({err}); it is not a prediction file or it is "
            "damaged. Write it again with scmatch.io.write_prediction.",
            path=path,
        ) from err
    if check:
        missing = [key for key in ("dataset_id", "method_id") if key not in adata.uns]
        if missing:
            raise InvalidFileError(
                f"{path} lacks uns {missing}, so it is not a prediction file; write it with "
                "scmatch.io.write_prediction.",
                path=path,
            )
        _verify_checksum(adata, path)
        try:
            check_challenge_format(adata.X)
        except ValueError as err:
            raise InvalidFileError(f"The prediction file {path} is not a valid prediction: {err}", path=path) from err
    return adata


def content_sha256(adata: ad.AnnData) -> str:
    """A checksum of what a prediction says: ``X`` (shape, dtype, values, positions), names, dataset and method."""
    X = sp.csr_matrix(adata.X)
    h = hashlib.sha256()
    h.update(repr((X.shape, np.dtype(X.dtype).str)).encode())
    for part in (X.data, X.indices.astype("<i8"), X.indptr.astype("<i8")):
        h.update(np.ascontiguousarray(part).tobytes())
    for names in (adata.obs_names, adata.var_names):
        h.update("\x00".join(map(str, names)).encode() + b"\x01")
    h.update(repr((str(adata.uns.get("dataset_id")), str(adata.uns.get("method_id")))).encode())
    return h.hexdigest()


def _verify_checksum(adata: ad.AnnData, path: Path) -> None:
    """Refuse a prediction whose content differs from the checksum written with it (files of other tools have none)."""
    if CHECKSUM_KEY not in adata.uns:
        return
    expected = adata.uns[CHECKSUM_KEY]
    if not isinstance(expected, str) or content_sha256(adata) != expected:
        raise InvalidFileError(
            f"The prediction file {path} does not match the checksum written with it (uns[{CHECKSUM_KEY!r}]): its "
            "values, cell names or ids were changed or damaged after writing. Write it again with "
            "scmatch.io.write_prediction.",
            path=path,
        )


def check_prediction_target(path: Path, inputs: dict[str, PathLike | None]) -> None:
    """Refuse a prediction ``path`` that names an input, lies in a missing folder, or would replace another file.

    A file at ``path`` may be replaced only if it is a prediction (an HDF5 file with ``uns/dataset_id`` and
    ``uns/method_id``): a data file, a text file or a folder there is left alone.
    """
    check_output(path, inputs, what="The prediction path")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"The folder {path.parent} does not exist; create it before writing {path.name}.")
    if not os.path.lexists(path):
        return
    found = _what_is(path)
    if found is not None:
        raise ValueError(
            f"The prediction path {path} exists and is {found}, not a prediction file, so it is not replaced; nothing "
            "was written. "
            "Choose another path (or delete that file yourself if it is yours to replace)."
        )


def _what_is(path: Path) -> str | None:
    """None for a prediction file; otherwise a few words on what ``path`` is."""
    import h5py

    if path.is_dir():
        return "a folder"
    if not path.is_file():
        return "not a regular file"
    if not h5py.is_hdf5(path):
        return "a file that is not HDF5"
    try:
        with h5py.File(path, "r") as h5:
            uns = h5.get("uns")
            if isinstance(uns, h5py.Group) and {"dataset_id", "method_id"} <= set(uns.keys()):
                return None
            return "an HDF5 file without uns['dataset_id'] and uns['method_id'] (e.g. an input .h5ad)"
    except Exception:  # h5py raises several types for a damaged file
        return "an HDF5 file that cannot be read (damaged)"


def _backing(P: Any) -> dict[str, str]:
    """The HDF5 file behind ``P`` when it is backed by one (an h5py dataset, a backed AnnData's sparse matrix)."""
    for owner in (P, getattr(P, "group", None)):
        filename = getattr(getattr(owner, "file", None), "filename", None)
        if isinstance(filename, str):
            return {"the file P is read from": filename}
    return {}
