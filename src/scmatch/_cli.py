"""The ``scmatch`` command: ``demo``, ``match`` (challenge files in, prediction out) and ``evaluate``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

RECIPES = {"rna": "recipe_rna", "atac": "recipe_atac", "adt": "recipe_protein"}
INPUTS = ("train_mod1", "train_mod2", "train_sol", "test_mod1", "test_mod2", "prediction", "solution", "data")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scmatch",
        description="Match single cells across modalities with a learned cross-attention metric.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="preprocess, match and score a dataset end to end",
        description="Simulate paired multiome data (or read an .h5mu), learn on one batch, match another, print "
        "the scores.",
    )
    demo.add_argument("--data", type=Path, help="paired .h5mu instead of simulated data")
    demo.add_argument("--mod1", default="rna", help="rows of the match (default: rna)")
    demo.add_argument("--mod2", default=None, help="columns of the match (default: atac, or adt if present)")
    demo.add_argument("--batch-key", default="batch", help=".obs column with batches (default: batch)")
    demo.add_argument("--reference-batch", default=None, help="batch used as reference (default: the first)")
    demo.add_argument("--n-cells", type=int, default=2000, help="simulated cells (default: 2000)")
    demo.add_argument("--epochs", type=int, default=40, help="maximum training epochs (default: 40)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")

    match = sub.add_parser(
        "match",
        help="match the test cells of NeurIPS 2021 match-modality files",
        description="Train on train_mod1/train_mod2/train_sol, match test_mod1 against test_mod2 and write a "
        "prediction .h5ad in the challenge's format.",
    )
    for name in ("train-mod1", "train-mod2", "train-sol", "test-mod1", "test-mod2"):
        match.add_argument(f"--{name}", type=Path, required=True, help=f"{name.replace('-', '_')}.h5ad")
    match.add_argument("--output", type=Path, required=True, help="prediction .h5ad to write")
    match.add_argument("--matching", default="sinkhorn", choices=["sinkhorn", "softmax", "assignment"])
    match.add_argument("--top-k", type=int, default=100, help="non-zeros per row (at most 1000)")
    match.add_argument("--epochs", type=int, default=None, help="maximum training epochs")
    match.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")

    ev = sub.add_parser(
        "evaluate",
        help="score a prediction against a solution",
        description="Print the match score, top-k accuracies and FOSCTTM of a prediction .h5ad.",
    )
    ev.add_argument("--prediction", type=Path, required=True, help="prediction .h5ad")
    ev.add_argument("--solution", type=Path, required=True, help="solution .h5ad (test_sol)")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _model(epochs: int | None):
    from .model import MatchModel

    return MatchModel() if epochs is None else MatchModel(epochs=epochs)


def _preprocess(mdata, mods) -> None:
    from . import pp

    for mod in mods:
        recipe = RECIPES.get(mod)
        if recipe is None:
            raise ValueError(f"No preprocessing recipe for modality {mod!r}; use one of {sorted(RECIPES)}.")
        getattr(pp, recipe)(mdata, mod=mod, **({"layer": "counts"} if "counts" in mdata[mod].layers else {}))


def _print_scores(scores: dict, *, n: int, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps({k: (float(v) if not isinstance(v, bool) else v) for k, v in scores.items()}))
        return
    print(f"  cells matched     {n}   (chance match score {1 / n:.4f})")
    for key in ("match_score", "top1", "top5", "top10", "foscttm", "celltype_mass"):
        if key in scores:
            print(f"  {key:<17s} {scores[key]:.4f}")


def _demo(args) -> int:
    import mudata as md

    from . import datasets, tl

    t0 = time.perf_counter()
    if args.data is None:
        print(f"scmatch demo: simulating {args.n_cells} paired multiome cells (2 batches)")
        mdata = datasets.simulate_multiome(args.n_cells, n_batches=2, random_state=args.seed)
    else:
        print(f"scmatch demo: reading {args.data}")
        mdata = md.read_h5mu(args.data)
    mod2 = args.mod2 or ("adt" if "adt" in mdata.mod else "atac")
    for mod in (args.mod1, mod2):
        if mod not in mdata.mod or args.batch_key not in mdata[mod].obs:
            raise ValueError(f"The data need modality {mod!r} with a {args.batch_key!r} column in .obs.")
    batches = sorted(mdata[args.mod1].obs[args.batch_key].astype(str).unique())
    ref = args.reference_batch or batches[0]
    if ref not in batches or len(batches) < 2:
        raise ValueError(f"Need a reference batch and at least one other; batches are {batches}.")
    for mod in (args.mod1, mod2):
        mdata[mod].obs["is_reference"] = mdata[mod].obs[args.batch_key].astype(str).to_numpy() == ref
    print(f"preprocessing {args.mod1} and {mod2}")
    _preprocess(mdata, (args.mod1, mod2))
    print(f"learning the metric on batch {ref}, matching the other batches within batch")
    tl.match_modalities(
        mdata,
        mod1=args.mod1,
        mod2=mod2,
        reference="is_reference",
        batch_key=args.batch_key,
        model=_model(args.epochs),
        random_state=args.seed,
    )
    labels = "cell_type" if all("cell_type" in mdata[m].obs for m in (args.mod1, mod2)) else None
    scores = tl.evaluate_match(mdata, labels_key=labels)
    n = int(mdata.uns["match"]["query"]["n_mod1"])
    print(f"scores on the query ({time.perf_counter() - t0:.0f} s in all):")
    _print_scores(scores, n=n)
    return EXIT_OK


def _match(args) -> int:
    from . import io, tl

    mdata = io.read_match_modality(
        train_mod1=args.train_mod1,
        train_mod2=args.train_mod2,
        train_sol=args.train_sol,
        test_mod1=args.test_mod1,
        test_mod2=args.test_mod2,
        test_sol=None,
    )
    info = mdata.uns["match_modality"]
    mod1, mod2 = info["mod1"], info["mod2"]
    for mod in (mod1, mod2):
        mdata[mod].obs["is_reference"] = (mdata[mod].obs["split"] == "train").to_numpy()
    _preprocess(mdata, (mod1, mod2))
    tl.match_modalities(
        mdata,
        mod1=mod1,
        mod2=mod2,
        reference="is_reference",
        matching=args.matching,
        top_k=args.top_k,
        model=_model(args.epochs),
        random_state=args.seed,
    )
    P, rows, cols = tl.query_block(mdata)
    io.write_prediction(
        P,
        args.output,
        dataset_id=str(info["dataset_id"]),
        obs_names=mdata[mod1].obs["challenge_name"].reindex(mdata.obs_names[rows]).astype(str).tolist(),
        var_names=mdata[mod2].obs["challenge_name"].reindex(mdata.obs_names[cols]).astype(str).tolist(),
    )
    print(f"wrote {args.output} ({P.shape[0]} x {P.shape[1]}, {P.nnz} non-zeros)")
    return EXIT_OK


def _evaluate(args) -> int:
    from . import io, metrics
    from .io._files import _read_h5ad

    pred = io.read_prediction(args.prediction)
    sol = _read_h5ad(args.solution)
    if pred.shape != sol.shape:
        raise ValueError(
            f"Prediction has shape {pred.shape} but the solution {sol.shape}; pass the solution of the same test set."
        )
    scores = metrics.evaluate(pred.X, metrics.truth_from_solution(sol.X))
    _print_scores(scores, n=pred.shape[0], as_json=args.json)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the ``scmatch`` command line; returns the exit code (0 ok, 1 error, 2 usage)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    for name in INPUTS:
        path = getattr(args, name, None)
        if path is not None and not Path(path).is_file():
            print(f"scmatch: error: --{name.replace('_', '-')} {path} does not exist or is not a file", file=sys.stderr)
            return EXIT_USAGE
    problem = _check_options(args)
    if problem:
        print(f"scmatch: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    handler = {"demo": _demo, "match": _match, "evaluate": _evaluate}[args.command]
    try:
        return handler(args)
    except (ValueError, TypeError) as err:
        print(f"scmatch: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as err:  # an input that is not a readable .h5ad/.h5mu, or a failed write
        print(
            f"scmatch: error: cannot read or write a file: {err}. Pass .h5ad/.h5mu files written by anndata/mudata.",
            file=sys.stderr,
        )
        return EXIT_ERROR


def _check_options(args) -> str | None:
    """Options that would otherwise fail only after the data are read and the model trained."""
    import h5py

    for name in INPUTS:
        path = getattr(args, name, None)
        if path is not None and not h5py.is_hdf5(path):
            return f"--{name.replace('_', '-')} {path} is not an .h5ad/.h5mu (HDF5) file"
    output = getattr(args, "output", None)
    if output is not None and (Path(output).is_dir() or not Path(output).parent.is_dir()):
        return f"--output {output} must be a file path in an existing folder"
    if getattr(args, "epochs", None) is not None and args.epochs < 1:
        return f"--epochs must be at least 1, got {args.epochs}"
    if getattr(args, "top_k", None) is not None and not 1 <= args.top_k <= 1000:
        return f"--top-k must be between 1 and 1000 (the challenge's limit), got {args.top_k}"
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
