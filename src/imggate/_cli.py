"""Entry point: parse arguments, run a command, map errors to exit codes.

Exit codes: 0 allowed, 1 denied, 2 usage/config error, 3 could not decide.
Anything unexpected is exit 3: the gate fails closed.
"""

from __future__ import annotations

import atexit
import functools
import gc
import importlib
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from imggate import _help_text
from imggate.errors import Error
from imggate.redact import RedactingStream
from imggate.text import printable, printable_lines

if TYPE_CHECKING:
    import typer
    from typer import _click


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


#: Each command and the module in ``imggate.commands`` that registers it on the app when
#: imported. A run imports only its own command's module (``check`` never pays for
#: ``audit``'s or ``serve``'s imports); the command list (``imggate --help``, a mistyped
#: command) needs them all.
COMMANDS = {"audit": "audit", "check": "check", "convert": "convert", "resolve": "resolve",
            "rules": "rules", "serve": "serve", "verify": "verify"}


def command_named(args: Sequence[str]) -> str | None:
    """The command that ``args`` run, or ``None`` when they name none of imggate's. The
    root takes no option with a value, so the first word that is not an option is the
    command."""
    name = next((a for a in args if not a.startswith("-")), None)
    return name if name in COMMANDS else None


def register(args: Sequence[str] | None = None) -> None:
    """Register the command that ``args`` run on the app, or every command when ``args``
    name none (``None``: every command)."""
    name = command_named(args) if args is not None else None
    for module in [COMMANDS[name]] if name is not None else sorted(set(COMMANDS.values())):
        importlib.import_module(f"imggate.commands.{module}")


def command_list(app: typer.Typer) -> typer.Typer:
    """``app`` as a run that names no command needs it (``imggate --help``, no arguments,
    a mistyped command): every command and group with its name and help, none with its
    parameters, since the command list shows none.

    Building every command's parameters was ~60M instructions, two thirds of what
    ``imggate --help`` adds to importing typer (issue 22). A command listed here cannot
    run: a run that names a command builds it from ``app`` itself (:func:`command_named`);
    were one reached anyway, it fails closed.
    """
    import copy

    lean = copy.copy(app)
    lean.registered_commands = []
    for info in app.registered_commands:
        listed = copy.copy(info)
        listed.callback = _unbuilt(info.callback)
        lean.registered_commands.append(listed)
    lean.registered_groups = []
    for group in app.registered_groups:
        listed_group = copy.copy(group)
        if group.typer_instance is not None:
            listed_group.typer_instance = command_list(group.typer_instance)
        lean.registered_groups.append(listed_group)
    return lean


def _unbuilt(callback: Callable[..., Any] | None) -> Callable[[], None]:
    """A callback without parameters that bears ``callback``'s name and help (typer's
    name and help for a command come from them), and refuses to run."""
    name = getattr(callback, "__name__", "command")

    def unbuilt() -> None:
        raise Error(f"internal error: the command {name!r} was listed, not loaded")

    # Not functools.wraps: typer would follow __wrapped__ to the parameters.
    unbuilt.__name__ = name
    unbuilt.__doc__ = getattr(callback, "__doc__", None)
    return unbuilt


def verbosity_of(args: Sequence[str]) -> int:
    """How many ``-v`` were given (``-vv`` counts two, ``--verbose`` one)."""
    return split_verbosity(args)[0]


def split_verbosity(args: Sequence[str]) -> tuple[int, list[str]]:
    """How many ``-v`` were given (``-vv`` counts two, ``--verbose`` one), and ``args``
    without them: they are accepted anywhere on the line, also after the command (as
    cosign and Trivy accept them). Anything after ``--`` is an argument, left alone."""
    count = 0
    rest: list[str] = []
    for i, a in enumerate(args):
        if a == "--":
            rest.extend(args[i:])
            break
        if a == "--verbose":
            count += 1
        elif len(a) > 1 and a.startswith("-") and not a.startswith("--") and set(a[1:]) == {"v"}:
            count += len(a) - 1
        else:
            rest.append(a)
    return count, rest


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with imggate's exit code.

    Standard output and standard error are wrapped for the whole run so that
    nothing written to them can carry a secret (:mod:`imggate.redact`). Without
    ``argv`` (the ``imggate`` program, ``python -m imggate``) the process ends here
    when the command is done (:func:`_end_process`); a caller that passes ``argv``
    gets ``SystemExit`` as usual. Without ``argv``, a command line that asks only for
    the command list may get it stored rather than from typer (:mod:`imggate._help_text`).
    """
    collecting = gc.isenabled()
    # Start-up (typer and the command's modules imported, the arguments parsed) builds
    # objects that live as long as the process and no cycle worth collecting; collecting
    # while it runs was ~50 ms of a small check's ~400 ms of CPU. Each command starts
    # with the collector as it was (see _resume_collector).
    gc.disable()
    _lean_startup()
    args = list(sys.argv[1:] if argv is None else argv)
    early = argv is None and command_named(args) == "check"
    if early:
        # The reports a check names are read by a child from here on, on the other CPU:
        # typer's import and the parsing (~230M instructions) overlap that reading too.
        from imggate.scanners import read_ahead

        read_ahead.start_early(args[args.index("check") + 1:])
    if argv is None:
        _printable_anywhere()
    saved = sys.stdout, sys.stderr
    sys.stdout = RedactingStream(sys.stdout)
    sys.stderr = RedactingStream(sys.stderr)
    try:
        try:
            # The command list without importing typer, where typer would print the same
            # (a trick for --help's start-up: see imggate._help_text).
            code = _help_text.show(args) if argv is None else None
            if code is not None:
                sys.exit(code)
            _main(args, collecting)
        finally:
            sys.stdout, sys.stderr = saved
            if early:
                read_ahead.discard_early()  # (not taken: the check stopped before it)
    except SystemExit as e:
        if argv is None and (e.code is None or isinstance(e.code, int)):
            # Before the collector is back on: the next allocation would walk every
            # object the run kept (~70 ms after a check of 10,000 findings) just
            # before the process ends.
            _end_process(e.code or 0)
        raise
    finally:
        if collecting:
            gc.enable()


def _printable_anywhere() -> None:
    """Let standard output write what its encoding cannot as escapes (``\\u2026``), as
    standard error already does: help or a finding's text is never an internal error
    on a terminal that is not UTF-8 (``PYTHONIOENCODING=latin-1``)."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None and getattr(sys.stdout, "errors", None) == "strict":
        reconfigure(errors="backslashreplace")


def _print_traceback() -> None:
    # Imported only here: with linecache and tokenize, ~5 ms of every start-up (--help
    # included) for something only -v on a failure prints.
    import traceback

    traceback.print_exc()


def _end_process(code: int) -> None:
    """End the process with ``code`` now, without the interpreter's teardown; return
    (for the normal exit) when that cannot be done safely.

    The teardown frees, one by one, every object the run built and walks them with the
    cyclic collector: 0.2-0.3 s after a check of 10,000 findings, a fifth of the run
    (issue 22). What a normal exit does that matters is done first: the atexit
    callbacks (logging's flush, temporary directories' finalizers) and flushing
    standard output and error. A thread still running is waited for by a normal exit.
    """
    if threading.active_count() > 1:
        return
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # a closed pipe: the normal exit says so, as it always did
    os._exit(code)


#: An attribute that, set true on a command's callback, says the command keeps the cyclic
#: collector off for its whole run itself (``check``).
PAUSES_COLLECTOR = "imggate_pauses_collector"


def _resume_collector(command: _click.Command, collecting: bool) -> None:
    """Have each of ``command``'s leaf commands turn the cyclic collector back on (when it
    was on before start-up) as it starts: a long run (an audit, the webhook) needs it.

    A command that pauses the collector itself is left alone: turning it on only
    for that command to turn it off again would make the next allocation walk every
    object start-up built (~25 ms of a check).
    """
    for sub in getattr(command, "commands", {}).values():
        _resume_collector(sub, collecting)
    callback = command.callback
    if collecting and callback is not None and not hasattr(command, "commands") \
            and not getattr(callback, PAUSES_COLLECTOR, False):
        command.callback = _collector_on(callback)


def _collector_on(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        gc.enable()
        return callback(*args, **kwargs)

    return run


def _main(args: list[str], collecting: bool = True) -> None:
    import typer

    from imggate import _app, _help, _options, logs

    verbosity, args = split_verbosity(args)
    verbose = verbosity > 0
    logs.configure(verbosity)
    register(args)
    tree = _app.app if command_named(args) is not None else command_list(_app.app)
    command = _options.install(_help.tidy(typer.main.get_command(tree)), args)
    _resume_collector(command, collecting)
    try:
        rv = command.main(args=args, prog_name="imggate", standalone_mode=False)
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
            sys.stderr.write(f"imggate: error: {printable(str(e))}\n")
        sys.exit(2)
    except Error as e:
        if verbose:
            _print_traceback()
        sys.stderr.write(printable_lines(e.diagnostics()) + "\n")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # fail closed, never a traceback by default
        if verbose:
            _print_traceback()
        sys.stderr.write(
            f"imggate: internal error: {type(e).__name__}: {printable(str(e))}\n"
            "  (run with -v for the traceback)\n"
        )
        sys.exit(3)
    sys.exit(rv if isinstance(rv, int) else 0)
