"""Shared plumbing of the plots: reading a match from a MuData, labels, palettes and scanpy's show/return rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData

from ..metrics._truth import _check_truth

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: matplotlib backends that cannot open a window: ``show=None`` does not call ``plt.show()`` under them
NON_INTERACTIVE_BACKENDS = frozenset({"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"})
#: colours of the two modalities when ``uns["modality_colors"]`` is absent
MODALITY_COLORS = ("#1f77b4", "#ff7f0e")
#: cells without a value (reference cells when colouring by confidence, missing labels)
MISSING_COLOR = "#d3d3d3"


@dataclass
class MatchView:
    """The query block of a match and where its cells live."""

    mod1: str
    mod2: str
    P: sp.csr_matrix  # query mod1 cells x query mod2 cells
    names1: pd.Index  # obs names of the rows
    names2: pd.Index  # obs names of the columns
    info: dict


def match_view(mdata: MuData, key: str) -> MatchView:
    """Check that ``mdata`` holds the match ``key`` and return its query block."""
    from ..tl._evaluate import checked_match

    info, P, rows, cols = checked_match(mdata, key=key)
    params = info["params"]
    return MatchView(
        mod1=params["mod1"],
        mod2=params["mod2"],
        P=P,
        names1=mdata.obs_names[rows],
        names2=mdata.obs_names[cols],
        info=info,
    )


def obs_values(mdata: MuData, mod: str, column: str, names: pd.Index) -> pd.Series:
    """``mdata[mod].obs[column]`` for the cells ``names``, with a helpful error if the column is missing."""
    obs = mdata[mod].obs
    if column not in obs:
        raise ValueError(
            f"{column!r} is not a column of mdata[{mod!r}].obs; pass one of {list(obs.columns)} "
            "(it must exist in both modalities)."
        )
    return obs[column].reindex(names)


def is_categorical(values: pd.Series) -> bool:
    """Whether a column is drawn with a discrete palette (scanpy: categorical, string or boolean)."""
    return not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


def categories(*columns: pd.Series) -> list[str]:
    """The categories of ``columns`` in display order: the first categorical dtype's order, others appended sorted."""
    order: list[str] = []
    for values in columns:
        if isinstance(values.dtype, pd.CategoricalDtype):
            order += [str(c) for c in values.cat.categories if str(c) not in order]
    present = sorted({str(v) for values in columns for v in values.dropna()})
    return order + [c for c in present if c not in order]


def default_palette(n: int) -> list[str]:
    """The default palettes of scanpy: 20, 28 or 102 colours, grey beyond that."""
    from scanpy.plotting import palettes

    for palette in (palettes.default_20, palettes.default_28, palettes.default_102):
        if n <= len(palette):
            return list(palette[:n])
    return list(palettes.default_102) + [MISSING_COLOR] * (n - len(palettes.default_102))


def palette(mdata: MuData, column: str, cats: list[str], mods: tuple[str, ...]) -> dict[str, str]:
    """Colour of each category: from ``uns[f"{column}_colors"]`` (scanpy's convention) when it fits, else default.

    The colours in ``uns`` are aligned with the categories of the column of the object holding them; they are
    looked for in ``mdata.uns`` (against ``mdata.obs``) and then in each modality's ``uns``.
    """
    owners = [(mdata.uns, mdata.obs)] + [(mdata[m].uns, mdata[m].obs) for m in mods]
    for uns, obs in owners:
        colors = uns.get(f"{column}_colors")
        if colors is None or column not in obs:
            continue
        own = categories(obs[column])
        if len(colors) >= len(own) and set(cats) <= set(own):
            return {c: str(colors[own.index(c)]) for c in cats}
    return dict(zip(cats, default_palette(len(cats)), strict=True))


def truth_by_name(view: MatchView) -> np.ndarray:
    """Column of each row's partner when cells are paired by obs name; -1 where a row has none."""
    return np.asarray(view.names2.get_indexer(view.names1), dtype=np.int64)


def resolve_truth(view: MatchView, truth: Any | None) -> np.ndarray:
    """Validated partner index per query mod1 cell: ``truth`` if given, else the cell of the same obs name."""
    n_rows, n_cols = view.P.shape
    if truth is not None:
        return _check_truth(truth, n_rows, n_cols)
    found = truth_by_name(view)
    if np.any(found < 0):
        raise ValueError(
            f"{int(np.sum(found < 0))} of {n_rows} query {view.mod1} cells have no query {view.mod2} cell of the "
            "same obs name, so the true partners are unknown: pass `truth=` (for each query mod1 cell, the "
            "position of its partner among the query mod2 cells)."
        )
    return found


def finish(obj: Axes | Figure, show: bool | None) -> Axes | Figure | None:
    """Scanpy's rule: show the plot (and return None) if ``show``, else return the Axes or Figure.

    ``show=None`` shows only under an interactive backend, so scripts using Agg get the object back.
    """
    import matplotlib
    import matplotlib.pyplot as plt

    if show is None:
        show = matplotlib.get_backend().lower() not in NON_INTERACTIVE_BACKENDS
    if show:
        plt.show()
        return None
    return obj


def new_axes(ax: Axes | None, figsize: tuple[float, float] | None = None) -> Axes:
    """``ax`` itself, or the Axes of a new figure."""
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def label_fontsize(n: int) -> float:
    """Tick-label size that keeps ``n`` category labels legible side by side."""
    return float(np.clip(220 / max(n, 1), 5.0, 10.0))
