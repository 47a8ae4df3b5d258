"""The registry client's transport: a connection pool that gives back what a cancelled
request held, behind per-host and per-review request limits.

Why not httpx's own transport as it is: httpcore's pool (1.0.x) assigns a new
connection to a queued request *before* the request runs on it. A request
cancelled in between (its deadline passed while it waited) leaves that
connection in the pool, never connected and owned by nobody: "CONNECTING"
for ever, and for a plain-HTTP host never reusable. A few hundred cancelled
requests to a registry that does not answer fill the pool with such entries,
and every later request, to any registry, waits until its deadline.

:class:`GuardedTransport` fixes that without touching httpcore's code:

- every request first takes its slots (:class:`~imggate.registry.limits.Slots`):
  one host can hold only its share, one review only its own; slots are
  given back when the response is closed or the request fails or is cancelled;
- the pool (:class:`GuardedPool`) is sized above the total of slots, so it
  never queues;
- its connections (:class:`TrackedConnection`) know whether a request ever
  ran on them; when a request to an origin ends in failure or cancellation,
  the connections of that origin nobody ran on are *discarded* (they report
  closed, and the pool drops them). A live request that was about to use one
  gets httpcore's ``ConnectionNotAvailable`` and is given another connection,
  which is httpcore's own recovery path.
"""

from __future__ import annotations

import contextvars
import ssl
import typing
from collections.abc import AsyncIterator

import httpcore
import httpx

from imggate.registry.bounded import BUDGET
from imggate.registry.deadline import RequestBudget
from imggate.registry.limits import Held, Progress, RequestLimits, Slots
from imggate.registry.network import CachedSocketBackend

#: The watchdog token of the request running in this context (set by the transport).
_TOKEN: contextvars.ContextVar[tuple[Progress, int] | None] = contextvars.ContextVar(
    "imggate_pool_token", default=None)

_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    # Most specific first: the first match wins.
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


def _mapped(e: Exception) -> Exception:
    """httpcore's exception as httpx's (what the registry client catches)."""
    for source, target in _EXCEPTIONS:
        if isinstance(e, source):
            return target(str(e))
    return e


class TrackedConnection(httpcore.AsyncConnectionInterface):
    """A pool connection (httpcore's, wrapped) that knows whether a request ever ran on it,
    and can be discarded while nobody has."""

    def __init__(self, inner: httpcore.AsyncConnectionInterface,
                 origin: httpcore.Origin) -> None:
        """Wrap ``inner``, a connection to ``origin``."""
        self._inner = inner
        self.origin = origin
        self.used = False
        self.discarded = False

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        """Run ``request`` (refused once discarded, so the pool assigns another)."""
        if self.discarded:
            raise httpcore.ConnectionNotAvailable()
        self.used = True
        budget = request.extensions.get(BUDGET)
        if isinstance(budget, RequestBudget):
            budget.connected = True
        held = _TOKEN.get()
        if held is not None:
            held[0].through(held[1])
        return await self._inner.handle_async_request(request)

    def discard(self) -> None:
        """Mark an unused connection closed: the pool drops it at its next pass."""
        if not self.used:
            self.discarded = True

    async def aclose(self) -> None:
        """Close the connection."""
        await self._inner.aclose()

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        """Whether this connection is for ``origin``."""
        return self._inner.can_handle_request(origin)

    def is_available(self) -> bool:
        """Available for a request; never once discarded."""
        return not self.discarded and self._inner.is_available()

    def has_expired(self) -> bool:
        """Expired, or discarded."""
        return self.discarded or self._inner.has_expired()

    def is_idle(self) -> bool:
        """Idle (a discarded connection counts as idle: it never blocks a new one)."""
        return self.discarded or self._inner.is_idle()

    def is_closed(self) -> bool:
        """Closed, or discarded."""
        return self.discarded or self._inner.is_closed()

    def info(self) -> str:
        """httpcore's description (``DISCARDED`` once discarded)."""
        return "DISCARDED" if self.discarded else self._inner.info()


class GuardedPool(httpcore.AsyncConnectionPool):
    """httpcore's pool, its connections wrapped in :class:`TrackedConnection`."""

    def create_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        """httpcore's connection for ``origin``, tracked."""
        return TrackedConnection(super().create_connection(origin), origin)

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        """httpcore's policy for giving queued requests connections, in one pass.

        httpcore (1.0.x) counts the pool's connections again for each idle one, and
        lists the idle ones again for each queued request: O(connections²) calls per
        pass, and it passes twice per request. With 16 connections that was ~680
        ``is_idle`` calls per request, 10-13% of a 1,000-tag audit's CPU (py-spy); this
        makes ~3 calls per connection per pass. The policy is httpcore's, unchanged:
        drop closed connections; close expired ones, and idle ones while the pool holds
        more than its keep-alive allowance; give each queued request, in order, the
        first available connection for its origin, else a new one while under the
        limit, else a new one in place of the first idle connection (closed).
        Called by httpcore under its lock; returns the connections to close.

        A pass with no queued request (a response was closed and nobody waits: half
        the passes) gives nothing out, so it does not ask each connection whether it
        has expired (a keep-alive timeout, or a poll of an idle one's socket for a
        server that hung up). The next pass that gives a connection out asks first, as
        httpcore does. When the pool also holds no more than its keep-alive allowance,
        such a pass has nothing to do at all (a closed connection is dropped by the next
        pass that gives one out). Together: 2% of a resolve's instructions (cachegrind).
        """
        assigning = any(r.is_queued() for r in self._requests)
        if not assigning and len(self._connections) <= self._max_keepalive_connections:
            return []
        closing: list[httpcore.AsyncConnectionInterface] = []
        kept: list[httpcore.AsyncConnectionInterface] = []
        count = len(self._connections)  # httpcore's count: those not yet removed
        for c in self._connections:
            if c.is_closed():
                count -= 1
            elif (assigning and c.has_expired()) or (
                    c.is_idle() and count > self._max_keepalive_connections):
                closing.append(c)
                count -= 1
            else:
                kept.append(c)
        conns = self._connections
        conns[:] = kept
        if not assigning:
            return closing
        # A request given an idle HTTP/1.1 connection reaches it only after a yield
        # (httpcore's connection lock); a pass in between saw the connection still idle
        # and gave it to a second request too, which then failed (ConnectionNotAvailable)
        # and went round again: ~4 passes per request instead of 2 in an audit. A
        # plain-HTTP connection (always HTTP/1.1 here) held by a request in the pool is
        # not offered again; HTTP/2 connections are shared on purpose, so TLS ones are.
        held = {id(r.connection) for r in self._requests if r.connection is not None}
        for request in self._requests:
            if not request.is_queued():
                continue
            origin = request.request.url.origin
            plain = origin.scheme == b"http"
            chosen = next((c for c in conns if c.can_handle_request(origin)
                           and c.is_available() and not (plain and id(c) in held)), None)
            if chosen is None:
                if len(conns) >= self._max_connections:
                    idle = next((c for c in conns if c.is_idle()), None)
                    if idle is None:
                        continue  # stays queued until a connection frees up
                    conns.remove(idle)
                    closing.append(idle)
                chosen = self.create_connection(origin)
                conns.append(chosen)
            request.assign_to_connection(chosen)
            held.add(id(chosen))
        return closing

    def discard_unused(self, origin: httpcore.Origin) -> int:
        """Discard the connections to ``origin`` no request ran on; how many."""
        n = 0
        for c in self.connections:
            if isinstance(c, TrackedConnection) and c.origin == origin and not c.used \
                    and not c.discarded:
                c.discard()
                n += 1
        return n


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that gives the request's slots back when closed."""

    def __init__(self, inner: typing.AsyncIterable[bytes], held: Held) -> None:
        self._inner = inner
        self._held = held

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._inner:
                yield part
        except Exception as e:
            raise _mapped(e) from e

    async def aclose(self) -> None:
        try:
            close = getattr(self._inner, "aclose", None)
            if close is not None:
                await close()
        except Exception as e:
            raise _mapped(e) from e
        finally:
            self._held.release()


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport over :class:`GuardedPool` behind :class:`Slots` (or, for tests,
    over any inner transport: the limits without the pool)."""

    def __init__(self, *, verify: ssl.SSLContext, limits: RequestLimits,
                 keepalive: int, http2: bool = True,
                 inner: httpx.AsyncBaseTransport | None = None) -> None:
        """A pool of up to ``limits.total + limits.per_host`` connections keeping ``keepalive``
        idle ones (the margin holds connections waiting to be discarded)."""
        self.slots = Slots(limits)
        self.progress = Progress()
        self._inner = inner
        self.pool: GuardedPool | None = None
        if inner is None:
            self.pool = GuardedPool(
                ssl_context=verify, max_connections=limits.total + limits.per_host,
                max_keepalive_connections=keepalive, keepalive_expiry=5.0, http1=True,
                http2=http2, network_backend=CachedSocketBackend())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Take the slots, send through the pool, hand the slots to the response body."""
        url = request.url
        host = f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
        token = self.progress.begin()
        try:
            held = await self.slots.acquire(host)
        except BaseException:
            self.progress.gave_up(token)
            raise
        reset = _TOKEN.set((self.progress, token))
        try:
            if self.pool is None:
                assert self._inner is not None
                self.progress.through(token)
                budget = request.extensions.get(BUDGET)
                if isinstance(budget, RequestBudget):
                    budget.connected = True
                response = await self._inner.handle_async_request(request)
                response.stream = _ReleasingStream(
                    typing.cast(typing.AsyncIterable[bytes], response.stream), held)
                return response
            return await self._send(request, held)
        except BaseException:
            held.release()
            self.progress.gave_up(token)
            raise
        finally:
            _TOKEN.reset(reset)

    async def _send(self, request: httpx.Request, held: Held) -> httpx.Response:
        assert self.pool is not None
        assert isinstance(request.stream, httpx.AsyncByteStream)
        url = request.url
        origin = httpcore.Origin(url.raw_scheme, url.raw_host,
                                 url.port or (443 if url.scheme == "https" else 80))
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port,
                             target=url.raw_path),
            headers=request.headers.raw, content=request.stream,
            extensions=request.extensions)
        try:
            resp = await self.pool.handle_async_request(req)
        except BaseException as e:
            # This request may have been given a connection it never ran on.
            self.pool.discard_unused(origin)
            if isinstance(e, Exception):
                raise _mapped(e) from e
            raise
        assert isinstance(resp.stream, typing.AsyncIterable)
        return httpx.Response(status_code=resp.status, headers=resp.headers,
                              stream=_ReleasingStream(resp.stream, held),
                              extensions=resp.extensions)

    async def aclose(self) -> None:
        """Close every connection (and the inner transport)."""
        if self.pool is not None:
            await self.pool.aclose()
        if self._inner is not None:
            await self._inner.aclose()

    def connections(self) -> list[str]:
        """The pool's connections as httpcore describes them (diagnostics, tests)."""
        return [c.info() for c in self.pool.connections] if self.pool is not None else []
