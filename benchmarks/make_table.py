"""Regenerate the markdown tables of benchmarks/README.md from the JSON records in benchmarks/results/*/.

    python benchmarks/make_table.py                # every results subfolder
    python benchmarks/make_table.py matching       # only benchmarks/results/matching
    python benchmarks/make_table.py --check        # exit 1 if a table differs from what the records give (tests)

Each subfolder ``NAME`` of ``results/`` gets one table (mean ± sd over seeds per dataset x method) written between
``<!-- NAME-table:start -->`` and ``<!-- NAME-table:end -->`` in README.md; the rest of README.md is kept, and a
section with the markers is appended when they are missing.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"

# (field, header, format, better): better is "max", "min" or None (cost columns, never highlighted)
COLUMNS = {
    "matching": [
        ("match_score", "match score", ".4f", "max"),
        ("top1", "top-1", ".3f", "max"),
        ("top5", "top-5", ".3f", "max"),
        ("top10", "top-10", ".3f", "max"),
        ("foscttm", "FOSCTTM ↓", ".3f", "min"),
        ("celltype_mass", "cell-type mass", ".3f", "max"),
        ("fit_seconds", "fit s", ".2f", None),
        ("match_seconds", "match s", ".2f", None),
        ("peak_rss_mb", "peak RSS MB", ".0f", None),
        ("peak_rss_delta_mb", "Δ RSS MB", ".0f", None),
    ],
    "mapping": [
        ("match_score", "match score", ".4f", "max"),
        ("top1", "top-1", ".3f", "max"),
        ("top10", "top-10", ".3f", "max"),
        ("foscttm", "FOSCTTM ↓", ".3f", "min"),
        ("celltype_mass", "cell-type mass", ".3f", "max"),
        ("fit_seconds", "fit s", ".2f", None),
        ("match_seconds", "match s", ".2f", None),
    ],
    "scale": [
        ("match_score", "match score", ".4f", "max"),
        ("top1", "top-1", ".3f", "max"),
        ("top10", "top-10", ".3f", "max"),
        ("foscttm", "FOSCTTM ↓", ".3f", "min"),
        ("seconds_per_epoch", "s / epoch", ".1f", None),
        ("validation_seconds_per_epoch", "validation s / epoch", ".2f", None),
        ("calibration_seconds", "calibration s", ".1f", None),
        ("fit_seconds", "fit s", ".0f", None),
        ("match_seconds", "match s", ".0f", None),
        ("match_peak_rss_mb", "RSS while matching MB", ".0f", None),
        ("match_rss_added_mb", "Δ RSS matching MB", ".0f", None),
        ("peak_rss_mb", "process peak RSS MB", ".0f", None),
        ("preprocess_seconds", "preprocess s", ".0f", None),
    ],
    "scale_challenge": [
        ("match_score", "match score", ".4f", "max"),
        ("top1", "top-1", ".3f", "max"),
        ("top10", "top-10", ".3f", "max"),
        ("foscttm", "FOSCTTM ↓", ".3f", "min"),
        ("valid_format", "valid format", ".0f", None),
        ("cli_match_seconds", "`scmatch match` s", ".0f", None),
        ("cli_match_peak_rss_mb", "`scmatch match` peak RSS MB", ".0f", None),
        ("evaluate_seconds", "`scmatch evaluate` s", ".0f", None),
        ("input_files_mb", "input files MB", ".0f", None),
        ("prediction_mb", "prediction MB", ".1f", None),
    ],
    "coreset": [
        ("match_score", "match score", ".4f", "max"),
        ("top1", "top-1", ".3f", "max"),
        ("top10", "top-10", ".3f", "max"),
        ("foscttm", "FOSCTTM ↓", ".3f", "min"),
        ("celltype_mass", "cell-type mass", ".3f", "max"),
        ("fit_seconds", "fit s", ".1f", None),
        ("train_seconds", "training steps s", ".1f", None),
        ("validation_seconds", "validation s", ".1f", None),
        ("calibration_seconds", "calibration s", ".1f", None),
        ("match_seconds", "match s", ".1f", None),
        ("epochs_run", "epochs", ".0f", None),
        ("coreset_fraction", "fraction", ".1f", None),
    ],
    "label_coreset": [
        ("precision_at_10", "precision@10", ".3f", "max"),
        ("precision_at_10_macro", "precision@10, mean over types", ".3f", "max"),
        ("precision_at_10_rare", "precision@10, rare types", ".3f", "max"),
        ("knn_accuracy", "kNN accuracy", ".3f", "max"),
        ("fit_seconds", "fit s", ".1f", None),
        ("coreset_seconds", "of which selection s", ".1f", None),
        ("n_steps", "steps", ".0f", None),
        ("epochs", "epochs", ".0f", None),
        ("coreset_fraction", "fraction", ".2f", None),
    ],
    "sketch": [
        ("types_retained", "types kept", ".3f", "max"),
        ("rare_types_retained", "rare types kept", ".3f", "max"),
        ("n_rare_types", "rare types", ".0f", None),
        ("hausdorff", "Hausdorff ↓", ".2f", "min"),
        ("mean_distance", "mean distance ↓", ".2f", "min"),
        ("n_selected", "cells kept", ".0f", None),
        ("seconds", "s", ".2f", None),
    ],
    "transfer": [
        ("label_accuracy", "label accuracy", ".3f", "max"),
        ("label_balanced_accuracy", "balanced accuracy", ".3f", "max"),
        ("label_ece", "label ECE ↓", ".3f", "min"),
        ("label_nll", "label NLL ↓", ".3f", None),
        ("label_confidence_auroc", "label conf. AUROC", ".3f", None),
        ("top_probability_auroc", "top-prob. AUROC", ".3f", None),
        ("entropy_auroc", "entropy AUROC", ".3f", None),
        ("label_temperature", "label T", ".1f", None),
        ("label_accuracy_t1", "accuracy T=1", ".3f", None),
        ("label_ece_t1", "ECE T=1", ".3f", None),
        ("label_ece_if_calibrated", "ECE if calibrated", ".3f", None),
        ("label_mean_confidence", "mean conf.", ".3f", None),
        ("label_round_trip_accuracy", "round-trip acc.", ".3f", None),
        ("label_ece_round_trip_power", "ECE RT power", ".3f", None),
        ("label_ece_round_trip_isotonic", "ECE RT isotonic", ".3f", None),
        ("label_accuracy_t50", "accuracy T=50", ".3f", None),
        ("label_ece_t50", "ECE T=50", ".3f", None),
        ("label_held_out_pairs", "held-out pairs", ".0f", None),
        ("label_accuracy_held_out", "accuracy HO rule", ".3f", None),
        ("label_ece_held_out", "ECE HO rule", ".3f", None),
        ("label_nll_held_out", "NLL HO rule", ".3f", None),
        ("label_accuracy_round_trip", "accuracy RT rule", ".3f", None),
        ("label_ece_round_trip", "ECE RT rule", ".3f", None),
        ("label_nll_round_trip", "NLL RT rule", ".3f", None),
        ("label_ece_held_out_power", "ECE HO power", ".3f", None),
        ("feature_pearson", "feature Pearson", ".3f", "max"),
        ("feature_temperature", "feature T", ".1f", None),
        ("feature_pearson_t1", "Pearson T=1", ".3f", None),
    ],
}
# the matching columns, with the first fit of a fresh process (numba compilation) beside the fit, without Δ RSS
COLUMNS["peers"] = [c for c in COLUMNS["matching"] if c[0] != "peak_rss_delta_mb"]
COLUMNS["peers"].insert(7, ("cold_fit_seconds", "cold fit s", ".1f", None))
COLUMNS["speed"] = [
    ("match_score", "match score", ".4f", None),
    ("end_to_end_seconds", "`tl.match_modalities` s", ".0f", None),
    ("epochs_run", "epochs", ".0f", None),
    ("seconds_per_epoch", "s / epoch", ".2f", None),
    ("pairs_per_second", "pairs / s", ".0f", None),
    ("ensemble_pairs_per_second", "all members' pairs / s", ".0f", None),
    ("calibration_share_of_fit", "calibration / fit", ".3f", None),
    ("predict_seconds", "`predict_proba` s", ".2f", None),
    ("dense_matmul_topk_seconds", "dense matmul + top-100 s", ".2f", None),
    ("rerank_seconds", "re-rank s", ".2f", None),
    ("sinkhorn_seconds", "Sinkhorn s", ".2f", None),
    ("sinkhorn_iterations", "Sinkhorn iterations", ".0f", None),
    ("predict_over_dense", "`predict_proba` / dense", ".1f", None),
]
COLUMNS["accuracy"] = [c for c in COLUMNS["matching"] if c[0] not in ("top5", "peak_rss_delta_mb")]
COLUMNS["accuracy"][6:6] = [
    ("mixing_match", "mixing X_match", ".3f", "max"),
    ("mixing_joint", "mixing joint", ".3f", "max"),
    ("purity_joint", "purity joint", ".3f", "max"),
]
COLUMNS["cross_term"] = [c for c in COLUMNS["matching"] if c[0] not in ("peak_rss_mb", "peak_rss_delta_mb")]
COLUMNS["atac_baseline"] = COLUMNS["matching"]
# the query matched pooled and within each of its libraries (run_matching.py scmatch_batch), today and at 30fbb15
COLUMNS["within_batch"] = COLUMNS["matching"]
COLUMNS["accuracy_atac"] = COLUMNS["accuracy"]
# transductive refinement (run_matching.py methods scmatch_refine*): match seconds include the refinement
COLUMNS["refinement"] = [c for c in COLUMNS["matching"] if c[0] not in ("top5", "peak_rss_delta_mb")]
COLUMNS["refinement_time"] = COLUMNS["refinement"]
# the Mapping table's scmatch rows re-run with today's defaults (ensemble, match-score calibration, ATAC recipe)
COLUMNS["mapping_defaults"] = COLUMNS["mapping"]
# ATAC loadings from neighbour-averaged profiles (recipe_atac(basis_neighbors=15)), joint and mapping
COLUMNS["mapping_basis"] = COLUMNS["mapping"]
# feature links (run_matching.py method scmatch_links): the protein-gene prior, joint and mapping preprocessing
COLUMNS["links"] = COLUMNS["mapping"]
# self-supervised pre-training and input-feature dropout (benchmarks/prototypes/self_supervision.py), joint and mapping
COLUMNS["self_supervision"] = COLUMNS["mapping"]
# the projected query re-standardised on its own statistics (benchmarks/prototypes/query_standardise.py)
COLUMNS["query_standardise"] = COLUMNS["mapping"]
# the mapping path trained on cross-fitted reference coordinates (benchmarks/prototypes/cross_fit.py)
COLUMNS["cross_fit"] = COLUMNS["mapping"]
# the mapping path with the RNA components fitted on other cells (benchmarks/prototypes/basis_source.py)
COLUMNS["basis_source"] = COLUMNS["mapping"]
# each cell's neighbourhood as a second view of its representation (benchmarks/prototypes/neighbour_view.py)
COLUMNS["neighbour_view"] = COLUMNS["mapping"]
# InfoNCE whose negatives leave out each pair's nearest reference pairs (benchmarks/prototypes/neighbour_negatives.py)
COLUMNS["neighbour_negatives"] = COLUMNS["mapping"]
# an ensemble of networks with and without the depth input (benchmarks/prototypes/mixed_depth.py)
COLUMNS["mixed_depth"] = COLUMNS["mapping"]
# five networks in the ensemble against the default three (run_matching.py methods *_k5)
COLUMNS["ensemble_size"] = COLUMNS["mapping"]
# the reference's cell types kept out of the loss's negatives (benchmarks/prototypes/label_negatives.py)
COLUMNS["label_negatives"] = COLUMNS["mapping"]
# each cell's log depth as one more input column (run_matching.py methods *_depth*), joint and mapping
COLUMNS["depth"] = COLUMNS["mapping"]
# recipe_rna(scale=True): the genes scaled to unit variance and clipped before the PCA (preprocessing *_rna_scale)
COLUMNS["rna_scale"] = COLUMNS["mapping"]
# training-schedule prototypes on small references (run_matching.py with benchmarks/prototypes/schedule.patch)
COLUMNS["schedule"] = COLUMNS["refinement"]
# ATAC preprocessing ablation (run_atac.py): rows are dataset x recipe variant
COLUMNS["atac"] = [
    ("n_peaks_used", "peaks kept", ".0f", None),
    ("n_comps_used", "LSI comps", ".0f", None),
    ("knn15_euclidean", "15-NN X_lsi", ".3f", "max"),
    ("knn15_cosine", "15-NN X_lsi cosine", ".3f", "max"),
    ("knn15_match_atac", "15-NN ATAC X_match", ".3f", "max"),
    ("match_score", "match score", ".4f", "max"),
    ("top10", "top-10", ".3f", "max"),
    ("foscttm", "FOSCTTM ↓", ".3f", "min"),
    ("celltype_mass", "cell-type mass", ".3f", "max"),
    ("prep_seconds", "recipe_atac s", ".1f", None),
    ("fit_seconds", "fit s", ".1f", None),
]
COLUMNS["atac_screen"] = COLUMNS["atac"]
# the cell-type mass with and without the source's unassigned cells (run_atac.py, SNARE-seq2's "Mis")
COLUMNS["atac_assigned"] = [
    c for c in COLUMNS["atac"] if c[0] in {"n_peaks_used", "n_comps_used", "knn15_match_atac", "match_score", "top10"}
] + [
    ("celltype_mass", "cell-type mass, all cells", ".3f", "max"),
    ("celltype_mass_assigned", "cell-type mass, assigned types", ".3f", "max"),
]
# the ATAC encoder reading the peaks' TF-IDF through a sparse first layer (benchmarks/prototypes/sparse_layer.py)
COLUMNS["sparse_layer"] = [("n_peaks_layer", "peaks in the layer", ".0f", None)] + [
    c
    for c in COLUMNS["atac"]
    if c[0] in {"knn15_match_atac", "match_score", "top10", "foscttm", "celltype_mass", "fit_seconds"}
]
# result folders summarised in prose instead (sinkhorn: timings of one function, not dataset x method; atac_memory:
# one run, quoted in docs/atac.md and checked there by benchmarks/check_numbers.py; transfer_wide_pool: a prototype's
# run, benchmarks/prototypes/held_out_pool.py, quoted in the Transfer findings; temperature_rules: each record holds
# the scores at every temperature of the label vote's grid, read by benchmarks/prototypes/temperature_rules.py --rules;
# atac_types: one run's cell-type confusion per record, quoted in the Assigned cell types findings; depth_correlation:
# one record per split, the log depths' correlation over reference and query pairs, quoted in the Depth findings)
NO_TABLE = {
    "sinkhorn",
    "atac_memory",
    "transfer_wide_pool",
    "temperature_rules",
    "peak_link_window",
    "atac_types",
    "depth_correlation",
}
# tables whose rows are method x a record field: the row shows "method/value" (e.g. scmatch/mapping)
METHOD_SUFFIX = {
    "mapping": "preprocessing",
    "mapping_defaults": "preprocessing",
    "mapping_basis": "preprocessing",
    "links": "preprocessing",
    "self_supervision": "preprocessing",
    "query_standardise": "preprocessing",
    "cross_fit": "preprocessing",
    "basis_source": "preprocessing",
    "depth": "preprocessing",
    "rna_scale": "preprocessing",
    "neighbour_view": "preprocessing",
    "neighbour_negatives": "preprocessing",
    "mixed_depth": "preprocessing",
    "label_negatives": "preprocessing",
}
DASH_MISSING = {"peers", "speed", "transfer"}
# sets without cell types (every cell labelled alike): their cell-type mass is 1 by construction, shown as a dash
UNLABELLED = {"pbmc_protein", "pbmc_multiome"}  # tables that show a dash, not nan, where a row's records lack a column
SKIP = {"seed", "n_train", "n_test", "n_cores", "torch_threads", "max_nnz_per_row", "git_dirty"}
DATASET_ORDER = ["cite", "multiome", "totalvi", "snareseq", "snare2", "snare2_rev", "snare2_mop", "challenge_cite"]
DATASET_ORDER += ["challenge_multiome", "simulated", "simulated_sparse", "pbmc_protein"]
DATASET_ORDER += [f"simulated_{n}" for n in (1000, 10000, 50000, 100000)]
DATASET_ORDER += ["simulated_50k", "simulated_50k_separated", "simulated_50k_separated_rarest"]
METHOD_ORDER = ["random", "linear", "clip", "today", "defaults"]

INTRO = """# Benchmarks

Every number here follows one protocol (the project's `../shared/BENCHMARKS.md`, summarised here): learn from a
reference of paired cells (both modalities measured in each cell), then match a query whose mod2 cells are shuffled,
outputting a sparse probability matrix in the NeurIPS 2021 challenge format (rows sum to 1, at most 1000 non-zeros
per row). The query pairing is used only to score. PCA/LSI are fitted on reference + query features jointly, as in
the challenge (the Mapping table also fits them on the reference alone). Scores are mean ± sd over seeds 0, 1, 2
(the seed drives the method and the query shuffle); an sd of 0 means the method ranks deterministically (e.g. ridge:
only its held-out temperature slice depends on the seed). Splits: BMMC CITE and Multiome starters, reference donor
s1d1, query s1d2; totalVI spleen/lymph node, batch1 -> batch2; SNARE-seq cell mix, a seeded random half -> the other
half; simulated multiome (`scmatch.datasets`), batch0 -> batch1. Baselines: `random` (uniform rows), `linear` (ridge
mod1 -> mod2, cosine, softmax), `clip` (two-tower MLP with symmetric InfoNCE, softmax); temperatures are chosen on a
held-out 20% of the reference. Code: `baselines.py`.

Metrics: match score = mean probability on the true partner (chance = 1/n_test); top-k = share of rows whose
partner is among the k largest entries; FOSCTTM = fraction of candidates closer than the true partner (lower is
better, 0.5 = random); cell-type mass = probability placed on cells of the same type. Cost: wall seconds to fit
(reference) and to match (query), peak resident memory of a fresh process per run (interpreter + libraries + data
+ method) and Δ RSS, what fitting and matching added to that process. Timings are noisy on shared machines:
compare methods within one table, as ratios.

Regenerate the tables with `python benchmarks/make_table.py` after the runs listed under each table. The tests
fail when a table differs from its records (`make_table.py --check`), or when a number quoted in README.md, the docs
or a docstring no longer rounds from the records its marker names (`python benchmarks/check_numbers.py` lists them
all; its docstring gives the marker's syntax). A record's `git_dirty` counts only changes that can change a number
(`_provenance.py`): records and tables written meanwhile leave the commit clean.
"""


def _order(value: str, order: list[str]) -> tuple[int, list]:
    """Listed names first, in their order; then natural order (``full_e4`` before ``full_e12``)."""
    natural = [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", value)]
    return (order.index(value) if value in order else len(order), natural)


def _columns(name: str, records: list[dict]) -> list[tuple[str, str, str, str | None]]:
    if name in COLUMNS:
        return [c for c in COLUMNS[name] if any(c[0] in r for r in records)]
    seen: dict[str, None] = {}
    for r in records:
        for k, v in r.items():
            if k not in SKIP and isinstance(v, (int, float)) and not isinstance(v, bool):
                seen.setdefault(k)
    return [(k, k, ".3g", None) for k in seen]


def _cell(values: list[float], fmt: str) -> tuple[float, str]:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0 or np.all(np.isnan(v)):  # a field this record does not have (e.g. an end-to-end-only row)
        return float("nan"), ""
    mean = float(np.mean(v))
    sd = float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")
    return mean, f"{mean:{fmt}}" + (f" ± {sd:{fmt}}" if len(v) > 1 else "")


def table(name: str, records: list[dict]) -> str:
    """Markdown table, mean ± sd over seeds per dataset x method, best mean per dataset in bold.

    Records with an ``error`` field (a run that failed or does not apply) are listed under the table instead.
    """
    failed = [r for r in records if "error" in r]
    records = [r for r in records if "error" not in r]
    cols = _columns(name, records)
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    suffix = METHOD_SUFFIX.get(name)
    for r in records:
        method = r.get("method", r.get("variant", "?")) + (f"/{r.get(suffix, '?')}" if suffix else "")
        groups[(r.get("dataset", "?"), method)].append(r)
    keys = sorted(groups, key=lambda k: (_order(k[0], DATASET_ORDER), _order(k[1], METHOD_ORDER)))
    rows: dict[tuple[str, str], list[tuple[float, str]]] = {}
    for key in keys:
        rows[key] = [_cell([r[c[0]] for r in groups[key] if c[0] in r] or [np.nan], c[2]) for c in cols]
        if name in DASH_MISSING:  # a field no record of the row has (e.g. cold fit for scmatch): a dash
            rows[key] = [
                (m, "\N{EN DASH}") if not any(c[0] in r for r in groups[key]) else (m, t)
                for (m, t), c in zip(rows[key], cols, strict=True)
            ]
        if key[0] in UNLABELLED:
            rows[key] = [
                (float("nan"), "\N{EN DASH}") if c[0] == "celltype_mass" else cell
                for cell, c in zip(rows[key], cols, strict=True)
            ]
    best: dict[tuple[str, int], float] = {}
    for (dataset, _), cells in rows.items():
        for j, (_, _, _, better) in enumerate(cols):
            if better and np.isfinite(cells[j][0]):
                pick = max if better == "max" else min
                best[dataset, j] = pick(best.get((dataset, j), cells[j][0]), cells[j][0])
    header = ["dataset", "method", "n train / query", "seeds", *(c[1] for c in cols)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (len(header) - 2)]
    for key in keys:
        recs = groups[key]
        sizes = f"{recs[0].get('n_train', '?')} / {recs[0].get('n_test', '?')}"
        if "n_train" not in recs[0] and "n_cells" in recs[0]:  # one set, no query (e.g. sketching)
            sizes = f"{recs[0]['n_cells']} cells"
        cells = [
            f"**{text}**" if (key[0], j) in best and mean == best[key[0], j] and len(rows) > 1 else text
            for j, (mean, text) in enumerate(rows[key])
        ]
        lines.append("| " + " | ".join([key[0], key[1], sizes, str(len(recs)), *cells]) + " |")
    if failed:
        runs: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for r in failed:
            key = (r.get("dataset", "?"), r.get("method", "?"), str(r["error"]).splitlines()[0])
            runs[key].append(str(r.get("seed")))
        lines += ["", "Runs that failed or do not apply (no row above):", ""]
        for (dataset, method, error), seeds in sorted(runs.items()):
            lines.append(f"- {dataset} / {method} (seeds {', '.join(sorted(seeds))}): {error}")
    records = records + failed
    commands = sorted({r["command"] for r in records if r.get("command")})
    commits = sorted({(r.get("git_commit") or "?")[:10] + ("+dirty" if r.get("git_dirty") else "") for r in records})
    cores = sorted({str(r["n_cores"]) for r in records if "n_cores" in r})
    lines += ["", f"Cores: {', '.join(cores) or '?'}; commits: {', '.join(commits)}. Produced by:", "", "```"]
    lines += [*commands, f"python benchmarks/make_table.py {name}", "```"]
    return "\n".join(lines)


def with_table(text: str, name: str, body: str) -> str:
    """``text`` with the table ``name`` replaced by ``body`` (a section with the markers appended when missing)."""
    start, end = f"<!-- {name}-table:start -->", f"<!-- {name}-table:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        return head + start + "\n" + body + "\n" + end + rest.split(end, 1)[1]
    return text.rstrip("\n") + f"\n\n## {name.replace('_', ' ').capitalize()}\n\n{start}\n{body}\n{end}\n"


def update_readme(name: str, body: str, readme: Path = README) -> None:
    readme.write_text(with_table(readme.read_text() if readme.exists() else INTRO, name, body))


def table_names(results: Path = RESULTS) -> list[str]:
    """Every results folder with records that gets a table."""
    return sorted(d.name for d in results.iterdir() if d.is_dir() and any(d.glob("*.json")) and d.name not in NO_TABLE)


def load(name: str, results: Path = RESULTS) -> list[dict]:
    return [json.loads(f.read_text()) for f in sorted((results / name).glob("*.json"))]


def stale_tables(readme: Path = README, results: Path = RESULTS) -> list[str]:
    """The tables of ``readme`` that differ from what the records give, or that the records have and it lacks."""
    text = readme.read_text()
    return [name for name in table_names(results) if with_table(text, name, table(name, load(name, results))) != text]


def main(argv: list[str] | None = None) -> int:
    names = sys.argv[1:] if argv is None else argv
    if "--check" in names:
        stale = stale_tables()
        for name in stale:
            print(f"{name}: the table in {README} differs from the records; run python benchmarks/make_table.py {name}")
        return int(bool(stale))
    for name in names or table_names():
        records = load(name)
        if not records:
            print(f"no records in {RESULTS / name}")
            continue
        update_readme(name, table(name, records))
        print(f"{name}: {len(records)} records -> {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
