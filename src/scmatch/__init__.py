"""scmatch: match single cells across modalities with a learned metric."""

from importlib.metadata import PackageNotFoundError, version

from . import datasets, experimental, io, links, metrics, model, pl, pp, tl

try:
    __version__ = version("scmatch")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__", "datasets", "experimental", "io", "links", "metrics", "model", "pl", "pp", "tl"]
