"""Connection hygiene for port 8443: time limits, caps, and who may call.

uvicorn bounds how long an idle keep-alive connection stays open, but not how
long a client may take to send a request: a client that sends one header
byte every few seconds holds its connection (and its TLS state and buffers)
for ever, and 9,000 of them exhaust the pod's memory. :func:`guarded_protocol`
makes uvicorn's HTTP protocol (httptools) enforce, per connection:

- a TLS handshake within :attr:`ConnectionLimits.handshake_timeout` (set on the
  listening server by :func:`loop_factory`'s loop);
- a request's headers within :attr:`ConnectionLimits.header_timeout` seconds
  of its first byte (of the connection's start, for its first request):
  a total, so a trickle does not renew it;
- its body within :attr:`ConnectionLimits.body_timeout` seconds of its headers;
- at most :attr:`ConnectionLimits.max_connections` connections: later ones are
  closed as soon as their handshake is done (the handshake's own time limit
  bounds those still in one);
- at most :attr:`ConnectionLimits.max_bodies` requests receiving a body at
  once, so bodies in memory stay under that many times the body cap (a 503
  for the next, and its connection closed);
- at most :attr:`ConnectionLimits.max_requests` requests per keep-alive
  connection (the last is answered with ``Connection: close``);
- with a client CA (``serve --client-ca``): the TLS handshake asks for a
  client certificate and verifies any that is offered; a request to
  ``/validate`` or ``/mutate`` on a connection that offered none is answered
  403 and closed once its headers are in, before its body is read.
  ``/healthz``, ``/readyz`` and ``/metrics`` stay open to the kubelet's probes
  and to Prometheus, which have no such certificate.

A connection cut off by a limit is closed; a review whose body was being read
is then never answered (the API server's own timeout applies), never allowed.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

log = logging.getLogger("imggate.admission")

#: A body this big is rare (an AdmissionReview is a few KiB): after one, memory is reclaimed.
LARGE_BODY = 1024 * 1024
#: The ASGI scope key holding ``time.monotonic()`` when the request's first byte was parsed.
RECEIVED = "imggate.received"
#: Paths that carry an AdmissionReview: the ones only an authenticated caller may use.
WEBHOOK_PATHS = frozenset({b"/validate", b"/mutate"})


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The limits of :mod:`imggate.admission.connections` (see there)."""

    handshake_timeout: float = 5.0
    header_timeout: float = 5.0
    body_timeout: float = 10.0
    keep_alive: float = 30.0
    max_connections: int = 1000
    max_bodies: int = 16
    max_requests: int = 1000
    #: Require a client certificate for the webhook paths.
    authenticate: bool = False


@dataclass(slots=True)
class ConnectionCounts:
    """What all connections of one server hold now (read by tests and metrics)."""

    connections: int = 0
    #: The most connections at once since memory was last reclaimed.
    peak: int = 0
    bodies: int = 0
    #: Bodies of more than :data:`LARGE_BODY` bytes received since memory was last reclaimed.
    large_bodies: int = 0
    refused: int = 0
    timed_out: int = 0
    unauthenticated: int = 0
    #: How late the event loop ran its last timer (seconds; :func:`watch_loop_lag`).
    loop_lag: float = 0.0
    #: The open connections (their protocols), for :func:`enforce_limits`.
    live: set[Any] = field(default_factory=set)


def _response(status: bytes, text: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: " + str(len(text)).encode() + b"\r\n\r\n"
            + text)


_FORBIDDEN = _response(b"403 Forbidden",
                       b'{"error":"imggate: a client certificate from the --client-ca CA '
                       b'is required"}')
_BUSY = _response(b"503 Service Unavailable",
                  b'{"error":"imggate: too many request bodies in flight; retry"}')


def guarded_protocol(base: type[asyncio.Protocol], limits: ConnectionLimits,
                     counts: ConnectionCounts) -> type[asyncio.Protocol]:
    """``base`` (uvicorn's httptools protocol, or a subclass) held to ``limits``, counting
    into ``counts``."""
    parent: type[Any] = base
    # Every request passes through the callbacks below: the limits and the parent's
    # methods are bound once here, not looked up per call (a warm review is ~55 µs).
    header_timeout, body_timeout = limits.header_timeout, limits.body_timeout
    max_bodies, max_requests = limits.max_bodies, limits.max_requests
    parent_begin, parent_headers = parent.on_message_begin, parent.on_headers_complete
    parent_body, parent_complete = parent.on_body, parent.on_message_complete

    class GuardedProtocol(parent):  # type: ignore[misc]
        """One HTTP connection, held to :class:`ConnectionLimits`."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            #: When this connection is cut off (loop time; 0: no limit running). A
            #: timestamp, not a timer: a request only sets it, :func:`enforce_limits` reads it.
            self.cut_off_at = 0.0
            self._has_body_slot = False
            self._served = 0
            self._authenticated = not limits.authenticate
            self._counted = False
            self._body_size = 0
            self._refused = False  # the current request was refused: ignore what follows

        def connection_made(self, transport: Any) -> None:
            # Called once the TLS handshake is done (a failed one never gets here).
            if counts.connections >= limits.max_connections:
                counts.refused += 1
                transport.abort()
                return
            counts.connections += 1
            counts.peak = max(counts.peak, counts.connections)
            counts.live.add(self)
            self._counted = True
            if limits.authenticate:
                # A certificate that failed verification failed the handshake already.
                self._authenticated = transport.get_extra_info("peercert") is not None
            super().connection_made(transport)
            self.cut_off_at = self.loop.time() + limits.header_timeout

        def connection_lost(self, exc: Exception | None) -> None:
            if not self._counted:
                return  # refused in connection_made: uvicorn never saw it
            self._counted = False
            counts.connections -= 1
            counts.live.discard(self)
            self.cut_off_at = 0.0
            self._release_body()
            super().connection_lost(exc)

        def cut_off(self) -> None:
            """The request took too long: close the connection."""
            self.cut_off_at = 0.0
            counts.timed_out += 1
            if not self.transport.is_closing():
                self.transport.abort()

        def _release_body(self) -> None:
            if self._has_body_slot:
                self._has_body_slot = False
                counts.bodies -= 1

        def _refuse_request(self, answer: bytes) -> None:
            self._refused = True
            self.cut_off_at = 0.0
            self.transport.write(answer)
            self.transport.close()
            # Nothing more is read; what was already read is ignored (the callbacks
            # below return at once while _refused is set).
            self.transport.pause_reading()

        def on_message_begin(self) -> None:
            if self._refused:
                return
            if not self.cut_off_at:  # a keep-alive connection's next request
                self.cut_off_at = self.loop.time() + header_timeout
            parent_begin(self)
            # The review's deadline counts from here, not from when its task got the loop,
            # less how late the loop is running: the bytes may have waited that long.
            self.scope[RECEIVED] = monotonic() - counts.loop_lag

        def on_headers_complete(self) -> None:
            if self._refused:
                return
            if not self._authenticated and self.url.split(b"?", 1)[0] in WEBHOOK_PATHS:
                counts.unauthenticated += 1
                self._refuse_request(_FORBIDDEN)
                return
            if self.parser.get_method() not in (b"GET", b"HEAD"):
                if counts.bodies >= max_bodies:
                    self._refuse_request(_BUSY)
                    return
                counts.bodies += 1
                self._has_body_slot = True
                self._body_size = 0
            self.cut_off_at = self.loop.time() + body_timeout
            parent_headers(self)
            self._served += 1
            if self._served >= max_requests and self.cycle is not None:
                self.cycle.keep_alive = False

        def on_body(self, body: bytes) -> None:
            if self._refused:
                return
            before = self._body_size
            self._body_size += len(body)
            if before <= LARGE_BODY < self._body_size:
                counts.large_bodies += 1
            parent_body(self, body)

        def on_message_complete(self) -> None:
            if self._refused:
                return
            self.cut_off_at = 0.0
            if self._has_body_slot:
                self._has_body_slot = False
                counts.bodies -= 1
            parent_complete(self)

    return GuardedProtocol


#: How often the time limits are checked (a limit holds to within this).
CHECK_EVERY = 0.25


async def enforce_limits(counts: ConnectionCounts, interval: float = CHECK_EVERY) -> None:
    """Cut off every connection past its time limit, every ``interval`` seconds.

    One pass over the open connections (at most ``max_connections``) instead of a
    timer per request: a warm review only writes a timestamp.
    """
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        now = loop.time()
        late = [c for c in counts.live if 0.0 < c.cut_off_at <= now]
        for c in late:
            c.cut_off()


#: How often the loop's lateness is sampled.
LAG_EVERY = 0.05


async def watch_loop_lag(counts: ConnectionCounts, interval: float = LAG_EVERY) -> None:
    """Note how late the loop wakes a sleeping task (what a request read now may have
    waited in its socket), so that a review's deadline also counts that time."""
    while True:
        before = monotonic()
        await asyncio.sleep(interval)
        counts.loop_lag = max(monotonic() - before - interval, 0.0)


#: Connections that must have gone since the peak before memory is handed back.
RECLAIM_AFTER = 200


def _malloc_trim() -> bool:
    """glibc's ``malloc_trim(0)``: give free heap pages back to the system (``False`` where
    the C library has none, e.g. musl)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True


async def reclaim_memory(counts: ConnectionCounts, interval: float = 5.0) -> None:
    """After a wave of connections has gone, give their memory back to the system.

    What thousands of connections held (TLS state, buffers, parsers) is freed
    when they close, but stays in the process: the protocols' reference cycles
    wait for the cyclic collector, and glibc keeps freed heap pages. A pod's
    memory must return to where it was after an attack, or the next one starts
    from there.
    """
    while True:
        await asyncio.sleep(interval)
        gone = counts.peak - counts.connections
        large = counts.large_bodies if counts.bodies == 0 else 0
        if gone < RECLAIM_AFTER and not large:
            continue
        counts.peak = counts.connections
        counts.large_bodies = 0
        gc.collect()
        if _malloc_trim():
            log.info("memory handed back after %d connections and %d large bodies went",
                     gone, large)
