"""examples/distributed_training.py: a 2-process DistributedDataParallel run on CPU (gloo)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import scmatch as scm

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "distributed_training.py"


@pytest.mark.slow
@pytest.mark.parametrize("alpha", [1.0, 0.0])  # with alpha = 0 the cross-attention weights get no gradient
def test_two_process_ddp_run(tmp_path, alpha):
    report, model_dir = tmp_path / "report.json", tmp_path / "model"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(SCRIPT)]
    cmd += ["--n-cells", "1200", "--epochs", "4", "--batch-size", "64", "--alpha", str(alpha), "--report", str(report)]
    cmd += ["--output", str(model_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["world_size"] == 2
    assert result["backend"] == "gloo"
    # the averaged gradients keep both processes' weights bit-identical
    assert result["identical_weights"] is True
    assert result["epochs_run"] == 4
    # it learned something: chance is 1 / 600 for the match score and 10 / 600 for top-10
    assert result["match_score"] > 5 / result["n_query"]
    assert result["top10"] > 0.1
    # the first process saved a model that loads in a plain, non-distributed session
    model = scm.model.MatchModel.load(str(model_dir), device="cpu")
    assert len(model.history_["epoch"]) == 4
