"""Check the benchmark numbers quoted in the prose against the JSON records they come from.

    python benchmarks/check_numbers.py           # every marked number: quoted, recorded, verdict; exit 1 on a mismatch
    python benchmarks/check_numbers.py --eval "accuracy cite scmatch_ms_k3 match_score"   # what a marker would say

A number quoted in README.md or docs/*.md (or anywhere in benchmarks/README.md) carries a marker right after it, an
HTML comment that names its records; it is invisible once rendered:

    the defaults score 0.107<!-- rec: accuracy cite scmatch_ms_k3 match_score --> on the CITE starter

The marker holds one *term*, or an arithmetic expression over terms in square brackets:

    <!-- rec: accuracy cite scmatch_ms_k3 fit_seconds -->
    <!-- rec: [accuracy cite scmatch_ms_k3 match_score] / [peers cite moscot_fgw_ridge match_score] -->
    <!-- rec: 100 * [peers totalvi maxfuse top1] -->
    <!-- rec: min([accuracy cite|totalvi|snareseq scmatch_ms_k3 fit_seconds]) -->

A term is ``FOLDER DATASET METHOD FIELD [STAT] [KEY=VALUE ...]``: the records in ``benchmarks/results/FOLDER/``
with that ``dataset`` and ``method`` (or ``variant``; ``*``: any, or none for a record that names none), and every
``KEY`` equal to ``VALUE`` (e.g. ``seed=0``; ``KEY=*``: the record has the field at all). Records with an ``error``
field are left out unless the term asks for them (``error=*``). ``FIELD``
may reach into a nested record (``settings.epochs``). ``STAT`` summarises the records' values: ``mean`` (the
default, what the tables show), ``sd`` (ddof=1, as the tables), ``min``, ``max``, ``median`` or ``n`` (how many
records). A word may list alternatives, ``cite|totalvi``: the term is then one value per alternative (per
combination when several words do, the first word's alternatives outermost), arithmetic goes element by element,
and ``min``/``max``/``mean`` reduce. Operators: ``+ - * /``, parentheses, ``min(...)``, ``max(...)``,
``mean(...)``, ``abs(...)``, ``round(x, digits)`` and ``a, b`` (both values, one after the other).

A marker (or a bracketed term) may also be one word, a name from :data:`NAMES` in this file, for expressions too long
for the prose or quoted in several places: ``<!-- rec: min([k3_over_k1_fit]) -->``.

The quoted number must equal the expression at the precision it is quoted with: ``0.107`` stands for anything in
[0.1065, 0.1075], ``403`` for [402.5, 403.5]. A number quoted more loosely says so: ``about 1,600<!-- rec ±50:
... -->`` accepts 1,550 to 1,650. Thousands separators and a ``%`` or ``x`` right after the number are allowed
(``44%<!-- rec: 100 * [...] -->``, ``3.8x<!-- rec: ... -->``). A bound is marked as one: ``under 2<!-- rec max: ...
-->`` holds while the records' value is at most 2, ``at least 0.99<!-- rec min: ... -->`` while it is at least 0.99.

Docstrings are reStructuredText, which has no inline comment, so the numbers they quote are listed in
:data:`DOCSTRINGS` below: a phrase (whitespace-insensitive, the numbers as regex groups) that must occur somewhere in
``src/scmatch`` and one expression per group (which may start like a marker: ``"±50: ..."``, ``"max: ..."``).

The tables of benchmarks/README.md are checked another way: ``python benchmarks/make_table.py --check`` regenerates
them from the records and compares.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
#: the prose checked for markers
DOCUMENTS = ("README.md", "docs/*.md", "benchmarks/README.md")

NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
MARKER = re.compile(
    rf"(?P<number>{NUMBER})(?P<unit>%|x)?<!--\s*rec(?:\s+(?P<bound>max|min))?(?:\s*±\s*(?P<tol>[\d.,]+))?\s*:(?P<expr>.*?)-->"
)
LOOSE_MARKER = re.compile(r"<!--\s*rec\b")
HEAD = re.compile(r"\s*(?P<bound>max|min)?\s*(?:±\s*(?P<tol>[\d.,]+))?\s*:")  # "±50:" before a docstring's expression
TERM = re.compile(r"\[([^\]]+)\]")
STATS = {
    "mean": statistics.fmean,
    "sd": lambda v: statistics.stdev(v) if len(v) > 1 else float("nan"),
    "min": min,
    "max": max,
    "median": statistics.median,
    "n": len,
}
FUNCTIONS = ("min", "max", "mean", "abs", "round")
REAL = "cite|totalvi|multiome|snareseq"  # the real sets of the Accuracy table
PEER_SETS = f"{REAL}|simulated"  # the sets of the Peers table with every method (simulated: 1,000 cells per side)
GW = "moscot_gw|moscot_gw_eps1e-2|pamona"  # the peers that use no reference and no feature links
TRANSFER = "cite|totalvi|multiome|snare2_mop"  # the sets of the Transfer table
SKETCH_50K = "simulated_50k|simulated_50k_separated|simulated_50k_separated_rarest"  # the Sketch table's 50k sets

#: expressions quoted in several places or too long for the prose: a marker (or a term) may be one of these names
NAMES: dict[str, str] = {
    # fit time of the default (3 networks) over one network's, per real set
    "k3_over_k1_fit": f"[accuracy {REAL} scmatch_ms_k3 fit_seconds] / [accuracy {REAL} scmatch_ms_k1 fit_seconds]",
    # match score with match-score calibration over likelihood calibration, one network, per real set
    "ms_over_nll_k1": f"[accuracy {REAL} scmatch_ms_k1 match_score] / [accuracy {REAL} scmatch_nll_k1 match_score]",
    # pure Gromov-Wasserstein peers (moscot at two epsilons, Pamona) over chance, per set of the Peers table
    "gw_over_chance": f"[peers {PEER_SETS} {GW} match_score] / [peers {PEER_SETS} random|random|random match_score]",
    "gw_top1": f"[peers {PEER_SETS} {GW} top1]",
    # the same over the real sets only (on the simulator one moscot_gw seed of three found a far better optimum)
    "gw_over_chance_real": f"[peers {REAL} {GW} match_score] / [peers {REAL} random|random|random match_score]",
    "gw_top1_real": f"[peers {REAL} {GW} top1]",
    # the current default (Accuracy table; the Peers table's own scmatch rows for the simulator) over chance
    "default_over_chance": f"[accuracy {REAL} scmatch_ms_k3 match_score] / [peers {REAL} random match_score]",
    "maxfuse_cold_fit": "[peers cite|totalvi maxfuse cold_fit_seconds], [peers cite|totalvi|multiome|snareseq|simulated"
    " maxfuse_ridge cold_fit_seconds]",
    "maxfuse_fit": "[peers cite|totalvi maxfuse fit_seconds], [peers cite|totalvi|multiome|snareseq|simulated"
    " maxfuse_ridge fit_seconds]",
}

#: numbers quoted in docstrings: (phrase with one regex group per number, one expression per group)
DOCSTRINGS: list[tuple[str, tuple[str, ...]]] = [
    (  # tl.match_modalities: the depth input
        r"on SNARE-seq2 their log depths correlate (\d\.\d\d) over the reference pairs",
        ("depth snare2 scmatch_depth depth.correlation preprocessing=joint",),
    ),
    (  # tl.match_modalities: the feature links
        r"On the CITE starter it lifted the match score from (\d\.\d\d\d) to (\d\.\d\d\d) \(8 seeds\), on totalVI from"
        r" (\d\.\d\d\d) to (\d\.\d\d\d) \(3 seeds",
        tuple(
            f"links {d} {m} match_score preprocessing=joint"
            for d in ("cite", "totalvi")
            for m in ("scmatch", "scmatch_links")
        ),
    ),
    (
        r"On the real sets the default scored (\d\.\d) to (\d\.\d)x ``\"nll\"``",
        ("min([ms_over_nll_k1])", "max([ms_over_nll_k1])"),
    ),
    (  # model: the ensemble's members in threads
        r"the ensemble trains at (7,000) pairs/s against (4,000) one member after the other",
        (
            "±50: speed simulated_10000 scmatch ensemble_pairs_per_second",
            "±50: speed simulated_10000 scmatch_24b7a04 pairs_per_second",
        ),
    ),
    (  # tl.match_modalities: the per-cell confidence against transfer_labels' confidence
        r"\(AUROC (\d\.\d\d) to (\d\.\d\d); one minus the normalised entropy of the same probabilities did no"
        r" better, (\d\.\d\d) to (\d\.\d\d)\), while the confidence of :func:`~scmatch.tl.transfer_labels` did"
        r" \((\d\.\d\d) to (\d\.\d\d)\)",
        (
            *(
                f"{stat}([transfer {TRANSFER} scmatch {field}])"
                for field in ("top_probability_auroc", "entropy_auroc")
                for stat in ("min", "max")
            ),
            f"min([transfer {TRANSFER} scmatch label_confidence_auroc])",
            f"max([transfer {TRANSFER} scmatch label_confidence_auroc])",
        ),
    ),
    (  # tl.transfer_features: the automatic temperature
        r"mean Pearson from (\d\.\d\d) to (\d\.\d\d) \(CITE starter; ridge regression: (\d\.\d\d)\) and from"
        r" (\d\.\d\d) to (\d\.\d\d) \(totalVI; ridge: (\d\.\d\d)\)",
        tuple(
            f"transfer {d} {m} {f}"
            for d in ("cite", "totalvi")
            for m, f in (
                ("scmatch", "feature_pearson_t1"),
                ("scmatch", "feature_pearson"),
                ("ridge", "feature_pearson"),
            )
        ),
    ),
    (  # tl.transfer_labels: the held-out rule against the round trip
        r"on the multiome starter (\d\.\d\d\d) against (\d\.\d\d\d) right, NLL (\d\.\d\d\d) against (\d\.\d\d\d)\.",
        tuple(f"transfer multiome scmatch label_{k}" for k in ("accuracy_held_out", "accuracy_round_trip"))
        + tuple(f"transfer multiome scmatch label_{k}" for k in ("nll_held_out", "nll_round_trip")),
    ),
    (  # tl.transfer_labels: the calibration on each set
        r"Its expected calibration error \(10 bins\) is (\d\.\d\d\d) on SNARE-seq2 \((\d+) held-out pairs; (\d\.\d\d\d)"
        r" by the round trip\), (\d\.\d\d\d) on totalVI's 103 cells \((\d\.\d\d\d) if calibrated,"
        r" :func:`scmatch.metrics.ece_under_calibration`\) and (\d\.\d\d\d) on the multiome starter",
        (
            "transfer snare2_mop scmatch label_ece",
            "transfer snare2_mop scmatch label_held_out_pairs",
            "transfer snare2_mop scmatch label_ece_round_trip",
            "transfer totalvi scmatch label_ece",
            "transfer totalvi scmatch label_ece_if_calibrated",
            "transfer multiome scmatch label_ece",
        ),
    ),
    (  # tl.transfer_labels: the round trip on the ATAC starter, and the CITE starter
        r"a round trip over the source labels shows none of it: (\d\.\d\d\d)\)\. On the CITE-seq starter it is"
        r" (\d\.\d\d\d), with a confidence too low \(mean (\d\.\d\d\d) against (\d\.\d\d\d) right\)",
        (
            "transfer multiome scmatch label_ece_round_trip",
            "transfer cite scmatch label_ece",
            "transfer cite scmatch label_mean_confidence",
            "transfer cite scmatch label_accuracy",
        ),
    ),
    (  # tl.select_coreset: the Sketch table's rare types at 1%
        r"uniform sampling kept (\d) to (\d) of 4 at 1%, geometric sketching \(geosketch\) (\d\.\d) to (\d) of 4,"
        r" ``\"craig\"`` (\d) to (\d\.\d) of 4",
        tuple(
            f"4 * {stat}([sketch {SKETCH_50K} {method}_0.01 rare_types_retained])"
            for method in ("uniform", "geosketch", "scmatch_craig")
            for stat in ("min", "max")
        ),
    ),
    (  # learn_metric: the Label coreset table
        r"a 10% Wasserstein coreset kept (\d+)% of the full-data precision@10",
        (
            "100 * [label_coreset simulated_50k wasserstein_0.1 precision_at_10]"
            " / [label_coreset simulated_50k full_e20 precision_at_10]",
        ),
    ),
]


class NumberError(ValueError):
    """A marker that cannot be resolved: unknown folder, no matching record, a field the records lack, bad syntax."""


@cache
def records(folder: str) -> tuple[dict, ...]:
    """Every record of ``benchmarks/results/FOLDER`` (sorted by file name)."""
    path = RESULTS / folder
    if not path.is_dir():
        raise NumberError(f"no results folder benchmarks/results/{folder}")
    return tuple(json.loads(f.read_text()) for f in sorted(path.glob("*.json")))


def _field(record: dict, name: str) -> object:
    value: object = record
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(name)
        value = value[part]
    return value


def term(text: str) -> float | np.ndarray:
    """The value of one term ``FOLDER DATASET METHOD FIELD [STAT] [KEY=VALUE ...]`` (``a|b``: one value each)."""
    words = text.split()
    if len(words) == 1 and words[0] in NAMES:
        return _evaluate(NAMES[words[0]])
    alternatives = [i for i, w in enumerate(words) if "|" in w]
    if alternatives:  # one value per alternative (every combination, in order, when several words have them)
        i = alternatives[0]
        values = [term(" ".join([*words[:i], alt, *words[i + 1 :]])) for alt in words[i].split("|")]
        return np.concatenate([np.ravel(v) for v in values])
    filters = dict(w.split("=", 1) for w in words if "=" in w)
    words = [w for w in words if "=" not in w]
    if len(words) not in (4, 5):
        raise NumberError(f"[{text}]: a term is FOLDER DATASET METHOD FIELD [STAT] [KEY=VALUE ...]")
    folder, dataset, method, field = words[:4]
    stat = words[4] if len(words) == 5 else "mean"
    if stat not in STATS:
        raise NumberError(f"[{text}]: unknown statistic {stat!r}; one of {sorted(STATS)}")
    chosen = [
        r
        for r in records(folder)
        if ("error" not in r or "error" in filters)
        and dataset in ("*", r.get("dataset"))
        and method in ("*", r.get("method", r.get("variant")))
        and all(k in r if v == "*" else str(r.get(k)) == v for k, v in filters.items())
    ]
    if not chosen:
        raise NumberError(f"[{text}]: no record in benchmarks/results/{folder} matches")
    if stat == "n":
        return float(len(chosen))
    try:
        values = [float(_field(r, field)) for r in chosen]
    except KeyError as err:
        raise NumberError(f"[{text}]: a matching record has no field {err.args[0]!r}") from None
    return float(STATS[stat](values))


def evaluate(expr: str) -> float:
    """The value of a marker's expression (one bare term, or terms in square brackets with arithmetic).

    A term with alternatives (``[accuracy cite|totalvi scmatch_ms_k3 match_score]``) is a vector; arithmetic on
    vectors is element by element, and ``min``/``max``/``mean`` of one vector reduce it. The result must be one number.
    """
    value = _evaluate(expr.strip())
    if np.ndim(value):
        raise NumberError(f"{expr!r}: gives {len(value)} values; reduce them with min(...) or max(...)")
    return float(value)


def _evaluate(expr: str) -> float | np.ndarray:
    if "[" not in expr:
        return term(expr)
    values: list[float | np.ndarray] = []

    def _placeholder(match: re.Match) -> str:
        values.append(term(match.group(1)))
        return f"_t{len(values) - 1}"

    try:
        tree = ast.parse(TERM.sub(_placeholder, expr), mode="eval")
    except SyntaxError as err:
        raise NumberError(f"{expr!r}: not an arithmetic expression over [terms] ({err.msg})") from None

    def _eval(node: ast.AST) -> float | np.ndarray:
        if isinstance(node, ast.Expression):
            return _eval(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id.startswith("_t"):
            return values[int(node.id[2:])]
        if isinstance(node, ast.Tuple):  # "a, b": the values of both, one after the other
            return np.concatenate([np.ravel(_eval(e)) for e in node.elts])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -_eval(node.operand)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            left, right = _eval(node.left), _eval(node.right)
            ops = {ast.Add: left + right, ast.Sub: left - right, ast.Mult: left * right}
            return ops[type(node.op)] if type(node.op) in ops else left / right
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
            args = [_eval(a) for a in node.args]
            name = node.func.id
            if name in ("min", "max", "mean"):
                return float(getattr(np, name)(np.concatenate([np.ravel(a) for a in args])))
            if name == "round":
                return np.round(args[0], int(args[1]))
            return np.abs(args[0])
        raise NumberError(f"{expr!r}: only numbers, [terms], + - * /, min, max, mean, abs and round are allowed")

    return _eval(tree)


@dataclass(frozen=True)
class Quote:
    """One quoted number and where it is."""

    where: str  # file:line
    quoted: str  # as written
    expr: str
    tolerance: float | None = None  # None: half a unit of the last quoted digit
    bound: str | None = None  # "max": the quoted number bounds the records' value from above; "min": from below

    @property
    def value(self) -> float:
        return float(self.quoted.replace(",", ""))

    def precision(self) -> float:
        if self.tolerance is not None:
            return self.tolerance
        decimals = len(self.quoted.split(".")[1]) if "." in self.quoted else 0
        return 0.5 * 10.0**-decimals

    def check(self) -> tuple[float, bool]:
        """(the records' value, whether the quoted number rounds from it)."""
        recorded = evaluate(self.expr)
        if not math.isfinite(recorded):
            return recorded, False
        if self.bound == "max":
            return recorded, recorded <= self.value
        if self.bound == "min":
            return recorded, recorded >= self.value
        return recorded, abs(recorded - self.value) <= self.precision() * (1 + 1e-9) + 1e-12


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def document_quotes(paths: list[Path] | None = None) -> list[Quote]:
    """Every marked number in the documents; a marker without a number right before it raises NumberError."""
    if paths is None:
        paths = sorted({p for pattern in DOCUMENTS for p in REPO.glob(pattern)})
    quotes = []
    for path in paths:
        text = path.read_text()
        rel = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        found = {m.start("expr") for m in MARKER.finditer(text)}
        for m in LOOSE_MARKER.finditer(text):
            close = text.find("-->", m.start())
            if not any(m.start() < s < close for s in found):
                raise NumberError(f"{rel}:{_line(text, m.start())}: a marker with no number right before it")
        for m in MARKER.finditer(text):
            tol = float(m.group("tol").replace(",", "")) if m.group("tol") else None
            where = f"{rel}:{_line(text, m.start())}"
            quotes.append(Quote(where, m.group("number"), " ".join(m.group("expr").split()), tol, m.group("bound")))
    return quotes


def docstring_quotes(src: Path = REPO / "src" / "scmatch") -> list[Quote]:
    """The numbers of :data:`DOCSTRINGS`, found in the source (whitespace-insensitive)."""
    files = {p: " ".join(p.read_text().split()) for p in sorted(src.rglob("*.py"))}
    quotes = []
    for phrase, exprs in DOCSTRINGS:
        pattern = re.compile(r"\s+".join(phrase.split()))
        hits = [(p, m) for p, text in files.items() for m in pattern.finditer(text)]
        if not hits:
            raise NumberError(f"the docstring phrase {phrase!r} is no longer in src/scmatch: update DOCSTRINGS")
        for path, m in hits:
            if m.re.groups != len(exprs):
                raise NumberError(f"{phrase!r}: {m.re.groups} numbers but {len(exprs)} expressions")
            for group, expr in enumerate(exprs, start=1):
                head = HEAD.match(expr)
                tol = float(head.group("tol").replace(",", "")) if head and head.group("tol") else None
                bound = head.group("bound") if head else None
                body = expr[head.end() :] if head else expr
                where = f"{path.relative_to(REPO)} (docstring)"
                quotes.append(Quote(where, m.group(group), " ".join(body.split()), tol, bound))
    return quotes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval", metavar="EXPR", help="print the value of one marker expression and exit")
    parser.add_argument("--quiet", action="store_true", help="print only the mismatches")
    args = parser.parse_args(argv)
    if args.eval:
        print(evaluate(args.eval))
        return 0
    bad = 0
    quotes = document_quotes() + docstring_quotes()
    for q in quotes:
        try:
            recorded, ok = q.check()
        except NumberError as err:
            recorded, ok = float("nan"), False
            print(f"{q.where}: {err}")
        bad += not ok
        if not ok or not args.quiet:
            print(f"{'ok ' if ok else 'BAD'} {q.where}: quoted {q.quoted}, records say {recorded:.6g}  [{q.expr}]")
    print(f"{len(quotes)} quoted numbers, {bad} not matching their records")
    return int(bad > 0)


if __name__ == "__main__":
    sys.exit(main())
