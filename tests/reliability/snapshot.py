"""Deep snapshots of everything a failed call must leave as it was, and an exact comparison.

A snapshot holds independent copies of every slot of an AnnData (``X``, ``layers``, ``obs``, ``var``, ``obsm``,
``varm``, ``obsp``, ``varp``, ``uns``, names, and whether it is a view), of a MuData (the same global slots plus
every modality), of a fitted or unfitted ``MatchModel`` (settings, weights, calibration, history), of numpy or
scipy arrays, and of files or folders on disk (their bytes). Arrays are compared exactly: type, dtype, shape,
sparse format and the stored ``data``/``indices``/``indptr`` (NaN equals NaN), so sorting a sparse matrix's
indices in place or casting a dense array counts as a change.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

AXIS_SLOTS = ("obsm", "varm", "obsp", "varp")


def _array(x: Any) -> Any:
    """An independent copy of an array-like (sparse, dense, DataFrame) or of any other value."""
    if sp.issparse(x):
        return ("sparse", x.format, x.dtype, x.shape, x.copy())
    if isinstance(x, pd.DataFrame):
        return ("frame", x.copy(deep=True))
    if isinstance(x, np.ndarray):
        return ("dense", type(x), x.dtype, x.shape, x.copy())
    return ("value", copy.deepcopy(x))


def _adata(a: AnnData) -> dict:
    return {
        "is_view": a.is_view,
        "shape": a.shape,
        "obs_names": a.obs_names.copy(),
        "var_names": a.var_names.copy(),
        "X": _array(a.X),
        "layers": {k: _array(v) for k, v in a.layers.items()},
        "obs": a.obs.copy(deep=True),
        "var": a.var.copy(deep=True),
        **{slot: {k: _array(v) for k, v in getattr(a, slot).items()} for slot in AXIS_SLOTS},
        "uns": copy.deepcopy(dict(a.uns)),
    }


def _mudata(m: MuData) -> dict:
    return {
        "shape": m.shape,
        "obs_names": m.obs_names.copy(),
        "var_names": m.var_names.copy(),
        "obs": m.obs.copy(deep=True),
        "var": m.var.copy(deep=True),
        **{slot: {k: _array(v) for k, v in getattr(m, slot).items()} for slot in AXIS_SLOTS},
        "uns": copy.deepcopy(dict(m.uns)),
        "mod": {name: _adata(a) for name, a in m.mod.items()},
    }


def _model(model: Any) -> dict:
    module = model.module_
    return {
        "params": copy.deepcopy(model.get_params()),
        "weights": None if module is None else {k: v.detach().clone() for k, v in module.state_dict().items()},
        "temperature": copy.deepcopy(model.temperature_),
        "history": copy.deepcopy(model.history_),
        "feature_names": copy.deepcopy(model.feature_names_),
    }


def _path(path: Path) -> dict:
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return {"": path.read_bytes()} if path.is_file() else {"<absent>": b""}


def snapshot(obj: Any) -> tuple[str, Any]:
    """A deep, independent record of ``obj`` to compare with :func:`assert_unchanged` later."""
    from scmatch.model import MatchModel

    if isinstance(obj, MuData):
        return "mudata", _mudata(obj)
    if isinstance(obj, AnnData):
        return "adata", _adata(obj)
    if isinstance(obj, MatchModel):
        return "model", _model(obj)
    if isinstance(obj, Path):
        return "path", _path(obj)
    return "value", _array(obj)


def assert_unchanged(obj: Any, before: tuple[str, Any], *, where: str = "object") -> None:
    """Raise an AssertionError naming the first slot of ``obj`` that differs from the snapshot ``before``."""
    kind, after = snapshot(obj)
    assert kind == before[0], f"{where}: became a {kind}, was a {before[0]}"
    _compare(before[1], after, where)


def _compare(a: Any, b: Any, where: str) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict), f"{where}: type changed"
        assert list(a) == list(b), f"{where}: keys changed from {list(a)} to {list(b)}"
        for key in a:
            _compare(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, tuple) and a and a[0] == "sparse":
        assert b[0] == "sparse" and a[1:4] == b[1:4], f"{where}: sparse type/format/dtype/shape changed"
        x, y = a[4], b[4]
        for attr in ("data", "indices", "indptr") if x.format in ("csr", "csc") else ("data", "row", "col"):
            if hasattr(x, attr):
                np.testing.assert_array_equal(getattr(x, attr), getattr(y, attr), err_msg=f"{where}.{attr}")
    elif isinstance(a, tuple) and a and a[0] == "dense":
        assert b[0] == "dense" and a[1:4] == b[1:4], f"{where}: array type/dtype/shape changed"
        np.testing.assert_array_equal(a[4], b[4], err_msg=where)
    elif isinstance(a, tuple) and a and a[0] in ("frame", "value"):
        assert b[0] == a[0], f"{where}: kind changed"
        _compare(a[1], b[1], where)
    elif isinstance(a, pd.DataFrame):
        assert isinstance(b, pd.DataFrame), f"{where}: no longer a DataFrame"
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=where)
    elif isinstance(a, pd.Index):
        assert a.equals(b) and a.dtype == b.dtype, f"{where}: index changed"
    elif isinstance(a, np.ndarray | sp.spmatrix | sp.sparray):
        _compare(_array(a), _array(b), where)
    elif hasattr(a, "detach"):  # torch tensor
        assert a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all()), f"{where}: tensor changed"
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), f"{where}: sequence changed"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _compare(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b), f"{where}: changed"
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} became {b!r}"
