"""The review log: JSON lines, written once per event-loop iteration, secrets redacted."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest

from imggate.admission.reviewlog import ReviewLog
from imggate.redact import RedactingStream, register


class CountingStream(io.StringIO):
    """A text stream that counts its writes and flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


class CountingFile(io.RawIOBase):
    """A raw file that counts the writes that reach it (the system calls of a real one)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.calls = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.calls += 1
        self.data += bytes(b)
        return len(b)


def test_lines_are_written_once_per_loop_iteration() -> None:
    stream = CountingStream()
    log = ReviewLog(stream)

    async def answer_many() -> tuple[int, int]:
        for i in range(50):  # reviews answered in one iteration of the loop
            log.write({"uid": str(i), "decision": "allow"})
        before_yield = (stream.writes, stream.flushes)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        log.write({"uid": "next"})  # a later iteration: its own write
        await asyncio.sleep(0)
        return before_yield

    assert asyncio.run(answer_many()) == (0, 0)
    assert (stream.writes, stream.flushes) == (2, 2)
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["uid"] for line in lines] == [str(i) for i in range(50)] + ["next"]


@pytest.mark.parametrize("unbuffered", [False, True], ids=["line-buffered", "write-through"])
def test_a_line_buffered_stderr_gets_one_system_call_per_iteration(unbuffered: bool) -> None:
    # sys.stderr is line-buffered, or write-through under PYTHONUNBUFFERED: a line written
    # alone would reach the file on its own.
    raw = CountingFile()
    inner: io.RawIOBase | io.BufferedWriter = raw if unbuffered else io.BufferedWriter(raw)
    stderr = io.TextIOWrapper(inner, encoding="utf-8",  # type: ignore[arg-type]
                              line_buffering=not unbuffered, write_through=unbuffered)
    log = ReviewLog(RedactingStream(stderr))

    async def answer_many() -> None:
        for i in range(30):
            log.write({"uid": str(i)})
        await asyncio.sleep(0)

    asyncio.run(answer_many())
    assert raw.calls == 1
    assert len(bytes(raw.data).splitlines()) == 30


def test_outside_a_loop_each_line_is_written_at_once() -> None:
    stream = CountingStream()
    log = ReviewLog(stream)
    log.write({"uid": "a"})
    log.write({"uid": "b"})
    assert (stream.writes, stream.flushes) == (2, 2)
    assert [json.loads(x) for x in stream.getvalue().splitlines()] == [{"uid": "a"}, {"uid": "b"}]


def test_a_closed_stream_or_odd_value_never_fails_a_review() -> None:
    stream = io.StringIO()
    stream.close()
    ReviewLog(stream).write({"uid": "a"})
    ReviewLog(io.StringIO()).write({"uid": object()})  # not JSON: the line is lost, no error
    ReviewLog(None).write({"uid": "a"})


def test_lines_pass_through_the_redacting_stream() -> None:
    register("s3cr3t-review-log-token")
    inner = io.StringIO()
    ReviewLog(RedactingStream(inner)).write(
        {"uid": "a", "reason": "registry said: bad token s3cr3t-review-log-token"})
    assert "s3cr3t-review-log-token" not in inner.getvalue()
    assert json.loads(inner.getvalue())["uid"] == "a"
