#!/usr/bin/env bash
# Create the peers' own virtual environment (benchmarks/peers/.venv) and install the pinned peers there, so that
# their dependencies (JAX, igraph, leidenalg, numba, POT, torch, ...) never enter scmatch's environment.
#
#   bash benchmarks/peers/setup_venv.sh            # uses python3.11 (or $PYTHON)
#   PYTHON=/path/to/python3.11 bash benchmarks/peers/setup_venv.sh
#
# torch is the CPU build, installed first: from a local wheel or index if pip finds one (pip's find-links or
# extra index), else from PyTorch's CPU index ($TORCH_INDEX_URL).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
VENV="${VENV:-$HERE/.venv}"
TORCH_INDEX_URL="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"

"$PYTHON" -c 'import sys; assert sys.version_info[:2] >= (3, 11), "moscot 0.5 needs Python >= 3.11"'
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
if ! "${PIP[@]}" install --quiet "torch==2.13.0+cpu"; then
    "${PIP[@]}" install --quiet "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
fi
"${PIP[@]}" install --quiet -r "$HERE/requirements-peers.txt"
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md

import maxfuse  # noqa: F401
import pamona.Pamona  # noqa: F401
from geosketch import gs  # noqa: F401
from moscot.problems.cross_modality import TranslationProblem  # noqa: F401

print("peers installed:", {p: md.version(p) for p in ("maxfuse", "moscot", "pamona", "geosketch", "jax", "POT", "torch")})
PY
