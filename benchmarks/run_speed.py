"""Speed benchmark: where the time of fitting and matching goes, as ratios from one run.

    python benchmarks/run_speed.py --sizes 10000            # one record per size in results/speed/
    python benchmarks/run_speed.py --sizes 10000 100000 --fit-cap 10000
    python benchmarks/make_table.py speed

For each size N, in one fresh single-thread process (torch, BLAS): ``simulate_multiome(2 N)`` (two batches), the RNA
and ATAC recipes on all cells, then ``scmatch.tl.match_modalities`` with its defaults learns on batch0 (about N
pairs) and matches batch1 (about N x N cells, the ATAC cells shuffled and renamed): the end-to-end time a user
waits, with the epochs it ran, its training, validation and calibration seconds, and the match score. Then the
fitted model matches the same query again through ``MatchModel.predict_proba`` (the defaults: alpha = 1, 100
candidates, Sinkhorn), and each stage is timed on its own on the same embeddings:

- ``encode``: the query's embeddings and tokens;
- ``search``: the dense ``i0 . c0`` matmul plus top-100 per row, in memory-bounded row chunks, the floor that any
  candidate search costs (``predict_proba`` is reported as a ratio to it);
- ``rerank``: the cross-attention term on the candidates (each cell's best ``Search.n_cross`` of them, as
  ``predict_proba`` does);
- ``sinkhorn``: the sparse Sinkhorn on the candidate support, with its iterations and final marginal error.

With ``--fit-cap C``, sizes above C fit on C pairs (the matching stages still run at N x N), so that the matching
cost can be measured at 100k without a 100k-pair fit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]
import _data  # noqa: E402, F401 (puts src/ on sys.path for a run without an install)
from _provenance import git_state as _git  # noqa: E402

RESULTS = HERE / "results" / "speed"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _timed(fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def _mudata(n: int, seed: int, fit_cap: int | None):
    """Simulated RNA + ATAC with the recipes run on all cells; the query's ATAC cells shuffled and renamed.

    Returns the MuData (``obs['is_reference']`` in both modalities) and, for each query RNA cell, the position of
    its partner among the query ATAC cells.
    """
    import anndata as ad
    import mudata as md

    import scmatch as scm

    mdata = scm.datasets.simulate_multiome(2 * n, n_batches=2, random_state=seed)
    scm.pp.recipe_rna(mdata, mod="rna")
    scm.pp.recipe_atac(mdata, mod="atac")
    rna, atac = mdata["rna"], mdata["atac"]
    is_ref = (rna.obs["batch"].astype(str) == "batch0").to_numpy()
    keep = np.ones(rna.n_obs, dtype=bool)
    if fit_cap is not None:
        keep[np.flatnonzero(is_ref)[fit_cap:]] = False  # reference pairs beyond the cap leave the data
    ref, query = keep & is_ref, keep & ~is_ref
    order = np.random.default_rng([seed, 20211206]).permutation(int(query.sum()))
    atac_query = atac[np.flatnonzero(query)[order]].copy()
    atac_query.obs_names = [f"atac_{i}" for i in range(atac_query.n_obs)]
    rna = ad.concat([rna[ref], rna[query]], merge="first", uns_merge="first")
    atac = ad.concat([atac[ref], atac_query], merge="first", uns_merge="first")
    for adata, n_ref in ((rna, int(ref.sum())), (atac, int(ref.sum()))):
        adata.obs["is_reference"] = np.arange(adata.n_obs) < n_ref
    return md.MuData({"rna": rna, "atac": atac}), np.argsort(order)


def run_size(n: int, seed: int, fit_cap: int | None, out_dir: Path, command: str, *, e2e_only: bool = False) -> dict:
    import torch
    from threadpoolctl import threadpool_limits

    import scmatch as scm
    from scmatch._utils import _device
    from scmatch.model import MatchModel

    torch.set_num_threads(1)
    threadpool_limits(1)
    (mdata, truth), prep_s = _timed(_mudata, n, seed, fit_cap)
    model = MatchModel()
    if hasattr(model, "plan"):  # the settings split by role
        model.plan = dataclasses.replace(model.plan, progress_bar=False)
    else:  # an older scmatch (--e2e-only): one flat list of settings
        model = MatchModel(progress_bar=False)
    _, total_s = _timed(scm.tl.match_modalities, mdata, mod1="rna", mod2="atac", reference="is_reference", model=model)
    scores = scm.tl.evaluate_match(mdata, truth=truth)
    h = model.history_
    if e2e_only:  # e.g. the code of an older commit, whose internals differ: time, epochs and score only
        record = {"dataset": f"simulated_{n}", "method": "scmatch", "seed": seed}
        record |= {"n_train": int(mdata["rna"].obs["is_reference"].sum()), "n_test": len(truth)}
        record |= {k: scores[k] for k in ("match_score", "top1", "top10", "foscttm")}
        record |= {"end_to_end_seconds": total_s, "epochs_run": len(h["epoch"]), "command": command, **_git()}
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"simulated_{n}__scmatch__seed{seed}.json").write_text(json.dumps(record, indent=2))
        return record
    from scmatch.model.solvers._matching import match_block
    from scmatch.model.solvers._search import _rerank, candidate_similarities, encode, iter_chunks
    from scmatch.model.train._parallel import member_threads

    rna, atac = mdata["rna"], mdata["atac"]
    q1 = rna.obsm["X_pca"][~rna.obs["is_reference"].to_numpy()]
    q2 = atac.obsm["X_lsi"][~atac.obs["is_reference"].to_numpy()]

    _, predict_s = _timed(model.predict_proba, q1, q2, matching="sinkhorn", top_k=100)
    module, device = model.module_, _device("cpu")
    (emb1, tok1), enc1 = _timed(encode, module, q1, modality=1, device=device, keep_tokens=True)
    (emb2, tok2), enc2 = _timed(encode, module, q2, modality=2, device=device, keep_tokens=True)
    search, search_s = _timed(candidate_similarities, module, emb1, emb2, n_candidates=model.search.n_candidates)

    def dense_topk():
        rows = max(1, 16_000_000 // emb2.shape[0])
        for part in iter_chunks(emb1.shape[0], rows):
            torch.topk(emb1[part] @ emb2.T, model.search.n_candidates, dim=1, sorted=False)

    _, dense_s = _timed(dense_topk)
    idx = torch.as_tensor(search.indices.reshape(emb1.shape[0], -1).astype(np.int64))
    val = torch.as_tensor(search.data.reshape(emb1.shape[0], -1).copy())
    with torch.no_grad():
        _, rerank_s = _timed(_rerank, module, val, idx, tok1, tok2, device, 256, model.search.n_cross)
    sim = search.copy()
    sim.data = val.numpy().ravel()
    info: dict = {}
    _, sinkhorn_s = _timed(
        match_block, sim, matching="sinkhorn", temperature=model.temperature_["sinkhorn"], top_k=100, info=info
    )
    fit_s = float(np.sum(h["seconds"]) + np.sum(h["val_seconds"]) + h["calibration_seconds"])
    members_at_once = member_threads(model.n_models, device)
    record = {
        "dataset": f"simulated_{n}",
        "method": "scmatch",
        "seed": seed,
        "n_train": int(mdata["rna"].obs["is_reference"].sum()),
        "n_test": len(q1),
        "match_score": scores["match_score"],
        "top1": scores["top1"],
        "top10": scores["top10"],
        "foscttm": scores["foscttm"],
        "end_to_end_seconds": total_s,
        "preprocess_seconds": prep_s,
        "epochs_run": len(h["epoch"]),
        "epoch_budget": h.get("epoch_budget"),
        "steps_per_epoch": h.get("steps_per_epoch"),
        "seconds_per_epoch": float(np.mean(h["seconds"])),
        "pairs_per_second": float(h.get("steps_per_epoch", 0) * model.plan.batch_size / np.mean(h["seconds"])),
        # the members train at once in threads on CPU: the ensemble's pairs per second, all members together
        "members_at_once": members_at_once,
        "ensemble_pairs_per_second": float(
            members_at_once * h.get("steps_per_epoch", 0) * model.plan.batch_size / np.mean(h["seconds"])
        ),
        "validation_seconds_per_epoch": float(np.mean(h["val_seconds"])) if h["val_seconds"] else 0.0,
        "calibration_seconds": float(h["calibration_seconds"]),
        "calibration_share_of_fit": float(h["calibration_seconds"]) / fit_s,
        "predict_seconds": predict_s,
        "encode_seconds": enc1 + enc2,
        "search_seconds": search_s,
        "dense_matmul_topk_seconds": dense_s,
        "rerank_seconds": rerank_s,
        "rerank_candidates": model.search.n_cross,
        "sinkhorn_seconds": sinkhorn_s,
        "sinkhorn_iterations": info.get("n_iter"),
        "sinkhorn_marginal_error": info.get("marginal_error"),
        "predict_over_dense": predict_s / dense_s,
        "n_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "command": command,
        **_git(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"simulated_{n}__scmatch__seed{seed}.json").write_text(json.dumps(record, indent=2))
    return record


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[10000])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fit-cap", type=int, default=None, help="fit on at most this many reference pairs")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--e2e-only", action="store_true", help="only the end-to-end time, epochs and score")
    p.add_argument("--worker", nargs=2, metavar=("SIZE", "SEED"), help=argparse.SUPPRESS)
    p.add_argument("--command", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        record = run_size(
            int(args.worker[0]), int(args.worker[1]), args.fit_cap, args.out, args.command, e2e_only=args.e2e_only
        )
        keys = ("end_to_end_seconds", "epochs_run", "match_score", "predict_seconds", "predict_over_dense")
        print(json.dumps({k: record.get(k) for k in keys}))
        return
    command = "python benchmarks/run_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    env = {**os.environ, **dict.fromkeys(THREAD_VARS, "1")}
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--worker", str(n), str(args.seed), "--out", str(args.out)]
        cmd += ["--command", command] + (["--fit-cap", str(args.fit_cap)] if args.fit_cap else [])
        cmd += ["--e2e-only"] if args.e2e_only else []
        print(f"size {n}:", subprocess.run(cmd, env=env, capture_output=True, text=True).stdout.strip() or "failed")


if __name__ == "__main__":
    main()
