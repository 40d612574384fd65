"""End to end at scale through the command line, in the NeurIPS 2021 challenge's file format.

    python benchmarks/run_scale_challenge.py --n-cells 100000 --epochs 5

Simulates ``2 N`` paired multiome cells (two batches), writes them as the challenge's six files (batch0 = train,
batch1 = test; mod2 cells shuffled and renamed, ``*_sol`` permutation matrices; ``X`` log-normalised, raw counts
in ``layers['counts']``), then runs ``scmatch match`` (read, preprocess, train, match N x N, write the sparse
prediction) and ``scmatch evaluate`` as separate processes, recording each one's wall seconds and peak resident
memory (``os.wait4`` of each child). One JSON record goes to ``results/scale_challenge/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]
from _data import REPO  # noqa: E402
from run_scale import _git  # noqa: E402

RESULTS = HERE / "results" / "scale_challenge"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def write_challenge_files(n_cells: int, folder: Path, *, seed: int = 0) -> dict:
    """Simulate ``n_cells`` paired cells and write them as challenge files in ``folder``; returns sizes."""
    import anndata as ad
    import scanpy as sc
    import scipy.sparse as sp

    import scmatch as scm

    mdata = scm.datasets.simulate_multiome(n_cells, n_batches=2, random_state=seed)
    rng = np.random.default_rng([seed, 7])
    dataset_id = f"scmatch_simulated_{n_cells}_gex2atac"
    sizes = {}
    for split, batch in (("train", "batch0"), ("test", "batch1")):
        keep = (mdata["rna"].obs["batch"].astype(str) == batch).to_numpy()
        n = int(keep.sum())
        perm = rng.permutation(n)  # mod2 row j is the partner of mod1 row perm[j]
        for name, mod, feature_type in (("mod1", "rna", "GEX"), ("mod2", "atac", "ATAC")):
            counts = sp.csr_matrix(mdata[mod].X[keep], dtype=np.float32)
            if name == "mod2":
                counts = counts[perm]
            a = ad.AnnData(X=counts.copy(), layers={"counts": counts})
            a.var_names = mdata[mod].var_names
            a.var["feature_types"] = feature_type
            if name == "mod1":
                a.obs_names = mdata[mod].obs_names[keep]
                a.obs["batch"] = batch
            else:
                a.obs_names = [f"cell_{i}" for i in range(n)] if split == "train" else [str(i) for i in range(n)]
            sc.pp.normalize_total(a, target_sum=1e4)
            sc.pp.log1p(a)
            a.uns["dataset_id"] = dataset_id
            a.write_h5ad(folder / f"{split}_{name}.h5ad")
        sol = sp.csr_matrix((np.ones(n, np.float32), (perm, np.arange(n))), shape=(n, n))
        s = ad.AnnData(X=sol)
        s.obs_names = mdata["rna"].obs_names[keep]
        s.uns["dataset_id"] = dataset_id
        s.write_h5ad(folder / f"{split}_sol.h5ad")
        sizes[f"n_{split}"] = n
    return sizes


def _run(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """Run a command; its wall seconds, its own peak RSS in MB (``os.wait4``) and its stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    sys.stderr.write(stderr[-3000:])
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return seconds, usage.ru_maxrss / 1024, stdout


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-cells", type=int, default=100000, help="cells per modality in the test set (N = M)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--top-k", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--workdir", type=Path, default=None, help="folder for the challenge files (default: a temp dir)")
    args = p.parse_args(argv)
    env = {**os.environ, **dict.fromkeys(THREAD_VARS, "1")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        # the files are written by a child process, so this process stays small and the match's peak is its own
        code = (
            f"import sys, json; sys.path[:0] = [{str(HERE)!r}]; from run_scale_challenge import write_challenge_files;"
            f"from pathlib import Path; print(json.dumps(write_challenge_files({2 * args.n_cells}, Path({tmp!r}),"
            f" seed={args.seed})))"
        )
        _, write_peak, out = _run([sys.executable, "-c", code], env)
        sizes = json.loads(out.strip().splitlines()[-1])
        write_seconds = time.perf_counter() - t0
        files = {name: folder / f"{name}.h5ad" for name in ("train_mod1", "train_mod2", "train_sol")}
        files |= {name: folder / f"{name}.h5ad" for name in ("test_mod1", "test_mod2")}
        disk_mb = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
        prediction = folder / "prediction.h5ad"
        cmd = [sys.executable, "-m", "scmatch", "-v", "match"]
        for name, path in files.items():
            cmd += [f"--{name.replace('_', '-')}", str(path)]
        cmd += ["--output", str(prediction), "--epochs", str(args.epochs), "--top-k", str(args.top_k)]
        cmd += ["--seed", str(args.seed)]
        match_seconds, match_peak, match_out = _run(cmd, env)
        cmd = [sys.executable, "-m", "scmatch", "evaluate", "--prediction", str(prediction)]
        cmd += ["--solution", str(folder / "test_sol.h5ad"), "--json"]
        eval_seconds, _, eval_out = _run(cmd, env)
        scores = json.loads(eval_out.strip().splitlines()[-1])
        prediction_mb = prediction.stat().st_size / 2**20
    record = {
        "dataset": f"simulated_challenge_{args.n_cells}",
        "method": "scmatch_cli",
        "seed": args.seed,
        "n_train": sizes["n_train"],
        "n_test": sizes["n_test"],
        **scores,
        "cli_match_seconds": match_seconds,
        "cli_match_peak_rss_mb": match_peak,
        "evaluate_seconds": eval_seconds,
        "write_files_seconds": write_seconds,
        "write_files_peak_rss_mb": write_peak,
        "input_files_mb": disk_mb,
        "prediction_mb": prediction_mb,
        "cli_output": match_out.strip(),
        "settings": {"epochs": args.epochs, "top_k": args.top_k, "matching": "sinkhorn"},
        "n_cores": os.cpu_count(),
        "command": "python benchmarks/run_scale_challenge.py " + " ".join(argv),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **_git(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{record['dataset']}__scmatch_cli__seed{args.seed}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "cli_output"}, indent=1))


if __name__ == "__main__":
    main()
