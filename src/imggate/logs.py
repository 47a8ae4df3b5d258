"""Logging for the CLI (and the webhook): levels by verbosity, every record redacted.

Verbosity is a number: ``0`` warnings and errors only, ``1`` (``-v``)
imggate's own debug records, ``2`` (``-vv``) also the HTTP stack's
records (httpx, httpcore and h2 for the Kubernetes client, and imggate's own
connections to registries). Below ``2`` those loggers are off.
``hpack`` stays off at every level: its records carry HTTP/2 header blocks
Huffman-coded, where no text filter can recognise an ``Authorization``
header. Every record that is written passes through :class:`RedactingFilter`:
the run's secrets are removed and control characters escaped (a record may
quote a registry).

The command-line flags that choose the verbosity are the CLI's; this module
is what they, and anything else that logs, call.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from imggate.redact import redact
from imggate.text import printable

#: The HTTP stack's loggers: off below ``-vv``.
LIBRARY_LOGGERS = ("httpx", "httpcore", "h2", "imggate.registry.http")
#: Off at every verbosity (see the module docstring).
SILENT_LOGGERS = ("hpack",)
_OFF = logging.CRITICAL + 1
_FORMAT = "imggate: %(levelname)s: %(message)s"

_state = {"verbosity": 0}


class RedactingFilter(logging.Filter):
    """Render each record's message once: on one line, controls escaped, without secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keep the record; rewrite its message in place."""
        if record.name.split(".", 1)[0] in SILENT_LOGGERS:
            return False
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is shown, not allowed to raise
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact(printable(message))
        record.args = None
        return True


def configure(verbosity: int, stream: IO[str] | None = None) -> None:
    """Set up the root logger for ``verbosity`` (0, 1 or 2+), writing to ``stream``.

    ``stream`` defaults to the current ``sys.stderr`` (which the CLI wraps in a
    :class:`~imggate.redact.RedactingStream`). Safe to call again: the
    handler this function installed before is replaced.
    """
    _state["verbosity"] = max(0, int(verbosity))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_imggate", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler._imggate = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity >= 1 else logging.WARNING)
    library_level = logging.DEBUG if verbosity >= 2 else _OFF
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)
    for name in SILENT_LOGGERS:
        logging.getLogger(name).setLevel(_OFF)


class _Once(logging.Filter):
    """Let each distinct message through once."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep a record whose message was not logged before in this block."""
        message = record.getMessage()
        if message in self._seen:
            return False
        self._seen.add(message)
        return True


@contextmanager
def each_message_once() -> Iterator[None]:
    """Within the block, each distinct message is logged once: a command that judges the
    same evidence in several environments (``audit --env a --env b``) says each thing it
    accepted UNSAFE once, not once per environment."""
    once = _Once()
    handlers = [h for h in logging.getLogger().handlers if getattr(h, "_imggate", False)]
    for handler in handlers:
        handler.addFilter(once)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(once)


def verbosity() -> int:
    """The verbosity :func:`configure` was last called with (0 before any call)."""
    return _state["verbosity"]
