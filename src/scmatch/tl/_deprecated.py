"""Functions of ``tl`` that moved, kept under their old name with a FutureWarning until scmatch 0.2."""

from __future__ import annotations

import warnings
from typing import Any

from anndata import AnnData
from mudata import MuData

from ..experimental import learn_metric as _learn_metric


def learn_metric(data: AnnData | MuData, **kwargs: Any) -> AnnData | MuData | None:
    """Deprecated: moved to :func:`scmatch.experimental.learn_metric`.

    Same arguments, except that ``hist_temperature`` is now ``histogram_temperature``.

    Parameters
    ----------
    data
        AnnData, or MuData with ``mod`` naming the modality.
    **kwargs
        The arguments of :func:`scmatch.experimental.learn_metric`.

    Returns
    -------
    What :func:`scmatch.experimental.learn_metric` returns.
    """
    warnings.warn(
        "scmatch.tl.learn_metric is deprecated and will stop working in scmatch 0.2: it moved to "
        "scmatch.experimental.learn_metric (with `hist_temperature` renamed `histogram_temperature`).",
        FutureWarning,
        stacklevel=2,
    )
    if "hist_temperature" in kwargs:
        kwargs["histogram_temperature"] = kwargs.pop("hist_temperature")
    return _learn_metric(data, **kwargs)
