from __future__ import annotations

import hashlib
import shutil
import warnings
from pathlib import Path

import mudata as md
import numpy as np
import pytest
import requests

from scmatch.datasets import _loaders
from scmatch.datasets._loaders import (
    COMMIT,
    REGISTRY,
    _url,
    bmmc_cite_starter,
    bmmc_multiome_starter,
    neurips2021_match_modality,
)

ROLES = ("train_mod1", "train_mod2", "train_sol", "test_mod1", "test_mod2", "test_sol")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_h5mu(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return md.read_h5mu(path)


class _LocalDownloader:
    """Stands in for pooch's HTTP downloader: serves files from a local folder, records the URLs asked for."""

    def __init__(self, source: Path, corrupt: bool = False, fail: bool = False):
        self.source, self.corrupt, self.fail, self.urls = source, corrupt, fail, []

    def __call__(self, url, output_file, pooch, check_only=False):
        self.urls.append(url)
        if self.fail:
            raise requests.exceptions.HTTPError(f"404 Client Error: Not Found for url: {url}")
        role = url.rsplit(".", 2)[-2]  # ...starter.<role>.h5ad
        data = (self.source / f"{role}.h5ad").read_bytes()
        if self.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 1])
        Path(output_file).write_bytes(data) if isinstance(output_file, str | Path) else output_file.write(data)


@pytest.fixture
def offline(monkeypatch):
    """Make any accidental real download fail loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("tests must not touch the network")

    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(requests.Session, "request", refuse)


@pytest.mark.parametrize("task", ["multiome", "cite"])
def test_registry_matches_local_files(challenge_dir, task):
    assert sorted(REGISTRY[task]) == sorted(ROLES)
    for role, sha in REGISTRY[task].items():
        assert _sha256(challenge_dir / task / f"{role}.h5ad") == sha, role


def test_urls_are_pinned_to_the_commit():
    assert len(COMMIT) == 40 and int(COMMIT, 16) >= 0
    assert COMMIT.startswith("edaa879")
    assert _url("multiome", "train_mod1") == (
        "https://raw.githubusercontent.com/openproblems-bio/neurips2021_multimodal_viash/"
        "edaa879332ce91af98f9a6eac3b3606b6fd860b2/resources_test/match_modality/"
        "openproblems_bmmc_multiome_starter/openproblems_bmmc_multiome_starter.train_mod1.h5ad"
    )


def test_challenge_loader_local_path(challenge_dir, offline):
    mdata = neurips2021_match_modality("multiome", path=challenge_dir / "multiome")
    assert tuple(mdata.mod) == ("rna", "atac")
    assert (mdata.uns["match_modality"]["n_train"], mdata.uns["match_modality"]["n_test"]) == (221, 279)
    cite = neurips2021_match_modality("cite", path=challenge_dir / "cite")
    assert cite.mod["adt"].n_obs == 600 and cite.uns["match_modality"]["test_truth"].shape == (289,)


@pytest.mark.parametrize(
    ("loader", "task", "mod2", "n"),
    [(bmmc_multiome_starter, "multiome", "atac", 500), (bmmc_cite_starter, "cite", "adt", 600)],
)
def test_starter_from_challenge_folder_equals_h5mu(data_dir, offline, loader, task, mod2, n):
    """Assembled from the challenge files, the counts and pairing equal the barcode-paired .h5mu."""
    mdata = loader(path=data_dir / "neurips2021_match_modality" / task)
    ref = _read_h5mu(data_dir / f"bmmc_{task}_starter.h5mu")
    assert tuple(mdata.mod) == ("rna", mod2)
    for name in ("rna", mod2):
        a, b = mdata.mod[name], ref.mod[name]
        assert a.n_obs == n
        assert a.obs_names.equals(b.obs_names) and a.var_names.equals(b.var_names)
        assert a.X.dtype == np.float32 and (a.X != b.X).nnz == 0
        np.testing.assert_array_equal(a.obs["is_train"], b.obs["is_train"])
        np.testing.assert_array_equal(a.obs["batch"].astype(str), b.obs["batch"].astype(str))
    assert mdata.obs["is_train"].sum() == ref.obs["is_train"].sum()
    assert mdata.uns["source"]["commit"] == COMMIT


def test_starter_local_h5mu(multiome_path, offline):
    mdata = bmmc_multiome_starter(path=multiome_path)
    assert mdata.n_obs == 500 and "cell_type" in mdata.obs
    assert mdata.obs["cell_type"].nunique() == 21


def test_download_verifies_and_caches(challenge_dir, tmp_path, monkeypatch):
    fake = _LocalDownloader(challenge_dir / "cite")
    monkeypatch.setattr(_loaders, "_downloader", lambda: fake)
    mdata = neurips2021_match_modality("cite", cache_dir=tmp_path)
    assert (mdata.uns["match_modality"]["n_train"], mdata.uns["match_modality"]["n_test"]) == (311, 289)
    assert sorted(fake.urls) == sorted(_url("cite", role) for role in ROLES)
    folder = tmp_path / "neurips2021_match_modality" / "cite"
    assert _sha256(folder / "openproblems_bmmc_cite_starter.test_sol.h5ad") == REGISTRY["cite"]["test_sol"]
    # second call: everything cached, no download
    paired = bmmc_cite_starter(cache_dir=tmp_path)
    assert len(fake.urls) == 6
    assert paired.n_obs == 600 and paired.obs["is_train"].sum() == 311


def test_wrong_checksum_gives_clear_error(challenge_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(_loaders, "_downloader", lambda: _LocalDownloader(challenge_dir / "multiome", corrupt=True))
    with pytest.raises(ValueError, match="does not match its sha256 checksum"):
        bmmc_multiome_starter(cache_dir=tmp_path)
    assert not list((tmp_path / "neurips2021_match_modality" / "multiome").glob("*.h5ad"))


def test_registry_hash_mismatch_gives_clear_error(challenge_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(_loaders, "_downloader", lambda: _LocalDownloader(challenge_dir / "multiome"))
    monkeypatch.setitem(REGISTRY, "multiome", {**REGISTRY["multiome"], "train_sol": "0" * 64})
    with pytest.raises(ValueError, match=r"train_sol\.h5ad does not match"):
        neurips2021_match_modality("multiome", cache_dir=tmp_path)


def test_missing_remote_file_gives_clear_error(challenge_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(_loaders, "_downloader", lambda: _LocalDownloader(challenge_dir / "multiome", fail=True))
    with pytest.raises(ConnectionError, match=r"Could not download .*404.*pass their folder as `path=`"):
        neurips2021_match_modality("multiome", cache_dir=tmp_path)


def test_default_cache_dir_is_pooch_os_cache(challenge_dir, tmp_path, monkeypatch):
    import pooch

    monkeypatch.setattr(pooch, "os_cache", lambda project: tmp_path / project)
    monkeypatch.setattr(_loaders, "_downloader", lambda: _LocalDownloader(challenge_dir / "multiome"))
    neurips2021_match_modality("multiome")
    assert len(list((tmp_path / "scmatch" / "neurips2021_match_modality" / "multiome").glob("*.h5ad"))) == 6


def test_bad_arguments(tmp_path, challenge_dir):
    with pytest.raises(ValueError, match="task"):
        neurips2021_match_modality("atac")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bmmc_cite_starter(path=tmp_path / "missing.h5mu")
    with pytest.raises(ValueError, match=r"not an \.h5mu"):
        bmmc_cite_starter(path=challenge_dir / "cite" / "train_mod1.h5ad")
    shutil.copytree(challenge_dir / "cite", tmp_path / "cite")
    (tmp_path / "cite" / "test_sol.h5ad").unlink()
    with pytest.raises(FileNotFoundError, match="test_sol"):
        bmmc_cite_starter(path=tmp_path / "cite")
