"""Print pip constraints that pin every dependency pyproject.toml declares to its declared minimum.

    python .ci/min_versions.py > constraints.txt        # then: pip install -e ".[test]" -c constraints.txt

Every ``name>=X`` of ``[project] dependencies`` and of the ``test`` extra becomes ``name==X``, so the minimum-versions
job installs exactly the floors it claims to support (their own dependencies resolve to whatever pip picks). A
requirement without a floor is left free. ``torch`` is the exception: the only CPU build reachable here is 2.13.0,
installed before this file's constraints, so its floor is declared from torch's release notes and not installed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
NOT_PINNED = {"torch"}  # see the module docstring
FLOOR = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9A-Za-z.\-]*)\s*$")


def constraints(pyproject: Path = PYPROJECT, extras: tuple[str, ...] = ("test",)) -> list[str]:
    """Pins ``name==floor`` for every ``name>=floor`` requirement of the project and of ``extras``."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project.get("optional-dependencies", {}).get(extra, [])
    pins = []
    for requirement in requirements:
        match = FLOOR.match(requirement)
        if match and match.group(1).lower() not in NOT_PINNED:
            pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


if __name__ == "__main__":
    print("\n".join(constraints(extras=tuple(sys.argv[1:]) or ("test",))))
