"""Shared test fixtures: real data from ../shared/data and small simulated sets."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

matplotlib.use("Agg")

DATA_DIR = Path(os.environ.get("SCMATCH_TEST_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One BLAS and one torch thread: the problems here are small, and on a loaded 2-core machine threads that
    wait for each other made SVDs and training many times slower (measured)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1, user_api="blas"):
        yield
    torch.set_num_threads(previous)


def latent_pairs(n: int, *, seed: int = 0, noise: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Paired toy modalities driven by one latent state: (n x 20) and (n x 15) arrays."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 6))
    A, B = rng.normal(size=(6, 20)), rng.normal(size=(6, 15))
    x1 = np.tanh(z @ A) + noise * rng.normal(size=(n, 20))
    x2 = z @ B + noise * rng.normal(size=(n, 15))
    return x1.astype(np.float32), x2.astype(np.float32)


@pytest.fixture(scope="session")
def toy_pairs() -> tuple[np.ndarray, np.ndarray]:
    return latent_pairs(500)


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


@pytest.fixture(scope="session")
def cite_path() -> Path:
    return _data_file("bmmc_cite_starter.h5mu")


@pytest.fixture(scope="session")
def multiome_path() -> Path:
    return _data_file("bmmc_multiome_starter.h5mu")


@pytest.fixture(scope="session")
def challenge_dir() -> Path:
    return _data_file("neurips2021_match_modality")
