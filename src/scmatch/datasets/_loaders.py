"""Loaders of public paired data: checksummed downloads with pooch, or a local copy via ``path=``.

The files are the starter subsets of the NeurIPS 2021 multimodal challenge
(Luecken et al. 2021; GEO GSE194122, CC-BY-4.0), as shipped in
openproblems-bio/neurips2021_multimodal_viash (MIT) at a pinned commit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd

from scmatch._utils import logger
from scmatch.io._challenge import UNS_KEY, _build_mudata, _read_h5mu, read_match_modality

PathLike = str | os.PathLike

REPO = "openproblems-bio/neurips2021_multimodal_viash"
COMMIT = "edaa879332ce91af98f9a6eac3b3606b6fd860b2"
BASE_URL = f"https://raw.githubusercontent.com/{REPO}/{COMMIT}/resources_test/match_modality"

#: sha256 of each file of the match-modality starter sets, by task and role.
REGISTRY: dict[str, dict[str, str]] = {
    "multiome": {
        "train_mod1": "9743d2b69a8c0e9051960705899f69a91c4346bc4522d96af1b78d53f8deb008",
        "train_mod2": "36fc976b1f5bec10d8f7fbc27274c07f7e7a4047f45d9be3003b9bcd6ac1380d",
        "train_sol": "434dfa211d5f8085a1185d25af86f50fcfbcab906d82ff1615261db73f0a5cb7",
        "test_mod1": "023dfc6b3b51ac2ccf3c54abfd7b493b329f70198b1635439f169e84b05f562f",
        "test_mod2": "c8e3e13158f798ab407f4008c8aabc84919bf3ba6d6c6134fb9f0f08f165890b",
        "test_sol": "4e18a2d4b17d677e6027e708313e751a16e083f1d54070053534f163bdb4f95c",
    },
    "cite": {
        "train_mod1": "97bcdf593aca1ce12e50695a56197e653bd8e2f0257731d931a7f83f4f847938",
        "train_mod2": "8ae63021d11a4e20a0b2fa3679802bd7e104c5f777d4e0eff5b367345d56021f",
        "train_sol": "2471980430119f1e4824f26816a49652c9349bae42ccbed53c9ab998ae7ac6e6",
        "test_mod1": "247600bc4fbe12d6f230e6f133935545a8ede2c98a478d3b81294ad52298462d",
        "test_mod2": "7a4e7508611c7d560a8ba1d8bf5e42d432205a49697389e1a561b25ad70e3159",
        "test_sol": "a220bf4c289d1ae8ad89a8c8c077d86977ca9f9bba30296f7725fd282bc36406",
    },
}

Task = Literal["multiome", "cite"]


def _file_name(task: str, role: str) -> str:
    return f"openproblems_bmmc_{task}_starter.{role}.h5ad"


def _url(task: str, role: str) -> str:
    """Return the raw.githubusercontent.com address of one file, pinned to ``COMMIT``."""
    return f"{BASE_URL}/openproblems_bmmc_{task}_starter/{_file_name(task, role)}"


def _downloader() -> Any:
    import pooch

    return pooch.HTTPDownloader(progressbar=False, timeout=120)


def _retrieve(url: str, sha256: str, fname: str, folder: Path) -> Path:
    """Download ``url`` into ``folder`` (or reuse the cached copy) and verify its sha256."""
    import pooch

    try:
        return Path(
            pooch.retrieve(url, known_hash=f"sha256:{sha256}", fname=fname, path=folder, downloader=_downloader())
        )
    except ValueError as err:
        if "hash" not in str(err).lower():
            raise
        raise ValueError(
            f"The file downloaded from {url} does not match its sha256 checksum ({sha256}), so it was discarded. "
            "The download may have been corrupted or the upstream file changed; retry later, or pass `path=` "
            f"to a local copy. ({err})"
        ) from err
    except OSError as err:  # includes requests' HTTP and connection errors
        raise ConnectionError(
            f"Could not download {url} into {folder}: {err}. Check the internet connection, or download the "
            "files yourself and pass their folder as `path=`."
        ) from err


def _check_task(task: str) -> None:
    if task not in REGISTRY:
        raise ValueError(f"`task` must be one of {list(REGISTRY)}, got {task!r}.")


def _fetch(task: str, cache_dir: PathLike | None) -> dict[str, Path]:
    """All six challenge files of ``task``, downloaded once into the cache and checked against :data:`REGISTRY`."""
    import pooch

    root = Path(cache_dir) if cache_dir is not None else Path(pooch.os_cache("scmatch"))
    folder = root / "neurips2021_match_modality" / task
    logger.info("Fetching the NeurIPS 2021 %s starter files into %s.", task, folder)
    return {
        role: _retrieve(_url(task, role), sha, _file_name(task, role), folder) for role, sha in REGISTRY[task].items()
    }


def _local(path: PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; pass an existing .h5mu file or challenge-format folder.")
    if path.is_file() and path.suffix != ".h5mu":
        raise ValueError(f"{path} is not an .h5mu file; pass an .h5mu file or a folder of challenge .h5ad files.")
    return path


def neurips2021_match_modality(
    task: Task = "multiome", *, path: PathLike | None = None, cache_dir: PathLike | None = None
) -> md.MuData:
    """Load the starter set of the NeurIPS 2021 challenge's "match modality" task, as the challenge ships it.

    Known training pairs plus an unpaired query, read with
    :func:`scmatch.io.read_match_modality` (see there for the layout). The test
    solution is in ``mdata.uns['match_modality']['test_truth']``.

    ========== ============ =============== ============
    task       modalities   training pairs  query
    ========== ============ =============== ============
    multiome   rna, atac    221             279 x 279
    cite       rna, adt     311             289 x 289
    ========== ============ =============== ============

    Data: Luecken et al. 2021, human bone marrow (GEO GSE194122, CC-BY-4.0),
    from openproblems-bio/neurips2021_multimodal_viash (MIT) at commit
    edaa879, ``resources_test/match_modality/openproblems_bmmc_<task>_starter/``.

    Parameters
    ----------
    task
        ``"multiome"`` (GEX -> ATAC) or ``"cite"`` (GEX -> ADT).
    path
        A local copy: a folder with the six challenge files, or an ``.h5mu``
        written from this function's output. The network is then never used.
    cache_dir
        Where downloads are kept; default ``pooch.os_cache("scmatch")``. Each
        file is checked against its sha256 and downloaded only once.

    Returns
    -------
    MuData with modalities ``rna`` and ``atac``/``adt``; see :func:`scmatch.io.read_match_modality`.

    Examples
    --------
    >>> mdata = scmatch.datasets.neurips2021_match_modality("cite")  # doctest: +SKIP
    >>> mdata.uns["match_modality"]["n_train"]  # doctest: +SKIP
    311

    """
    _check_task(task)
    if path is not None:
        local = _local(path)
        if local.is_file():
            return _read_h5mu(local)
        return read_match_modality(local, test_sol="auto")
    return read_match_modality(**_fetch(task, cache_dir))


def bmmc_multiome_starter(*, path: PathLike | None = None, cache_dir: PathLike | None = None) -> md.MuData:
    """500 paired 10x Multiome cells of human bone marrow: ``rna`` (600 genes) and ``atac`` (600 peaks).

    Batch ``s1d1`` (221 cells, ``is_train``) is the reference, batch ``s1d2``
    (279 cells) the query of the challenge. Data: Luecken et al. 2021 (GEO
    GSE194122, CC-BY-4.0), via openproblems-bio/neurips2021_multimodal_viash
    (MIT) at commit edaa879.

    Parameters
    ----------
    path
        A local copy: an ``.h5mu`` (e.g. ``bmmc_multiome_starter.h5mu``, with
        ``cell_type`` labels) or a folder of the challenge files. The network is
        then never used.
    cache_dir
        Where downloads are kept; default ``pooch.os_cache("scmatch")``.

    Returns
    -------
    A MuData with identical obs names (the pairing) in both modalities and raw counts in ``X``.

    Notes
    -----
    Without ``path``, the six challenge files of the starter (sha256-pinned in
    ``REGISTRY``) are downloaded and assembled: the test mod2 cells are put back
    beside their mod1 partners using the test solution, so every cell has the
    same name and row in both modalities. ``X`` holds the raw counts (the
    files' ``layers['counts']``, as float32); ``obs`` (and ``mdata.obs``) hold ``batch``
    and ``is_train``; ``uns['source']`` records the origin. The counts equal
    those of the project's ``bmmc_multiome_starter.h5mu``, but the challenge files
    hide cell types, so a download has no ``cell_type``: pass ``path=`` to an
    ``.h5mu`` that has them.

    Examples
    --------
    >>> mdata = scmatch.datasets.bmmc_multiome_starter()  # doctest: +SKIP

    """
    return _paired_starter("multiome", path=path, cache_dir=cache_dir)


def bmmc_cite_starter(*, path: PathLike | None = None, cache_dir: PathLike | None = None) -> md.MuData:
    """600 paired CITE-seq cells of human bone marrow: ``rna`` (1,000 genes) and ``adt`` (134 proteins).

    Batch ``s1d1`` (311 cells, ``is_train``) is the reference, batch ``s1d2``
    (289 cells) the query of the challenge. Data: Luecken et al. 2021 (GEO
    GSE194122, CC-BY-4.0), via openproblems-bio/neurips2021_multimodal_viash
    (MIT) at commit edaa879.

    Parameters
    ----------
    path
        A local copy: an ``.h5mu`` (e.g. ``bmmc_cite_starter.h5mu``, with
        ``cell_type`` labels) or a folder of the challenge files. The network is
        then never used.
    cache_dir
        Where downloads are kept; default ``pooch.os_cache("scmatch")``.

    Returns
    -------
    A MuData with identical obs names (the pairing) in both modalities and raw counts in ``X``.

    Notes
    -----
    Without ``path``, the six challenge files of the starter (sha256-pinned in
    ``REGISTRY``) are downloaded and assembled: the test mod2 cells are put back
    beside their mod1 partners using the test solution, so every cell has the
    same name and row in both modalities. ``X`` holds the raw counts (the
    files' ``layers['counts']``, as float32); ``obs`` (and ``mdata.obs``) hold ``batch``
    and ``is_train``; ``uns['source']`` records the origin. The counts equal
    those of the project's ``bmmc_cite_starter.h5mu``, but the challenge files
    hide cell types, so a download has no ``cell_type``: pass ``path=`` to an
    ``.h5mu`` that has them.

    Examples
    --------
    >>> mdata = scmatch.datasets.bmmc_cite_starter()  # doctest: +SKIP

    """
    return _paired_starter("cite", path=path, cache_dir=cache_dir)


def _paired_starter(task: str, *, path: PathLike | None, cache_dir: PathLike | None) -> md.MuData:
    """Load a BMMC starter as one paired MuData (see the Notes of :func:`bmmc_multiome_starter`)."""
    if path is not None:
        local = _local(path)
        if local.is_file():
            return _read_h5mu(local)
        return _assemble_paired(read_match_modality(local, test_sol=True))
    return _assemble_paired(read_match_modality(**_fetch(task, cache_dir)))


def _assemble_paired(challenge: md.MuData) -> md.MuData:
    info = challenge.uns[UNS_KEY]
    name1, name2 = info["mod1"], info["mod2"]
    mod1, mod2 = challenge.mod[name1], challenge.mod[name2]
    is_train1, is_train2 = (mod1.obs["split"] == "train").to_numpy(), (mod2.obs["split"] == "train").to_numpy()
    # row order of mod2: training rows already follow mod1; test rows follow the test solution
    order2 = np.concatenate([np.flatnonzero(is_train2), np.flatnonzero(~is_train2)[info["test_truth"]]])
    obs = pd.DataFrame(index=mod1.obs_names)
    obs["batch"] = pd.Categorical(mod1.obs["batch"]) if "batch" in mod1.obs else pd.Categorical(mod1.obs["split"])
    obs["is_train"] = is_train1
    mods = {
        name1: ad.AnnData(X=mod1.layers["counts"].astype(np.float32), obs=obs.copy(), var=mod1.var.copy()),
        name2: ad.AnnData(X=mod2.layers["counts"][order2].astype(np.float32), obs=obs.copy(), var=mod2.var.copy()),
    }
    mdata = _build_mudata(mods)
    mdata.obs["batch"] = obs["batch"]
    mdata.obs["is_train"] = obs["is_train"]
    mdata.uns["source"] = {
        "repo": REPO,
        "commit": COMMIT,
        "dataset_id": info["dataset_id"],
        "files": dict(info["files"]),
        "note": "assembled from the challenge's match-modality files: X = raw counts (layers['counts']), "
        "test cells re-paired with test_sol, obs names identical across modalities; no cell_type "
        "(the challenge files hide it)",
    }
    return mdata
