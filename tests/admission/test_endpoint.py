"""The webhook's ASGI edge in process (endpoint.py).

The ASGI messages a server sends when a client streams, lies about its length or goes
away, which a real client cannot produce on demand.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

from admission.serve_harness import pod, review
from imggate.admission.endpoint import WebhookEndpoint
from imggate.admission.reviewlog import ReviewLog
from imggate.admission.server import AdmissionApp, ServeOptions


def _call_endpoint(messages: list[dict[str, Any]], *, headers: list[tuple[bytes, bytes]],
                   limit: int = 1024) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                               AdmissionApp]:
    app = AdmissionApp(ServeOptions(max_body_bytes=limit))
    app.review_log = ReviewLog(io.StringIO())
    pending = list(messages)
    sent: list[dict[str, Any]] = []
    received: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        message = pending.pop(0)
        received.append(message)
        return message

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/validate", "headers": headers}
    asyncio.run(WebhookEndpoint(app, mutate=False)(scope, receive, send))
    return sent, received, app


def _lines(app: AdmissionApp) -> list[dict[str, Any]]:
    assert isinstance(app.review_log.stream, io.StringIO)
    return [json.loads(line) for line in app.review_log.stream.getvalue().splitlines()]


def test_a_body_streamed_past_the_limit_is_refused_413_and_logged() -> None:
    chunk = {"type": "http.request", "body": b"x" * 600, "more_body": True}
    sent, received, app = _call_endpoint([chunk, chunk, chunk], headers=[])
    assert len(received) == 2  # refused at the chunk that crossed the limit, not read on
    assert sent[0]["status"] == 413
    assert "larger than 1024 bytes" in json.loads(sent[1]["body"])["error"]
    assert _lines(app)[0]["decision"] == "bad-request"
    assert app.metrics.bad_requests._value.get() == 1


def test_a_declared_length_past_the_limit_is_refused_before_reading() -> None:
    sent, received, _ = _call_endpoint(
        [{"type": "http.request", "body": b"{}", "more_body": False}],
        headers=[(b"content-length", b"999999")])
    assert received == [] and sent[0]["status"] == 413


def test_a_body_in_chunks_is_read_whole() -> None:
    body = json.dumps(review(pod(["a:1"]), namespace="x")).encode()
    parts = [body[:10], body[10:200], body[200:]]
    sent, _, app = _call_endpoint(
        [{"type": "http.request", "body": p, "more_body": i < 2} for i, p in enumerate(parts)],
        headers=[], limit=len(body))
    # No rules loaded: a well-formed review is denied in kind, which needs the whole body.
    assert sent[0]["status"] == 200
    answered = json.loads(sent[1]["body"])["response"]
    assert answered["allowed"] is False and "no rules loaded" in answered["status"]["message"]
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(sent[1]["body"])).encode()
    assert _lines(app)[0]["uid"] == answered["uid"]


def test_a_client_gone_before_its_body_is_not_answered() -> None:
    sent, _, app = _call_endpoint(
        [{"type": "http.request", "body": b'{"a":', "more_body": True},
         {"type": "http.disconnect"}], headers=[])
    assert sent == [] and _lines(app) == []
