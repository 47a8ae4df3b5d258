"""The command list (``imggate --help``) stored as typer renders it, and printed without
importing typer where typer would print the same.

This is a trick, kept because of its measured win (issue 22: ``--help`` under 0.15 s):
importing typer (~135M instructions, 0.05-0.08 s here) was most of what ``imggate --help``
added to the interpreter's start, so the target was out of reach while typer drew the
command list. Printed from ``data/help.txt``, ``python -m imggate --help`` went from 310M
to 133M instructions (``python -c pass``: 140M; ``import typer``: 274M) and, in 21
alternating rounds, from 0.167 s to 0.078 s (``python -c pass``: 0.082 s); the rounds are
in bench/RESULTS.md.

The stored text is printed only when what typer would print is the same text, the same
way: the process's own command line (not :func:`imggate._cli.main` given ``argv``) is
exactly ``--help`` or ``-h`` (standard output, exit 0) or empty (``no_args_is_help``:
standard error, exit 2); click would wrap at the width it was rendered at (its
``HelpFormatter`` wraps at ``max(min(columns, 80) - 2, 50)``, ``columns`` from
``shutil.get_terminal_size()``: ``COLUMNS``, else the terminal, else 80 for a pipe; the
app sets no ``terminal_width`` or ``max_content_width``); the stream is UTF-8 (click
re-wraps an ASCII one, and the text is not ASCII); no shell completion is asked for
(``_IMGGATE_COMPLETE``). Anything else (a narrower terminal, ``-v``, any other argument)
is typer's, as before.

``tests/test_help_text.py`` renders the help through typer and fails when the stored
text differs by a byte; ``python -m imggate._help_text --write`` regenerates it.
"""

from __future__ import annotations

import codecs
import os
import sys
from collections.abc import Sequence

#: The stored command list: exactly the characters typer writes (help and newline).
PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "help.txt")

#: The terminal columns the stored text was rendered for (click's widest: 80 and more
#: wrap alike).
COLUMNS = 80

#: The variable that, set, has typer answer a shell's completion request instead.
_COMPLETE_VAR = "_IMGGATE_COMPLETE"


def _width(columns: int) -> int:
    """The width click wraps help at for a terminal of ``columns`` (``HelpFormatter``
    with no width given)."""
    return max(min(columns, 80) - 2, 50)


def _is_utf8(stream: object) -> bool:
    encoding = getattr(stream, "encoding", None)
    if not isinstance(encoding, str):
        return False
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def show(args: Sequence[str]) -> int | None:
    """Print the stored command list when ``args`` (a process's own command line) ask for
    it and typer would print the same; return the exit code typer's run would end with,
    or ``None`` (nothing printed) when typer must draw the help."""
    if list(args) in (["--help"], ["-h"]):
        stream, code = sys.stdout, 0
    elif not args:
        stream, code = sys.stderr, 2
    else:
        return None
    # Imported by click's formatter as well; here only once the command line qualifies.
    import shutil

    if (os.environ.get(_COMPLETE_VAR) or not _is_utf8(stream)
            or _width(shutil.get_terminal_size().columns) != _width(COLUMNS)):
        return None
    try:
        with open(PATH, encoding="utf-8", newline="") as f:
            text = f.read()
    except OSError:
        return None
    stream.write(text)
    stream.flush()
    return code


#: Run in a fresh interpreter: typer's path (``main`` given its arguments never takes the
#: stored text).
_RENDER = "import sys\nfrom imggate._cli import main\nmain(sys.argv[1:])\n"


def render(columns: int = COLUMNS) -> bytes:
    """What typer prints for ``imggate --help`` in a terminal of ``columns``, rendered by
    this package in a fresh interpreter."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != _COMPLETE_VAR}
    env.update(COLUMNS=str(columns), PYTHONIOENCODING="utf-8",
               PYTHONPATH=os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", _RENDER, "--help"], capture_output=True,
                          env=env, check=False, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"imggate --help exited {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace')[-2000:]}")
    return proc.stdout


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m imggate._help_text [--write]``: say whether the stored command list is
    what typer renders (exit 0) or not (exit 1); with ``--write``, store typer's."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args not in ([], ["--write"]):
        sys.stderr.write("usage: python -m imggate._help_text [--write]\n")
        return 2
    rendered = render()
    if args:
        with open(PATH, "wb") as f:
            f.write(rendered)
        sys.stdout.write(f"wrote {PATH}\n")
        return 0
    try:
        with open(PATH, "rb") as f:
            same = f.read() == rendered
    except FileNotFoundError:
        same = False
    sys.stdout.write(f"{PATH}: {'up to date' if same else 'stale (run with --write)'}\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
