"""HTTP/1.1 connections for the registry client: asyncio streams, the protocol by h11.

:class:`Http1Pool` sends an ``httpx.Request`` and returns an ``httpx.Response`` whose
body streams from the connection; it keeps the connections whose exchange ended
cleanly for the next request to the same origin (scheme, host, port). The wire
format (request and response heads, ``Content-Length`` and chunked bodies,
``Connection: close``, ``1xx`` answers, a ``HEAD``'s empty body) is h11's, which
rejects what is not HTTP/1.1; this module moves bytes, keeps the connections and
maps every failure to httpx's exception of the same kind (with the original as
its cause, which :mod:`imggate.registry.wire` reads).

Why not httpcore (httpx's default transport): its pool, AnyIO's locks and events
(each acquire a checkpoint that yields to the loop), its tracing and its own
request and response models cost more than the exchange itself. Measured with
cachegrind, ``imggate resolve`` of 200 images from a loopback registry: 2,168M ->
1,650M instructions; per image (two GETs) 4.98M -> 3.13M; start-up with one
image 1,177M -> 1,028M (httpcore, AnyIO and, where installed, trio are no longer
imported). It also needed fixing: a request cancelled while queued left its
connection "CONNECTING" for ever (the old ``pool.py`` overrode httpcore's private
pool methods to work around it). Here nothing is queued (the caller's
:class:`~imggate.registry.limits.Slots` bound the requests in flight), a
connection is made for the request that waits on it, and a connection joins the
idle list only once an exchange on it has ended cleanly: whatever fails or is
cancelled closes its connection and leaves nothing behind.

No HTTP/2: every registry speaks HTTP/1.1, and the client holds several
connections per host (as docker and containerd do).
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import ssl
import time
from collections.abc import AsyncIterator
from typing import NoReturn

import h11
import httpx

log = logging.getLogger("imggate.registry.http")

#: A response head (status line and headers) larger than this is refused (h11's default
#: is 16 KiB; registries send ~1 KiB, ``WWW-Authenticate`` challenges included).
MAX_HEAD = 64 * 1024
#: Bytes asked of the socket per read.
READ_SIZE = 64 * 1024

#: (scheme, host, port)
Origin = tuple[str, str, int]


def _readable(sock: socket.socket | None) -> bool:
    """Whether an idle connection's socket has something to read now: the server closed
    it, or sent what it should not have. Either way it is not reused."""
    if sock is None:
        return True
    fd = sock.fileno()
    if fd < 0:
        return True
    poll = select.poll()
    poll.register(fd, select.POLLIN)
    return bool(poll.poll(0))


class _Connection:
    """One TCP (or TLS) connection and its h11 state."""

    def __init__(self, origin: Origin, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.origin = origin
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self.socket: socket.socket | None = writer.get_extra_info("socket")
        self.idle_since = 0.0
        self.requests = 0

    def abort(self) -> None:
        """Close at once (an exchange that did not end cleanly: nothing more is read)."""
        self.writer.transport.abort()

    def reusable(self, now: float, expiry: float) -> bool:
        """An idle connection fit for another request."""
        return (now - self.idle_since < expiry and self.h11.our_state is h11.IDLE
                and not self.writer.transport.is_closing() and not _readable(self.socket))


class Http1Pool:
    """Sends requests over HTTP/1.1 connections, keeping idle ones for reuse."""

    def __init__(self, ssl_context: ssl.SSLContext, *, max_idle: int,
                 keepalive_expiry: float = 5.0) -> None:
        """Verify TLS with ``ssl_context``; keep at most ``max_idle`` idle connections in all,
        each for at most ``keepalive_expiry`` seconds."""
        #: What verifies the TLS connections.
        self.ssl_context = ssl_context
        self._max_idle = max_idle
        self._expiry = keepalive_expiry
        self._idle: dict[Origin, list[_Connection]] = {}
        self._active: set[_Connection] = set()
        self._closed = False

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` (its ``timeout`` extension: connect, read and write, seconds)
        and return the response, its body unread: reading it to the end gives the
        connection back; closing it before closes the connection."""
        if self._closed:
            raise httpx.ConnectError("the registry client is closed")
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported scheme {scheme!r}")
        origin: Origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        timeouts = request.extensions.get("timeout") or {}
        body = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
        conn = self._reuse(origin)
        if conn is not None:
            try:
                return await self._exchange(conn, request, body, timeouts)
            except _Stale:
                pass  # the server had closed it: once more, on a new connection
        conn = await self._connect(origin, timeouts.get("connect"))
        try:
            return await self._exchange(conn, request, body, timeouts)
        except _Stale as e:
            raise httpx.RemoteProtocolError(
                "the server closed the connection without answering") from e.__cause__

    def _reuse(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to be expired
            if conn.reusable(now, self._expiry):
                return conn
            conn.abort()
        return None

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        tls = self.ssl_context if scheme == "https" else None
        log.debug("connecting to %s:%d (%s)", host, port, scheme)
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=host if tls else None,
                    limit=READ_SIZE)
        except TimeoutError as e:
            raise httpx.ConnectTimeout("connect timed out") from e
        except (OSError, ssl.SSLError, ValueError) as e:
            raise httpx.ConnectError(type(e).__name__) from e
        return _Connection(origin, reader, writer)

    async def _exchange(self, conn: _Connection, request: httpx.Request, body: bytes,
                        timeouts: dict[str, float | None]) -> httpx.Response:
        """Send the request on ``conn`` and read the response head. A reused connection
        that fails before any byte of an answer raises :class:`_Stale`."""
        self._active.add(conn)
        # Only an idempotent request is sent again after a reused connection failed.
        retry_if_stale = conn.requests > 0 and request.method in ("GET", "HEAD")
        conn.requests += 1
        answered = False
        try:
            h = conn.h11
            try:
                head = h.send(h11.Request(method=request.method, target=request.url.raw_path,
                                          headers=request.headers.raw))
                parts = [head]
                if body:
                    parts.append(h.send(h11.Data(data=body)))
                parts.append(h.send(h11.EndOfMessage()))
            except h11.LocalProtocolError as e:
                raise httpx.LocalProtocolError(type(e).__name__) from e
            await self._write(conn, b"".join(p for p in parts if p), timeouts.get("write"))
            while True:
                event = await self._next_event(conn, timeouts.get("read"))
                answered = not isinstance(event, h11.ConnectionClosed)
                if isinstance(event, h11.InformationalResponse):
                    continue  # 100 Continue and the like: the answer follows
                if isinstance(event, h11.Response):
                    break
                raise httpx.RemoteProtocolError("the server closed the connection without "
                                                "answering")
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as e:
            conn.abort()
            self._active.discard(conn)
            if retry_if_stale and not answered:
                raise _Stale() from e
            raise
        except BaseException:
            conn.abort()
            self._active.discard(conn)
            raise
        return httpx.Response(
            event.status_code, headers=event.headers.raw_items(),
            stream=_Body(self, conn, timeouts.get("read")),
            extensions={"http_version": b"HTTP/" + event.http_version,
                        "reason_phrase": event.reason})

    @staticmethod
    async def _write(conn: _Connection, data: bytes, timeout: float | None) -> None:
        try:
            conn.writer.write(data)
            async with asyncio.timeout(timeout):
                await conn.writer.drain()
        except TimeoutError as e:
            raise httpx.WriteTimeout("write timed out") from e
        except (OSError, ssl.SSLError, RuntimeError) as e:
            raise httpx.WriteError(type(e).__name__) from e

    @staticmethod
    async def _next_event(conn: _Connection, timeout: float | None) -> object:
        """The next h11 event, reading from the socket as h11 needs."""
        h = conn.h11
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as e:
                raise httpx.RemoteProtocolError(type(e).__name__) from e
            if event is not h11.NEED_DATA:
                return event
            try:
                async with asyncio.timeout(timeout):
                    data = await conn.reader.read(READ_SIZE)
            except TimeoutError as e:
                raise httpx.ReadTimeout("read timed out") from e
            except (OSError, ssl.SSLError) as e:
                raise httpx.ReadError(type(e).__name__) from e
            try:
                h.receive_data(data)  # b"": the server closed its side
            except h11.RemoteProtocolError as e:
                raise httpx.RemoteProtocolError(type(e).__name__) from e

    def _ended(self, conn: _Connection, clean: bool) -> None:
        """An exchange on ``conn`` is over: keep the connection for the next request when it
        ended cleanly and may carry another, else close it."""
        self._active.discard(conn)
        h = conn.h11
        if not clean or self._closed or h.our_state is not h11.DONE \
                or h.their_state is not h11.DONE:
            conn.abort()
            return
        try:
            h.start_next_cycle()
        except h11.LocalProtocolError:
            conn.abort()
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.origin, []).append(conn)
        if sum(len(v) for v in self._idle.values()) > self._max_idle:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        oldest = min((c for v in self._idle.values() for c in v), key=lambda c: c.idle_since)
        self._idle[oldest.origin].remove(oldest)
        oldest.abort()

    async def aclose(self) -> None:
        """Close every connection; responses still open close theirs when closed."""
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.writer.close()
        self._idle.clear()
        for conn in list(self._active):
            conn.abort()
        self._active.clear()

    def connections(self) -> list[str]:
        """Each connection as ``ACTIVE`` or ``IDLE`` (diagnostics, tests)."""
        return ["ACTIVE"] * len(self._active) + [
            "IDLE" for conns in self._idle.values() for _ in conns]


class _Stale(Exception):
    """A reused connection failed before the first byte of an answer: the server had
    closed it while it was idle (its ``__cause__`` is the failure)."""


class _Body(httpx.AsyncByteStream):
    """A response body read from its connection; the connection goes back to the pool
    when the body was read to its end, and is closed otherwise."""

    def __init__(self, pool: Http1Pool, conn: _Connection, timeout: float | None) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self._timeout = timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """Yield the body's parts as they arrive."""
        conn = self._conn
        if conn is None:
            return
        try:
            while True:
                event = await Http1Pool._next_event(conn, self._timeout)
                if isinstance(event, h11.Data):
                    yield bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    _incomplete()
        except BaseException:
            self._end(clean=False)
            raise
        self._end(clean=True)

    def _end(self, clean: bool) -> None:
        if self._conn is not None:
            self._pool._ended(self._conn, clean)
            self._conn = None

    async def aclose(self) -> None:
        """Close: an unread body closes its connection."""
        self._end(clean=False)


def _incomplete() -> NoReturn:
    raise httpx.RemoteProtocolError("the connection closed before the body was complete")
