"""Every bad input of ``cases.py`` is refused with its documented error, and leaves every input unchanged."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .cases import Case, message_for_docs, run_case
from .disk_cases import ALL_CASES as CASES

ROOT = Path(__file__).resolve().parents[2]
#: messages of the cases run in this session, reused by the docs check
OUTCOMES: dict[str, tuple[str, str]] = {}


def test_cases_are_many_and_distinct():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len({(case.entry, case.bad_input) for case in CASES}) == len(CASES)
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_and_input_unchanged(case: Case, tmp_path: Path):
    kind, message = run_case(case, tmp_path)
    if case.error in (ValueError, TypeError):
        assert kind == case.error.__name__
    # a message says what is wrong and how to fix it: more than a bare word
    assert len(message) > 25
    OUTCOMES[case.id] = (kind, message_for_docs(message, tmp_path))


def test_pickled_code_never_runs(tmp_path: Path):
    case = next(c for c in CASES if c.id == "load-pickled-code")
    run_case(case, tmp_path)
    assert not (tmp_path / "payload_ran").exists()


def test_docs_table_is_current(tmp_path_factory):
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from make_reliability_table import render
    finally:
        sys.path.remove(str(ROOT / "docs"))
    outcomes = dict(OUTCOMES)
    for case in CASES:  # cases not run above (e.g. with -k) are run now
        if case.id not in outcomes:
            tmp = tmp_path_factory.mktemp(case.id)
            kind, message = run_case(case, tmp)
            outcomes[case.id] = (kind, message_for_docs(message, tmp))
    expected = render(outcomes)
    current = (ROOT / "docs" / "reliability.md").read_text()
    assert current == expected, "docs/reliability.md is out of date: run `python docs/make_reliability_table.py`"
