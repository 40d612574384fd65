"""Tune the defaults of ``scmatch.model.MatchModel`` on the CITE starter (protocol of ../shared/BENCHMARKS.md).

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        python benchmarks/tune_scmatch.py --dataset cite --grid screen --seeds 0

Reference = batch s1d1, query = batch s1d2; reference + query are preprocessed jointly with the scmatch recipes
(``recipe_rna`` -> X_pca, ``recipe_protein`` / ``recipe_atac`` -> X_pca / X_lsi). Each config is fitted on the
reference and scored on the query (truth = identity: query rows and columns in the same order). One JSON line per
config x seed x matching is appended to ``--out`` (default /tmp/tune_scmatch.jsonl).

Prototypes of code changes (``variant`` key of a config), applied by monkeypatching, never by editing src/:

- ``zscore``: per-feature standardisation instead of one global scale per modality;
- ``nopos``: (reserved) nothing else is patched unless named here.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = Path(os.environ.get("SCMATCH_DATA", REPO / ".." / "shared" / "data")).resolve()
CACHE = Path("/tmp/tune_scmatch_cache")
FILES = {"cite": ("bmmc_cite_starter.h5mu", "adt"), "multiome": ("bmmc_multiome_starter.h5mu", "atac")}


def load(dataset: str, *, n_comps: int = 50, n_top_genes: int = 2000, n_comps2: int | None = None) -> dict:
    """Preprocess reference (s1d1) + query (s1d2) jointly; cached in /tmp."""
    n_comps2 = n_comps if n_comps2 is None else n_comps2
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"{dataset}_{n_comps}_{n_top_genes}_{n_comps2}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return dict(z)
    import mudata

    import scmatch.pp

    fname, mod2 = FILES[dataset]
    mdata = mudata.read_h5mu(DATA / fname)
    batch = mdata.obs["batch"].astype(str).to_numpy()
    keep = np.isin(batch, ["s1d1", "s1d2"])
    mdata = mdata[keep].copy()
    batch = batch[keep]
    n_genes = mdata.mod["rna"].n_vars
    scmatch.pp.recipe_rna(mdata, mod="rna", n_top_genes=min(n_top_genes, n_genes), n_comps=n_comps)
    if mod2 == "adt":
        scmatch.pp.recipe_protein(mdata, mod="adt", n_comps=n_comps2)
        X2 = mdata.mod["adt"].obsm["X_pca"]
    else:
        scmatch.pp.recipe_atac(mdata, mod="atac", n_comps=n_comps2)
        X2 = mdata.mod["atac"].obsm["X_lsi"]
    X1 = np.asarray(mdata.mod["rna"].obsm["X_pca"], dtype=np.float32)
    X2 = np.asarray(X2, dtype=np.float32)
    ct = mdata.obs["cell_type"].astype(str).to_numpy()
    ref, qry = batch == "s1d1", batch == "s1d2"
    out = {
        "X1_ref": X1[ref],
        "X2_ref": X2[ref],
        "X1_q": X1[qry],
        "X2_q": X2[qry],
        "ct_q": ct[qry].astype(str),
    }
    np.savez(path, **out)
    return out


# ---------------------------------------------------------------------------------------------- prototypes
def _patch_attend() -> None:
    """Shim for a keyword mismatch in src (``_attend(..., own_first=)`` vs its parameter ``first``)."""
    from scmatch.model.nn._modules import CrossAttentionMatcher

    params = inspect.signature(CrossAttentionMatcher._attend).parameters
    if "own_first" in params or getattr(CrossAttentionMatcher, "_tune_patched", False):
        return
    original = CrossAttentionMatcher._attend

    def _attend(self, *args, own_first=None, first=None, **kw):
        return original(self, *args, first=own_first if first is None else first, **kw)

    CrossAttentionMatcher._attend = _attend
    CrossAttentionMatcher._tune_patched = True


def _zscore(X):
    mean, sd = X.mean(axis=0), X.std(axis=0)
    return mean.astype(np.float32), np.maximum(sd, 1e-6).astype(np.float32)


def apply_variant(variant: str | None):
    """Monkeypatch ``scmatch.model._fit`` for a prototype; returns an undo callable.

    ``calib_ms`` (the match-score calibration) became the default (``TrainingPlan(calibration="match_score")``); it
    is accepted and changes nothing.
    """
    import scmatch.model._fit as fit

    saved = fit.standardization
    if variant in (None, ""):
        return lambda: None
    for v in variant.split("+"):
        if v == "zscore":
            fit.standardization = _zscore
        elif v != "calib_ms":
            raise ValueError(f"unknown variant {v!r}")

    def undo():
        fit.standardization = saved

    return undo


# ---------------------------------------------------------------------------------------------- one run
ORACLE = True


def _oracle(model, data: dict) -> dict:
    """Diagnostic only (uses the query truth): sinkhorn match score and cell-type mass at fixed temperatures."""
    import scmatch.metrics
    from scmatch.model.solvers._matching import sinkhorn_dense

    sim = model.similarity(data["X1_q"], data["X2_q"], n_candidates=data["X2_q"].shape[0]).toarray()
    curve = {}
    for tau in TAU_SWEEP:
        P = sinkhorn_dense(sim, temperature=tau)
        ct = scmatch.metrics.celltype_mass(P, data["ct_q"], data["ct_q"])
        curve[f"{tau:.3g}"] = (float(np.mean(np.diag(P))), float(ct))
    best = max(curve.items(), key=lambda kv: kv[1][0])
    return {"oracle_ms": best[1][0], "oracle_tau": float(best[0]), "tau_curve": curve}


TAU_SWEEP = (0.003, 0.01, 0.02, 0.03, 0.05, 0.08)


def run(data: dict, settings: dict, seed: int, matchings=("sinkhorn",)) -> list[dict]:
    import torch

    import scmatch.metrics
    from scmatch.model import MatchModel
    from scmatch.model._legacy import from_flat

    settings = dict(settings)
    variant = settings.pop("variant", None)
    settings.pop("data", None)
    undo = apply_variant(variant)
    try:
        t0 = time.perf_counter()
        grouped = from_flat({**settings, "progress_bar": False, "device": "cpu"})  # the sweep's flat names
        model = MatchModel(**grouped.model)
        model.search = grouped.search
        model.fit(data["X1_ref"], data["X2_ref"], plan=grouped.plan, random_state=seed)
        fit_s = time.perf_counter() - t0
        truth = np.arange(data["X1_q"].shape[0])
        oracle = _oracle(model, data) if ORACLE else {}
        out = []
        for matching in matchings:
            t1 = time.perf_counter()
            P = model.predict_proba(data["X1_q"], data["X2_q"], matching=matching)
            match_s = time.perf_counter() - t1
            sc = scmatch.metrics.evaluate(P, truth, labels_rows=data["ct_q"], labels_cols=data["ct_q"])
            out.append(
                {
                    "matching": matching,
                    "match_score": float(sc["match_score"]),
                    "top1": float(sc["top1"]),
                    "top5": float(sc["top5"]),
                    "foscttm": float(sc["foscttm"]),
                    "celltype_mass": float(sc["celltype_mass"]),
                    "fit_seconds": fit_s,
                    "match_seconds": match_s,
                    "best_epoch": model.history_["best_epoch"],
                    "n_epochs": len(model.history_["epoch"]),
                    "tau": model.temperature_,
                    "torch_threads": torch.get_num_threads(),
                    **oracle,
                }
            )
    finally:
        undo()
    return out


# ---------------------------------------------------------------------------------------------- grids
BASE = {
    "loss": "infonce",
    "n_tokens": 4,
    "batch_size": 128,
}


def _grid(name: str) -> list[dict]:
    b = BASE
    if name == "screen":
        return [
            dict(b),
            {**b, "alpha": 0.0},
            {**b, "batch_size": 311},
            {**b, "validation_fraction": 0.2},
            {**b, "temperature": 0.05},
            {**b, "temperature": 0.2},
            {**b, "d_model": 32, "d_embed": 32},
            {**b, "dropout": 0.3},
            {**b, "noise": 0.3},
            {**b, "weight_decay": 1e-2},
            {**b, "variant": "zscore"},
            {**b, "data": "pc20"},
        ]
    raise ValueError(name)


def _batch_center(data: dict, *, scale: bool) -> dict:
    """Centre (and optionally scale per feature) the reference and the query each with its own statistics."""
    out = dict(data)
    for a, b in (("X1_ref", "X1_q"), ("X2_ref", "X2_q")):
        for k in (a, b):
            X = data[k] - data[k].mean(axis=0)
            if scale:
                X = X / np.maximum(data[k].std(axis=0), 1e-6) * data[a].std(axis=0)
            out[k] = X.astype(np.float32)
    return out


def _data_for(dataset: str, key: str | None) -> dict:
    if key and key.startswith("bc_"):  # per-batch centring (and "bz_": per-batch z-score) of the inputs
        return _batch_center(_data_for(dataset, key[3:]), scale=False)
    if key and key.startswith("bz_"):
        return _batch_center(_data_for(dataset, key[3:]), scale=True)
    if key in (None, "", "pc50"):
        return load(dataset)
    if key.startswith("pc"):  # "pc20": 20 RNA PCs, 50 mod2 comps; "pc20_10": 20 RNA PCs, 10 mod2 comps
        n1, _, n2 = key[2:].partition("_")
        return load(dataset, n_comps=int(n1), n_comps2=int(n2 or 50))
    if key.startswith("hvg"):
        return load(dataset, n_top_genes=int(key[3:]))
    raise ValueError(key)


def summarize(path: str) -> None:
    """Print mean and sd over seeds of every (dataset, settings, matching) in the JSON lines file."""
    groups: dict = {}
    for line in Path(path).read_text().splitlines():
        r = json.loads(line)
        key = (r["dataset"], json.dumps(r["settings"], sort_keys=True), r["matching"])
        groups.setdefault(key, []).append(r)
    for (dataset, settings, matching), rs in groups.items():
        cols = []
        for f in ("match_score", "top1", "celltype_mass", "foscttm", "fit_seconds"):
            v = np.array([r[f] for r in rs])
            cols.append(f"{f}={v.mean():.4f}+-{v.std(ddof=1) if len(v) > 1 else 0:.4f}")
        print(f"| {dataset} | {settings} | {matching} | n={len(rs)} | " + " | ".join(cols) + " |")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="cite", choices=list(FILES))
    p.add_argument("--grid", default="screen")
    p.add_argument("--configs", default=None, help="JSON list of settings dicts (instead of --grid)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--matchings", nargs="+", default=["sinkhorn"])
    p.add_argument("--out", default="/tmp/tune_scmatch.jsonl")
    p.add_argument("--tag", default="")
    p.add_argument("--summary", action="store_true", help="only summarise --out")
    args = p.parse_args(argv)
    if args.summary:
        summarize(args.out)
        return
    import torch

    torch.set_num_threads(1)
    _patch_attend()
    configs = json.loads(args.configs) if args.configs else _grid(args.grid)
    for cfg in configs:
        data = _data_for(args.dataset, cfg.get("data"))
        for seed in args.seeds:
            try:
                recs = run(data, cfg, seed, args.matchings)
            except Exception as err:
                print(f"FAILED {cfg} seed {seed}: {err!r}", flush=True)
                continue
            for r in recs:
                rec = {"dataset": args.dataset, "tag": args.tag, "settings": cfg, "seed": seed, **r}
                with open(args.out, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                print(
                    f"{json.dumps(cfg):<90} s{seed} {r['matching']:<10} ms={r['match_score']:.4f} "
                    f"top1={r['top1']:.3f} ct={r['celltype_mass']:.3f} fos={r['foscttm']:.3f} "
                    f"fit={r['fit_seconds']:.1f}s ep={r['best_epoch']}/{r['n_epochs']} "
                    f"tau={r['tau'].get('sinkhorn', 0):.3g} "
                    f"orc={r.get('oracle_ms', 0):.4f}@{r.get('oracle_tau') or 0:.3g}"
                    + (" curve " + " ".join(f"{t}:{a:.3f}/{b:.2f}" for t, (a, b) in r["tau_curve"].items()))
                    * ("tau_curve" in r and r["matching"] == args.matchings[0]),
                    flush=True,
                )


if __name__ == "__main__":
    main()
