"""The review log: one JSON line per AdmissionReview, on standard error.

Two measured choices keep it off a warm review's critical path (a warm
review is ~100 µs of Python; ``bench/admission_bench.py``):

- lines are written straight to the stream, not through :mod:`logging`:
  a LogRecord, the handler walk and the formatter cost ~12 µs a line, the
  write ~2 µs;
- the stream is flushed once per event-loop iteration, not once per line:
  a flush is a ``write(2)`` of ~5 µs, and at saturation one iteration
  answers many reviews. A line is never held longer than that iteration
  (outside a loop, each line is flushed at once).

The server's other messages still go through :mod:`logging` to the same
stream, and each of its records is flushed whole, so lines never interleave.
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
    a line passes through it like any other output (never its binary buffer)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream
        self._flush_pending = False

    def write(self, fields: Mapping[str, Any]) -> None:
        """One line of JSON. Never fails a review: a closed or full stream loses the line."""
        if self.stream is None:
            return
        try:
            self.stream.write(orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE).decode())
        except (OSError, ValueError, TypeError):
            return
        if self._flush_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_pending = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write out what is buffered."""
        self._flush_pending = False
        if self.stream is not None:
            with contextlib.suppress(OSError, ValueError):
                self.stream.flush()
