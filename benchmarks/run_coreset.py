"""Coreset training benchmark: full reference vs CRAIG vs random subsets, fit time and match score.

    python benchmarks/run_coreset.py --datasets simulated cite totalvi --fractions 0.1 0.3 0.5 --seeds 0 1 2
    python benchmarks/run_coreset.py --plot     # score against fit time from the JSON records -> coreset.png

Protocol of ../shared/BENCHMARKS.md (reference -> shuffled query, challenge metric), with
``MatchModel().fit(..., plan=scmatch.experimental.CoresetPlan(coreset=..., coreset_fraction=...))``: ``full`` trains
on every reference pair, ``craig_F`` on a
facility-location coreset of a share F of the pairs (weighted, re-selected every ``coreset_every`` epochs),
``random_F`` on a random subset of the same size, ``rs2_F`` on a random subset re-drawn every epoch
(``coreset="random", coreset_every=1``: repeated random subsets, RS2, Okanovic et al. 2023), and ``full_eN``
(``--full-epochs N``) on every reference pair for only N epochs: the cheaper way to train that a coreset has to
beat on time. Every other setting is the MatchModel default unless given (``--epochs``, ``--alpha``,
``--loss``). The simulated reference has ``--sim-cells / 2`` cells; its query is a seeded random subset of
``--query-cells`` cells of the other batch (matching cost is not what is measured here).
Each run is a fresh subprocess with one thread; ``--jobs`` runs go side by side (one core each).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]
from _data import REPO, MatchingSplit, load_split  # noqa: E402
from _provenance import git_state as _git  # noqa: E402

RESULTS = HERE / "results" / "coreset"
SERIES = {"craig": "CRAIG", "random": "random", "rs2": "random, re-drawn every epoch"}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def run_one(cache: str, method: str, seed: int, out: str, settings: dict, command: str) -> dict:
    """Fit and match one dataset x method x seed in this process; write the JSON record."""
    import torch
    from threadpoolctl import threadpool_limits

    import scmatch.metrics
    from scmatch.experimental import CoresetPlan, DistanceMatchModel
    from scmatch.model import MatchModel, TrainingPlan

    torch.set_num_threads(1)
    threadpool_limits(1)
    split = MatchingSplit.load(cache).shuffled(seed)
    coreset, _, fraction = method.partition("_")
    architecture = {k: v for k, v in settings.items() if k in ("alpha", "loss")}
    kw = {"max_epochs": settings["epochs"]} if "epochs" in settings else {}
    kw["progress_bar"] = False
    if coreset != "full" and "coreset_every" in settings:
        kw["coreset_every"] = settings["coreset_every"]
    if coreset == "full" and fraction:  # full_eN: every pair, N epochs
        kw["max_epochs"] = int(fraction.removeprefix("e"))
    elif coreset == "rs2":  # a fresh random subset every epoch
        kw.update(coreset="random", coreset_every=1, coreset_fraction=float(fraction))
    elif coreset != "full":
        kw.update(coreset=coreset, coreset_fraction=float(fraction))
    plan = CoresetPlan(**kw) if "coreset" in kw else TrainingPlan(**kw)
    t0 = time.perf_counter()
    cls = MatchModel if architecture.get("loss", "infonce") in ("infonce", "triplet") else DistanceMatchModel
    model = cls(**architecture).fit(split.X1_train, split.X2_train, plan=plan, random_state=seed)
    t1 = time.perf_counter()
    P = model.predict_proba(split.X1_test, split.X2_test, matching="sinkhorn", top_k=1000)
    t2 = time.perf_counter()
    scores = scmatch.metrics.evaluate(P, split.truth, labels_rows=split.labels_rows, labels_cols=split.labels_cols)
    record = {
        "dataset": split.name,
        "method": method,
        "seed": seed,
        "n_train": split.n_train,
        "n_test": split.n_test,
        **{k: float(v) for k, v in scores.items()},
        "fit_seconds": t1 - t0,
        "match_seconds": t2 - t1,
        "epochs_run": len(model.history_["epoch"]),
        "best_epoch": model.history_["best_epoch"],
        "seconds_per_epoch": (t1 - t0) / max(len(model.history_["epoch"]), 1),
        # fit time split: minibatch steps (+ coreset selection), per-epoch validation, temperature calibration
        "train_seconds": float(np.sum(model.history_.get("seconds", []))),
        "validation_seconds": float(np.sum(model.history_.get("val_seconds", []))),
        "calibration_seconds": float(model.history_.get("calibration_seconds", np.nan)),
        "coreset": None if coreset == "full" else kw["coreset"],
        "coreset_fraction": 1.0 if coreset == "full" else float(fraction),
        "settings": kw,
        "n_cores": os.cpu_count(),
        "torch_threads": 1,
        "command": command,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **_git(),
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(record, indent=1, default=float) + "\n")
    return record


def _subprocess(cache, method, seed, out, settings, command):
    env = {**os.environ, **dict.fromkeys(THREAD_VARS, "1")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
    cmd = [sys.executable, __file__, "--worker", cache, method, str(seed), out, json.dumps(settings), command]
    Path(out).unlink(missing_ok=True)
    proc = subprocess.run(cmd, env=env, check=False)
    return json.loads(Path(out).read_text()) if proc.returncode == 0 else None


def _prepare(dataset: str, args) -> str:
    """Preprocess once and cache (the simulated query is subsampled to ``--query-cells``)."""
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    suffix = f"_{args.sim_cells}_{args.query_cells}" if dataset == "simulated" else ""
    cache = args.cache_dir / f"{dataset}{suffix}.npz"
    if not cache.exists():
        split = load_split(dataset, n_sim_cells=args.sim_cells)
        if dataset == "simulated" and split.n_test > args.query_cells:
            keep = np.sort(np.random.default_rng(0).choice(split.n_test, args.query_cells, replace=False))
            split = replace(
                split,
                X1_test=split.X1_test[keep],
                X2_test=split.X2_test[keep],
                labels_rows=split.labels_rows[keep],
                labels_cols=split.labels_cols[keep],
                truth=np.arange(len(keep), dtype=np.int64),
            )
        split.save(cache)
    return str(cache)


def _series(records: list[dict], dataset: str) -> dict[str, list[tuple]]:
    """Per series (full data by epochs, craig, random): (fit s mean, fit s sd, score mean, score sd, tag)."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        if r["dataset"] == dataset:
            groups.setdefault(r["method"], []).append(r)

    def sd(v: list[float]) -> float:
        return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0

    series: dict[str, list] = {}
    for method, rows in groups.items():
        if method.startswith("full"):
            epochs = rows[0]["settings"].get("max_epochs", rows[0]["settings"].get("epochs", "default"))
            kind, tag = "full data", f"{epochs} ep"
        else:
            kind, tag = SERIES.get(method.partition("_")[0], method.partition("_")[0]), method.partition("_")[2]
        fit, score = [r["fit_seconds"] for r in rows], [r["match_score"] for r in rows]
        series.setdefault(kind, []).append((float(np.mean(fit)), sd(fit), float(np.mean(score)), sd(score), tag))
    return {k: sorted(v) for k, v in series.items()}


def plot(out_dir: Path, datasets: list[str]) -> Path:
    """Match score against fit time per dataset, with the target region (>= 95% of full, >= 2.5x faster)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(p.read_text()) for p in sorted(out_dir.glob("*.json"))]
    datasets = [d for d in datasets if any(r["dataset"] == d for r in records)]
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        full = [r for r in records if r["dataset"] == dataset and r["method"] == "full"]
        series = _series(records, dataset)
        # rs2 takes random_F's minibatch steps, and its selection is free: drawn at random_F's measured time, so
        # that rows from runs at different machine speeds are not compared on seconds
        at_random = {p[4]: p[:2] for p in series.get("random", [])}
        rs2 = SERIES["rs2"]
        if rs2 in series:
            series[f"{rs2} (at random's time)"] = [
                (*at_random[p[4]], *p[2:]) for p in series.pop(rs2) if p[4] in at_random
            ]
        for kind, pts in series.items():
            x, xe, y, ye, tags = zip(*pts, strict=True)
            ax.errorbar(x, y, xerr=xe, yerr=ye, marker="o", capsize=2, label=kind)
            for xi, yi, tag in zip(x, y, tags, strict=True):
                ax.annotate(tag, (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=7)
        if full:
            score = np.mean([r["match_score"] for r in full])
            fit = np.mean([r["fit_seconds"] for r in full])
            ax.fill_between([0, fit / 2.5], 0.95 * score, ax.get_ylim()[1], color="green", alpha=0.1, label="target")
        ax.set(title=dataset, xlabel="fit seconds (mean ± sd, 3 seeds)", ylabel="match score")
        ax.set_xlim(left=0)
    axes[0][0].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    path = HERE / "coreset.png"
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        cache, method, seed, out, settings, command = argv[1:7]
        run_one(cache, method, int(seed), out, json.loads(settings), command)
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["simulated", "cite", "totalvi"])
    p.add_argument("--fractions", nargs="+", type=float, default=[0.1, 0.3, 0.5])
    p.add_argument("--coresets", nargs="+", default=["full", "craig", "random"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--sim-cells", type=int, default=40000, help="simulated cells, two batches (reference, query)")
    p.add_argument("--query-cells", type=int, default=5000)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument(
        "--full-epochs", nargs="*", type=int, default=[], help="also train on every pair for only N epochs (full_eN)"
    )
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--loss", default=None)
    p.add_argument("--coreset-every", type=int, default=None)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--cache-dir", type=Path, default=Path("/tmp/scmatch_bench_cache"))
    p.add_argument("--plot", action="store_true", help="only draw coreset.png from the records in --out")
    args = p.parse_args(argv)
    if args.plot:
        print(plot(args.out, ["simulated", "totalvi", "cite"]))
        return
    settings = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "alpha": args.alpha,
            "loss": args.loss,
            "coreset_every": args.coreset_every,
        }.items()
        if v is not None
    }
    command = "python benchmarks/run_coreset.py " + " ".join(argv)
    jobs = []
    for dataset in args.datasets:
        cache = _prepare(dataset, args)
        for coreset in args.coresets:
            for fraction in [None] if coreset == "full" else args.fractions:
                method = "full" if coreset == "full" else f"{coreset}_{fraction:g}"
                for seed in args.seeds:
                    out = args.out / f"{dataset}__{method}__seed{seed}.json"
                    jobs.append((cache, method, seed, str(out), settings, command))
        for n_epochs in args.full_epochs:
            for seed in args.seeds:
                out = args.out / f"{dataset}__full_e{n_epochs}__seed{seed}.json"
                jobs.append((cache, f"full_e{n_epochs}", seed, str(out), settings, command))

    def go(job):
        rec = _subprocess(*job)
        name = f"{Path(job[0]).stem} {job[1]} seed {job[2]}"
        if rec is None:
            print(f"{name}: FAILED", flush=True)
        else:
            print(
                f"{name}: match {rec['match_score']:.4f} top1 {rec['top1']:.3f} fit {rec['fit_seconds']:.1f}s"
                f" ({rec['epochs_run']} epochs)",
                flush=True,
            )
        return rec

    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(go, jobs))
    if any(r is None for r in results):
        sys.exit("some runs failed")


if __name__ == "__main__":
    main()
