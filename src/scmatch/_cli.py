"""The ``scmatch`` command: ``demo``, ``match`` (challenge files in, prediction out) and ``evaluate``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

#: 0 success; 1 a failure that is not the input's fault (training diverged, a write failed, a bug); 2 a bad input
EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

RECIPES = {"rna": "recipe_rna", "atac": "recipe_atac", "adt": "recipe_protein"}
#: the input files of each command, by option: AnnData .h5ad files, and the demo's MuData .h5mu
H5AD_INPUTS = ("train_mod1", "train_mod2", "train_sol", "test_mod1", "test_mod2", "prediction", "solution")
INPUTS = (*H5AD_INPUTS, "data")


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
    match.add_argument(
        "--refine",
        action="store_true",
        help="fine-tune a copy of the model at a low learning rate before matching (scmatch.model.Refinement)",
    )
    match.add_argument(
        "--no-links",
        action="store_true",
        help="match without the feature-link prior (tl.match_modalities(links=None); by default it is used for "
        "CITE-seq, and for RNA + ATAC when the genes carry coordinates, when it helps on held-out reference pairs)",
    )
    match.add_argument(
        "--no-depth",
        action="store_true",
        help="match without each cell's sequencing depth as an input (tl.match_modalities(depth=None); by default "
        "it is one for RNA + ATAC when the reference pairs' depths go together)",
    )
    match.add_argument(
        "--self-supervision",
        action="store_true",
        help="pre-train the encoders on every cell, the test cells included, before the paired training "
        "(tl.match_modalities(self_supervision=True); several times the training time)",
    )

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
    from .model import MatchModel, TrainingPlan

    model = MatchModel()
    if epochs is not None:
        model.plan = TrainingPlan(max_epochs=epochs)
    return model


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
    from . import datasets, tl
    from .io._h5 import read_h5mu_checked

    t0 = time.perf_counter()
    if args.data is None:
        print(f"scmatch demo: simulating {args.n_cells} paired multiome cells (2 batches)")
        mdata = datasets.simulate_multiome(args.n_cells, n_batches=2, random_state=args.seed)
    else:
        print(f"scmatch demo: reading {args.data}")
        mdata = read_h5mu_checked(args.data, label=f"--data {args.data}")
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


def _option(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _inputs(args) -> dict[str, Path]:
    """The input files given on the command line, by option (``--train-mod1``: path)."""
    return {_option(name): getattr(args, name) for name in INPUTS if getattr(args, name, None) is not None}


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
        refine=args.refine,
        links=None if args.no_links else "auto",
        depth=None if args.no_depth else "auto",
        self_supervision=args.self_supervision,
        random_state=args.seed,
    )
    P, rows, cols = tl.query_block(mdata)
    io.write_prediction(
        P,
        args.output,
        dataset_id=str(info["dataset_id"]),
        obs_names=mdata[mod1].obs["challenge_name"].reindex(mdata.obs_names[rows]).astype(str).tolist(),
        var_names=mdata[mod2].obs["challenge_name"].reindex(mdata.obs_names[cols]).astype(str).tolist(),
        inputs=list(_inputs(args).values()),
    )
    print(f"wrote {args.output} ({P.shape[0]} x {P.shape[1]}, {P.nnz} non-zeros)")
    return EXIT_OK


def _evaluate(args) -> int:
    from . import io, metrics
    from .io._files import _read_h5ad

    pred = io.read_prediction(args.prediction)
    sol = _read_h5ad(args.solution, label=f"--solution {args.solution}")
    if pred.shape != sol.shape:
        raise ValueError(
            f"Prediction has shape {pred.shape} but the solution {sol.shape}; pass the solution of the same test set."
        )
    scores = metrics.evaluate(pred.X, metrics.truth_from_solution(sol.X))
    _print_scores(scores, n=pred.shape[0], as_json=args.json)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the ``scmatch`` command line; returns the exit code (0 ok, 1 failure, 2 bad input or usage).

    Every bad input (a missing, damaged or wrong kind of file, an output that names an input, data that scmatch
    refuses) is reported as one line ``scmatch: error: ...`` naming the file and the fix, with exit code 2 and no
    traceback. Failures that are not the input's fault (training diverged, a write failed) exit with 1; an
    unexpected error too, with its traceback only under ``--verbose``.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    problem = _check_options(args)
    if problem:
        return _fail(problem, EXIT_USAGE)
    handler = {"demo": _demo, "match": _match, "evaluate": _evaluate}[args.command]
    try:
        return handler(args)
    except (ValueError, TypeError) as err:  # the input was refused: scmatch's message says how to fix it
        return _fail(str(err), EXIT_USAGE)
    except FileNotFoundError as err:
        return _fail(f"{err}. Check the path.", EXIT_USAGE)
    except OSError as err:  # e.g. the output could not be written (disk full, no permission)
        return _fail(f"cannot read or write a file: {err}", EXIT_ERROR)
    except Exception as err:  # not the input's fault (e.g. training diverged): no traceback unless asked
        if args.verbose:
            raise
        return _fail(f"{err} ({type(err).__name__}; rerun with --verbose for the details)", EXIT_ERROR)


def _fail(message: str, code: int) -> int:
    print(f"scmatch: error: {message}", file=sys.stderr)
    return code


def _check_options(args) -> str | None:
    """Inputs and options that would otherwise fail only after the data are read and the model trained."""
    from ._errors import InvalidFileError, OutputIsInputError
    from .io._h5 import h5ad_kind, h5mu_kind
    from .io._prediction import check_prediction_target

    for option, path in _inputs(args).items():
        if not path.is_file():
            return f"{option} {path} does not exist or is not a file; check the path."
        try:
            (h5mu_kind if option == "--data" else h5ad_kind)(path, label=f"{option} {path}")
        except InvalidFileError as err:
            return str(err)
    output = getattr(args, "output", None)
    if output is not None and (output.is_dir() or not output.parent.is_dir()):
        return f"--output {output} must be a file path in an existing folder"
    if output is not None:
        try:
            check_prediction_target(output, _inputs(args))
        except (OutputIsInputError, ValueError, FileNotFoundError) as err:
            return str(err).replace("The prediction path", "--output", 1)
    if getattr(args, "epochs", None) is not None and args.epochs < 1:
        return f"--epochs must be at least 1, got {args.epochs}"
    if getattr(args, "top_k", None) is not None and not 1 <= args.top_k <= 1000:
        return f"--top-k must be between 1 and 1000 (the challenge's limit), got {args.top_k}"
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
