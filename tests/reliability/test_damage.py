"""Property-based tests (hypothesis): random damage to every file of a saved model and of a prediction.

Damage is a flipped byte (any position, any bit pattern), a truncation (any length), or an edit of a number in a
JSON file (within its bounds or outside them, with the manifest re-signed as a deliberate editor would, or not).
Each must end, within :data:`TIME_LIMIT` seconds, in an :class:`~scmatch._errors.InvalidFileError` naming the
file at ``MatchModel.load`` / ``io.read_prediction``, with every file on disk as it was before the call. The only
other outcome allowed is damage the reader cannot see (e.g. a flip that turns one JSON whitespace into another):
the loaded model or prediction must then be exactly the one saved.

All examples together run in well under 60 s on one core (small models; ``max_examples`` per test below).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import scmatch as scm
from scmatch._errors import InvalidFileError
from scmatch.model import MatchModel

from .disk_cases import LEGACY, _template_with_preprocessing, prediction, resign

#: seconds a load or read of a damaged file may take (a healthy one takes a few hundredths; the HDF5 probe gives
#: up on a file after 8 s)
TIME_LIMIT = 12.0
MODEL_FILES = ("config.json", "manifest.json", "model.pt", "preprocessing.json", "preprocessing.npz")
LEGACY_FILES = ("model.pt", "preprocessing.json", "preprocessing.npz")
#: hypothesis's deadline per example: the load itself is bounded by TIME_LIMIT, the rest is copying small files
DEADLINE = timedelta(seconds=2 * TIME_LIMIT)


def damage(max_examples: int) -> settings:
    """Settings of these tests: few examples (all of them run in under 60 s), a deadline, no example database."""
    return settings(
        max_examples=max_examples, deadline=DEADLINE, database=None, suppress_health_check=[HealthCheck.too_slow]
    )


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in the test if the block runs longer than ``seconds`` (a hang is a failure)."""

    def expire(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _same_model(a: MatchModel, b: MatchModel) -> bool:
    sa, sb = a.module_.state_dict(), b.module_.state_dict()
    return (
        a.get_params() == b.get_params()
        and sa.keys() == sb.keys()
        and all(torch.equal(sa[k], sb[k]) for k in sa)
        and a.temperature_ == b.temperature_
        and a.feature_names_ == b.feature_names_
        and a.fingerprints_ == b.fingerprints_
        and [s is None or s.fingerprint for s in a.preprocessing_]
        == [s is None or s.fingerprint for s in b.preprocessing_]
    )


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, Path]:
    """The saved model (with preprocessing), the legacy folder and a prediction, with what each loads as."""
    folder = tmp_path_factory.mktemp("damage")
    pred = prediction(folder)
    return {"model": _template_with_preprocessing(), "legacy": LEGACY, "prediction": pred}


def _check_refused(
    source: Path, damage: Callable[[Path], None], load: Callable[[Path], object], same: Callable[[object], bool]
) -> None:
    """Copy ``source``, damage the copy, load it: a clear error naming the file, or exactly the original."""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / source.name
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, target)
        damage(target)
        before = _listing(Path(tmp))
        start = time.perf_counter()
        try:
            with time_limit(TIME_LIMIT):
                loaded = load(target)
        except InvalidFileError as err:
            assert (err.path is not None and Path(err.path).name in str(err)) or source.name in str(err), str(err)
        else:
            assert same(loaded), "damaged file accepted with another content"
        assert time.perf_counter() - start < TIME_LIMIT
        assert _listing(Path(tmp)) == before, "a load or read changed files on disk"


def _flip(name: str, position: float, mask: int) -> Callable[[Path], None]:
    def damage(target: Path) -> None:
        path = target / name if target.is_dir() else target
        data = bytearray(path.read_bytes())
        data[int(position * (len(data) - 1))] ^= mask
        path.write_bytes(bytes(data))

    return damage


def _cut(name: str, fraction: float, sign: bool) -> Callable[[Path], None]:
    def damage(target: Path) -> None:
        path = target / name if target.is_dir() else target
        data = path.read_bytes()
        path.write_bytes(data[: int(fraction * len(data))])
        if sign:
            resign(target)

    return damage


def _load_model(path: Path) -> MatchModel:
    return MatchModel.load(path, device="cpu")


@damage(60)
@given(name=st.sampled_from(MODEL_FILES), position=st.floats(0, 1), mask=st.integers(1, 255))
def test_flipped_byte_in_a_model_file_is_refused(templates, name, position, mask):
    original = _load_model(templates["model"])
    _check_refused(templates["model"], _flip(name, position, mask), _load_model, lambda m: _same_model(m, original))


@damage(30)
@given(name=st.sampled_from(LEGACY_FILES), position=st.floats(0, 1), mask=st.integers(1, 255))
def test_flipped_byte_in_a_legacy_model_file_is_refused(templates, name, position, mask):
    original = _load_model(templates["legacy"])
    _check_refused(templates["legacy"], _flip(name, position, mask), _load_model, lambda m: _same_model(m, original))


@damage(40)
@given(name=st.sampled_from(MODEL_FILES), fraction=st.floats(0, 0.999), sign=st.booleans())
def test_truncated_model_file_is_refused(templates, name, fraction, sign):
    """Also with the manifest re-signed to the truncated file: the content checks must then refuse it."""
    if sign and name == "manifest.json":
        sign = False  # a truncated manifest cannot be re-signed
    _check_refused(templates["model"], _cut(name, fraction, sign), _load_model, lambda m: False)


#: numbers of config.json whose every change must be refused, even with the manifest re-signed: the sizes of the
#: networks and of the inputs (they must fit the weights)
STRUCTURE = [
    ("params", "n_tokens"),
    ("params", "d_model"),
    ("params", "d_embed"),
    ("params", "n_layers"),
    ("params", "n_models"),
    ("n_features", 0),
    ("n_features", 1),
]
#: numbers that may take other values within bounds, but not outside them (checked with out-of-bounds values)
BOUNDED = [
    ("params", "epochs"),
    ("params", "batch_size"),
    ("params", "n_candidates"),
    ("params", "lr"),
    ("params", "dropout"),
    ("temperature", "softmax"),
    ("temperature", "sinkhorn"),
]
WITHIN = st.integers(-5, 300)
#: values outside the bounds of every number in BOUNDED (the largest bound is 10^8, for temperatures)
OUTSIDE = st.one_of(
    st.integers(10**9, 10**18),
    st.floats(1e9, 1e300),
    st.integers(-(10**18), -1),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), "x", None, [], {}]),
)


def _set_json(name: str, key: tuple, value: object, sign: bool) -> Callable[[Path], None]:
    def damage(target: Path) -> None:
        data = json.loads((target / name).read_text())
        data[key[0]][key[1]] = value
        (target / name).write_text(json.dumps(data))
        if sign and (target / "manifest.json").exists():
            resign(target)

    return damage


def _original(config: Path, key: tuple) -> object:
    return json.loads(config.read_text())[key[0]][key[1]]


@damage(60)
@given(
    key=st.sampled_from(STRUCTURE),
    value=st.one_of(WITHIN, OUTSIDE),
    sign=st.booleans(),
    legacy=st.booleans(),
)
# found by this test: a legacy config's n_models set to None (the constructor's "default") was accepted
@example(key=("params", "n_models"), value=None, sign=False, legacy=True)
def test_edited_structure_is_refused(templates, key, value, sign, legacy):
    source = templates["legacy" if legacy else "model"]
    if value == _original(source / "config.json", key) and type(value) is int:
        value += 1
    _check_refused(source, _set_json("config.json", key, value, sign), _load_model, lambda m: False)


@damage(40)
@given(key=st.sampled_from(BOUNDED), value=OUTSIDE, sign=st.booleans(), legacy=st.booleans())
def test_number_outside_its_bounds_is_refused(templates, key, value, sign, legacy):
    source = templates["legacy" if legacy else "model"]
    _check_refused(source, _set_json("config.json", key, value, sign), _load_model, lambda m: False)


@damage(30)
@given(key=st.sampled_from(BOUNDED + STRUCTURE), value=WITHIN)
def test_any_edit_without_resigning_is_refused(templates, key, value):
    if value == _original(templates["model"] / "config.json", key):
        value += 1
    _check_refused(templates["model"], _set_json("config.json", key, value, False), _load_model, lambda m: False)


def _same_prediction(pred, original) -> bool:
    return (
        (pred.X != original.X).nnz == 0
        and pred.X.dtype == original.X.dtype
        and list(pred.obs_names) == list(original.obs_names)
        and list(pred.var_names) == list(original.var_names)
        and pred.uns["dataset_id"] == original.uns["dataset_id"]
        and pred.uns["method_id"] == original.uns["method_id"]
    )


@damage(80)
@given(position=st.floats(0, 1), mask=st.integers(1, 255))
def test_flipped_byte_in_a_prediction_is_refused(templates, position, mask):
    original = scm.io.read_prediction(templates["prediction"])
    _check_refused(
        templates["prediction"],
        _flip("", position, mask),
        scm.io.read_prediction,
        lambda p: _same_prediction(p, original),
    )


@damage(20)
@given(fraction=st.floats(0, 0.999))
def test_truncated_prediction_is_refused(templates, fraction):
    _check_refused(templates["prediction"], _cut("", fraction, False), scm.io.read_prediction, lambda p: False)


def test_the_templates_load(templates):
    """The undamaged files load (so every refusal above is the damage's doing)."""
    assert _load_model(templates["model"]).preprocessing_[0] is not None
    assert _load_model(templates["legacy"]).n_models == 3
    assert np.allclose(scm.io.read_prediction(templates["prediction"]).X.toarray(), np.eye(3))
