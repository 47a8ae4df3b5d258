"""The webhook's ASGI edge: ``POST /validate`` and ``POST /mutate`` without Starlette.

A webhook reads one body and writes one JSON answer, which ASGI says in a dozen lines,
so its two paths bypass Starlette; the probes, /metrics, the lifespan and the answers
to wrong methods and unknown paths stay Starlette's (server.py). What the bypass buys,
measured on a warm review:

- :class:`WebhookFirst` skips Starlette's middleware pair and router: ~40,000
  instructions a request, as much as the decision itself (counted with valgrind in
  process; about 15% of what the running server spends per review).
- :class:`WebhookEndpoint` skips Starlette's ``Request``/``Response`` pair, its header
  parsing and its per-request exception wrapping: ~20 µs of a warm review's ~85 µs in
  process (measured with and without, in one ASGI loop), and more in the running server.

Those layers add nothing to a webhook: an endpoint catches everything itself (a failure
denies, it never raises), and :func:`read_body` keeps the body within its limit (413 past
it, whether the client declares its length or streams it). The decision itself is
:meth:`AdmissionApp.answer <imggate.admission.server.AdmissionApp.answer>`'s.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

from imggate.admission.connections import RECEIVED
from imggate.admission.review import BadReview

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from imggate.admission.server import AdmissionApp


class WebhookEndpoint:
    """``/validate`` or ``/mutate``: a plain ASGI app, not a Starlette request handler.

    Starlette's ``Request``/``Response`` pair, its header parsing and its per-request
    exception wrapping cost ~20 µs of a warm review's ~85 µs in process (measured
    with and without, in one ASGI loop), and more in the running server (the
    README's Performance section). A webhook reads one body and writes one JSON
    answer, which ASGI says in a dozen lines; the routing, the lifespan and the
    other endpoints stay Starlette's.
    """

    def __init__(self, app: AdmissionApp, *, mutate: bool) -> None:
        self.app = app
        self.mutate = mutate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body (bounded), answer it, send the answer."""
        start = time.perf_counter()
        # When the request began to arrive (the connection guard notes it): under load
        # its task may get the loop later, and the deadline is the API server's.
        received = scope.get(RECEIVED)
        if received is not None:
            start -= max(time.monotonic() - received, 0.0)
        try:
            body = await read_body(scope, receive, self.app.options.max_body_bytes)
        except BadReview as e:
            status, answer = self.app.refuse(e, mutate=self.mutate, start=start)
        except ClientGone:
            return  # nobody to answer
        else:
            status, answer = await self.app.answer(body, mutate=self.mutate, start=start,
                                                   received=received)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})


class WebhookFirst:
    """The ASGI app: a POST to a webhook path goes straight to its endpoint; anything else
    to Starlette.

    Starlette's middleware pair and router cost ~40,000 instructions a request, as much as
    the decision itself (counted with valgrind on a warm review in process; about 15% of
    what the running server spends per review). A webhook endpoint catches everything
    itself (a failure denies, it never raises), so those layers add nothing to it.
    """

    def __init__(self, endpoints: dict[str, WebhookEndpoint], rest: Starlette) -> None:
        self.endpoints = endpoints
        self.rest = rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route one ASGI connection."""
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.endpoints.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.rest(scope, receive, send)


class ClientGone(Exception):
    """The client disconnected before its body was read."""


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refused (:class:`BadReview`, 413) past ``limit`` bytes, whether
    the client declares its length or streams it."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise BadReview(f"request body is larger than {limit} bytes", status=413)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BadReview(f"request body is larger than {limit} bytes", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
