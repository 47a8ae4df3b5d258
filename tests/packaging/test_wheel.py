"""The wheel that imggate's image installs builds, and installs into a fresh virtual environment."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_builds_and_runs_in_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir",
                            str(dist), str(ROOT)], check=True, capture_output=True, text=True,
                           timeout=300)
    # The newest setuptools builds it without a deprecation it will one day refuse (the
    # license as a table was one: refused from 2027-02-18).
    assert "deprecated" not in built.stdout + built.stderr
    wheels = list(dist.glob("imggate-*.whl"))
    assert len(wheels) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    metadata = zipfile.ZipFile(wheels[0]).read("imggate-0.1.0.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "imggate/py.typed" in names and "imggate/data/verdict.schema.json" in names
    assert "imggate/data/help.txt" in names  # the stored command list (imggate._help_text)
    assert not any(n.startswith(("tests/", "bench/")) for n in names)

    # A fresh environment: nothing of this checkout's (PYTHONPATH, an editable install) leaks in.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q",
                          "--disable-pip-version-check", str(wheels[0])],
                         capture_output=True, text=True, timeout=600, env=env)
    assert pip.returncode == 0, pip.stderr[-2000:]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    out = subprocess.run([str(venv / "bin" / "imggate"), "--version"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert version in out.stdout
    imported = subprocess.run([str(venv / "bin" / "python"), "-c",
                               "import imggate, sys; sys.stdout.write(imggate.__file__)"],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert imported.stdout.startswith(str(venv)), imported.stdout  # the wheel's, not ours
    helped = subprocess.run([str(venv / "bin" / "imggate"), "check", "--help"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert helped.returncode == 0 and "--dotenv" in helped.stdout
    # The command list, stored in the wheel, printed as typer renders it.
    listed = subprocess.run([str(venv / "bin" / "imggate"), "--help"], capture_output=True,
                            timeout=60, cwd=tmp_path, env={**env, "COLUMNS": "80"})
    assert listed.returncode == 0
    assert listed.stdout == (ROOT / "src" / "imggate" / "data" / "help.txt").read_bytes()
