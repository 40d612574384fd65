"""Prototype (issue 30): which rule should choose the label vote's temperature on a small reference?

``tl.transfer_labels(temperature="auto")`` chooses the vote's temperature on the match's held-out reference pairs
(the negative log-likelihood of their known labels) when there are at least ``MIN_HELD_OUT_PAIRS`` of them, else
by the round trip over the source labels. The records here were made with the threshold at 200 (the default then;
the curves do not depend on it), and they are why it is 50 now. This script records, for every temperature of the
grid, the query's label accuracy, balanced accuracy, expected calibration error, mean confidence and the
log-likelihood of the true labels, with both rules' curves (held-out NLL, round-trip NLL) and the count of held-out
pairs, so that any rule choosing a temperature from those curves can be scored
exactly, offline, on the same matches (``--rules`` prints the comparison). The matches are those of
``run_transfer.py`` (same preparation, default model, same seeds)::

    python benchmarks/prototypes/temperature_rules.py --datasets cite totalvi multiome snare2_mop --seeds 0 1 2 \
        --out benchmarks/results/temperature_rules
    python benchmarks/prototypes/temperature_rules.py --rules --out benchmarks/results/temperature_rules
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

import run_transfer  # noqa: E402
from _provenance import git_state  # noqa: E402


def curves(name: str, seed: int) -> dict:
    """Match one set with one seed as run_transfer.py does; the scores at every temperature and both rules' NLL."""
    import torch

    import scmatch as scm
    from scmatch.tl._held_out import held_out_vote
    from scmatch.tl._transfer import _match_weights
    from scmatch.tl._vote import NLL_FLOOR, TEMPERATURE_GRID, choose_temperature, choose_temperature_held_out

    torch.manual_seed(seed)
    mdata, mod2, _ = run_transfer.prepare(name, seed)
    model = scm.model.MatchModel()
    model.plan = scm.model.TrainingPlan(progress_bar=False)
    scm.tl.match_modalities(
        mdata, mod1="rna", mod2=mod2, reference="is_reference", batch_key="batch", model=model, random_state=seed
    )
    ad2 = mdata[mod2]
    q2 = ~ad2.obs["is_reference"].to_numpy(bool)
    truth = ad2.obs["cell_type"].to_numpy()[q2].astype(str)
    weights = _match_weights(mdata, key="match", source="rna", target=mod2)
    source = mdata["rna"].obs["cell_type"].astype(str).reindex(weights.source_names).to_numpy()
    out = {"grid": list(TEMPERATURE_GRID), "round_trip_nll": choose_temperature(weights.B, source)["round_trip_nll"]}
    vote = held_out_vote(mdata, key="match", source="rna", target=mod2, labels_key="cell_type")
    out["held_out_pairs"] = 0 if vote is None else len(vote.truth)
    if vote is not None:
        out["held_out_nll"] = choose_temperature_held_out(vote.B, vote.source_labels, vote.truth)["held_out_nll"]
    for field in ("accuracy", "balanced_accuracy", "ece", "mean_confidence", "nll"):
        out[field] = []
    for t in TEMPERATURE_GRID:
        scm.tl.transfer_labels(mdata, "cell_type", source="rna", target=mod2, temperature=t, key_added="t")
        pred = ad2.obs["t"].to_numpy()[q2].astype(str)
        conf = ad2.obs["t_confidence"].to_numpy()[q2].astype(float)
        scores = run_transfer.label_scores(pred, truth)
        out["accuracy"].append(scores["label_accuracy"])
        out["balanced_accuracy"].append(scores["label_balanced_accuracy"])
        out["ece"].append(run_transfer.ece(conf, pred == truth))
        out["mean_confidence"].append(float(np.mean(conf)))
        # the log-likelihood of the true labels (a proper score of the whole vote, not only of its top label)
        masses = ad2.obsm["t_probabilities"].iloc[np.flatnonzero(q2)]
        codes = masses.columns.get_indexer(truth)
        mass = np.where(codes >= 0, masses.to_numpy()[np.arange(len(truth)), np.maximum(codes, 0)], 0.0)
        out["nll"].append(float(np.mean(-np.log(np.maximum(mass, NLL_FLOOR)))))
    return {k: [float(x) for x in v] if isinstance(v, list) else v for k, v in out.items()}


#: candidate rules: the index of the grid's temperature each chooses from one record
def _ho(r):
    return int(np.argmin(r["held_out_nll"]))


def _rt(r):
    return int(np.argmin(r["round_trip_nll"]))


def _threshold(n: int):
    return lambda r: _ho(r) if r["held_out_pairs"] >= n else _rt(r)


def _blend(n0: float):
    def rule(r):
        if not r["held_out_pairs"]:
            return _rt(r)
        w = r["held_out_pairs"] / (r["held_out_pairs"] + n0)
        return int(np.argmin(w * np.asarray(r["held_out_nll"]) + (1 - w) * np.asarray(r["round_trip_nll"])))

    return rule


RULES = {
    "threshold200 (today)": _threshold(200),
    "threshold50": _threshold(50),
    "held_out always": _ho,
    "round_trip always": _rt,
    "blend n0=200": _blend(200),
    "blend n0=100": _blend(100),
    "softer of the two": lambda r: max(_ho(r), _rt(r)),
}


def compare(folder: Path) -> None:
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    sets = sorted({r["dataset"] for r in records})
    print("per set: accuracy, ECE, mean confidence - accuracy, NLL of the true labels; mean: accuracy, ECE")
    print(f"{'rule':<22}" + "".join(f"{s:>26}" for s in sets) + f"{'mean':>16}")
    for name, rule in RULES.items():
        row, accs, eces = [], [], []
        for s in sets:
            rs = [r for r in records if r["dataset"] == s]
            idx = [rule(r) for r in rs]
            acc = np.mean([r["accuracy"][i] for r, i in zip(rs, idx, strict=True)])
            e = np.mean([r["ece"][i] for r, i in zip(rs, idx, strict=True)])
            over = np.mean([r["mean_confidence"][i] - r["accuracy"][i] for r, i in zip(rs, idx, strict=True)])
            nll = np.mean([r["nll"][i] for r, i in zip(rs, idx, strict=True)]) if "nll" in rs[0] else np.nan
            accs.append(acc)
            eces.append(e)
            row.append(f"{acc:.3f} {e:.3f} {over:+.3f} {nll:.2f}")
        print(f"{name:<22}" + "".join(f"{c:>26}" for c in row) + f"  {np.mean(accs):.3f} {np.mean(eces):.3f}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["cite", "totalvi", "multiome", "snare2_mop"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rules", action="store_true", help="compare the rules on the records in --out")
    p.add_argument("--out", type=Path, default=HERE.parent / "results" / "temperature_rules")
    args = p.parse_args(argv)
    if args.rules:
        compare(args.out)
        return

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    command = "python benchmarks/prototypes/temperature_rules.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for name in args.datasets:
        for seed in args.seeds:
            t0 = time.perf_counter()
            record = {"dataset": name, "method": "scmatch", "seed": seed, **curves(name, seed)}
            record.update(git_state(), command=command, python=platform.python_version(), threads=args.threads)
            record["n_cores"], record["timestamp"] = os.cpu_count(), time.strftime("%Y-%m-%dT%H:%M:%S%z")
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{name}__scmatch__seed{seed}.json").write_text(json.dumps(record, indent=1) + "\n")
            print(f"{name} seed {seed}: {record['held_out_pairs']} held-out pairs, {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
