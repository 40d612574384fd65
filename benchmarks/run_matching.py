"""Matching benchmark (../shared/BENCHMARKS.md): every dataset x method x seed, one JSON record each.

    python benchmarks/run_matching.py --datasets cite multiome totalvi simulated \
        --methods random linear clip scmatch scmatch_alpha0 --seeds 0 1 2

Mapping benchmark: the same runs with each modality's recipe fitted on the reference alone and the query projected
into its space (``reference=``), beside the joint preprocessing, into their own folder:

    python benchmarks/run_matching.py --datasets cite multiome totalvi --methods scmatch linear \
        --seeds 0 1 2 --preprocessing joint mapping --out benchmarks/results/mapping

Each dataset is preprocessed once per preprocessing (``--preprocessing``, default ``joint``: PCA/LSI fitted on
reference + query together; ``mapping``: fitted on the reference, query projected; see ``_data.load_split``). Each
run then goes to a fresh Python subprocess so that its memory is its own. In that process the libraries (numpy,
scipy, torch, scmatch) are imported and the preprocessed arrays loaded first; then the method is fitted on the
reference (``fit_seconds``) and matches the query (``match_seconds``), every method with the same number of threads
(``--threads``, default 1: reproducible timings on a shared machine). Memory: just before fitting, the process's
resident memory is recorded (``rss_before_fit_mb``: interpreter, libraries, data; the same floor for every method)
and the kernel's peak counter is reset (Linux ``/proc/self/clear_refs``); ``peak_rss_mb`` is the peak resident
memory (``VmHWM``) from there to the end of matching, and ``peak_rss_delta_mb = peak_rss_mb - rss_before_fit_mb``
is what fitting and matching added. Where the counter cannot be reset, ``ru_maxrss`` of the whole process is used
instead (``peak_rss_source`` says which). ``--in-process`` runs everything in one process, for debugging only.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]
from _data import DATASETS, PREPROCESSINGS, REPO, MatchingSplit, load_split  # noqa: E402
from _provenance import git_state as _git  # noqa: E402
from _rss import peak_since_reset_mb, reset_peak, status_mb  # noqa: E402

RESULTS = HERE / "results" / "matching"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

# One place for every method's settings. "model" goes to the constructor, "plan" (scmatch: a TrainingPlan) to fit,
# "search" (scmatch: a Search) to the model before fitting (calibration matches with it too), "predict" to
# predict_proba.
_SCMATCH = {"cls": "scmatch.model:MatchModel", "predict": {"matching": "sinkhorn", "top_k": 1000}}
METHODS: dict[str, dict] = {
    "random": {"cls": "baselines:RandomBaseline", "model": {}, "predict": {"top_k": 1000}},
    "linear": {"cls": "baselines:LinearBaseline", "model": {}, "predict": {"top_k": 1000}},
    "clip": {"cls": "baselines:ClipBaseline", "model": {}, "predict": {"top_k": 1000}},
    "scmatch": {**_SCMATCH, "model": {}, "plan": {"progress_bar": False}},
    "scmatch_alpha0": {**_SCMATCH, "model": {"alpha": 0.0}, "plan": {"progress_bar": False}},
    "scmatch_triplet": {**_SCMATCH, "model": {"loss": "triplet"}, "plan": {"progress_bar": False}},
    "scmatch_ms": {**_SCMATCH, "model": {}, "plan": {"calibration": "match_score", "progress_bar": False}},
}
# the cross term in training: every in-batch pair (the design's form) against the default 32 candidates per row
METHODS["scmatch_fullcross"] = {**_SCMATCH, "model": {}, "plan": {"n_cross": None, "progress_bar": False}}
METHODS["scmatch_cross32"] = {**_SCMATCH, "model": {}, "plan": {"n_cross": 32, "progress_bar": False}}
# accuracy ablation (benchmarks/README.md, Accuracy): calibration objective x ensemble size, set explicitly
for _cal, _tag in (("nll", "nll"), ("match_score", "ms")):
    for _k in (1, 3, 5):
        METHODS[f"scmatch_{_tag}_k{_k}"] = {
            **_SCMATCH,
            "model": {"n_models": _k},
            "plan": {"calibration": _cal, "progress_bar": False},
        }
# the cross term with everything else at the defaults (ensemble, match-score calibration)
METHODS["scmatch_ms_k3_alpha0"] = {
    **_SCMATCH,
    "model": {"n_models": 3, "alpha": 0.0},
    "plan": {"calibration": "match_score", "progress_bar": False},
}
# the cross term on each cell's best 50 candidates by i0 . c0 only, when matching (the default: all of them)
METHODS["scmatch_ms_k3_rerank50"] = {
    **_SCMATCH,
    "model": {"n_models": 3},
    "plan": {"calibration": "match_score", "progress_bar": False},
    "search": {"n_cross": 50},
}
# the distance losses (scmatch.experimental), like for like: Wasserstein-1 and Euclidean, triplet and
# InfoNCE/contrastive forms
for _loss in ("winfonce", "wtriplet", "etriplet", "wcontrastive", "econtrastive"):
    METHODS[f"scmatch_{_loss}"] = {
        **_SCMATCH,
        "cls": "scmatch.experimental:DistanceMatchModel",
        "model": {"loss": _loss},
        "plan": {"progress_bar": False},
    }


def _params(model) -> dict:
    """The model's public constructor-like attributes (defaults included) that JSON can hold.

    scmatch's settings are grouped by role (``get_params()``): they are recorded as ``"group.name"``.
    """
    params = model.get_params() if hasattr(model, "get_params") else vars(model)
    params = {
        f"{k}.{name}" if isinstance(v, dict) else k: value
        for k, v in params.items()
        for name, value in (v.items() if isinstance(v, dict) else [(None, v)])
    }
    ok = (str, int, float, bool, type(None), list, tuple)
    return {k: v for k, v in params.items() if not k.startswith("_") and not k.endswith("_") and isinstance(v, ok)}


def _fitted(spec: dict, cls, X1, X2, *, seed: int, unpaired: tuple | None = None):
    """``cls(**spec["model"])`` fitted on the training pairs, with the spec's plan and search (scmatch).

    With ``spec["self_supervision"]``, the encoders are pre-trained on the pairs and the ``unpaired`` cells.
    """
    model = cls(**spec["model"])
    fit_kw = {}
    if "self_supervision" in spec:
        from scmatch.model import SelfSupervision

        fit_kw |= {"unpaired": unpaired, "self_supervision": SelfSupervision(**spec["self_supervision"])}
    if "plan" in spec or "search" in spec:
        from scmatch.model import Search, TrainingPlan

        fit_kw["plan"] = TrainingPlan(**spec.get("plan", {}))
        model.search = Search(**spec.get("search", {}))
    return model.fit(X1, X2, random_state=seed, **fit_kw)


def _method_class(spec: str):
    import importlib

    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


# transductive refinement (benchmarks/README.md, Refinement): a low-rate phase on the reference pairs, with and
# without the query's mutual best matches as pseudo-pairs; match_seconds includes the refinement
METHODS["scmatch_refine"] = {**METHODS["scmatch"], "refine": {}}
METHODS["scmatch_refine_pseudo"] = {**METHODS["scmatch"], "refine": {"pseudo_pairs": True}}
# feature links (benchmarks/README.md, Feature links): the protein-gene prior, weighed on the held-out pairs, as
# tl.match_modalities(links="auto") does; match_seconds includes choosing the weight
METHODS["scmatch_links"] = {**METHODS["scmatch"], "links": True}
# the same without the links' separation test (scmatch.links.MIN_LINK_SEPARATION set to 0): what the held-out
# pairs would choose for links that barely tell a partner from other cells
METHODS["scmatch_links_ungated"] = {**METHODS["scmatch"], "links": "ungated"}
# the default model, the query matched only within each of its batches (libraries), as tl.match_modalities(batch_key=)
METHODS["scmatch_batch"] = {**METHODS["scmatch"], "within_batch": True}
# self-supervised pre-training (benchmarks/README.md, Self-supervision): each network's encoders first learn from
# every cell of the reference and the query, unpaired; fit_seconds includes it
METHODS["scmatch_ssl"] = {**METHODS["scmatch"], "self_supervision": {}}
# both: what tl.match_modalities(self_supervision=True) does with its default links
METHODS["scmatch_links_ssl"] = {**METHODS["scmatch_links"], "self_supervision": {}}
# each cell's log depth as one more input column of each modality, under tl.match_modalities(depth="auto")'s rule
# (benchmarks/README.md, Depth); "forced" adds it whatever the rule says
METHODS["scmatch_depth"] = {**METHODS["scmatch"], "depth": "auto"}
METHODS["scmatch_links_depth"] = {**METHODS["scmatch_links"], "depth": "auto"}
METHODS["scmatch_depth_forced"] = {**METHODS["scmatch"], "depth": True}
METHODS["scmatch_links_depth_forced"] = {**METHODS["scmatch_links"], "depth": True}
# the depth input and matching within each query library (benchmarks/README.md, Within library)
METHODS["scmatch_depth_batch"] = {**METHODS["scmatch_depth"], "within_batch": True}
# five networks instead of three (the step budget is shared, so on references above about 2,500 pairs five cost
# about as much as three; benchmarks/README.md, Ensemble size)
METHODS["scmatch_depth_k5"] = {**METHODS["scmatch_depth"], "model": {"n_models": 5}}
METHODS["scmatch_links_k5"] = {**METHODS["scmatch_links"], "model": {"n_models": 5}}


def _linked_prior(model, split, *, ungated: bool = False, top_k: int = 100) -> tuple[object | None, dict | None]:
    """The feature-link prior of the query and what choosing its weight found (None without links).

    The weight is judged on the held-out pairs matched with the query's ``top_k``, as ``tl.match_modalities`` does.
    """
    import scmatch.links

    if split.L1_train.shape[1] == 0:
        return None, {"weight": 0.0, "reason": "no links"}
    if ungated:
        import scmatch.links._weight

        scmatch.links._weight.MIN_LINK_SEPARATION = 0.0  # this worker process only
    chosen = scmatch.links.choose_weight(
        model, split.X1_train, split.X2_train, split.L1_train, split.L2_train, top_k=top_k
    )
    chosen["top_k"] = top_k
    z1, z2 = scmatch.links.profiles(split.L1_test), scmatch.links.profiles(split.L2_test)
    return scmatch.links.PairPrior(z1, z2, chosen["weight"]), chosen


def _with_depth(split, setting, data: dict) -> tuple[object, dict]:
    """The split with each cell's depth as one more input column of both modalities, and what was decided.

    The column is added where the rule of ``tl.match_modalities(depth=setting)`` adds it (scmatch.tl._depth).
    """
    import dataclasses

    import numpy as np

    from scmatch.tl import _depth

    if not len(split.D1_train):
        return split, {"used": False, "reason": "no raw counts"}
    correlation = _depth.pair_correlation(split.D1_train, split.D2_train)
    chromatin = "recipe_atac X_lsi" in data.get("features", [])
    if setting == "auto" and not chromatin:
        return split, {"used": False, "reason": "no chromatin modality", "correlation": correlation}
    if setting == "auto" and not correlation >= _depth.MIN_DEPTH_CORRELATION:
        return split, {"used": False, "reason": "weak correlation", "correlation": correlation}
    new = {}
    scales = []
    for side in ("1", "2"):
        X_train, X_test = getattr(split, f"X{side}_train"), getattr(split, f"X{side}_test")
        scale = _depth.feature_scale(X_train)
        scales.append(scale)
        for part, X in (("train", X_train), ("test", X_test)):
            values = getattr(split, f"D{side}_{part}")
            centre, spread = _depth.centre_spread(values)  # each set on its own cells, as the package does
            column = ((values - centre) / spread * scale).astype(X.dtype)
            new[f"X{side}_{part}"] = np.hstack([X, column[:, None]])
    return dataclasses.replace(split, **new), {"used": True, "correlation": correlation, "scale": scales}


def run_one(cache: str, dataset: str, method: str, seed: int, out: str, command: str, threads: int) -> dict:
    """Fit, match and score one dataset x method x seed; write the JSON record to ``out``."""
    import numpy as np
    import torch  # imported by every method's process, so the memory floor is the same
    from threadpoolctl import threadpool_limits

    import scmatch.metrics

    torch.set_num_threads(threads)
    threadpool_limits(threads)  # numpy/scipy BLAS and OpenMP

    spec = METHODS[method]
    cls = _method_class(spec["cls"])
    split = MatchingSplit.load(cache).shuffled(seed)
    data = json.loads(split.meta)
    depth = None
    if spec.get("depth"):
        split, depth = _with_depth(split, spec["depth"], data)
    gc.collect()
    rss_before = status_mb("VmRSS") or 0.0
    peak_source = reset_peak()

    t0 = time.perf_counter()
    model = _fitted(spec, cls, split.X1_train, split.X2_train, seed=seed, unpaired=(split.X1_test, split.X2_test))
    t1 = time.perf_counter()
    refinement = links = None
    if "refine" in spec:  # transductive refinement (scmatch.model.refine): match, fine-tune a copy, match again
        from scmatch.model import Refinement, refine

        model, P, refinement = refine(
            model,
            (split.X1_train, split.X2_train),
            (split.X1_test, split.X2_test),
            settings=Refinement(**spec["refine"]),
            predict=spec["predict"],
            random_state=seed,
        )
        refinement = {k: v.tolist() if hasattr(v, "tolist") else v for k, v in refinement.items()}
    else:
        links_spec = spec.get("links")
        top_k = spec["predict"].get("top_k", 100)
        prior, links = (
            _linked_prior(model, split, ungated=links_spec == "ungated", top_k=top_k) if links_spec else (None, None)
        )
        batches = {}
        if spec.get("within_batch"):
            if not len(split.batch_rows):
                raise ValueError(f"{dataset}: the query is a single batch; scmatch_batch needs several")
            batches = {"batch1": split.batch_rows, "batch2": split.batch_cols}
        P = model.predict_proba(
            split.X1_test,
            split.X2_test,
            **spec["predict"],
            **({"prior": prior} if prior is not None else {}),
            **batches,
        )
    t2 = time.perf_counter()
    peak = peak_since_reset_mb(peak_source)

    scmatch.metrics.check_challenge_format(P)
    scores = scmatch.metrics.evaluate(P, split.truth, labels_rows=split.labels_rows, labels_cols=split.labels_cols)
    scores.update(_mixing(model, split))
    nnz = np.diff(P.tocsr().indptr)
    record = {
        "dataset": dataset,
        "method": method,
        "preprocessing": data.get("preprocessing", "joint"),
        "seed": seed,
        "n_train": split.n_train,
        "n_test": split.n_test,
        **{k: float(v) for k, v in scores.items()},
        "chance_match_score": 1.0 / split.n_test,
        "fit_seconds": t1 - t0,
        "match_seconds": t2 - t1,
        "peak_rss_mb": peak,
        "rss_before_fit_mb": rss_before,
        "peak_rss_delta_mb": peak - rss_before,
        "peak_rss_source": peak_source,
        "n_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "max_nnz_per_row": int(nnz.max()),
        "dims": [split.X1_train.shape[1], split.X2_train.shape[1]],
        "data": data,
        "settings": {
            "class": spec["cls"],
            **{k: spec[k] for k in ("model", "plan", "search", "predict", "self_supervision") if k in spec},
            "within_batch": bool(spec.get("within_batch")),
            "refine": spec.get("refine"),
            **({"depth": spec["depth"]} if "depth" in spec else {}),
        },
        **({"refinement": refinement} if refinement is not None else {}),
        **({"links": links} if links is not None else {}),
        **({"depth": depth} if depth is not None else {}),
        "params": _params(model),
        "fitted": getattr(model, "info_", {}),
        "epochs_run": _epochs_run(model),
        **_git(),
        "command": command,
        "python": platform.python_version(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(record, indent=1, default=float) + "\n")
    return record


def _epochs_run(model) -> list[int] | None:
    """Epochs each scmatch network trained for (early stopping); ``None`` for other methods."""
    history = getattr(model, "history_", None)
    if not isinstance(history, dict) or "epoch" not in history:
        return None
    return [int(n) for n in history.get("member_epochs", [len(history["epoch"])])]


def _mixing(model, split) -> dict:
    """Modality mixing and cell-type kNN purity (15 neighbours) of reference + query cells in the joint spaces."""
    import numpy as np

    import scmatch.metrics

    spaces = {"match": getattr(model, "transform", None), "joint": getattr(model, "joint_transform", None)}
    if spaces["match"] is None or getattr(model, "joint_", None) is None:
        return {}
    X1, X2 = np.vstack([split.X1_train, split.X1_test]), np.vstack([split.X2_train, split.X2_test])
    labels1 = np.r_[split.labels_train, split.labels_rows]
    labels2 = np.r_[split.labels_train, split.labels_cols]
    out = {}
    for name, transform in spaces.items():
        emb1, emb2 = transform(X1, modality=1), transform(X2, modality=2)
        out[f"mixing_{name}"] = scmatch.metrics.modality_mixing(emb1, emb2)
        out[f"purity_{name}"] = scmatch.metrics.celltype_knn_purity(emb1, emb2, labels1, labels2)
    return out


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--methods", nargs="+", default=["random", "linear", "clip"], choices=METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--sim-cells", type=int, default=6000, help="total simulated cells, two batches (ref, query)")
    p.add_argument("--n-comps", type=int, default=50, help="PCA components (RNA, protein); ATAC: recipe_atac's")
    p.add_argument(
        "--preprocessing",
        nargs="+",
        choices=PREPROCESSINGS,
        help="joint: PCA/LSI fitted on reference + query (the default); mapping: fitted on the reference, query "
        "projected; *_knn_basis: the same with recipe_atac(basis_neighbors=15). "
        "Given, record names gain it: {dataset}__{method}__{preprocessing}__seed{seed}.json",
    )
    p.add_argument(
        "--gene-annotation",
        nargs="+",
        default=[],
        metavar="DATASET=PATH",
        help="a BED or GTF of gene coordinates per RNA + ATAC dataset, for peak-gene links (method scmatch_links)",
    )
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--threads", type=int, default=1, help="CPU threads per run (torch and BLAS), same for all")
    p.add_argument(
        "--scale-names",
        action="store_true",
        help="name simulated records simulated_{cells per side}, as the peers' scale rows (benchmarks/peers)",
    )
    p.add_argument("--in-process", action="store_true", help="no subprocess per run (memory numbers not per run)")
    p.add_argument("--worker", nargs=5, metavar=("CACHE", "DATASET", "METHOD", "SEED", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--command", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        cache, dataset, method, seed, out = args.worker
        run_one(cache, dataset, method, int(seed), out, args.command, args.threads)
        return

    command = "python benchmarks/run_matching.py " + " ".join(argv)
    annotations = dict(item.split("=", 1) for item in args.gene_annotation)
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset, prep in [(d, p) for d in args.datasets for p in args.preprocessing or ["joint"]]:
            if prep == "mapping" and DATASETS[dataset][3] == "features":
                print(f"{dataset}: ready-made features, nothing fitted: mapping = joint; skipped", flush=True)
                continue
            t0 = time.perf_counter()
            split = load_split(
                dataset,
                n_comps=args.n_comps,
                n_sim_cells=args.sim_cells,
                preprocessing=prep,
                gene_annotation=annotations.get(dataset),
            )
            cache = str(Path(tmp) / f"{dataset}__{prep}.npz")
            split.save(cache)
            print(
                f"{dataset} ({prep}): train {split.n_train}, query {split.n_test}, dims {split.X1_train.shape[1]}"
                f" -> {split.X2_train.shape[1]} (preprocessed in {time.perf_counter() - t0:.1f}s)",
                flush=True,
            )
            if dataset == "simulated" and min(split.n_train, split.n_test) < 2500:
                print("  note: a simulated batch has fewer than 2500 cells; raise --sim-cells", flush=True)
            # the default matching records keep their names; with --preprocessing given, the name carries it
            tag = f"__{prep}" if args.preprocessing else ""
            # --scale-names: the peers' scale rows name a simulated set by its cells per side
            name = f"simulated_{split.n_test}" if args.scale_names and dataset == "simulated" else dataset
            for method in args.methods:
                for seed in args.seeds:
                    out = args.out / f"{name}__{method}{tag}__seed{seed}.json"
                    job = (cache, name, method, seed, str(out), command, args.threads)
                    rec = run_one(*job) if args.in_process else _run_subprocess(*job)
                    if rec is None:
                        failed.append(out.stem)
                    label = f"{method}/{prep}" if args.preprocessing else method
                    print(f"  {label:>16} seed {seed}: " + (_summary(rec) if rec else "FAILED"), flush=True)
    if failed:
        sys.exit(f"{len(failed)} runs failed: {', '.join(failed)}")


def _run_subprocess(cache: str, dataset: str, method: str, seed: int, out: str, command: str, threads: int):
    """Run one job in a fresh interpreter (own memory, own thread settings); None if it failed."""
    pythonpath = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, **dict.fromkeys(THREAD_VARS, str(threads))}
    cmd = [sys.executable, __file__, "--worker", cache, dataset, method, str(seed), out]
    Path(out).unlink(missing_ok=True)
    proc = subprocess.run([*cmd, "--threads", str(threads), "--command", command], env=env, check=False)
    return json.loads(Path(out).read_text()) if proc.returncode == 0 else None


def _summary(rec: dict) -> str:
    return (
        f"match {rec['match_score']:.4f} top1 {rec['top1']:.3f} top10 {rec['top10']:.3f}"
        f" foscttm {rec['foscttm']:.3f} ct-mass {rec['celltype_mass']:.3f} fit {rec['fit_seconds']:.2f}s"
        f" match {rec['match_seconds']:.2f}s peak {rec['peak_rss_mb']:.0f}MB (+{rec['peak_rss_delta_mb']:.0f})"
    )


if __name__ == "__main__":
    main()
