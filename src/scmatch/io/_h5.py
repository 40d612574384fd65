"""What kind of file is this, and can it be read safely? Checks run on an ``.h5ad``'s metadata before reading it.

A damaged or edited HDF5 file can claim a dataset far larger than the bytes it stores (reading it would allocate
without bound), make anndata fail deep inside h5py with a message that names neither the file nor the fix, or
even crash the HDF5 C library (a flipped byte in an attribute's header was measured to end the process with a
segmentation fault). :func:`read_h5ad_checked` refuses all of them with an
:class:`~scmatch._errors.InvalidFileError`: the file is first walked in a child process (:func:`probe`), so a
crash or a hang happens there, never in the caller's process.
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from pathlib import Path

import anndata as ad

from .._errors import InvalidFileError

#: deflate (gzip) expands at most ~1032 times; a dataset claiming more bytes per stored byte is damaged
MAX_EXPANSION = 1100
#: small datasets may be stored compactly or padded: this many bytes are always allowed
SLACK_BYTES = 1 << 20
#: HDF5 filters whose expansion :data:`MAX_EXPANSION` bounds (deflate, shuffle, fletcher32, scaleoffset, lzf);
#: datasets with other filters are not checked
BOUNDED_FILTERS = {1, 2, 3, 6, 32000}
_WRITE_FIX = "Write it again with anndata (`adata.write_h5ad(path)`), or copy or download it again."
#: the probe reads every value of files up to this size, and only their metadata above it
PROBE_FULL_BYTES = 256 << 20
#: seconds the probe may take: this much, plus one per 20 MB of file
PROBE_SECONDS = 8.0
#: files that passed the probe, by (path, size, modification time): each is walked once
_PROBED: set[tuple[str, int, int]] = set()


def _walk(path: str, full: bool) -> None:
    """Open ``path`` and touch everything in it: attributes, and the values of every dataset when ``full``.

    Runs in the probe's child process; errors are ignored (the caller's own read reports them), only a crash or
    a hang matters here.
    """
    import h5py

    def visit(_: str, item) -> None:
        for key in item.attrs:
            item.attrs[key]
        if full and isinstance(item, h5py.Dataset):
            _read_in_slices(item)

    try:
        with h5py.File(path, "r") as h5:
            visit("", h5)
            h5.visititems(visit)
    except Exception:  # reported by the caller's own read, in its own words
        pass


def _read_in_slices(dataset, max_bytes: int = 64 << 20) -> None:
    """Read every value of a dataset, at most ``max_bytes`` at a time (the probe's memory stays bounded)."""
    if dataset.shape == () or dataset.size == 0:
        dataset[()]
        return
    row_bytes = max(1, dataset.dtype.itemsize * (dataset.size // dataset.shape[0]))
    step = max(1, max_bytes // row_bytes)
    for start in range(0, dataset.shape[0], step):
        dataset[start : start + step]


def _filters(dataset) -> set[int]:
    """The HDF5 filter codes of a chunked dataset (deflate 1, shuffle 2, fletcher32 3, scaleoffset 6, lzf 32000)."""
    plist = dataset.id.get_create_plist()
    return {plist.get_filter(i)[0] for i in range(plist.get_nfilters())}


def probe(path: str | os.PathLike, *, name: str) -> None:
    """Walk an HDF5 file in a child process first; refuse it if that crashes or does not finish in time.

    Where processes cannot be forked (Windows), nothing is done.
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _PROBED or "fork" not in multiprocessing.get_all_start_methods():
        return
    seconds = PROBE_SECONDS + stat.st_size / 20e6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python >= 3.12 warns about fork with threads running
        child = multiprocessing.get_context("fork").Process(
            target=_walk, args=(str(path), stat.st_size <= PROBE_FULL_BYTES), daemon=True
        )
        child.start()
    child.join(seconds)
    if child.is_alive():
        child.kill()
        child.join()
        raise InvalidFileError(
            f"{name} is damaged: reading it did not finish within {seconds:.0f} s. {_WRITE_FIX}", path=path
        )
    if child.exitcode is not None and child.exitcode < 0:
        raise InvalidFileError(
            f"{name} is damaged: reading it crashed the HDF5 library (signal {-child.exitcode}), so it is not "
            f"read. {_WRITE_FIX}",
            path=path,
        )
    _PROBED.add(key)


def _top_level(path: Path, name: str) -> tuple[str | None, list[str]]:
    """The root's ``encoding-type`` and entries of an HDF5 file; an InvalidFileError for anything else."""
    import h5py

    if path.stat().st_size == 0:
        raise InvalidFileError(f"{name} is empty (0 bytes). {_WRITE_FIX}", path=path)
    if not h5py.is_hdf5(path):
        with open(path, "rb") as handle:
            start = handle.read(16)
        raise InvalidFileError(
            f"{name} is not an HDF5 file, so neither an AnnData .h5ad nor a MuData .h5mu (it starts with {start!r}). "
            f"Pass the file itself, as anndata or mudata wrote it. {_WRITE_FIX}",
            path=path,
        )
    probe(path, name=name)
    try:
        with h5py.File(path, "r") as h5:
            encoding = h5.attrs.get("encoding-type", None)
            keys = sorted(h5.keys())
    except Exception as err:  # h5py raises OSError, KeyError, RuntimeError... for a damaged file
        raise InvalidFileError(
            f"{name} is a damaged HDF5 file ({type(err).__name__}: {err}). {_WRITE_FIX}", path=path
        ) from err
    return (encoding.decode() if isinstance(encoding, bytes) else encoding), keys


def h5ad_kind(path: str | os.PathLike, *, label: str | None = None) -> None:
    """Refuse, saying what the file is instead, anything but an AnnData ``.h5ad``.

    Parameters
    ----------
    path
        The file to check; it must exist.
    label
        How the file is named in messages (default: its path).

    Raises
    ------
    InvalidFileError
        An empty file, a file that is not HDF5 (text, a pickle...), a damaged HDF5 file, a MuData ``.h5mu``, or
        an HDF5 file of another kind (no ``obs`` and ``var``).
    """
    path = Path(path)
    name = label or str(path)
    encoding, keys = _top_level(path, name)
    if encoding == "MuData" or "mod" in keys:
        raise InvalidFileError(
            f"{name} is a MuData .h5mu file, but an AnnData .h5ad is expected here. Write the modality you mean as "
            "its own file, e.g. `mudata.read_h5mu(path)['rna'].write_h5ad('rna.h5ad')`, and pass that.",
            path=path,
        )
    if encoding not in (None, "anndata") or not {"obs", "var"} <= set(keys):
        raise InvalidFileError(
            f"{name} is an HDF5 file but not an AnnData .h5ad (encoding-type {encoding!r}, top-level entries "
            f"{keys[:8]}). Pass a file written by anndata (`adata.write_h5ad(path)`).",
            path=path,
        )


def h5mu_kind(path: str | os.PathLike, *, label: str | None = None) -> None:
    """Refuse, saying what the file is instead, anything but a MuData ``.h5mu`` (see :func:`h5ad_kind`)."""
    path = Path(path)
    name = label or str(path)
    encoding, keys = _top_level(path, name)
    if encoding == "anndata" or (encoding is None and "mod" not in keys and {"obs", "var"} <= set(keys)):
        raise InvalidFileError(
            f"{name} is an AnnData .h5ad file, but a MuData .h5mu with several modalities is expected here. Build "
            "one with `mudata.MuData({'rna': rna, 'atac': atac}).write_h5mu(path)`.",
            path=path,
        )
    if encoding not in (None, "MuData") or "mod" not in keys:
        raise InvalidFileError(
            f"{name} is an HDF5 file but not a MuData .h5mu (encoding-type {encoding!r}, top-level entries "
            f"{keys[:8]}). Pass a file written by mudata (`mdata.write_h5mu(path)`).",
            path=path,
        )


def check_storage(path: str | os.PathLike, *, label: str | None = None) -> None:
    """Refuse an HDF5 file in which a dataset claims far more bytes than it stores (damaged or edited metadata)."""
    import h5py

    name = label or str(path)
    too_big: list[str] = []

    def visit(key: str, item) -> None:
        if not isinstance(item, h5py.Dataset) or item.dtype.kind == "O" or item.external or item.is_virtual:
            return
        if item.chunks is not None and _filters(item) - BOUNDED_FILTERS:
            return
        claimed = int(item.size) * item.dtype.itemsize
        if claimed > MAX_EXPANSION * item.id.get_storage_size() + SLACK_BYTES:
            too_big.append(f"{key!r} claims {claimed} bytes but stores {item.id.get_storage_size()}")

    try:
        with h5py.File(path, "r") as h5:
            h5.visititems(visit)
    except Exception as err:  # a damaged object header or B-tree
        raise InvalidFileError(
            f"{name} is a damaged HDF5 file ({type(err).__name__}: {err}). {_WRITE_FIX}", path=path
        ) from err
    if too_big:
        raise InvalidFileError(
            f"{name} is damaged: dataset {too_big[0]}, more than any compression allows. {_WRITE_FIX}", path=path
        )


def read_h5ad_checked(path: str | os.PathLike, *, label: str | None = None) -> ad.AnnData:
    """Read an ``.h5ad`` after :func:`h5ad_kind` and :func:`check_storage`; any failure becomes an InvalidFileError."""
    h5ad_kind(path, label=label)
    return _read(path, label, ad.read_h5ad)


def read_h5mu_checked(path: str | os.PathLike, *, label: str | None = None):
    """Read an ``.h5mu`` after :func:`h5mu_kind` and :func:`check_storage`; any failure becomes an InvalidFileError."""
    import mudata as md

    h5mu_kind(path, label=label)
    return _read(path, label, md.read_h5mu)


def _read(path: str | os.PathLike, label: str | None, reader):
    name = label or str(path)
    check_storage(path, label=label)
    try:
        with warnings.catch_warnings():
            # the challenge files use an older on-disk format: anndata's notice about it is expected
            warnings.filterwarnings("ignore", category=ad.OldFormatWarning)
            return reader(path)
    except MemoryError as err:
        raise InvalidFileError(
            f"{name} claims more data than fits in memory; it is damaged. {_WRITE_FIX}", path=path
        ) from err
    except Exception as err:  # any failure to parse the file means it is damaged or incomplete
        raise InvalidFileError(
            f"{name} cannot be read ({type(err).__name__}: {err}); it is damaged or incomplete. {_WRITE_FIX}",
            path=path,
        ) from err
