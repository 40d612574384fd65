from __future__ import annotations

import warnings

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scmatch.io import read_match_modality
from scmatch.metrics import truth_from_solution

ROLES = ("train_mod1", "train_mod2", "train_sol", "test_mod1", "test_mod2", "test_sol")


def _read(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ad.read_h5ad(path)


def _read_h5mu(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return md.read_h5mu(path)


@pytest.fixture(scope="module")
def multiome(data_dir):
    return read_match_modality(data_dir / "neurips2021_match_modality" / "multiome")


@pytest.mark.parametrize(
    ("task", "mods", "n_train", "n_test", "dataset_id"),
    [
        ("multiome", ("rna", "atac"), 221, 279, "openproblems_bmmc_multiome_starter_MM_gex2atac"),
        ("cite", ("rna", "adt"), 311, 289, "openproblems_bmmc_cite_starter_MM_gex2adt"),
    ],
)
def test_read_starters_counts(challenge_dir, task, mods, n_train, n_test, dataset_id):
    mdata = read_match_modality(challenge_dir / task)
    assert tuple(mdata.mod) == mods
    mod1, mod2 = (mdata.mod[m] for m in mods)
    for a in (mod1, mod2):
        assert a.n_obs == n_train + n_test
        assert a.obs["split"].value_counts().to_dict() == {"train": n_train, "test": n_test}
        assert list(a.obs["split"].iloc[[0, -1]]) == ["train", "test"]
        assert sp.isspmatrix_csr(a.X) and sp.isspmatrix_csr(a.layers["counts"])
        counts = a.layers["counts"].data
        np.testing.assert_array_equal(counts, np.round(counts))  # raw counts
    train1 = mod1.obs_names[mod1.obs["split"] == "train"]
    train2 = mod2.obs_names[mod2.obs["split"] == "train"]
    test1 = mod1.obs_names[mod1.obs["split"] == "test"]
    test2 = mod2.obs_names[mod2.obs["split"] == "test"]
    assert list(train1) == list(train2)  # paired cells share names and rows
    assert len(set(test1) & set(test2)) == 0  # the query is unpaired
    assert mdata.n_obs == n_train + 2 * n_test
    info = mdata.uns["match_modality"]
    assert info["dataset_id"] == dataset_id
    assert (info["mod1"], info["mod2"]) == mods
    assert (info["n_train"], info["n_test"]) == (n_train, n_test)
    assert sorted(info["files"]) == sorted(ROLES)
    assert info["test_truth"].shape == (n_test,)
    np.testing.assert_array_equal(np.sort(info["test_truth"]), np.arange(n_test))


def test_training_pairs_match_the_solution(challenge_dir, multiome):
    """Cells sharing a name are true pairs: check against train_sol read independently."""
    folder = challenge_dir / "multiome"
    m1, m2, sol = (_read(folder / f"{role}.h5ad") for role in ("train_mod1", "train_mod2", "train_sol"))
    rows, cols = sol.X.nonzero()
    partner_name = dict(zip(m1.obs_names[rows], m2.obs_names[cols], strict=True))
    atac = multiome.mod["atac"]
    train = atac[atac.obs["split"] == "train"]
    assert len(partner_name) == train.n_obs == 221
    for name, original in zip(train.obs_names, train.obs["challenge_name"], strict=True):
        assert partner_name[name] == original
    expected = m2[[partner_name[n] for n in train.obs_names]].layers["counts"].toarray()
    np.testing.assert_array_equal(train.layers["counts"].toarray(), expected)


def test_pairs_agree_with_barcode_paired_h5mu(multiome, multiome_path):
    """The .h5mu pairs cells by barcode, a source independent of the *_sol files."""
    ref = _read_h5mu(multiome_path)
    atac, rna = multiome.mod["atac"], multiome.mod["rna"]
    train = atac[atac.obs["split"] == "train"]
    cols = ref["atac"].var_names.get_indexer(atac.var_names)
    ref_train = ref["atac"][train.obs_names].X[:, cols].toarray()
    np.testing.assert_array_equal(train.layers["counts"].toarray(), ref_train)
    truth = multiome.uns["match_modality"]["test_truth"]
    test1 = rna.obs_names[rna.obs["split"] == "test"]
    test2 = atac[atac.obs["split"] == "test"]
    np.testing.assert_array_equal(test2.layers["counts"][truth].toarray(), ref["atac"][test1].X[:, cols].toarray())
    # the truth is not the identity: the mod2 test cells are shuffled
    assert (truth == np.arange(truth.size)).mean() < 0.05


def test_x_normalized_and_mod1_obs_kept(multiome):
    rna = multiome.mod["rna"]
    assert not np.allclose(rna.X.data, np.round(rna.X.data))
    assert set(rna.obs["batch"]) == {"s1d1", "s1d2"}
    assert (rna.obs["batch"] == "s1d1").sum() == 221
    assert list(multiome.mod["atac"].obs.columns) == ["split", "challenge_name"]


def test_explicit_paths_and_challenge_names(challenge_dir, tmp_path, multiome):
    folder = challenge_dir / "multiome"
    explicit = read_match_modality(**{role: folder / f"{role}.h5ad" for role in ROLES})
    for name in ("rna", "atac"):
        assert explicit.mod[name].obs_names.equals(multiome.mod[name].obs_names)
    np.testing.assert_array_equal(
        explicit.uns["match_modality"]["test_truth"], multiome.uns["match_modality"]["test_truth"]
    )
    # the challenge names its files <dataset>.<role>.h5ad
    for role in ROLES:
        (tmp_path / f"openproblems_bmmc_multiome_starter.{role}.h5ad").symlink_to(folder / f"{role}.h5ad")
    renamed = read_match_modality(tmp_path)
    assert renamed.mod["atac"].obs_names.equals(multiome.mod["atac"].obs_names)
    assert "test_truth" in renamed.uns["match_modality"]


def test_test_sol_options(challenge_dir, tmp_path):
    folder = challenge_dir / "cite"
    assert "test_truth" not in read_match_modality(folder, test_sol=False).uns["match_modality"]
    for role in ROLES[:-1]:
        (tmp_path / f"{role}.h5ad").symlink_to(folder / f"{role}.h5ad")
    assert "test_truth" not in read_match_modality(tmp_path).uns["match_modality"]  # "auto"
    with pytest.raises(FileNotFoundError, match="test_sol=True"):
        read_match_modality(tmp_path, test_sol=True)
    with_sol = read_match_modality(tmp_path, test_sol=folder / "test_sol.h5ad")
    expected = truth_from_solution(_read(folder / "test_sol.h5ad").X)
    np.testing.assert_array_equal(with_sol.uns["match_modality"]["test_truth"], expected)


def test_train_only_and_test_only(challenge_dir):
    folder = challenge_dir / "multiome"
    train = read_match_modality(**{role: folder / f"{role}.h5ad" for role in ROLES[:3]})
    assert train.mod["rna"].n_obs == train.mod["atac"].n_obs == train.n_obs == 221
    test = read_match_modality(test_mod1=folder / "test_mod1.h5ad", test_mod2=folder / "test_mod2.h5ad")
    assert test.n_obs == 2 * 279
    assert test.uns["match_modality"]["n_train"] == 0


def _tiny_challenge(folder, *, collide=True, seed=0):
    """Six small files in the challenge's layout with a known pairing."""
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    var1 = pd.DataFrame({"feature_types": "GEX"}, index=[f"g{i}" for i in range(5)])
    var2 = pd.DataFrame({"feature_types": "ADT"}, index=[f"p{i}" for i in range(3)])
    for split, n in (("train", 6), ("test", 4)):
        counts1 = sp.csr_matrix(rng.poisson(2, (n, 5)).astype(np.float32))
        counts2 = sp.csr_matrix(rng.poisson(5, (n, 3)).astype(np.float32))
        order = rng.permutation(n)  # mod2 row j is the partner of mod1 row order[j]
        names1 = [f"{split}{i}" for i in range(n)]
        names2 = names1 if (collide and split == "test") else [f"cell_{j}" for j in range(n)]
        uns = {"dataset_id": "tiny"}
        ad.AnnData(counts1, obs=pd.DataFrame(index=names1), var=var1, layers={"counts": counts1}, uns=uns).write_h5ad(
            folder / f"{split}_mod1.h5ad"
        )
        mod2 = ad.AnnData(
            counts2[order], obs=pd.DataFrame(index=names2), var=var2, layers={"counts": counts2[order]}, uns=uns
        )
        mod2.write_h5ad(folder / f"{split}_mod2.h5ad")
        sol = sp.csr_matrix((np.ones(n, np.float32), (order, np.arange(n))), shape=(n, n))
        ad.AnnData(sol, obs=pd.DataFrame(index=names1), uns=uns).write_h5ad(folder / f"{split}_sol.h5ad")
    return folder


def test_colliding_test_names_get_prefix(tmp_path):
    mdata = read_match_modality(_tiny_challenge(tmp_path / "tiny"))
    assert tuple(mdata.mod) == ("rna", "adt")
    adt = mdata.mod["adt"]
    assert list(adt.obs_names[:6]) == [f"train{i}" for i in range(6)]
    assert list(adt.obs_names[6:]) == [f"mod2_test{i}" for i in range(4)]
    assert mdata.uns["match_modality"]["mod2_prefix"] == "mod2_"
    # every cell's own partner: counts of mod1 row i were made together with mod2 partner row truth[i]
    np.testing.assert_array_equal(adt.obs["challenge_name"].iloc[6:], [f"test{i}" for i in range(4)])
    custom = read_match_modality(tmp_path / "tiny", mod2_prefix="q_")
    assert custom.mod["adt"].obs_names[-1] == "q_test3"
    with pytest.raises(ValueError, match="collide"):
        read_match_modality(tmp_path / "tiny", mod2_prefix="")


def test_truth_recovers_known_pairing(tmp_path):
    folder = _tiny_challenge(tmp_path / "tiny", collide=False, seed=3)
    mdata = read_match_modality(folder)
    rna, adt = mdata.mod["rna"], mdata.mod["adt"]
    sol = _read(folder / "train_sol.h5ad").X.toarray()
    m2 = _read(folder / "train_mod2.h5ad")
    np.testing.assert_array_equal(adt.layers["counts"][:6].toarray(), m2.layers["counts"][sol.argmax(1)].toarray())
    assert rna.obs_names[:6].equals(adt.obs_names[:6])
    assert list(adt.obs_names[6:]) == [f"cell_{j}" for j in range(4)]  # no collision, names kept
    assert mdata.uns["match_modality"]["mod2_prefix"] == ""


def test_round_trip_h5mu(multiome, tmp_path):
    with md.set_options(pull_on_update=False):
        multiome.write(tmp_path / "m.h5mu")
    back = _read_h5mu(tmp_path / "m.h5mu")
    np.testing.assert_array_equal(
        back.uns["match_modality"]["test_truth"], multiome.uns["match_modality"]["test_truth"]
    )
    assert back.mod["atac"].obs_names.equals(multiome.mod["atac"].obs_names)


def test_bad_inputs(challenge_dir, tmp_path):
    folder = challenge_dir / "multiome"
    with pytest.raises(FileNotFoundError, match="not a directory"):
        read_match_modality(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="pass all of"):
        read_match_modality(train_mod1=folder / "train_mod1.h5ad", train_mod2=folder / "train_mod2.h5ad")
    with pytest.raises(ValueError, match="No input files"):
        read_match_modality()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_match_modality(folder, test_sol=tmp_path / "missing.h5ad")
    with pytest.raises(FileNotFoundError, match="No train_mod1"):
        read_match_modality(tmp_path)
    tiny = _tiny_challenge(tmp_path / "tiny")
    with pytest.raises(ValueError, match="train_sol is 4 x 4 but train_mod1 has 6 cells"):
        read_match_modality(tiny, train_sol=tiny / "test_sol.h5ad")
    with pytest.raises(ValueError, match="different datasets"):
        read_match_modality(
            tiny, test_sol=False, test_mod1=folder / "test_mod1.h5ad", test_mod2=folder / "test_mod2.h5ad"
        )
    sol = _read(tiny / "train_sol.h5ad")
    X = sol.X.toarray()
    X[:, :] = 0
    X[:, 0] = 1  # every mod1 cell paired with the same mod2 cell
    ad.AnnData(sp.csr_matrix(X), obs=sol.obs, uns=sol.uns).write_h5ad(tmp_path / "bad_sol.h5ad")
    with pytest.raises(ValueError, match="one-to-one"):
        read_match_modality(tiny, train_sol=tmp_path / "bad_sol.h5ad")
    with pytest.raises(TypeError, match="test_sol"):
        read_match_modality(tiny, test_sol=3)
