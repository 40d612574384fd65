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
(`tests/reliability/cases.py`); the test asserts the error type, the message, and that every input the call was
given (MuData/AnnData: `X`, layers, obs, var, obsm, varm, obsp, varp, uns, names, per modality and global;
arrays; models; files and folders on disk) is exactly as it was before the call. The messages are the ones the
current code really produces (temporary folders shown as `<tmp>`, whitespace collapsed). Regenerate this page
with `python docs/make_reliability_table.py`; a test fails when it is out of date.

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

"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


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
