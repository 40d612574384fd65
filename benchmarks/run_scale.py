"""Scale benchmark: seconds per epoch, match seconds, peak RSS and accuracy for N = M = 1k ... 100k cells.

    python benchmarks/run_scale.py --sizes 1000 10000 50000 100000 --epochs 5
    python benchmarks/run_scale.py --plot            # growth curves from the JSON records -> scale.png

Each size runs in a fresh one-thread-per-library process: ``simulate_multiome(2 N)`` (two batches), the RNA and
ATAC recipes on all cells, then every method learns on batch0 (about N pairs) and matches batch1 (about N x N,
mod2 rows shuffled with a seeded permutation). Methods: ``scmatch`` (MatchModel with a fixed number of epochs
and no early stopping, so the epoch count is the same at every size; top_k = 100, Sinkhorn on the candidate
support), ``scmatch_ann`` (the same fitted model matching with pynndescent candidates; the first call
includes numba's compilation) and the ``linear`` baseline (ridge + cosine +
softmax, computed in row chunks so it fits at every size). Peak RSS is sampled every 20 ms per stage; the
process peak includes the simulated counts, which every method shares.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]
from _data import REPO  # noqa: E402
from _provenance import git_state as _git  # noqa: E402
from _rss import StagePeaks, max_rss_mb  # noqa: E402

RESULTS = HERE / "results" / "scale"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
METHODS = ("scmatch", "scmatch_ann", "linear")


def _prepare(n: int, seed: int, peaks: StagePeaks):
    import scmatch as scm

    with peaks.stage("simulate"):
        mdata = scm.datasets.simulate_multiome(2 * n, n_batches=2, random_state=seed)
    with peaks.stage("preprocess"):
        scm.pp.recipe_rna(mdata, mod="rna")
        scm.pp.recipe_atac(mdata, mod="atac")
    batch = mdata["rna"].obs["batch"].astype(str).to_numpy()
    X1, X2 = mdata["rna"].obsm["X_pca"], mdata["atac"].obsm["X_lsi"]
    ref, query = batch == "batch0", batch == "batch1"
    labels = mdata["rna"].obs["cell_type"].astype(str).to_numpy()
    perm = np.random.default_rng([seed, 20211206]).permutation(int(query.sum()))
    split = {
        "X1_train": np.ascontiguousarray(X1[ref]),
        "X2_train": np.ascontiguousarray(X2[ref]),
        "X1_test": np.ascontiguousarray(X1[query]),
        "X2_test": np.ascontiguousarray(X2[query][perm]),
        "labels_rows": labels[query],
        "labels_cols": labels[query][perm],
        "truth": np.argsort(perm),
    }
    del mdata
    return split


def run_size(n: int, methods: list[str], epochs: int, seed: int, out_dir: Path, command: str) -> None:
    """Simulate, preprocess, then fit and match each method; one JSON record per method."""
    import torch
    from threadpoolctl import threadpool_limits

    import scmatch.metrics
    from scmatch.model import MatchModel, Search, TrainingPlan

    torch.set_num_threads(1)
    threadpool_limits(1)
    peaks = StagePeaks()
    s = _prepare(n, seed, peaks)
    shared = {k: peaks.seconds[k] for k in ("simulate", "preprocess")}
    fitted = None
    for method in methods:
        if method == "linear":
            from baselines import LinearBaseline

            model = LinearBaseline()
            with peaks.stage(f"{method}_fit"):
                model.fit(s["X1_train"], s["X2_train"], random_state=seed)
            with peaks.stage(f"{method}_match"):
                P = model.predict_proba(s["X1_test"], s["X2_test"], top_k=100)
            epoch_info = {}
        else:
            if method == "scmatch_ann" and fitted is not None:  # the same fitted model, approximate candidates
                model = copy.copy(fitted)
                model.search = Search(method="pynndescent")
                peaks.seconds[f"{method}_fit"] = peaks.seconds["scmatch_fit"]
                peaks.peak_mb[f"{method}_fit"] = peaks.peak_mb["scmatch_fit"]
            else:
                model = MatchModel()
                if method == "scmatch_ann":
                    model.search = Search(method="pynndescent")
                plan = TrainingPlan(max_epochs=epochs, patience=epochs, progress_bar=False)
                with peaks.stage(f"{method}_fit"):
                    model.fit(s["X1_train"], s["X2_train"], plan=plan, random_state=seed)
                if method == "scmatch":
                    fitted = model
            with peaks.stage(f"{method}_match"):
                P = model.predict_proba(s["X1_test"], s["X2_test"], matching="sinkhorn", top_k=100)
            h = model.history_
            epoch_info = {
                "epochs_run": len(h["epoch"]),
                "seconds_per_epoch": float(np.mean(h["seconds"])),
                "validation_seconds_per_epoch": float(np.mean(h["val_seconds"])) if h["val_seconds"] else 0.0,
                "calibration_seconds": float(h["calibration_seconds"]),
            }
        with peaks.stage(f"{method}_score"):
            scores = scmatch.metrics.evaluate(P, s["truth"], labels_rows=s["labels_rows"], labels_cols=s["labels_cols"])
        record = {
            "dataset": f"simulated_{n}",
            "method": method,
            "seed": seed,
            "n_train": len(s["X1_train"]),
            "n_test": len(s["X1_test"]),
            **{k: float(v) for k, v in scores.items()},
            "fit_seconds": peaks.seconds[f"{method}_fit"],
            "match_seconds": peaks.seconds[f"{method}_match"],
            **epoch_info,
            "nnz": int(P.nnz),
            "fit_peak_rss_mb": peaks.peak_mb[f"{method}_fit"],
            "match_peak_rss_mb": peaks.peak_mb[f"{method}_match"],
            "match_rss_added_mb": peaks.peak_mb[f"{method}_match"] - peaks.start_mb[f"{method}_match"],
            "peak_rss_mb": max_rss_mb(),
            "simulate_seconds": shared["simulate"],
            "preprocess_seconds": shared["preprocess"],
            "preprocess_peak_rss_mb": peaks.peak_mb["preprocess"],
            "settings": {"epochs": epochs, "top_k": 100, "matching": "sinkhorn"} if method != "linear" else {},
            "n_cores": os.cpu_count(),
            "torch_threads": 1,
            "command": command,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **_git(),
        }
        out = out_dir / f"simulated_{n}__{method}__seed{seed}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1, default=float) + "\n")
        print(
            f"N={n} {method}: match {record['match_score']:.4f} top1 {record['top1']:.3f}"
            f" fit {record['fit_seconds']:.0f}s match {record['match_seconds']:.0f}s"
            f" peak {record['peak_rss_mb']:.0f} MB",
            flush=True,
        )
        del P, model
    peaks.close()


def plot(out_dir: Path) -> Path:
    """Growth curves (seconds per epoch, match seconds, peak RSS, match score vs N) from the JSON records."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(p.read_text()) for p in sorted(out_dir.glob("*.json"))]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    panels = [
        ("seconds_per_epoch", "seconds per training epoch"),
        ("match_seconds", "match seconds"),
        ("match_peak_rss_mb", "peak RSS while matching (MB)"),
        ("match_score", "match score"),
    ]
    for method in METHODS:
        rows = sorted((r for r in records if r["method"] == method), key=lambda r: r["n_test"])
        if not rows:
            continue
        n = [r["n_test"] for r in rows]
        for ax, (key, title) in zip(axes, panels, strict=True):
            if key == "seconds_per_epoch" and method == "scmatch_ann":
                continue  # the same fitted model as scmatch
            pts = [(x, r[key]) for x, r in zip(n, rows, strict=True) if key in r]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=method)
            ax.set(xscale="log", yscale="log", title=title, xlabel="cells per modality (N = M)")
    chance = sorted({r["n_test"] for r in records})
    axes[3].plot(chance, [1 / x for x in chance], ls=":", color="grey", label="chance (1/N)")
    axes[0].legend(frameon=False)
    axes[3].legend(frameon=False)
    fig.tight_layout()
    path = HERE / "scale.png"
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        n, methods, epochs, seed, out_dir, command = argv[1:7]
        run_size(int(n), methods.split(","), int(epochs), int(seed), Path(out_dir), command)
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000, 50000, 100000])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--plot", action="store_true", help="only draw scale.png from existing records")
    args = p.parse_args(argv)
    if not args.plot:
        command = "python benchmarks/run_scale.py " + " ".join(argv)
        env = {**os.environ, **dict.fromkeys(THREAD_VARS, "1")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
        for n in args.sizes:
            cmd = [sys.executable, __file__, "--worker", str(n), ",".join(args.methods), str(args.epochs)]
            cmd += [str(args.seed), str(args.out), command]
            if subprocess.run(cmd, env=env, check=False).returncode != 0:
                sys.exit(f"size {n} failed")
    print(f"wrote {plot(args.out)}")


if __name__ == "__main__":
    main()
