"""Write docs/reliability.md: every bad input scmatch is tested with and the exact message it gets.

The cases are those of tests/reliability/cases.py and disk_cases.py, run for real here; the test
``tests/reliability/test_bad_inputs.py::test_docs_table_is_current`` fails when this file is out of date.

Usage: ``python docs/make_reliability_table.py``
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "reliability.md"

HEADER = """\
# Reliability: bad inputs and the messages they get

scmatch checks every input before it writes anything. Each row below is one bad input tried in the test suite
(`tests/reliability/cases.py`, and `disk_cases.py` for the files scmatch reads and writes); the test asserts the
error type, the message, and that every input the call was given (MuData/AnnData: `X`, layers, obs, var, obsm,
varm, obsp, varp, uns, names, per modality and global; arrays; models; files and folders on disk) is exactly as
it was before the call. The messages are the ones the current code really produces (temporary folders shown as
`<tmp>`, whitespace collapsed). Regenerate this page with `python docs/make_reliability_table.py`; a test fails
when it is out of date.

Also tested (`tests/reliability/`): training that diverges (NaN loss) or is interrupted (KeyboardInterrupt
mid-epoch) leaves the MuData unchanged; a model save or a prediction write interrupted part-way (while writing
`model.pt`, between `model.pt` and `config.json`, mid-file) leaves the previous model or file byte for byte as it
was, still loading with identical predictions, and no temporary file behind (files and folders are written under
a hidden temporary name and renamed into place); a model file that would run code when unpickled is refused without
running it (weights are read with `torch.load(weights_only=True)`, settings from JSON); valid edge cases
(fewer reference cells than the batch size, `top_k` above the number of candidates, integer, sparse and
DataFrame inputs) give the same answers as their plain float counterparts; property-based tests (hypothesis)
check that probabilities are non-negative, rows sum to one, rows hold at most `top_k` non-zeros, results repeat
under the same seed, and metrics do not depend on the order of the cells.

Files on disk (`tests/reliability/test_damage.py`, `test_disk.py`):

- **Random damage** (hypothesis, about 20 s in all): a flipped byte anywhere in each file of a saved model (new
  and legacy folders) and of a prediction, a truncation of each to any length, and edits of the numbers of
  `config.json` within and outside their bounds (with the manifest re-signed to match, as a deliberate editor
  would, and without). Each ends, within a time bound, in an `InvalidFileError` (a `ValueError`) naming the file
  at `MatchModel.load` or `io.read_prediction`, with every file on disk as it was; the only other outcome allowed
  is damage the reader cannot see (a flip in free space of the HDF5 file, JSON whitespace turned into other
  whitespace), where the loaded model or prediction must be exactly the one saved.
- **Model folders** carry `manifest.json`: scmatch's format marker and version, the scmatch version, and the size
  and sha256 of every other file, `config.json` included (and of the manifest itself). `load` verifies it, bounds
  every number of `config.json`, compares the networks' sizes with the weights' shapes (read first, with
  `torch.load(weights_only=True)`, after the archive's sizes and CRCs are checked), and checks the preprocessing
  files against the model (two modalities, known recipes and settings, the arrays each keeps, shapes, dtypes,
  finite values, fingerprints) before it builds anything. `save(overwrite=True)` replaces only a folder with
  the marker that holds nothing else. Folders saved before manifests still load (their checksums of `model.pt`
  and of the preprocessing files are verified; `config.json`, which has none, gets the bounds and shape checks),
  with identical predictions and a logged note.
- **HDF5 files** (`.h5ad` inputs, predictions, the demo's `.h5mu`) are checked for their kind (an `.h5mu` where an
  `.h5ad` is expected, a plain HDF5 file, text), walked first in a child process (a damaged attribute was seen to
  crash the HDF5 library: such a file is refused, the caller's process never meets it), and refused when a
  dataset claims more bytes than its storage can hold. Predictions written by scmatch carry a checksum of their
  content (`uns['scmatch_sha256']`).
- **Outputs never name inputs**: `scmatch match --output`, `io.write_prediction` (its `inputs=`, and a matrix
  backed by the file) and `MatchModel.save` (a `preprocessing=` AnnData backed by a file in the folder) refuse a
  path that is, through symbolic or hard links, a file the call reads; `io.write_prediction` replaces an existing
  file only if it is a prediction.

"""


def _cell(text: str) -> str:
    """``text`` for a table cell: pipes escaped, one line, and ``<`` outside code spans as ``&lt;``.

    Outside a code span, Markdown passes ``<tmp>`` or ``<fingerprint>`` through as an HTML tag, which a browser
    does not show; inside one it is shown as written.
    """
    parts = text.replace("|", "\\|").replace("\n", " ").split("`")
    return "`".join(part if i % 2 else part.replace("<", "&lt;") for i, part in enumerate(parts))


def render(outcomes: dict[str, tuple[str, str]]) -> str:
    """The page for ``outcomes`` (case id -> (exception type, message)), in the order of the cases."""
    from reliability.disk_cases import ALL_CASES as CASES

    lines = [
        HEADER,
        f"{len(CASES)} bad inputs.\n",
        "| # | Entry point | Bad input | Error | Message |",
        "|---|---|---|---|---|",
    ]
    for i, case in enumerate(CASES, 1):
        kind, message = outcomes[case.id]
        lines.append(f"| {i} | `{case.entry}` | {_cell(case.bad_input)} | `{kind}` | {_cell(message)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run every case and write the table."""
    sys.path.insert(0, str(ROOT / "tests"))
    from reliability.cases import message_for_docs, run_case
    from reliability.disk_cases import ALL_CASES as CASES

    outcomes = {}
    for case in CASES:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            kind, message = run_case(case, tmp)
            outcomes[case.id] = (kind, message_for_docs(message, tmp))
    TARGET.write_text(render(outcomes))
    print(f"wrote {TARGET.relative_to(ROOT)} ({len(CASES)} cases)")


if __name__ == "__main__":
    main()
