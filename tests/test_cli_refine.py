"""`scmatch match --refine` passes the refinement through to tl.match_modalities."""

import pytest

import scmatch.tl
from scmatch._cli import main


class _Stop(Exception):
    pass


@pytest.mark.parametrize(("flag", "expected"), [([], False), (["--refine"], True)])
def test_match_refine_flag(flag, expected, challenge_dir, tmp_path, monkeypatch):
    seen = {}

    def capture(mdata, **kwargs):
        seen.update(kwargs)
        raise _Stop  # the flag is all this test checks; matching itself is tested in test_cli.py

    monkeypatch.setattr(scmatch.tl, "match_modalities", capture)
    d = challenge_dir / "cite"
    args = ["match", "--output", str(tmp_path / "pred.h5ad"), *flag]
    for name in ("train_mod1", "train_mod2", "train_sol", "test_mod1", "test_mod2"):
        args += [f"--{name.replace('_', '-')}", str(d / f"{name}.h5ad")]
    assert main(args) != 0  # the command reports the stop as an error and writes nothing
    assert seen["refine"] is expected
    assert not (tmp_path / "pred.h5ad").exists()
