"""Read the NeurIPS 2021 match-modality files into one MuData."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

from scmatch._utils import logger
from scmatch.io._files import PathLike, _read_h5ad, _resolve_files
from scmatch.metrics._truth import _is_permutation, truth_from_solution

FEATURE_TYPES = {"GEX": "rna", "ATAC": "atac", "ADT": "adt"}
UNS_KEY = "match_modality"


def read_match_modality(
    path: PathLike | None = None,
    *,
    train_mod1: PathLike | None = None,
    train_mod2: PathLike | None = None,
    train_sol: PathLike | None = None,
    test_mod1: PathLike | None = None,
    test_mod2: PathLike | None = None,
    test_sol: bool | Literal["auto"] | PathLike | None = "auto",
    mod2_prefix: str = "mod2_",
) -> md.MuData:
    """Read a task of the NeurIPS 2021 challenge ("match modality") into one MuData.

    The challenge ships six ``.h5ad`` files: ``train_mod1``, ``train_mod2`` and
    ``train_sol`` (the known pairs), ``test_mod1`` and ``test_mod2`` (the cells
    to match) and ``test_sol`` (the hidden answer). In the mod2 files the cells
    are shuffled and renamed; ``sol[i, j] = 1`` when mod1 cell ``i`` pairs with
    mod2 cell ``j``. (``uns['pairing_ix']`` of the solution files is not used:
    it is the inverse permutation of the matrix.)

    Parameters
    ----------
    path
        A folder holding the files, named ``train_mod1.h5ad`` ... or, as the
        challenge names them, ``<dataset>.train_mod1.h5ad`` ...
    train_mod1, train_mod2, train_sol, test_mod1, test_mod2
        Paths of the individual files; each overrides the file found in
        ``path``. Without ``path``, pass all three ``train_*`` files, both
        ``test_mod*`` files, or all five.
    test_sol
        The test solution: a path; ``"auto"`` reads it from ``path`` when it is
        there; True requires it there; False or None skips it.
    mod2_prefix
        Prefix given to every test mod2 cell name if any of them collides with
        a mod1 cell name (the challenge names test mod2 cells ``"0"``, ``"1"`` ...).

    Returns
    -------
    A MuData with two modalities named from ``var['feature_types']`` (GEX ->
    ``"rna"``, ATAC -> ``"atac"``, ADT -> ``"adt"``; ``"mod1"``/``"mod2"``
    otherwise). In each modality, training cells come first, then test cells:

    - ``X``: the files' normalized values, ``layers['counts']``: raw counts,
      both CSR;
    - training mod2 cells are put in the row order of their mod1 partners and
      renamed after them, so **paired training cells share obs names** (and
      rows); test cells are unpaired, mod1 and mod2 test names never coincide;
    - ``obs['split']``: ``"train"`` / ``"test"``; ``obs['challenge_name']``:
      the cell's name in its file. mod1 keeps its file ``obs`` (e.g. ``batch``,
      ``size_factors``); the mod2 files' obs columns are dropped, because the
      challenge's ``test_mod2.obs`` holds mod1 values in mod1 row order;
    - ``mdata.uns['match_modality']``: ``dataset_id``, ``mod1``, ``mod2``
      (modality names), ``n_train``, ``n_test``, ``files`` (role -> path),
      ``mod2_prefix`` (the prefix applied, or ``""``) and, when a test solution
      was read, ``test_truth``: int array, entry ``i`` = position among the
      test mod2 cells of the partner of test mod1 cell ``i`` (both in file
      order).

    Examples
    --------
    >>> mdata = scmatch.io.read_match_modality("neurips2021_match_modality/multiome")  # doctest: +SKIP
    >>> mdata.mod["rna"].obs["split"].value_counts()  # doctest: +SKIP

    """
    files = _resolve_files(
        path,
        {
            "train_mod1": train_mod1,
            "train_mod2": train_mod2,
            "train_sol": train_sol,
            "test_mod1": test_mod1,
            "test_mod2": test_mod2,
        },
        test_sol,
    )
    data = {role: _read_h5ad(file, label=f"The {role} file {file}") for role, file in files.items()}
    dataset_id = _dataset_id(data)
    mod1_parts, mod2_parts = _train_parts(data)
    prefix, truth_test = "", None
    if "test_mod1" in data:
        train_names = mod1_parts[0].obs_names if mod1_parts else pd.Index([])
        test1, test2, prefix, truth_test = _test_parts(data, train_names, mod2_prefix)
        mod1_parts.append(test1)
        mod2_parts.append(test2)

    first = data.get("train_mod1", data.get("test_mod1"))
    second = data.get("train_mod2", data.get("test_mod2"))
    name1, name2 = _modality_name(first), _modality_name(second)
    if name1 is None or name2 is None or name1 == name2:
        name1, name2 = "mod1", "mod2"
    mod1 = _concat(mod1_parts, "mod1")
    mod2 = _concat(mod2_parts, "mod2")

    mdata = _build_mudata({name1: mod1, name2: mod2})
    n_train = int((mod1.obs["split"] == "train").sum())
    info: dict[str, object] = {
        "dataset_id": dataset_id,
        "mod1": name1,
        "mod2": name2,
        "n_train": n_train,
        "n_test": mod1.n_obs - n_train,
        "files": {role: str(Path(file).absolute()) for role, file in files.items()},
        "mod2_prefix": prefix,
    }
    if truth_test is not None:
        info["test_truth"] = truth_test
    mdata.uns[UNS_KEY] = info
    logger.info(
        "Read %s: %d training pairs, %d x %d test cells%s.",
        dataset_id or "match-modality files",
        n_train,
        mod1.n_obs - n_train,
        mod2.n_obs - n_train,
        " with solution" if truth_test is not None else "",
    )
    return mdata


def _train_parts(data: dict[str, ad.AnnData]) -> tuple[list[ad.AnnData], list[ad.AnnData]]:
    """The training cells of each modality (mod2 reordered so that row i is the partner of mod1 row i), if any."""
    if "train_mod1" not in data:
        return [], []
    m1, m2, sol = data["train_mod1"], data["train_mod2"], data["train_sol"]
    truth = _checked_truth(sol, m1, m2, "train")
    m2 = m2[truth].copy()  # row i is now the partner of mod1 row i
    m2.obs_names = m1.obs_names
    _check_unique(m1.obs_names, "train_mod1")
    mod1 = _part(m1, "train", data["train_mod1"].obs_names, keep_obs=True)
    return [mod1], [_part(m2, "train", data["train_mod2"].obs_names[truth], keep_obs=False)]


def _test_parts(data: dict[str, ad.AnnData], train_names: pd.Index, mod2_prefix: str) -> tuple:
    """The test cells of each modality, the prefix given to mod2 names that collide, and the test truth (or None)."""
    m1, m2 = data["test_mod1"], data["test_mod2"]
    _check_unique(m1.obs_names, "test_mod1")
    _check_unique(m2.obs_names, "test_mod2")
    if train_names.intersection(m1.obs_names).size:
        raise ValueError("Some test_mod1 cells have the same names as train_mod1 cells; rename them so they differ.")
    mod1_names = train_names.append(m1.obs_names)
    prefix = ""
    if mod1_names.intersection(m2.obs_names).size:
        prefix = mod2_prefix
        if mod1_names.intersection(prefix + m2.obs_names).size or not prefix:
            raise ValueError(
                f"test_mod2 cell names collide with mod1 names even with prefix {prefix!r}; pass another `mod2_prefix`."
            )
    truth_test = _checked_truth(data["test_sol"], m1, m2, "test") if "test_sol" in data else None
    renamed = m2.copy()
    renamed.obs_names = prefix + m2.obs_names
    test1 = _part(m1, "test", m1.obs_names, keep_obs=True)
    return test1, _part(renamed, "test", m2.obs_names, keep_obs=False), prefix, truth_test


def _build_mudata(mods: dict[str, ad.AnnData]) -> md.MuData:
    """Build a MuData of ``mods`` without pulling obs/var columns, quiet about feature names shared by modalities."""
    with _quiet_mudata():
        return md.MuData(mods)


def _read_h5mu(path: PathLike) -> md.MuData:
    """Read an .h5mu without pulling obs/var columns and without the shared-feature-name warnings."""
    with _quiet_mudata():
        return md.read_h5mu(path)


@contextmanager
def _quiet_mudata() -> Iterator[None]:
    with warnings.catch_warnings(), md.set_options(pull_on_update=False):
        # gene and protein names may coincide (CD44 in rna and adt): expected, not a problem
        warnings.filterwarnings("ignore", message=".*var_names are (not unique|intersecting).*", category=UserWarning)
        yield


def _dataset_id(data: dict[str, ad.AnnData]) -> str:
    ids = {str(a.uns["dataset_id"]) for a in data.values() if "dataset_id" in a.uns}
    if len(ids) > 1:
        raise ValueError(
            f"The files come from different datasets (uns['dataset_id'] = {sorted(ids)}); pass matching files."
        )
    return ids.pop() if ids else ""


def _checked_truth(sol: ad.AnnData, m1: ad.AnnData, m2: ad.AnnData, split: str) -> np.ndarray:
    if sol.shape != (m1.n_obs, m2.n_obs):
        raise ValueError(
            f"{split}_sol is {sol.shape[0]} x {sol.shape[1]} but {split}_mod1 has {m1.n_obs} cells and "
            f"{split}_mod2 {m2.n_obs}; pass the solution of these files."
        )
    default_names = pd.RangeIndex(sol.n_obs).astype(str)
    if not sol.obs_names.equals(m1.obs_names) and not sol.obs_names.equals(default_names):
        raise ValueError(
            f"The rows of {split}_sol are not the cells of {split}_mod1 (obs names differ); pass matching files."
        )
    truth = truth_from_solution(sol.X)
    if not _is_permutation(truth, m2.n_obs):
        raise ValueError(f"{split}_sol pairs some {split}_mod2 cells with several mod1 cells; it must be one-to-one.")
    return truth


def _check_unique(names: pd.Index, role: str) -> None:
    if not names.is_unique:
        raise ValueError(f"The cell names of {role} are not unique; make them unique before reading.")


def _part(adata: ad.AnnData, split: str, original_names: pd.Index, *, keep_obs: bool) -> ad.AnnData:
    """Copy ``adata`` with CSR matrices, ``obs['split']`` and ``obs['challenge_name']``."""
    obs = adata.obs.copy() if keep_obs else pd.DataFrame(index=adata.obs_names)
    obs["split"] = split
    obs["challenge_name"] = np.asarray(original_names, dtype=str)
    out = ad.AnnData(
        X=_csr(adata.X),
        obs=obs,
        var=adata.var.copy(),
        layers={key: _csr(value) for key, value in adata.layers.items()},
    )
    return out


def _csr(X: object) -> object:
    return sp.csr_matrix(X) if sp.issparse(X) else X


def _concat(parts: list[ad.AnnData], which: str) -> ad.AnnData:
    if len(parts) == 2 and not parts[0].var_names.equals(parts[1].var_names):
        raise ValueError(f"The train and test {which} files have different features (var_names); pass matching files.")
    out = parts[0] if len(parts) == 1 else ad.concat(parts, join="outer", merge="same")
    out.obs["split"] = pd.Categorical(out.obs["split"], categories=["train", "test"])
    return out


def _modality_name(adata: ad.AnnData) -> str | None:
    if "feature_types" not in adata.var:
        return None
    kinds = pd.unique(adata.var["feature_types"].astype(str))
    return FEATURE_TYPES.get(kinds[0]) if len(kinds) == 1 else None
