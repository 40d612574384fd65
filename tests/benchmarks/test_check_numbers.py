"""benchmarks/check_numbers.py: every benchmark number quoted in the prose matches the records it names."""

import json

import check_numbers as cn
import pytest


def test_every_quoted_number_matches_its_records():
    quotes = cn.document_quotes() + cn.docstring_quotes()
    bad = []
    for q in quotes:
        recorded, ok = q.check()
        if not ok:
            bad.append(f"{q.where}: quoted {q.quoted}, the records say {recorded:.6g} [{q.expr}]")
    assert not bad, "\n".join(bad)
    # the markers are still found: a marker the pattern stops matching would drop out silently
    where = {q.where.split(":")[0].split(" ")[0] for q in quotes}
    assert {"README.md", "docs/choosing.md", "docs/probabilities.md", "docs/scaling.md", "docs/atac.md"} <= where
    assert len(quotes) >= 100


@pytest.fixture
def toy_results(tmp_path, monkeypatch):
    (tmp_path / "acc").mkdir()
    for seed, (score, fit) in enumerate([(0.10, 10.0), (0.12, 14.0), (0.14, 12.0)]):
        record = {"dataset": "cite", "method": "ms", "seed": seed, "match_score": score, "settings": {"fit": fit}}
        (tmp_path / "acc" / f"cite__ms__seed{seed}.json").write_text(json.dumps(record))
    for dataset, score in [("cite", 0.06), ("totalvi", 0.2)]:
        record = {"dataset": dataset, "method": "nll", "seed": 0, "match_score": score}
        (tmp_path / "acc" / f"{dataset}__nll__seed0.json").write_text(json.dumps(record))
    (tmp_path / "acc" / "cite__broken__seed0.json").write_text(
        json.dumps({"dataset": "cite", "method": "ms", "error": "x"})
    )
    monkeypatch.setattr(cn, "RESULTS", tmp_path)
    cn.records.cache_clear()
    yield tmp_path
    cn.records.cache_clear()


def test_terms_and_expressions(toy_results):
    assert cn.evaluate("acc cite ms match_score") == pytest.approx(
        0.12
    )  # mean over seeds; the error record is left out
    assert cn.evaluate("acc cite ms match_score sd") == pytest.approx(0.02)
    assert cn.evaluate("acc cite ms match_score n") == 3
    assert cn.evaluate("acc cite ms settings.fit max") == 14.0
    assert cn.evaluate("acc cite ms match_score seed=1") == pytest.approx(0.12)
    assert cn.evaluate("[acc cite ms match_score] / [acc cite nll match_score]") == pytest.approx(2.0)
    assert cn.evaluate("100 * ([acc cite ms match_score] - [acc cite nll match_score])") == pytest.approx(6.0)
    assert cn.evaluate("max([acc cite|totalvi nll match_score])") == pytest.approx(0.2)
    assert cn.evaluate("min([acc cite|totalvi nll match_score] * 2)") == pytest.approx(0.12)
    assert cn.evaluate("mean([acc cite|totalvi nll match_score], [acc cite ms match_score])") == pytest.approx(0.38 / 3)
    assert cn.evaluate("acc cite ms seed n error=*") == 1  # a record with an error only when asked for
    assert cn.evaluate("acc * ms match_score n") == 3
    with pytest.raises(cn.NumberError, match="reduce them"):
        cn.evaluate("[acc cite|totalvi nll match_score]")
    with pytest.raises(cn.NumberError, match="no record"):
        cn.evaluate("acc snareseq ms match_score")
    with pytest.raises(cn.NumberError, match="no field"):
        cn.evaluate("acc cite ms top1")
    with pytest.raises(cn.NumberError, match="no results folder"):
        cn.evaluate("nowhere cite ms match_score")
    with pytest.raises(cn.NumberError, match="only numbers"):
        cn.evaluate("__import__('os') + [acc cite ms match_score]")


def test_quoted_precision_units_and_tolerance(toy_results, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(
        "scores 0.12<!-- rec: acc cite ms match_score --> and 0.120<!-- rec: acc cite ms match_score -->,\n"
        "| 2x<!-- rec: [acc cite ms match_score] / [acc cite nll match_score] --> | 12%<!-- rec: 100 * [acc cite ms"
        " match_score] --> |\n"
        "about 1,200<!-- rec ±50: 10000 * [acc cite ms match_score] --> cells,"
        " 0.13<!-- rec: acc cite ms match_score -->\n"
        "and 0.1<!-- rec ±0.05: acc cite ms match_score -->\n"
    )
    quotes = cn.document_quotes([doc])
    assert [q.quoted for q in quotes] == ["0.12", "0.120", "2", "12", "1,200", "0.13", "0.1"]
    assert [q.where.rsplit(":", 1)[1] for q in quotes] == ["1", "1", "2", "2", "3", "3", "4"]
    assert [q.check()[1] for q in quotes] == [True, True, True, True, True, False, True]
    doc.write_text(
        "under 15<!-- rec max: acc cite ms settings.fit max --> s, under 13<!-- rec max: acc cite ms settings.fit"
        " max --> s, at least 0.1<!-- rec min: acc cite ms match_score min -->\n"
    )
    assert [q.check()[1] for q in cn.document_quotes([doc])] == [True, False, True]
    doc.write_text("a marker on a word<!-- rec: acc cite ms match_score -->\n")
    with pytest.raises(cn.NumberError, match="no number right before it"):
        cn.document_quotes([doc])


def test_docstring_phrases_must_still_exist(monkeypatch):
    monkeypatch.setattr(
        cn, "DOCSTRINGS", [(r"a phrase no docstring says (\d+)", ("accuracy cite scmatch_ms_k3 seed n",))]
    )
    with pytest.raises(cn.NumberError, match="no longer in src/scmatch"):
        cn.docstring_quotes()
