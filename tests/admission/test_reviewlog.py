"""The review log: JSON lines, flushed once per event-loop iteration, secrets redacted."""

from __future__ import annotations

import asyncio
import io
import json

from imggate.admission.reviewlog import ReviewLog
from imggate.redact import RedactingStream, register


class CountingStream(io.StringIO):
    """A text stream that counts its flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_lines_are_flushed_once_per_loop_iteration() -> None:
    stream = CountingStream()
    log = ReviewLog(stream)

    async def answer_many() -> int:
        for i in range(50):  # reviews answered in one iteration of the loop
            log.write({"uid": str(i), "decision": "allow"})
        flushed_before_yield = stream.flushes
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return flushed_before_yield

    assert asyncio.run(answer_many()) == 0
    assert stream.flushes == 1
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["uid"] for line in lines] == [str(i) for i in range(50)]


def test_outside_a_loop_each_line_is_flushed_at_once() -> None:
    stream = CountingStream()
    ReviewLog(stream).write({"uid": "a"})
    assert stream.flushes == 1 and json.loads(stream.getvalue()) == {"uid": "a"}


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
