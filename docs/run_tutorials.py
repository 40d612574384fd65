"""Execute the tutorial notebooks in place and check what they show (CI runs this before building the docs).

    python docs/run_tutorials.py                  # every tutorials/*.ipynb
    python docs/run_tutorials.py 01_quickstart    # only the named ones (file stems)
    python docs/run_tutorials.py --jobs 2         # two notebooks at a time (each kernel keeps one thread)

Each notebook runs top to bottom in a fresh ``python3`` kernel of the current environment, with ``tutorials/`` as
its working directory, so it reads the real data from ``../../shared/data`` (or ``$SCMATCH_DATA``). The executed
notebook is written back in place (the docs show these stored outputs; Read the Docs never executes them).

A notebook fails when

- a cell raises (an ``error`` output), or the notebook takes more than ``--max-seconds`` (180 s) of wall time;
- it draws no figure: no ``image/png`` output;
- it prints no score: no stdout line of the form ``match_score 0.0123`` (the name, spaces, a number in [0, 1]),
  the format of ``scmatch demo``.

Figures are stored as 256-colour PNGs (visually the same for plots, a quarter of the size), so the notebooks stay
small in the repository. One summary line per notebook is printed; the exit code is 1 if any notebook failed, 2
for a bad argument.
BLAS/OpenMP/torch threads are limited to one per kernel (unless ``OMP_NUM_THREADS`` is set): the problems are
small and threads that wait for each other on a loaded 2-core machine made training many times slower.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
#: the score line every tutorial prints at least once, e.g. "match_score    0.0612"
SCORE_LINE = re.compile(r"^match_score\s+(\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*$", re.MULTILINE)
ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _kernel_environment() -> None:
    """Environment inherited by the kernels: inline figures, one thread, this interpreter first on the PATH."""
    # MPLBACKEND=Agg (set by CI for the tests) would stop the kernel from showing figures inline
    os.environ.pop("MPLBACKEND", None)
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, os.environ.get("OMP_NUM_THREADS", "1"))
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # silences a debugger notice of ipykernel


def _outputs(nb: nbformat.NotebookNode):
    """(cell index, output) of every output of every cell."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            yield index, output


def _stdout(nb: nbformat.NotebookNode) -> str:
    return "".join(
        output.get("text", "")
        for _, output in _outputs(nb)
        if output.get("output_type") == "stream" and output.get("name") == "stdout"
    )


def _images(nb: nbformat.NotebookNode) -> list[dict]:
    """The ``data`` dicts of the outputs that hold a PNG figure."""
    return [
        output["data"]
        for _, output in _outputs(nb)
        if output.get("output_type") in ("display_data", "execute_result") and "image/png" in output.get("data", {})
    ]


def compact_images(nb: nbformat.NotebookNode) -> None:
    """Re-encode every PNG figure with a 256-colour palette when that makes it smaller."""
    from PIL import Image

    for data in _images(nb):
        raw = base64.b64decode(data["image/png"])
        image = Image.open(io.BytesIO(raw))
        buffer = io.BytesIO()
        image.quantize(256, method=Image.Quantize.FASTOCTREE).save(buffer, format="png", optimize=True)
        if buffer.tell() < len(raw):
            data["image/png"] = base64.b64encode(buffer.getvalue()).decode("ascii")


def check_outputs(nb: nbformat.NotebookNode) -> list[str]:
    """What is missing or wrong in an executed notebook's outputs (empty when it passes)."""
    problems = [
        f"cell {index} raised {output.get('ename')}: {output.get('evalue')}"
        for index, output in _outputs(nb)
        if output.get("output_type") == "error"
    ]
    if not _images(nb):
        problems.append("no figure (image/png output)")
    scores = [float(value) for value in SCORE_LINE.findall(_stdout(nb))]
    if not scores:
        problems.append("no printed score line 'match_score <number>'")
    elif not all(0.0 <= value <= 1.0 for value in scores):
        problems.append(f"a match score outside [0, 1]: {scores}")
    return problems


def run_notebook(path: Path, *, max_seconds: float, cell_timeout: int) -> tuple[bool, str]:
    """Execute ``path`` in place; return (passed, one-line summary)."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=cell_timeout,
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,  # no timestamps in the stored notebooks: re-running changes only real outputs
    )
    start = time.perf_counter()
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
        seconds = time.perf_counter() - start
        message = ANSI_CODES.sub("", str(err)).strip()
        first_line = message.splitlines()[-1] if message else type(err).__name__
        print(str(err), file=sys.stderr)
        return False, f"FAIL {path.name:<32s} {seconds:6.1f} s  execution stopped: {first_line}"
    seconds = time.perf_counter() - start
    problems = check_outputs(nb)
    if seconds > max_seconds:
        problems.append(f"took {seconds:.0f} s, more than the {max_seconds:.0f} s allowed")
    compact_images(nb)
    nbformat.write(nb, path)
    size_kb = path.stat().st_size / 1024
    scores = SCORE_LINE.findall(_stdout(nb))
    detail = "; ".join(problems) if problems else f"match_score {scores[0]}, {size_kb:.0f} KB"
    return not problems, f"{'ok  ' if not problems else 'FAIL'} {path.name:<32s} {seconds:6.1f} s  {detail}"


def main(argv: list[str] | None = None) -> int:
    """Run the tutorials named on the command line (default: all); return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook file stems (default: every tutorials/*.ipynb)")
    parser.add_argument("--max-seconds", type=float, default=180.0, help="wall-time limit per notebook (180)")
    parser.add_argument("--cell-timeout", type=int, default=600, help="seconds before a cell is stopped (600)")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks executed at the same time (1)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        print(f"run_tutorials: --jobs must be at least 1, got {args.jobs}", file=sys.stderr)
        return 2
    paths = sorted(TUTORIALS.glob("*.ipynb"))
    if args.names:
        wanted = {name.removesuffix(".ipynb") for name in args.names}
        unknown = wanted - {p.stem for p in paths}
        if unknown:
            print(f"run_tutorials: no notebook named {sorted(unknown)} in {TUTORIALS}", file=sys.stderr)
            return 2
        paths = [p for p in paths if p.stem in wanted]
    if not paths:
        print(f"run_tutorials: no notebooks in {TUTORIALS}", file=sys.stderr)
        return 2
    _kernel_environment()
    run = partial(run_notebook, max_seconds=args.max_seconds, cell_timeout=args.cell_timeout)
    results = []
    # each notebook runs in its own worker process and kernel, and writes only its own file and temporary folders
    with ProcessPoolExecutor(max_workers=min(args.jobs, len(paths))) as pool:
        for passed, line in pool.map(run, paths):  # reported in file order
            print(line, flush=True)
            results.append(passed)
    print(f"{sum(results)} of {len(results)} tutorials passed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
