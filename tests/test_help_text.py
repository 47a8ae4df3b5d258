"""The stored command list (``imggate --help`` without typer) is typer's, byte for byte, and
is printed only where typer would print the same."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from imggate import _help_text

#: Runs imggate as the ``imggate`` program does (``main()``, the process's own command
#: line), and writes the modules the process ended with to the file named first: the run
#: ends in ``os._exit`` after the atexit callbacks.
_WRAPPER = """\
import atexit, sys

def record(path=sys.argv.pop(1)):
    with open(path, "w") as f:
        f.write("\\n".join(n for n, m in sys.modules.items() if m is not None))

atexit.register(record)
from imggate._cli import main
main()
"""


def stored() -> bytes:
    return Path(_help_text.PATH).read_bytes()


def run(args: list[str], tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[bytes],
                                                                set[str]]:
    """``imggate ARGS`` in a fresh interpreter, and the modules it imported."""
    modules = tmp_path / "modules.txt"
    full_env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "_IMGGATE_COMPLETE")}
    full_env.update(env)
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, str(modules), *args],
                          capture_output=True, env=full_env, check=False, timeout=120)
    return proc, set(modules.read_text().splitlines())


def test_the_stored_command_list_is_what_typer_renders() -> None:
    rendered = _help_text.render()
    assert rendered.startswith(b"Usage: imggate [OPTIONS] COMMAND [ARGS]...\n")
    assert stored() == rendered, (
        "src/imggate/data/help.txt is not what typer renders for `imggate --help`; "
        "regenerate it: PYTHONPATH=src python -m imggate._help_text --write")
    # A wider terminal gets the same from typer (click wraps help at 78 at most): the
    # stored text stands for it too.
    assert _help_text.render(columns=200) == rendered


@pytest.mark.parametrize(("args", "code"), [(["--help"], 0), (["-h"], 0), ([], 2)],
                         ids=["--help", "-h", "no arguments"])
@pytest.mark.parametrize("columns", ["80", "200"])
def test_the_command_list_is_printed_without_typer(args: list[str], code: int, columns: str,
                                                   tmp_path: Path) -> None:
    proc, modules = run(args, tmp_path, COLUMNS=columns)
    assert proc.returncode == code
    # As typer prints it: --help on standard output; no arguments (no_args_is_help) is a
    # usage error, the help on standard error.
    shown, other = (proc.stdout, proc.stderr) if code == 0 else (proc.stderr, proc.stdout)
    assert shown == stored() and other == b""
    assert not {m for m in modules if m == "typer" or m.startswith("typer.")}


def test_python_m_imggate_help_prints_the_stored_text() -> None:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run([sys.executable, "-m", "imggate", "--help"], capture_output=True,
                          env=env, check=False, timeout=120)
    assert proc.returncode == 0 and proc.stdout == stored() and proc.stderr == b""


def test_a_narrow_terminal_gets_typers_rendering(tmp_path: Path) -> None:
    proc, modules = run(["--help"], tmp_path, COLUMNS="60")
    assert proc.returncode == 0
    assert proc.stdout == _help_text.render(columns=60) != stored()
    assert "typer" in modules


@pytest.mark.parametrize(("args", "env"), [
    (["-v", "--help"], {}),
    (["--help", "--help"], {}),
    (["--version"], {}),
    (["--help"], {"COLUMNS": "79"}),
    (["--help"], {"PYTHONIOENCODING": "ascii"}),
    (["--help"], {"_IMGGATE_COMPLETE": "source_bash"}),
], ids=["-v", "twice", "--version", "79 columns", "ascii", "completion"])
def test_anything_else_is_typers(args: list[str], env: dict[str, str], tmp_path: Path) -> None:
    _, modules = run(args, tmp_path, **env)
    assert "typer" in modules
