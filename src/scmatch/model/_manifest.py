"""The manifest of a saved model folder: what marks it as scmatch's, and the checksum of every file in it.

``manifest.json`` holds a format marker (``"format": "scmatch.model"``), the format version, the scmatch version
that wrote it, and the size and sha256 of every file of the model, ``config.json`` included. Its own content is
checksummed too (``manifest_sha256``, over the other fields in a canonical JSON form), so an edit to any value of
any file is found at load. The marker is also what lets :meth:`scmatch.model.MatchModel.save` replace a folder
with ``overwrite=True``: a folder without it was not written by scmatch, and is never replaced.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .._errors import InvalidFileError

MANIFEST = "manifest.json"
#: the format marker of a model folder
MARKER = "scmatch.model"
#: version of the folder format: 2 is the first with a manifest (1: config.json and model.pt with checksums of the
#: other files in config.json, read as a legacy folder)
FORMAT_VERSION = 2
#: a manifest is a few hundred bytes per file; anything far larger is not one
MAX_MANIFEST_BYTES = 1 << 20
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in chunks (memory stays bounded whatever its size)."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _canonical_sha256(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_manifest(folder: Path, names: list[str], *, version: str) -> None:
    """Write ``manifest.json`` into ``folder``, listing the files ``names`` (already written there)."""
    fields = {
        "format": MARKER,
        "format_version": FORMAT_VERSION,
        "scmatch_version": version,
        "files": {
            name: {"size": (folder / name).stat().st_size, "sha256": file_sha256(folder / name)}
            for name in sorted(names)
        },
    }
    (folder / MANIFEST).write_text(json.dumps({**fields, "manifest_sha256": _canonical_sha256(fields)}, indent=2))


def read_json(path: Path, *, max_bytes: int, folder: Path) -> Any:
    """Parse a JSON file of a model folder; an InvalidFileError naming it when it is too large or not JSON."""
    size = path.stat().st_size
    if size > max_bytes:
        raise InvalidFileError(
            f"{path.name} in {str(folder)!r} is {size} bytes, more than a saved model's {path.name} can be "
            f"({max_bytes}); it is not scmatch's or it is damaged. Save the model again.",
            path=path,
        )
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as err:  # JSONDecodeError is a ValueError
        raise InvalidFileError(
            f"{path.name} in {str(folder)!r} is corrupted ({err}); save the model again.", path=path
        ) from err


def has_marker(folder: Path) -> bool:
    """Whether ``folder`` holds a manifest with scmatch's marker (the content is not verified)."""
    path = folder / MANIFEST
    if not path.is_file() or path.stat().st_size > MAX_MANIFEST_BYTES:
        return False
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == MARKER


def listed_files(folder: Path) -> set[str]:
    """The files a marked folder's manifest lists (empty when it cannot be read)."""
    try:
        files = json.loads((folder / MANIFEST).read_bytes().decode("utf-8")).get("files")
    except (OSError, ValueError, UnicodeDecodeError, RecursionError, AttributeError):
        return set()
    return {name for name in files if isinstance(name, str)} if isinstance(files, dict) else set()


def read_manifest(folder: Path, *, required: tuple[str, ...]) -> dict[str, Any]:
    """Read and verify ``manifest.json`` and every file it lists; returns the manifest.

    Checks, in this order: the marker and version; the manifest's own checksum; that every listed name is a plain
    file name and the ``required`` files are listed; then, for each file, that it exists with the recorded size and
    sha256 (sizes first, so a damaged folder is refused without hashing large files).

    Raises
    ------
    InvalidFileError
        Naming the file and what is wrong with it.
    """
    path = folder / MANIFEST
    manifest = read_json(path, max_bytes=MAX_MANIFEST_BYTES, folder=folder)
    where = f"{MANIFEST} in {str(folder)!r}"
    if not isinstance(manifest, dict) or manifest.get("format") != MARKER:
        raise InvalidFileError(
            f"{where} does not carry scmatch's format marker ('format': {MARKER!r}); it was not written by "
            "scmatch.model.MatchModel.save or it was edited. Save the model again.",
            path=path,
        )
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise InvalidFileError(
            f"Model format {version!r} in {where} is not supported (expected {FORMAT_VERSION}); save the model again "
            f"with this version of scmatch (it was written by scmatch {manifest.get('scmatch_version')!r}).",
            path=path,
        )
    fields = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    if manifest.get("manifest_sha256") != _canonical_sha256(fields):
        raise InvalidFileError(
            f"{where} does not match its own checksum (manifest_sha256): it was edited or damaged. Save the model "
            "again.",
            path=path,
        )
    files = _checked_listing(manifest.get("files"), required=required, where=where, path=path)
    for name, entry in files.items():
        _verify_file(folder, name, entry)
    return manifest


def _checked_listing(files: Any, *, required: tuple[str, ...], where: str, path: Path) -> dict[str, dict]:
    """The manifest's ``files``: plain names mapped to ``{"size": int, "sha256": 64 hex digits}``."""

    def valid(name: Any, entry: Any) -> bool:
        return (
            isinstance(name, str)
            and name not in ("", ".", "..", MANIFEST)
            and Path(name).name == name
            and isinstance(entry, dict)
            and isinstance(entry.get("size"), int)
            and not isinstance(entry.get("size"), bool)
            and entry["size"] >= 0
            and isinstance(entry.get("sha256"), str)
            and len(entry["sha256"]) == 64
        )

    if not isinstance(files, dict) or not all(valid(name, entry) for name, entry in files.items()):
        raise InvalidFileError(f"{where} has an invalid list of files; save the model again.", path=path)
    missing = [name for name in required if name not in files]
    if missing:
        raise InvalidFileError(f"{where} does not list {missing}; save the model again.", path=path)
    return files


def _verify_file(folder: Path, name: str, entry: dict) -> None:
    path = folder / name
    if not path.is_file():
        raise InvalidFileError(
            f"{name} is missing from the model folder {str(folder)!r} (its manifest lists it); copy the whole folder, "
            "or save the model again.",
            path=path,
        )
    size = path.stat().st_size
    if size != entry["size"]:
        raise InvalidFileError(
            f"{name} in {str(folder)!r} is {size} bytes but the manifest records {entry['size']}: the file was "
            "truncated, extended or replaced. Save the model again.",
            path=path,
        )
    if file_sha256(path) != entry["sha256"]:
        raise InvalidFileError(
            f"{name} in {str(folder)!r} does not match the checksum in {MANIFEST}: the file was changed or "
            "corrupted. Save the model again.",
            path=path,
        )
