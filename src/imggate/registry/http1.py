"""HTTP/1.1 connections for the registry client: asyncio protocols, answers parsed by
httptools (llhttp, the parser uvicorn serves with).

:class:`Http1Pool` sends an ``httpx.Request`` and returns an ``httpx.Response`` whose
body streams from the connection; it keeps the connections whose exchange ended
cleanly for the next request to the same origin (scheme, host, port). The request
is written here (request line and headers, checked for line breaks and the like);
the answer is parsed by llhttp, which refuses what is not HTTP/1.1 (two
``Content-Length`` headers, a length with ``Transfer-Encoding``, bad chunk sizes,
control characters in a header); ``1xx`` answers are skipped, a ``101`` is refused,
a ``HEAD``'s answer has no body. Every failure becomes httpx's exception of the
same kind, with the original as its cause (which :mod:`imggate.registry.wire` reads).

Bounds: an answer's head must end within :data:`MAX_HEAD` bytes; a body is read
no faster than the caller consumes it (the socket is paused past
:data:`MAX_BUFFERED` unread bytes), and the caller caps its size and its time
(:mod:`imggate.registry.bounded`); every wait has the request's read or write
timeout, and connecting its connect timeout.

Why not httpcore (httpx's default transport), then h11: httpcore's pool, AnyIO's
locks and events (each acquire a checkpoint that yields to the loop), its tracing
and its own request and response models cost more than the exchange itself, and
h11 (pure Python) was a fifth of what was left, the stream reader and writer most
of another fifth. Measured with cachegrind, ``imggate resolve`` of 200 images from a
loopback registry (two GETs an image): httpcore 2,168M instructions (4.98M an image),
h11 over asyncio streams 1,644M (3.13M), this module 1,428M (2.16M); start-up with one
image 1,177M -> 998M (httpcore, AnyIO and, where installed, trio are not imported).
httpcore also needed fixing:
a request cancelled while queued left its connection "CONNECTING" for ever. Here
nothing is queued (the caller's :class:`~imggate.registry.limits.Slots` bound the
requests in flight), a connection is made for the request that waits on it, and a
connection joins the idle list only once an exchange on it has ended cleanly:
whatever fails or is cancelled closes its connection and leaves nothing behind.

No HTTP/2: every registry speaks HTTP/1.1, and the client holds several
connections per host (as docker and containerd do).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
import typing
from collections import deque
from collections.abc import AsyncIterator

import httptools
import httpx

log = logging.getLogger("imggate.registry.http")

#: An answer's head (status line and headers) must end within this many bytes
#: (registries send ~1 KiB, ``WWW-Authenticate`` challenges included).
MAX_HEAD = 64 * 1024
#: Unread body bytes held before the socket is paused until the caller reads on.
MAX_BUFFERED = 256 * 1024

#: (scheme, host, port)
Origin = tuple[str, str, int]

# What may not appear in a request line or header: line breaks, NUL and other controls
# (a header value made from a registry's answer must not become two headers).
_UNSAFE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NO_BODY_STATUS = frozenset({204, 304})


#: Header lines already checked, by (name, value): the same few (Host, Accept, User-Agent)
#: head every request, and checking each with two regular expressions was 3% of the
#: instructions of a 200-image resolve. Never a credential (it would outlive its token);
#: cleared when full.
_CHECKED: dict[tuple[bytes, bytes], bytes] = {}
_CHECKED_MAX = 256
_LENGTH_HEADERS = (b"content-length", b"transfer-encoding")


def _header_line(name: bytes, value: bytes, lower: bytes) -> bytes:
    line = _CHECKED.get((name, value))
    if line is None:
        if not _TOKEN.fullmatch(name) or _UNSAFE.search(value):
            raise httpx.LocalProtocolError("invalid request header")
        line = b"".join((name, b": ", value.strip(b" \t"), b"\r\n"))
        if lower != b"authorization":
            if len(_CHECKED) >= _CHECKED_MAX:
                _CHECKED.clear()
            _CHECKED[name, value] = line
    return line


#: Header blocks already checked (their lines, and whether they declare a length), by
#: their (name, value) pairs: a client's requests carry the same few headers request after
#: request, and the loop over them, even with each line kept, was ~3% of the Python
#: opcodes of a registry request. As :data:`_CHECKED`: never a block with a credential;
#: cleared when full.
_BLOCKS: dict[tuple[tuple[bytes, bytes], ...], tuple[bytes, bool]] = {}
_BLOCKS_MAX = 64


def _header_block(pairs: tuple[tuple[bytes, bytes], ...]) -> tuple[bytes, bool]:
    found = _BLOCKS.get(pairs)
    if found is None:
        lines = []
        has_length = secret = False
        for name, value in pairs:
            lower = name.lower()
            lines.append(_header_line(name, value, lower))
            has_length = has_length or lower in _LENGTH_HEADERS
            secret = secret or lower == b"authorization"
        found = (b"".join(lines), has_length)
        if not secret:
            if len(_BLOCKS) >= _BLOCKS_MAX:
                _BLOCKS.clear()
            _BLOCKS[pairs] = found
    return found


def _head(request: httpx.Request, body: bytes) -> bytes:
    """The request line and headers, checked (:class:`httpx.LocalProtocolError`)."""
    method = request.method.encode("ascii")
    target = request.url.raw_path
    if not _TOKEN.fullmatch(method) or _UNSAFE.search(target) or b" " in target:
        raise httpx.LocalProtocolError("invalid request line")
    block, has_length = _header_block(tuple(request.headers.raw))
    lines = [method, b" ", target, b" HTTP/1.1\r\n", block]
    if body and not has_length:
        lines += (b"Content-Length: ", str(len(body)).encode(), b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: the llhttp callbacks fill the answer in as bytes
    arrive; :class:`Http1Pool` waits on it."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.requests = 0
        self.idle_since = 0.0
        self.closed = False  # the server closed its side, or the connection is lost
        self.broken = False  # bytes nobody asked for: never reused
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._paused = False
        self._parser: httptools.HttpResponseParser | None = None
        self._new_exchange(head_only=False)

    def _new_exchange(self, head_only: bool) -> None:
        self.head_only = head_only
        self.status = 0
        self.reason = b""
        self.version = "1.1"
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.ascii = False  # every header name and value ASCII (see on_headers_complete)
        self.complete = False
        self.keep_alive = False
        self.until_eof = False
        self.received = 0  # bytes of this answer, its head included
        self.error: Exception | None = None
        self.body: deque[bytes] = deque()
        self.buffered = 0

    def start(self, head_only: bool) -> None:
        """Ready for the answer to a request being sent (``head_only``: a HEAD's)."""
        self._new_exchange(head_only)
        self._parser = httptools.HttpResponseParser(self)

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport (uvloop's is not a subclass of asyncio's, but is one)."""
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """Feed the answer's bytes to llhttp (at most :data:`MAX_HEAD` of them before its
        head has ended)."""
        parser = self._parser
        if parser is None or self.error is not None or self.complete:
            self.broken = True  # nothing was asked: never reuse this connection
            self._abort()
            return
        self.received += len(data)
        try:
            if not self.head_done and self.received > MAX_HEAD:
                parser.feed_data(data[:len(data) - (self.received - MAX_HEAD)])
                if not self.head_done:
                    raise _Refused("the answer's head is over "
                                   f"{MAX_HEAD} bytes")
                parser.feed_data(data[len(data) - (self.received - MAX_HEAD):])
            else:
                parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the server switched protocols"))
        except (httptools.HttpParserError, _Refused) as e:
            if self.complete:
                # Bytes after a complete answer: the answer stands, the connection goes.
                self.broken = True
                self._abort()
            else:
                self._fail(httpx.RemoteProtocolError(f"not valid HTTP/1.1 ({e})"), e)
        if self.head_only and self.head_done:
            self._parser = None  # anything more is a body a HEAD's answer cannot have
        if self.buffered > MAX_BUFFERED and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        """The server closed its side: the end of a body read until the end, else an
        answer cut short (or none)."""
        self.closed = True
        if self.head_done and self.until_eof and self.error is None:
            self.complete = True
        elif self._parser is not None and not self.complete and self.error is None:
            self._fail(httpx.RemoteProtocolError(
                "the connection closed before the answer was complete" if self.received
                else "the server closed the connection without answering"))
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone: a failure for an exchange still under way."""
        self.closed = True
        if self._parser is not None and not self.complete and self.error is None:
            if exc is None:
                self.eof_received()
            else:
                self._fail(httpx.ReadError(type(exc).__name__), exc)
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        """The send buffer is full: writers wait."""
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        """The send buffer drained."""
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # -- llhttp callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        """An answer starts: a second one after a complete answer is refused."""
        if self.complete:
            raise _Refused("more than one answer")

    def on_status(self, reason: bytes) -> None:
        """The status line's reason phrase."""
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header."""
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        """The head has ended: a ``1xx`` is skipped (its headers forgotten)."""
        assert self._parser is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.headers = []
            self.reason = b""
            return
        self.status = status
        self.version = self._parser.get_http_version()
        self.keep_alive = self._parser.should_keep_alive()
        self.head_done = True
        # The names and the values each joined once (C calls, not a loop in Python):
        # whether the head is all ASCII, and which names it has.
        names, values = zip(*self.headers, strict=True) if self.headers else ((), ())
        listed = b"\n" + b"\n".join(names).lower() + b"\n"
        self.ascii = listed.isascii() and b"".join(values).isascii()
        if self.head_only or status in _NO_BODY_STATUS:
            self.complete = True
            return
        # A name is one line of ``listed`` (llhttp refuses a line break in a name).
        self.until_eof = (b"\ncontent-length\n" not in listed
                          and b"\ntransfer-encoding\n" not in listed)

    def on_body(self, part: bytes) -> None:
        """A part of the body."""
        if self.head_only:
            self.broken = True
            return
        self.body.append(part)
        self.buffered += len(part)

    def on_message_complete(self) -> None:
        """The answer has ended (a ``1xx``'s end is not the answer's)."""
        if self.head_done:
            self.complete = True

    # -- for the pool ----------------------------------------------------------------------

    def _fail(self, error: Exception, cause: BaseException | None = None) -> None:
        if self.error is None:
            error.__cause__ = cause
            self.error = error
        self._abort()

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self, timeout: float | None) -> None:
        """Until more of the answer arrived (or it failed), at most ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        # A timer that fails the waiter, not asyncio.timeout: nothing but this future is
        # awaited, so no task needs cancelling (asyncio.timeout on every answer's head was
        # 2.8% of the instructions of a 200-image resolve).
        timer = None if timeout is None else loop.call_later(timeout, _time_out, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def ready(self) -> bool:
        """Whether the answer has something for its reader without waiting: a part of
        the body, its end, or its failure."""
        return bool(self.body) or self.complete or self.error is not None

    async def write(self, data: bytes, timeout: float | None) -> None:
        """Send ``data``; wait (at most ``timeout``) while the send buffer is full."""
        if self.transport is None or self.transport.is_closing():
            raise httpx.WriteError("the connection is closed")
        self.transport.write(data)
        if self._writable is not None and not self._writable.done():
            try:
                async with asyncio.timeout(timeout):
                    await self._writable
            except TimeoutError as e:
                raise httpx.WriteTimeout("the request could not be sent in time") from e
            if self.closed:
                raise httpx.WriteError("the connection closed while sending")

    def taken(self, size: int) -> None:
        """The caller read ``size`` body bytes: read on once few are left."""
        self.buffered -= size
        if self._paused and self.buffered <= MAX_BUFFERED // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def finish(self) -> bool:
        """The exchange is over; whether the connection may carry another."""
        reusable = (self.complete and self.keep_alive and self.error is None
                    and not self.broken and not self.closed and not self.until_eof
                    and self.transport is not None and not self.transport.is_closing())
        self._parser = None
        return reusable

    def reusable(self, now: float, expiry: float) -> bool:
        """An idle connection fit for another request."""
        return (now - self.idle_since < expiry and not self.closed and not self.broken
                and self.transport is not None and not self.transport.is_closing())

    def abort(self) -> None:
        """Close at once."""
        self._parser = None
        self._abort()

    def close(self) -> None:
        """Close cleanly (an idle connection)."""
        if self.transport is not None:
            self.transport.close()


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
        try:
            body = request.content  # the client's bodies are bytes: already read
        except httpx.RequestNotRead:
            body = await request.aread()
        data = _head(request, body) + body
        conn = self._reuse(origin)
        if conn is not None:
            try:
                return await self._exchange(conn, request.method, data, timeouts)
            except _Stale:
                pass  # the server had closed it: once more, on a new connection
        # A new connection never raises _Stale: its failures are the request's.
        conn = await self._connect(origin, timeouts.get("connect"))
        return await self._exchange(conn, request.method, data, timeouts)

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
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(origin), host, port, ssl=tls,
                    server_hostname=host if tls else None)
        except TimeoutError as e:
            raise httpx.ConnectTimeout("connect timed out") from e
        except (OSError, ssl.SSLError, ValueError) as e:
            raise httpx.ConnectError(type(e).__name__) from e
        return conn

    async def _exchange(self, conn: _Connection, method: str, data: bytes,
                        timeouts: dict[str, float | None]) -> httpx.Response:
        """Send on ``conn`` and wait for the answer's head. A reused connection that fails
        before any byte of an answer raises :class:`_Stale` (for an idempotent request)."""
        self._active.add(conn)
        # Only an idempotent request is sent again after a reused connection failed.
        retry_if_stale = conn.requests > 0 and method in ("GET", "HEAD")
        conn.requests += 1
        conn.start(head_only=method == "HEAD")
        read = timeouts.get("read")
        try:
            try:
                await conn.write(data, timeouts.get("write"))
                while not conn.head_done:
                    if conn.error is not None:
                        raise conn.error
                    await conn.wait(read)
            except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as e:
                if retry_if_stale and not conn.received:
                    raise _Stale() from e
                raise
        except BaseException:
            conn.abort()
            self._active.discard(conn)
            raise
        response = httpx.Response(
            conn.status, headers=conn.headers, stream=_Body(self, conn, read),
            extensions={"http_version": f"HTTP/{conn.version}".encode(),
                        "reason_phrase": conn.reason})
        if conn.ascii:
            # What httpx finds on the first lookup by decoding every name and value (its
            # Headers.encoding: ASCII when all of them are), set through its public setter:
            # that search was ~4% of the Python opcodes of a registry request. A head with
            # any other byte is left to httpx, as before.
            response.headers.encoding = "ascii"
        return response

    def _ended(self, conn: _Connection, clean: bool) -> None:
        """An exchange on ``conn`` is over: keep the connection for the next request when it
        ended cleanly and may carry another, else close it."""
        self._active.discard(conn)
        if not (conn.finish() and clean) or self._closed:
            conn.abort()
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.origin, []).append(conn)
        if sum(len(v) for v in self._idle.values()) > self._max_idle:
            oldest = min((c for v in self._idle.values() for c in v),
                         key=lambda c: c.idle_since)
            self._idle[oldest.origin].remove(oldest)
            oldest.abort()

    async def aclose(self) -> None:
        """Close every connection; responses still open close theirs when closed."""
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        for conn in list(self._active):
            conn.abort()
        self._active.clear()

    def connections(self) -> list[str]:
        """Each connection as ``ACTIVE`` or ``IDLE`` (diagnostics, tests)."""
        return ["ACTIVE"] * len(self._active) + [
            "IDLE" for conns in self._idle.values() for _ in conns]


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(httpx.ReadTimeout("no answer within the read timeout"))


class _Refused(Exception):
    """An answer imggate refuses before llhttp would (its head too large)."""


class _Stale(Exception):
    """A reused connection failed before the first byte of an answer: the server had
    closed it while it was idle."""


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
                if conn.body:
                    part = conn.body.popleft()
                    conn.taken(len(part))
                    yield part
                elif conn.error is not None:
                    raise conn.error
                elif conn.complete:
                    break
                else:
                    await conn.wait(self._timeout)
        except BaseException:
            self._end(clean=False)
            raise
        self._end(clean=True)

    def ready(self) -> bool:
        """Whether the next step of the iteration has what it needs without waiting."""
        return self._conn is None or self._conn.ready()

    def take_complete(self) -> bytes | None:
        """The whole body, when all of it has arrived (its connection then goes back to
        the pool); else ``None``, and nothing is taken."""
        conn = self._conn
        if conn is None or not conn.complete or conn.error is not None:
            return None
        data = b"".join(conn.body)
        conn.body.clear()
        conn.taken(len(data))
        self._end(clean=True)
        return data

    def _end(self, clean: bool) -> None:
        if self._conn is not None:
            self._pool._ended(self._conn, clean)
            self._conn = None

    async def aclose(self) -> None:
        """Close: an unread body closes its connection."""
        self._end(clean=False)
