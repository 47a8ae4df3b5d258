"""Progress of a long audit: rich's bar on a terminal, plain periodic lines in a CI log.

A CI log is not a terminal: a redrawn bar there is a wall of carriage returns.
Plain lines go out when a phase starts and ends, and in between at most every
``interval`` seconds, so a 1,000-tag audit says where it is without flooding.
"""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class AuditProgress:
    """A ``progress(phase, done, total)`` callable, used as a context manager."""

    def __init__(self, file: IO[str] | None = None, *, interval: float = 5.0,
                 terminal: bool | None = None) -> None:
        self._file = file or sys.stderr
        self._terminal = terminal
        self._interval = interval
        self._bar: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._last: dict[str, float] = {}

    def __enter__(self) -> AuditProgress:
        if _maybe_terminal(self._file, self._terminal):
            # rich (~100M instructions of import, before the audit's first request) only
            # where it may draw a bar: a CI log gets plain lines without it.
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            console = Console(file=self._file, force_terminal=self._terminal)
            if console.is_terminal:
                self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(),
                                     console=console, transient=False)
                self._bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, phase: str, done: int, total: int) -> None:
        """Record that ``done`` of ``total`` items of ``phase`` are finished."""
        if self._bar is not None:
            if phase not in self._tasks:
                self._tasks[phase] = self._bar.add_task(phase, total=total)
            self._bar.update(self._tasks[phase], completed=done, total=total)
            return
        now = time.monotonic()
        first = phase not in self._last
        if first or done >= total or now - self._last[phase] >= self._interval:
            self._last[phase] = now
            self._file.write(f"imggate: audit: {phase}: {done}/{total}\n")
            self._file.flush()


def _maybe_terminal(file: IO[str], terminal: bool | None) -> bool:
    """Whether rich's Console could take ``file`` for a terminal: ``False`` only where it
    certainly would not (nothing forces one, no ``TTY_COMPATIBLE`` or ``FORCE_COLOR`` in
    the environment, and ``file`` is no tty); anything else is left to rich to decide."""
    if terminal is not None:
        return terminal
    if "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ:
        return True
    isatty = getattr(file, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed file: rich says no terminal too
        return False
