"""The webhook's HTTP protocol, driven in process over a transport that records its writes:
a webhook answer leaves in one write, and nothing else changes for it.

(The time limits, caps and callers are tested against a real server in tests/siege/.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from imggate.admission.connections import (
    ConnectionCounts,
    ConnectionLimits,
    HeadWithBody,
    guarded_protocol,
)
from imggate.admission.runner import protocol_class

ANSWER = b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}'


class Recorder(asyncio.Transport):
    """A transport that keeps what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8443)}.get(
            name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def answering(scope: Any, receive: Any, send: Any) -> None:
    """Reads the body, answers it as the webhook endpoint does (start, then one body)."""
    if scope["type"] != "http":
        return
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})


async def abandoning(scope: Any, receive: Any, send: Any) -> None:
    """Starts a response, then fails before its body."""
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"10")]})
    raise RuntimeError("gone before the body")


def exchange(app: Any, request: bytes) -> Recorder:
    """``request`` sent to the guarded protocol serving ``app``; what it wrote."""

    async def run() -> Recorder:
        config = uvicorn.Config(app, lifespan="off", proxy_headers=False, log_config=None,
                                access_log=False, server_header=False, date_header=False)
        config.load()
        protocol_type: Any = guarded_protocol(protocol_class(), ConnectionLimits(),
                                              ConnectionCounts())
        state = ServerState()
        protocol = protocol_type(config=config, server_state=state, app_state={})
        transport = Recorder()
        protocol.connection_made(transport)
        protocol.data_received(request)
        for _ in range(50):  # the app's task runs to its end
            if not state.tasks:
                break
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        return transport

    return asyncio.run(run())


def post(path: bytes, body: bytes = b"{}", extra: bytes = b"") -> bytes:
    return (b"POST " + path + b" HTTP/1.1\r\nhost: imggate\r\ncontent-type: application/json\r\n"
            + extra + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def test_a_webhook_answer_leaves_in_one_write() -> None:
    for path in (b"/validate", b"/mutate", b"/validate?timeout=10s"):
        transport = exchange(answering, post(path))
        assert len(transport.writes) == 1, transport.writes
        [sent] = transport.writes
        assert sent.startswith(b"HTTP/1.1 200 OK\r\n")
        assert sent.endswith(b"\r\n\r\n" + ANSWER)
        assert b"content-length: %d\r\n" % len(ANSWER) in sent


def test_other_paths_are_written_as_uvicorn_writes_them() -> None:
    transport = exchange(answering, post(b"/metrics"))
    assert len(transport.writes) == 2
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[1] == ANSWER


def test_expect_100_continue_is_answered_before_the_body_comes() -> None:
    # The client waits for "100 Continue" before it sends the body: it is never held.
    transport = exchange(answering, post(b"/validate", b"", b"expect: 100-continue\r\n"))
    assert transport.writes[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert b"".join(transport.writes[1:]).endswith(ANSWER)


def test_a_response_abandoned_after_its_head_still_sends_the_head_then_closes() -> None:
    transport = exchange(abandoning, post(b"/validate"))
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.closed


def test_head_with_body_holds_only_the_first_write() -> None:
    inner = Recorder()
    held = HeadWithBody(inner)
    held.write(b"head")
    assert inner.writes == []
    held.write(b"body")
    held.write(b"more")
    assert inner.writes == [b"headbody", b"more"]


def test_head_with_body_writes_what_it_holds_before_anything_else() -> None:
    inner = Recorder()
    held = HeadWithBody(inner)
    held.write(b"head")
    assert not held.is_closing()
    assert inner.writes == []
    assert held.get_extra_info("peername") == ("127.0.0.1", 50000)
    assert inner.writes == [b"head"]
    held.write(b"body")
    assert inner.writes == [b"head", b"body"]

    inner = Recorder()
    held = HeadWithBody(inner)
    held.write(b"head")
    held.close()
    assert inner.writes == [b"head"]
    assert inner.closed
