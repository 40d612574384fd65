"""Peers side by side: MaxFuse, moscot and Pamona through the matching protocol (../shared/BENCHMARKS.md).

    bash benchmarks/peers/setup_venv.sh                       # once: the peers' own virtual environment
    python benchmarks/peers/run_peers.py --datasets cite totalvi --methods maxfuse moscot_gw --seeds 0 1 2
    python benchmarks/peers/run_peers.py --datasets simulated --sim-cells 2000 --methods pamona --seeds 0
    python benchmarks/make_table.py peers

This script runs in scmatch's environment; every peer runs in ``benchmarks/peers/.venv`` (``peer_runner.py``), so
that JAX, igraph, leidenalg, numba, POT, ... never enter scmatch's runtime. For each dataset the split is made once
by ``_data.load_split`` (the same preprocessing as ``run_matching.py``: RNA PCA, ATAC LSI, protein CLR-PCA, fitted
on reference + query) and saved with ``MatchingSplit.save``. For CITE-seq sets it adds the linked features MaxFuse
and moscot's fused term use: the log-normalised RNA (counts per 10k, log1p) of each gene coding a measured protein
and that protein's CLR value (``scmatch.pp.clr``, per cell), one column per pair listed in
``protein_gene_links.csv``; for an RNA + ATAC set given ``--gene-annotation DATASET=PATH`` (a BED or GTF of gene
coordinates), each gene linked to the peaks near it (``scmatch.links.peak_gene_links``) with its log-normalised RNA
and its ATAC gene activity, under the same keys. For each seed the query is shuffled (``MatchingSplit.shuffled``)
and the arrays a peer may see (reference pairs, query, linked features; never the pairing nor labels) go to the
peer's process, a fresh one per run, one thread per library. The peer writes back ``P`` (query mod1 x query mod2);
it is checked against the challenge format and scored here with ``scmatch.metrics.evaluate``; one JSON record per
dataset x method x seed goes to ``benchmarks/results/peers/`` in ``run_matching.py``'s schema (plus what the peer
was given, its settings and warnings). A run that fails, or that does not apply (no linked features), writes a
record with an ``error`` field. A run is stopped past ``--max-minutes`` or ``--max-rss-gb`` of resident memory.

``--sim-cells`` is the total number of simulated cells (two batches); the dataset is called ``simulated`` at the
issue's 2000 (1000 per side) and ``simulated_{per side}`` otherwise (the scale rows).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
sys.path[:0] = [str(BENCH)]
from _data import DATASETS, MatchingSplit, data_dir, load_split  # noqa: E402
from run_scale import _git  # noqa: E402

RESULTS = BENCH / "results" / "peers"
VENV_PYTHON = HERE / ".venv" / "bin" / "python"
LINKS = HERE / "protein_gene_links.csv"
PEER_METHODS = (
    "maxfuse",
    "maxfuse_ridge",
    "moscot_gw",
    "moscot_gw_eps1e-2",
    "moscot_fgw_linked",
    "moscot_fgw_ridge",
    "pamona",
    "pamona_ref",
)
LINKED = {"maxfuse", "moscot_fgw_linked"}  # need gene <-> protein links (CITE-seq sets)
# report cold (just-in-time compilation: numba for MaxFuse, XLA for moscot) and warm fits
REPEAT = {
    m: 2
    for m in ("maxfuse", "maxfuse_ridge", "moscot_gw", "moscot_gw_eps1e-2", "moscot_fgw_linked", "moscot_fgw_ridge")
}
THREADS = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "JAX_PLATFORMS": "cpu",
}


def _dataset_label(name: str, sim_cells: int) -> str:
    return name if name != "simulated" or sim_cells == 2000 else f"simulated_{sim_cells // 2}"


def linked_features(name: str, split: MatchingSplit) -> dict[str, np.ndarray]:
    """RNA (log-normalised) of the genes coding the measured proteins and the proteins' CLR, per linked pair.

    Cells are in the split's order (reference, then query in paired order); the batches are chosen as in
    ``_data.load_split`` and the cell types are checked against the split's.
    """
    import mudata
    import scipy.sparse as sp

    import scmatch.pp

    file, mod1, mod2, _, train_batch, test_batch = DATASETS[name]
    mdata = mudata.read_h5mu(data_dir() / file)
    rna, adt = mdata.mod[mod1], mdata.mod[mod2].copy()
    obs = mdata.obs if {"batch", "cell_type"} <= set(mdata.obs.columns) else rna.obs
    batch = obs["batch"].astype(str).to_numpy()
    if train_batch is None:
        train_batch, test_batch = sorted(set(batch))[:2]
    is_train, is_test = batch == train_batch, batch == test_batch
    labels = obs["cell_type"].astype(str).to_numpy()
    if not (
        np.array_equal(labels[is_train], split.labels_train) and np.array_equal(labels[is_test], split.labels_rows)
    ):
        raise RuntimeError(f"{name}: linked features are not in the split's cell order")

    pairs = []
    genes, proteins = set(rna.var_names), set(adt.var_names)
    with open(LINKS) as fh:
        for row in csv.DictReader(fh):
            if row["dataset"] != name or row["genes"].startswith("Ignore") or row["protein"] not in proteins:
                continue
            pairs += [(g, row["protein"]) for g in row["genes"].split("/") if g in genes]
    if not pairs:
        raise RuntimeError(f"{name}: no protein of {LINKS.name} has its gene among the RNA features")
    X = rna.X.tocsr() if sp.issparse(rna.X) else sp.csr_matrix(rna.X)
    size = np.asarray(X.sum(1)).ravel()
    G = X[:, [rna.var_names.get_loc(g) for g, _ in pairs]].toarray() / np.maximum(size, 1)[:, None] * 1e4
    G = np.log1p(G)
    scmatch.pp.clr(adt)  # per cell, across proteins
    A = adt.X.toarray() if sp.issparse(adt.X) else np.asarray(adt.X)
    A = A[:, [adt.var_names.get_loc(p) for _, p in pairs]]
    return {
        "link_rna_train": G[is_train].astype(np.float32),
        "link_rna_test": G[is_test].astype(np.float32),
        "link_adt_train": A[is_train].astype(np.float32),
        "link_adt_test": A[is_test].astype(np.float32),
        "link_genes": np.asarray([g for g, _ in pairs]),
        "link_proteins": np.asarray([p for _, p in pairs]),
    }


def peak_linked_features(split: MatchingSplit) -> dict[str, np.ndarray]:
    """An RNA + ATAC split's peak-gene linked values (``_data.load_split(gene_annotation=...)``), in the peers' keys.

    Per linked gene: its RNA (log-normalised) and its ATAC gene activity (the linked peaks' counts per 10k of the
    nucleus's peak counts, log1p), as ``scmatch.links.peak_linked_values`` makes them; ``link_kind`` says so.
    """
    if split.L1_train.shape[1] == 0:
        raise RuntimeError(f"{split.name}: no gene has a peak within the link distance")
    return {
        "link_rna_train": split.L1_train,
        "link_rna_test": split.L1_test,
        "link_adt_train": split.L2_train,
        "link_adt_test": split.L2_test,
        "link_kind": np.asarray("peak"),
    }


def _run_peer(cmd: list[str], env: dict, max_seconds: float, max_rss_mb: float) -> tuple[int, float, str, str]:
    """Run the peer's process; stop it past the time or memory limit. Return (rc, peak RSS MB, stopped, stderr)."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        stopped, peak = "", 0.0

        def watch() -> None:
            nonlocal stopped, peak
            t0 = time.monotonic()
            while proc.poll() is None:
                try:
                    with open(f"/proc/{proc.pid}/status") as fh:
                        rss = next(int(ln.split()[1]) / 1024 for ln in fh if ln.startswith("VmRSS:"))
                    peak = max(peak, rss)
                except (OSError, StopIteration):
                    pass
                reason = ""
                if time.monotonic() - t0 > max_seconds:
                    reason = f"stopped: ran past {max_seconds / 60:.0f} minutes"
                elif peak > max_rss_mb:
                    reason = f"stopped: resident memory past {max_rss_mb / 1024:.0f} GB"
                if reason:
                    stopped = reason
                    os.killpg(proc.pid, signal.SIGKILL)
                    return
                time.sleep(0.5)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        watcher.join()
        err.seek(0)
        return proc.returncode, max(peak, usage.ru_maxrss / 1024), stopped, err.read()[-3000:]


def run_one(split: MatchingSplit, extras: dict, label: str, method: str, seed: int, args, command: str) -> dict:
    import scipy.sparse as sp

    import scmatch.metrics

    shuffled = split.shuffled(seed)
    perm = np.argsort(shuffled.truth)  # column j of the query holds paired cell perm[j]
    peer_in = {
        "X1_train": split.X1_train,
        "X2_train": split.X2_train,
        "X1_test": shuffled.X1_test,
        "X2_test": shuffled.X2_test,
    }
    for k, v in extras.items():
        peer_in[k] = v[perm] if k == "link_adt_test" else v
    base = {
        "dataset": label,
        "method": method,
        "preprocessing": json.loads(split.meta).get("preprocessing", "joint"),
        "seed": seed,
        "n_train": split.n_train,
        "n_test": split.n_test,
        "chance_match_score": 1.0 / split.n_test,
        "n_cores": os.cpu_count(),
        "data": json.loads(split.meta),
        "inputs_to_peer": sorted(peer_in),
        **_git(),
        "command": command,
        "python": platform.python_version(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if method in LINKED and "link_rna_test" not in extras:
        mod2 = base["data"].get("mod2", "?")
        why = {
            "atac": "peaks: linking them to genes (gene activity) needs gene coordinates; none was given "
            "(--gene-annotation)",
            "atac_features": "anonymous ready-made features",
        }.get(mod2, "no linked features")
        return {
            **base,
            "error": f"not applicable: needs feature links between modalities; {label} is RNA -> {mod2} ({why})",
        }
    with tempfile.TemporaryDirectory() as tmp:
        fin, fout = Path(tmp) / "inputs.npz", Path(tmp) / "output.npz"
        np.savez(fin, **peer_in)
        cmd = [str(args.venv_python), str(HERE / "peer_runner.py"), method, str(fin), str(fout), "--seed", str(seed)]
        cmd += ["--repeat", str(REPEAT.get(method, 1) if args.repeat is None else args.repeat)]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(THREADS)
        t0 = time.perf_counter()
        rc, proc_peak, stopped, stderr = _run_peer(cmd, env, args.max_minutes * 60, args.max_rss_gb * 1024)
        wall = time.perf_counter() - t0
        base.update(process_seconds=wall, process_peak_rss_mb=proc_peak)
        info = {}
        if fout.exists():
            with np.load(fout, allow_pickle=False) as z:
                info = json.loads(str(z["info"]))
                if "P_data" in z.files:
                    P = sp.csr_matrix((z["P_data"], z["P_indices"], z["P_indptr"]), shape=tuple(z["P_shape"]))
        info.pop("seed", None), info.pop("method", None)
        if stopped or rc != 0 or "error" in info:
            tail = stderr.strip().splitlines()[-1] if stderr.strip() else ""
            err = stopped or info.get("error") or f"exit code {rc}: {tail}"
            return {**base, **info, "error": err}
    scmatch.metrics.check_challenge_format(P, shape=(split.n_test, split.n_test))
    scores = scmatch.metrics.evaluate(
        P, shuffled.truth, labels_rows=shuffled.labels_rows, labels_cols=shuffled.labels_cols
    )
    return {
        **base,
        **{k: float(v) for k, v in scores.items()},
        **info,
        "max_nnz_per_row": int(np.diff(P.indptr).max()),
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["cite", "totalvi", "simulated"], choices=DATASETS)
    p.add_argument("--methods", nargs="+", default=list(PEER_METHODS), choices=PEER_METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--sim-cells", type=int, default=2000, help="total simulated cells, two batches (ref, query)")
    p.add_argument("--n-comps", type=int, default=50, help="PCA components (RNA, protein); ATAC: recipe_atac's")
    p.add_argument("--repeat", type=int, help="fits per process (default: 2, cold + warm, for MaxFuse and moscot)")
    p.add_argument("--max-minutes", type=float, default=20.0, help="stop a peer's process past this wall time")
    p.add_argument("--max-rss-gb", type=float, default=16.0, help="stop a peer's process past this resident memory")
    p.add_argument(
        "--gene-annotation",
        nargs="+",
        default=[],
        metavar="DATASET=PATH",
        help="a BED or GTF of gene coordinates per RNA + ATAC dataset (or 'var'): peak-gene links for the linked peers",
    )
    p.add_argument("--venv-python", type=Path, default=VENV_PYTHON)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if not args.venv_python.exists():
        sys.exit(f"{args.venv_python} not found: run bash benchmarks/peers/setup_venv.sh first")
    command = "python benchmarks/peers/run_peers.py " + " ".join(argv)
    annotations = dict(item.split("=", 1) for item in args.gene_annotation)
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.datasets:
        label = _dataset_label(name, args.sim_cells)
        t0 = time.perf_counter()
        annotation = annotations.get(name)
        split = load_split(name, n_comps=args.n_comps, n_sim_cells=args.sim_cells, gene_annotation=annotation)
        if DATASETS[name][3] == "protein":
            extras = linked_features(name, split)
        elif annotation is not None:
            extras = peak_linked_features(split)
        else:
            extras = {}
        print(
            f"{label}: train {split.n_train}, query {split.n_test}, dims {split.X1_train.shape[1]} -> "
            f"{split.X2_train.shape[1]}, linked features {extras['link_rna_train'].shape[1] if extras else 0} "
            f"(prepared in {time.perf_counter() - t0:.1f}s)",
            flush=True,
        )
        for method in args.methods:
            for seed in args.seeds:
                rec = run_one(split, extras, label, method, seed, args, command)
                (args.out / f"{label}__{method}__seed{seed}.json").write_text(
                    json.dumps(rec, indent=1, default=float) + "\n"
                )
                if "error" in rec:
                    failed.append(f"{label}/{method}/{seed}")
                    print(f"  {method:>18} seed {seed}: ERROR {rec['error'][:200]}", flush=True)
                else:
                    print(
                        f"  {method:>18} seed {seed}: match {rec['match_score']:.4f} top1 {rec['top1']:.3f} "
                        f"top10 {rec['top10']:.3f} foscttm {rec['foscttm']:.3f} ct {rec['celltype_mass']:.3f} "
                        f"fit {rec['fit_seconds']:.1f}s (cold {rec['cold_fit_seconds']:.1f}s) "
                        f"peak {rec['peak_rss_mb']:.0f}MB",
                        flush=True,
                    )
    if failed:
        print(f"{len(failed)} runs recorded an error: {', '.join(failed)}")


if __name__ == "__main__":
    main()
