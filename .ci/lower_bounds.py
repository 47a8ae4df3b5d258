"""Print pip constraints pinning every dependency of pyproject.toml to its lower bound.

.ci/run installs these into a venv of their own and runs the unit tests there, so each
``>=`` in pyproject.toml is a release that was tested. A dependency written without a
``>=lower,<upper`` range is an error: every one must have both.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

RANGE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?>=([0-9][^,<>=!]*),<([0-9.]+)$")


def lower_bounds(pyproject: Path) -> list[str]:
    """``name==lower`` for every dependency, the test extra's included."""
    project = tomllib.loads(pyproject.read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    pins = []
    for requirement in wanted:
        found = RANGE.match(requirement.replace(" ", ""))
        if found is None:
            raise SystemExit(f"pyproject.toml: {requirement!r} is not written >=lower,<upper")
        pins.append(f"{found[1]}=={found[2]}")
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    sys.stdout.write("".join(f"{pin}\n" for pin in lower_bounds(root / "pyproject.toml")))
