"""benchmarks/make_table.py: the tables of benchmarks/README.md are what the JSON records give."""

import json

import make_table
import pytest


def test_benchmark_tables_match_their_records():
    # a record added or changed without `python benchmarks/make_table.py NAME` fails here
    assert make_table.stale_tables() == []


@pytest.fixture
def tiny_results(tmp_path):
    results = tmp_path / "results"
    (results / "toy").mkdir(parents=True)
    for seed, score in enumerate([0.1, 0.3]):
        record = {"dataset": "cite", "method": "scmatch", "seed": seed, "n_train": 10, "n_test": 5}
        record |= {"match_score": score, "git_commit": "0123456789abcdef", "git_dirty": False}
        (results / "toy" / f"cite__scmatch__seed{seed}.json").write_text(json.dumps(record))
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n")
    make_table.update_readme("toy", make_table.table("toy", make_table.load("toy", results)), readme)
    return readme, results


def test_check_sees_a_changed_record_and_a_missing_table(tiny_results):
    readme, results = tiny_results
    assert make_table.stale_tables(readme, results) == []
    assert "| cite | scmatch | 10 / 5 | 2 | 0.2 ± 0.141 |" in readme.read_text()
    path = results / "toy" / "cite__scmatch__seed1.json"
    path.write_text(path.read_text().replace("0.3", "0.5"))
    assert make_table.stale_tables(readme, results) == ["toy"]
    readme.write_text("# Benchmarks\n")  # no table at all for a folder with records
    assert make_table.stale_tables(readme, results) == ["toy"]
