"""Counting the children that :mod:`imggate.scanners.read_ahead` starts."""

from __future__ import annotations

import pytest

from imggate.scanners import read_ahead


def count_started(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every child ``read_ahead.start`` starts from now on, by pid (``0``: none forked, the
    reports read in this process), in order."""
    started: list[int] = []
    start = read_ahead.start

    def counted(paths: list[str], read: read_ahead.Reader, *,
                writes: bool = False) -> read_ahead.ReadAhead:
        ahead = start(paths, read, writes=writes)
        started.append(ahead.pid)
        return ahead

    monkeypatch.setattr(read_ahead, "start", counted)
    return started
