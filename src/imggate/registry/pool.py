"""The registry client's transport: HTTP/1.1 connections (:mod:`imggate.registry.http1`)
behind per-host and per-review request limits.

Every request first takes its slots (:class:`~imggate.registry.limits.Slots`): one
host can hold only its share, one review only its own. The slots are given back
when the response is closed, or when the request fails or is cancelled; and since
the slots bound the requests in flight, nothing ever waits inside the pool.
"""

from __future__ import annotations

import ssl
import typing
from collections.abc import AsyncIterator

import httpx

from imggate.registry.bounded import BUDGET
from imggate.registry.deadline import RequestBudget
from imggate.registry.http1 import Http1Pool
from imggate.registry.limits import Held, Progress, RequestLimits, Slots


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that gives the request's slots back when closed."""

    def __init__(self, inner: typing.AsyncIterable[bytes], held: Held) -> None:
        self._inner = inner
        self._held = held

    def __aiter__(self) -> AsyncIterator[bytes]:
        """The body's parts."""
        return self._inner.__aiter__()

    def ready(self) -> bool:
        """Whether the next part (or the end) is there without waiting (see
        :class:`~imggate.registry.bounded.BoundedStream`); ``False`` when unknown."""
        ready = getattr(self._inner, "ready", None)
        return bool(ready()) if callable(ready) else False

    def take_complete(self) -> bytes | None:
        """The whole body when it has all arrived (see
        :meth:`~imggate.registry.bounded.BoundedStream.take_complete`), else ``None``."""
        take = getattr(self._inner, "take_complete", None)
        return take() if callable(take) else None

    async def aclose(self) -> None:
        """Close the body (and its connection, when unfinished); give the slots back."""
        try:
            close = getattr(self._inner, "aclose", None)
            if close is not None:
                await close()
        finally:
            self._held.release()


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport over :class:`~imggate.registry.http1.Http1Pool` behind
    :class:`Slots` (or, for tests, over any inner transport: the limits without the pool)."""

    def __init__(self, *, verify: ssl.SSLContext, limits: RequestLimits,
                 keepalive: int, inner: httpx.AsyncBaseTransport | None = None) -> None:
        """A pool keeping at most ``keepalive`` idle connections; at most ``limits.total``
        requests in flight (``limits.per_host`` to one host), so as many connections."""
        self.slots = Slots(limits)
        self.progress = Progress()
        self._inner = inner
        self.pool: Http1Pool | None = None
        if inner is None:
            self.pool = Http1Pool(verify, max_idle=keepalive, keepalive_expiry=5.0)

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
        try:
            # The request reaches the host now: from here a time-out is the host's.
            self.progress.through(token)
            budget = request.extensions.get(BUDGET)
            if isinstance(budget, RequestBudget):
                budget.connected = True
            if self.pool is not None:
                response = await self.pool.send(request)
            else:
                assert self._inner is not None
                response = await self._inner.handle_async_request(request)
            # The type as a string: subscripting typing.AsyncIterable on every request
            # (typing's cache lookup) was ~2K instructions of it (cachegrind).
            response.stream = _ReleasingStream(
                typing.cast("typing.AsyncIterable[bytes]", response.stream), held)
            return response
        except BaseException:
            held.release()
            self.progress.gave_up(token)
            raise

    async def aclose(self) -> None:
        """Close every connection (and the inner transport)."""
        if self.pool is not None:
            await self.pool.aclose()
        if self._inner is not None:
            await self._inner.aclose()

    def connections(self) -> list[str]:
        """The pool's connections, ``ACTIVE`` or ``IDLE`` (diagnostics, tests)."""
        return self.pool.connections() if self.pool is not None else []
