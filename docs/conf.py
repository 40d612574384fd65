"""Sphinx configuration of the scmatch documentation.

Build locally (warnings are errors, as in CI and on Read the Docs):

    pip install -e ".[doc]"
    python docs/run_tutorials.py          # optional: re-execute the notebooks (needs ../shared/data)
    sphinx-build -W --keep-going -b html docs docs/_build/html

The notebooks in ``tutorials/`` are shown with the outputs stored in them; they are never executed here.
Cross-links to the documentation of numpy, anndata, scanpy ... (intersphinx) need the internet, so they are off
unless ``SCMATCH_DOCS_INTERSPHINX=1`` is set.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from datetime import date
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version
from pathlib import Path

HERE = Path(__file__).resolve().parent
TUTORIALS = HERE.parent / "tutorials"  # shown through the docs/tutorials symlink
sys.path.insert(0, str(HERE.parent / "src"))  # a source checkout builds without installing scmatch

# -- project ---------------------------------------------------------------------------------------------------
project = "scmatch"
author = "scmatch developers"
copyright = f"{date.today().year}, {author}"
try:
    release = _distribution_version("scmatch")
except PackageNotFoundError:  # pragma: no cover - docs built from a tree that was never installed
    release = "0.0.0"
version = release

# -- extensions ------------------------------------------------------------------------------------------------
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx_autodoc_typehints",  # after napoleon, so it sees the converted fields
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
if os.environ.get("SCMATCH_DOCS_INTERSPHINX") == "1":  # needs the internet: off by default
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable/", None),
        "scipy": ("https://docs.scipy.org/doc/scipy/", None),
        "pandas": ("https://pandas.pydata.org/docs/", None),
        "anndata": ("https://anndata.readthedocs.io/en/stable/", None),
        "mudata": ("https://mudata.readthedocs.io/en/latest/", None),
        "scanpy": ("https://scanpy.readthedocs.io/en/stable/", None),
        "matplotlib": ("https://matplotlib.org/stable/", None),
        "torch": ("https://docs.pytorch.org/docs/stable/", None),
    }

templates_path = ["_templates"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
master_doc = "index"
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "**.ipynb_checkpoints",
]

# -- autodoc / autosummary / napoleon / typehints --------------------------------------------------------------
autosummary_generate = True
# autosummary writes docs/generated/ (git-ignored) but never removes pages of functions that are gone, which would
# then be reported as outside every toctree: start from an empty folder.
shutil.rmtree(HERE / "generated", ignore_errors=True)
autosummary_imported_members = False
autodoc_member_order = "bysource"
# classes list their methods through the template in _templates/autosummary/class.rst
autodoc_typehints = "description"  # sphinx-autodoc-typehints writes the types next to the parameters
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_param = True
napoleon_use_rtype = True
# scmatch writes "Returns" as prose (what is returned and every field written), not as "name : type" entries:
# render it as a plain section so the prose is kept as written.
napoleon_custom_sections = [("Returns", "returns_as_prose")]
typehints_defaults = "comma"
typehints_use_signature = False
typehints_use_signature_return = False
always_document_param_types = False
typehints_document_rtype = True

# -- MyST / notebooks ------------------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3
# no typographic quotes or dashes: error messages quote command-line flags (`--output`) outside code spans, and
# "--" must not become an en dash there
smartquotes = False
nb_execution_mode = "off"  # the tutorials are executed by docs/run_tutorials.py (CI) and stored with outputs
nb_merge_streams = True

# -- HTML ------------------------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "scmatch"
html_static_path = ["_static"]
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_show_sphinx = False


# -- Sphinx quirks ---------------------------------------------------------------------------------------------
# sphinx-autodoc-typehints 3.6 calls an API that Sphinx 9 deprecates; a Python warning of the extension (not a
# Sphinx warning about our documents), printed once per docstring.
warnings.filterwarnings("ignore", message=".*set_application.* is deprecated", module="sphinx_autodoc_typehints")


def _links_through_tutorials_symlink(app, doctree) -> None:
    """Point links to a tutorial back into the source folder.

    Sphinx resolves relative links with ``Path.resolve()``, which follows the ``docs/tutorials`` symlink: a link
    such as ``[quickstart](01_quickstart.ipynb)`` then names ``<repo>/tutorials/01_quickstart``, outside the
    source folder, and is reported missing. The notebooks' links are plain relative file links so they also work
    in Jupyter; here they are mapped back to the document names Sphinx knows (``tutorials/01_quickstart``).
    """
    from sphinx import addnodes

    real = str(TUTORIALS.resolve()) + os.sep
    for node in doctree.findall(addnodes.pending_xref):
        target = node.get("reftarget", "")
        if node.get("refdomain") == "doc" and target.startswith(real):
            node["reftarget"] = "tutorials/" + target[len(real) :].replace(os.sep, "/")


def _keep_returns_prose(app, what, name, obj, options, lines) -> None:
    """Undo the ``:`` that sphinx-autodoc-typehints puts under a numpy "Returns" header.

    The ``:`` tells napoleon's numpy parser that the section has no type line; scmatch renders "Returns" as prose
    (``napoleon_custom_sections`` above), where the ``:`` would be printed as text. Runs after
    sphinx-autodoc-typehints' handler and before napoleon's (same priority 499 and registered later; napoleon 500).
    """
    for i in range(len(lines) - 2):
        if lines[i].strip() == "Returns" and set(lines[i + 1].strip()) == {"-"} and lines[i + 2] == ":":
            del lines[i + 2]
            return


def setup(app):
    """Register the fixes above."""
    app.connect("doctree-read", _links_through_tutorials_symlink)
    app.connect("autodoc-process-docstring", _keep_returns_prose, priority=499)
