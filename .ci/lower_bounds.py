"""The dependency releases .ci/run tests beside its main run.

``python3 .ci/lower_bounds.py`` prints pip constraints pinning every dependency of
pyproject.toml to its lower bound: .ci/run installs them into a venv of their own and runs
the unit tests there, so each ``>=`` in pyproject.toml is a release that was tested. A
dependency written without a ``>=lower,<upper`` range is an error: every one must have both.

``--is-lowest`` and ``--is-newest`` exit 0 when this interpreter already has exactly the
lower bounds, or the newest releases the ranges allow (pip's dry run says nothing would be
upgraded): the main run tested that set already, and .ci/run does not test it twice.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

RANGE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?>=([0-9][^,<>=!]*),<([0-9.]+)$")
ROOT = Path(__file__).resolve().parents[1]


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


def is_lowest() -> bool:
    """Whether every dependency is installed here at exactly its lower bound."""
    for pin in lower_bounds(ROOT / "pyproject.toml"):
        name, version = pin.split("==")
        try:
            if metadata.version(name) != version:
                return False
        except metadata.PackageNotFoundError:
            return False
    return True


def is_newest() -> bool:
    """Whether pip would upgrade nothing but imggate itself here."""
    report = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-",
         "--disable-pip-version-check", "--upgrade", "--upgrade-strategy", "eager",
         "-e", ".[test]"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    names = {item["metadata"]["name"].lower() for item in json.loads(report).get("install", [])}
    return names <= {"imggate"}


if __name__ == "__main__":
    if sys.argv[1:] == ["--is-lowest"]:
        sys.exit(0 if is_lowest() else 1)
    if sys.argv[1:] == ["--is-newest"]:
        sys.exit(0 if is_newest() else 1)
    sys.stdout.write("".join(f"{pin}\n" for pin in lower_bounds(ROOT / "pyproject.toml")))
