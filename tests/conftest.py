"""Shared test fixtures: real data from ../shared/data and small simulated sets."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

DATA_DIR = Path(os.environ.get("SCMATCH_TEST_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


def _data_file(name: str) -> Path:
    path = DATA_DIR / name
    if not path.exists():
        if os.environ.get("CI"):
            raise FileNotFoundError(f"Test data {path} is missing; CI must run with ../shared beside the clone.")
        pytest.skip(f"real data {path} not available")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder of real paired datasets (../shared/data)."""
    _data_file("SOURCES.md")
    return DATA_DIR


@pytest.fixture
def cite_path() -> Path:
    return _data_file("bmmc_cite_starter.h5mu")


@pytest.fixture
def multiome_path() -> Path:
    return _data_file("bmmc_multiome_starter.h5mu")


@pytest.fixture
def challenge_dir() -> Path:
    return _data_file("neurips2021_match_modality")
