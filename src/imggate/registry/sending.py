"""Sending one request over the registry client's transport: the part of
``httpx.AsyncClient`` imggate used, and nothing else.

:class:`Sender` builds each request with the client's headers and timeouts,
sends it through the transport (:class:`~imggate.registry.pool.GuardedTransport`),
bounds every response body it gets back (:func:`~imggate.registry.bounded.bound`:
the registry's answers, ``401`` bodies, token servers' answers), and runs a
:class:`~imggate.registry.auth.RegistryAuth` flow when it is given one. It follows
no redirect (the registry client does, deciding each hop itself) and keeps no cookie.

Why not ``httpx.AsyncClient.send``: per request it merges the client's cookies
and headers, builds an auth flow even where there is none, looks the transport
up by URL pattern, runs the event hooks through their lists, wraps the body once
more to time it, formats a log record and hands every response to the cookie
jar through ``urllib`` request and response stand-ins (even a jar that keeps
nothing). Skipping that saved 0.29 M instructions per request: 4.7% of a
200-image resolve and 3.3% of a 1,000-tag audit, start-up included (cachegrind). The requests and
responses are still httpx's, and so are their exceptions.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

import httpx

from imggate.registry.auth import RegistryAuth
from imggate.registry.bounded import bound

# httpx's client logged each exchange on its logger; the line is kept where -vv showed it
# (imggate.logs turns the HTTP libraries' loggers on at -vv).
_httpx_log = logging.getLogger("httpx")

#: Requests without a body (httpx gives them no Content-Length).
_BODILESS = frozenset({"GET", "HEAD"})
_NO_BODY = httpx.ByteStream(b"")
#: Header sets (per host) kept ready for bodiless requests.
_PREPARED_HEADERS = 64

#: What httpx's client sent with every request (gzip and deflate are decoded by httpx).
_DEFAULT_HEADERS = (("Accept", "*/*"), ("Accept-Encoding", "gzip, deflate"),
                    ("Connection", "keep-alive"))


class Sender:
    """Sends requests through one transport; closing it closes the transport."""

    def __init__(self, transport: httpx.AsyncBaseTransport, *, timeout: float,
                 min_rate: float, user_agent: str) -> None:
        """Send through ``transport``, each phase (connect, read, write, pool) of a request
        bounded by ``timeout`` seconds and each body by :func:`bound` (``timeout``,
        ``min_rate``)."""
        self._transport = transport
        self._timeout = timeout
        self._min_rate = min_rate
        self._timeouts = httpx.Timeout(timeout).as_dict()
        self._headers = (*_DEFAULT_HEADERS, ("User-Agent", user_agent))
        self._prepared_headers: dict[tuple[object, ...], httpx.Headers] = {}

    def request(self, method: str, url: httpx.URL, headers: dict[str, str],
                extensions: dict[str, object], content: bytes | None = None
                ) -> httpx.Request:
        """A request with the client's headers (``headers`` win) and timeouts."""
        extensions = {**extensions, "timeout": self._timeouts}
        if content is None and method in _BODILESS:
            # The headers httpx would give it (Host first), made once per host and header
            # set and copied: httpx builds its Headers twice per request and checks for a
            # body it has not got. 125k -> 16k instructions a request, a tenth of a
            # resolve's (cachegrind). Given a stream, httpx adds no header of its own.
            request = httpx.Request(method, url, headers=self._prepared(url.netloc, headers),
                                    stream=_NO_BODY, extensions=extensions)
            request.read()  # as httpx's own: a request whose (empty) body is known
            return request
        return httpx.Request(method, url, headers=self._merged(headers), content=content,
                             extensions=extensions)

    def _merged(self, headers: dict[str, str]) -> list[tuple[str, str]]:
        # One list, made into httpx's Headers once by the request (copying and updating a
        # Headers object first built it three more times: ~40 us a request).
        given = {name.lower() for name in headers}
        merged = [h for h in self._headers if h[0].lower() not in given]
        merged += headers.items()
        return merged

    def _prepared(self, netloc: bytes, headers: dict[str, str]) -> httpx.Headers:
        key = (netloc, *headers.items())
        found = self._prepared_headers.get(key)
        if found is None:
            if len(self._prepared_headers) >= _PREPARED_HEADERS:
                self._prepared_headers.clear()  # hosts come from references: bounded
            merged = self._merged(headers)
            if all(name.lower() != "host" for name, _ in merged):
                merged.insert(0, ("Host", netloc.decode("ascii")))
            found = httpx.Headers(merged)
            self._prepared_headers[key] = found
        return found

    async def send(self, request: httpx.Request, auth: RegistryAuth | None) -> httpx.Response:
        """Send ``request`` (with ``auth``'s flow, when given) and return the response with
        its body unread (and bounded). Only the flow's own requests follow it: the
        token server's and the retry with credentials."""
        if auth is None:
            return await self._send_one(request)
        if not auth.untouched(request):
            return await self._follow(auth.async_auth_flow(request))
        # What the flow would send first, sent as it is; only a 401 needs the rest of it.
        response = await self._send_one(request)
        if response.status_code != 401:
            return response
        return await self._follow(auth.challenged(request, response, None), response)

    async def _follow(self, flow: AsyncGenerator[httpx.Request, httpx.Response],
                      answered: httpx.Response | None = None) -> httpx.Response:
        """Send what ``flow`` asks, giving it each answer; the last answer is returned.
        ``answered``: the answer the flow was made with (a flow that ends at once ends
        with it), ``None`` for a flow that starts with a request."""
        try:
            try:
                request = await flow.__anext__()
            except StopAsyncIteration:
                if answered is None:
                    raise RuntimeError("the auth flow sent no request") from None
                return answered
            except BaseException:
                if answered is not None:
                    await answered.aclose()
                raise
            if answered is not None:
                await _done_with(answered)
            while True:
                response = await self._send_one(request)
                try:
                    request = await flow.asend(response)
                except StopAsyncIteration:
                    return response
                except BaseException:
                    await response.aclose()
                    raise
                await _done_with(response)
        finally:
            await flow.aclose()

    async def _send_one(self, request: httpx.Request) -> httpx.Response:
        if "timeout" not in request.extensions:  # the auth flow's token requests
            request.extensions = {**request.extensions, "timeout": self._timeouts}
        response = await self._transport.handle_async_request(request)
        response.request = request
        bound(response, self._timeout, self._min_rate)
        # Only when shown (-vv): its arguments alone (two of them properties that decode
        # bytes) were 8.5K instructions a request, 0.4% of a resolve (cachegrind).
        if _httpx_log.isEnabledFor(logging.INFO):
            _httpx_log.info('HTTP Request: %s %s "%s %d %s"', request.method, request.url,
                            response.http_version, response.status_code,
                            response.reason_phrase)
        return response

    async def aclose(self) -> None:
        """Close the transport (its connections)."""
        await self._transport.aclose()


async def _done_with(response: httpx.Response) -> None:
    """A response the auth flow is done with: read (within its bound) so that its
    connection carries the next request, as httpx's client did; then closed."""
    try:
        await response.aread()
    finally:
        await response.aclose()
