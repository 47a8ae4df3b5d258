"""Entry point: parse arguments, run a command, map errors to exit codes.

Exit codes: 0 allowed, 1 denied, 2 usage/config error, 3 could not decide.
Anything unexpected is exit 3: the gate fails closed.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback

import typer

from imggate import _app

# Each import registers that module's commands on the app.
from imggate.commands import check as _check  # noqa: F401
from imggate.commands import convert as _convert  # noqa: F401
from imggate.commands import resolve as _resolve  # noqa: F401
from imggate.commands import rules as _rules  # noqa: F401
from imggate.commands import verify as _verify  # noqa: F401
from imggate.errors import Error


def _lean_startup() -> None:
    """Keep optional machinery that imggate never uses out of the CLI process.

    Only the command-line entry point does this; library users are unaffected.
    """
    # httpcore imports trio when it is installed (~80 ms here); imggate runs on asyncio.
    sys.modules.setdefault("trio", None)  # type: ignore[arg-type]
    # httpx imports its own command-line tool (click, rich, pygments: ~45 ms) whenever
    # click is installed.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    # pydantic reads every installed distribution's entry points (~25 ms) to find
    # plugins that observe validation; imggate's rules are validated by imggate alone.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with imggate's exit code."""
    _lean_startup()
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("-v", "--verbose") for a in args)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="imggate: %(levelname)s: %(message)s",
    )
    try:
        rv = _app.app(args=args, prog_name="imggate", standalone_mode=False)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.stderr.write("imggate: aborted\n")
        sys.exit(3)
    except typer.TyperException as e:
        # typer >= 0.29 vendors click: bad flags and arguments arrive as its exceptions.
        show = getattr(e, "show", None)
        if callable(show):
            show()
        else:
            sys.stderr.write(f"imggate: error: {e}\n")
        sys.exit(2)
    except Error as e:
        if verbose:
            traceback.print_exc()
        sys.stderr.write(e.diagnostics() + "\n")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # fail closed, never a traceback by default
        if verbose:
            traceback.print_exc()
        sys.stderr.write(
            f"imggate: internal error: {type(e).__name__}: {e}\n  (run with -v for the traceback)\n"
        )
        sys.exit(3)
    sys.exit(rv if isinstance(rv, int) else 0)
