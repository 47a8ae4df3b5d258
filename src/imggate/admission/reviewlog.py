"""The review log: one JSON line per AdmissionReview, on standard error.

Two measured choices keep it off a warm review's critical path (a warm
review is ~60 µs of Python; ``bench/admission_bench.py``):

- lines are written straight to the stream, not through :mod:`logging`:
  a LogRecord, the handler walk and the formatter cost ~12 µs a line;
- the lines of one event-loop iteration are written together, in one
  ``write`` and one flush, at the end of that iteration. Standard error is
  line-buffered (write-through under ``PYTHONUNBUFFERED``, as in imggate's
  image), so a line written alone is a ``write(2)`` of its own: counted with
  strace at saturation, that was one system call per review beside the two of
  the response, where an iteration answers ~25 reviews. A line is never held
  longer than the iteration (outside a loop, each line is written at once).

The server's other messages still go through :mod:`logging` to the same
stream, written when they happen: a review line can follow a message logged
later in the same iteration, never interleave with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import IO, Any

import orjson


class ReviewLog:
    """Writes review log lines to ``stream`` (``None``: nowhere, for in-process apps).

    ``imggate serve`` passes ``sys.stderr``, which the CLI wraps in a redacting stream:
    the lines pass through it like any other output (never its binary buffer)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream
        self._pending: list[str] = []

    def write(self, fields: Mapping[str, Any]) -> None:
        """One line of JSON. Never fails a review: a closed or full stream loses the line."""
        if self.stream is None:
            return
        try:
            line = orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE).decode()
        except TypeError:
            return
        self.write_line(line)

    def write_line(self, line: str) -> None:
        """One line already made (JSON, ending in a newline)."""
        if self.stream is None:
            return
        pending = self._pending
        pending.append(line)
        if len(pending) > 1:
            return  # the iteration's flush is already scheduled
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write out the lines held, in one write."""
        lines, self._pending = self._pending, []
        if self.stream is None or not lines:
            return
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(lines[0] if len(lines) == 1 else "".join(lines))
            self.stream.flush()
