"""The OCI distribution API client: how every registry request is sent and bounded.

One :class:`RegistryClient` (one pool of HTTP/1.1 connections) serves
many registries and repositories concurrently. :meth:`RegistryClient.fetch`
is the only way a request goes out: challenge auth, same-host-only
credentials across redirects, retries that fit inside the deadline, and a
body read within its cap and time budget (:mod:`imggate.registry.deadline`,
:mod:`imggate.registry.bounded`). What is fetched, and how it is verified
against its digest, is :class:`~imggate.registry.repository.RegistryRepository`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import math
import random
import re
import ssl
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Self

import httpx
from msgspec import Struct

from imggate import values
from imggate.errors import AuthError, NotFound, RegistryError, UsageError
from imggate.registry import deadline as _deadline
from imggate.registry.auth import RegistryAuth, TokenError
from imggate.registry.bounded import (
    BUDGET,
    MAX_BODY,
    MAX_ERROR_BODY,
    BodyTooLarge,
)
from imggate.registry.breaker import Breaker, HostUnavailable
from imggate.registry.credentials import CredentialStore
from imggate.registry.deadline import Deadline, DeadlineExceeded, RequestBudget
from imggate.registry.options import RegistryOptions
from imggate.registry.pool import GuardedTransport
from imggate.registry.sending import Sender
from imggate.registry.tls import _DeferredTrustContext, is_loopback, speaks_tls
from imggate.registry.wire import wire_failure

if TYPE_CHECKING:
    from imggate.registry.repository import RegistryRepository

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 502, 503, 504})
MAX_REDIRECTS = 5
#: The longest the TLS probe of a plain-HTTP-allowed registry waits for a handshake.
PROBE_TIMEOUT = 5.0
MAX_RETRY_AFTER = 30.0
MAX_TAG_PAGES = 1000
#: The largest unwanted body (a 404's) read so that its connection is kept (see _drain).
DRAIN_LIMIT = 4096
_OK = frozenset({200})
#: A path that httpx takes as it is: nothing to escape, no dot segment, no query. The
#: paths imggate makes from a parsed reference are.
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9._~:/-]*")
#: Roots (``scheme://host``) kept parsed, per client.
_ROOTS = 256


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class Asked(Struct, frozen=True):
    """What a request is for, as its errors name it (a value per request, not an error
    built ahead: formatting and redacting one was 2.6% of the instructions of a resolve)."""

    registry: str
    repository: str | None = None
    reference: str | None = None


class Fetched(Struct, frozen=True):
    """One registry answer, its body read within its cap and deadline."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: httpx.URL


class RegistryClient:
    """Async client for any number of registries. Use as ``async with``."""

    def __init__(self, options: RegistryOptions | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, *,
                 deadline: Deadline | None = None) -> None:
        """``deadline`` bounds every request of this client, unless a deadline is applied
        in the calling context (:meth:`Deadline.applied`), which wins."""
        self.options = options or RegistryOptions()
        self._transport = transport
        self._deadline = deadline
        self._http: Sender | None = None
        self.guard: GuardedTransport | None = None
        self.breaker = Breaker(self.options.breaker)
        self._auth: dict[str, RegistryAuth] = {}
        self._schemes: dict[str, str] = {}
        self._probes: dict[str, asyncio.Lock] = {}
        self._roots: dict[str, httpx.URL] = {}
        #: Registries whose referrers API answered that it is not there (see
        #: :meth:`lacks_referrers_api`).
        self._no_referrers_api: set[str] = set()
        self._owns_http = True

    def with_credentials(self, credentials: CredentialStore) -> RegistryClient:
        """A client that sends ``credentials`` over this (entered) client's connections.

        It shares the connection pool and what was learnt about each host's
        scheme, but keeps its own authentication state: a token obtained with
        one set of credentials is never sent on behalf of another. Leaving it
        closes nothing (the pool is this client's); it is usable while this one is.
        """
        assert self._http is not None, "enter the client before deriving one from it"
        child = RegistryClient(values.replace(self.options, credentials=credentials),
                               self._transport, deadline=self._deadline)
        child._http = self._http
        child.guard = self.guard
        child.breaker = self.breaker
        child._schemes = self._schemes
        child._probes = self._probes
        child._no_referrers_api = self._no_referrers_api
        child._owns_http = False
        return child

    def lacks_referrers_api(self, registry: str) -> bool:
        """Whether ``registry``'s referrers API answered, earlier on this client, that it is
        not there (404, 400 or 405): its next referrers lookups ask the API and the
        fallback tag at once (:meth:`imggate.registry.repository.RegistryRepository.referrers`),
        a round trip fewer, with the same answer and the same requests."""
        return registry in self._no_referrers_api

    def note_referrers_api(self, registry: str, *, present: bool) -> None:
        """What ``registry``'s referrers API answered: there (200), or not."""
        if present:
            self._no_referrers_api.discard(registry)
        else:
            self._no_referrers_api.add(registry)

    async def __aenter__(self) -> Self:
        verify: ssl.SSLContext = _DeferredTrustContext()
        if self.options.ca_file:
            try:
                verify = ssl.create_default_context(cafile=self.options.ca_file)
            except (OSError, ssl.SSLError) as e:
                raise UsageError(f"--ca-file {self.options.ca_file}: cannot load ({e})") from None
        # Every request goes through the guard: its slots are given back however it ends.
        self.guard = GuardedTransport(verify=verify, limits=self.options.limits,
                                      keepalive=self.options.max_connections,
                                      inner=self._transport)
        self._http = Sender(self.guard, timeout=self.options.timeout,
                            min_rate=self.options.min_rate, user_agent="imggate/0.1")
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            if self._http is not None and self._owns_http:
                await self._http.aclose()
        finally:
            self._http = None

    def repository(self, registry: str, repository: str) -> RegistryRepository:
        """One repository on one registry."""
        from imggate.registry.repository import RegistryRepository

        return RegistryRepository(self, registry, repository)

    def host(self, registry: str) -> str:
        """The host (and port) that serves ``registry``'s API."""
        return "registry-1.docker.io" if registry == "docker.io" else registry

    def plain_http_allowed(self, registry: str) -> bool:
        """Loopback registries and ``--insecure-registry`` hosts, as docker allows."""
        return registry in self.options.insecure_registries or is_loopback(registry)

    async def base_url(self, registry: str) -> str:
        """``https://host``; for hosts allowed plain HTTP, ``http://host`` when they do not
        speak TLS (docker's rule: HTTPS first, then HTTP), decided once per host."""
        host = self.host(registry)
        known = self._schemes.get(registry)  # before the loopback check: every request asks
        if known is not None:
            return f"{known}://{host}"
        if not self.plain_http_allowed(registry):
            # Remembered too: a host name's loopback check fails two address parses with
            # exceptions (~5 us), which every request made before.
            self._schemes[registry] = "https"
            return f"https://{host}"
        if registry not in self._schemes:
            if registry not in self._probes:
                self._probes[registry] = asyncio.Lock()
            async with self._probes[registry]:
                if registry not in self._schemes:
                    # The probe, like every request, ends by the caller's deadline; a probe
                    # the deadline cut short decides nothing (and is not remembered).
                    deadline = _deadline.current(self._deadline)
                    wait = min(self.options.timeout, PROBE_TIMEOUT)
                    # An injected transport (tests) has no sockets to probe.
                    tls = self._transport is None and await speaks_tls(
                        host, deadline.cap(wait))
                    if not tls and deadline.remaining() <= 0 < wait:
                        raise RegistryError(f"{deadline.describe()} passed while finding "
                                            "whether it speaks TLS", registry=registry)
                    self._schemes[registry] = "https" if tls else "http"
                    log.debug("registry %s: %s", registry, self._schemes[registry])
        return f"{self._schemes[registry]}://{host}"

    def _auth_for(self, registry: str) -> RegistryAuth:
        if registry not in self._auth:
            host = self.host(registry).lower()
            plain_ok = self.plain_http_allowed(registry)
            self._auth[registry] = RegistryAuth(
                host, self.options.credentials.get(registry), plain_http_ok=plain_ok)
        return self._auth[registry]

    async def fetch(self, method: str, registry: str, url: str, *, headers: dict[str, str],
                    what: Asked, limit: int, ok: frozenset[int] = _OK,
                    bodiless: frozenset[int] = frozenset(),
                    content: bytes | None = None) -> Fetched:
        """Send with auth, redirects and retries; return the answer with its body read.

        ``content`` is a request body (pushes), sent again on every retry.

        A status in ``ok`` has its body read (at most ``limit`` bytes, checked
        while streaming); one in ``bodiless`` is returned without its body;
        anything else is raised as the registry's error. Connection failures,
        transport errors while reading a body, bodies that come too slowly and
        ``429``/``5xx`` answers are retried, each retry only if it can start
        before the deadline; ``what`` names what was fetched in every error.
        """
        deadline = _deadline.current(self._deadline)
        target: str | httpx.URL = url
        if url.startswith("/"):
            known = self._schemes.get(registry)  # (no coroutine once the scheme is known)
            base = f"{known}://{self.host(registry)}" if known else await self.base_url(registry)
            target = self._under(base, url)
        auth = self._auth_for(registry)
        host = self.host(registry)
        attempt = 0
        while True:
            attempt += 1
            retry_after: str | None = None
            status: int | None = None
            try:
                probe = self.breaker.check(host)
            except HostUnavailable as e:
                raise _like(what, RegistryError, str(e)) from None
            budget = RequestBudget(deadline, self.options.timeout, self.options.min_rate)
            outcome: bool | None = None  # the host answered / failed / neither (cancelled)
            try:
                with deadline.applied():
                    fetched = await self._attempt(method, target, headers, auth, what, limit, ok,
                                                  bodiless, budget,
                                                  last=attempt > self.options.retries,
                                                  content=content)
                    outcome = True
                    return fetched
            except _Transient as t:
                failure, status, retry_after = t.reason, t.status, t.retry_after
                # A status: the host answered (busy). None: a body cut short or too slow.
                outcome = True if status is not None else (False if budget.connected else None)
            except DeadlineExceeded as e:
                failure = f"gave up: {e}"
                # Time out after reaching the host: the host's failure; before: the
                # caller's deadline (or a queue) was too short, which says nothing of it.
                outcome = False if budget.connected else None
                if deadline.expired:
                    raise _like(what, RegistryError, failure) from None
            except TokenError as e:
                raise _like(what, AuthError, str(e)) from None
            except BodyTooLarge as e:
                outcome = True  # an answer, if not a welcome one
                raise _like(what, RegistryError, str(e)) from None
            except _RedirectRefused as e:
                outcome = True
                raise _like(what, RegistryError, str(e)) from None
            except httpx.TooManyRedirects:
                raise _like(what, RegistryError, f"more than {MAX_REDIRECTS} redirects "
                                                 "(a redirect loop?)") from None
            except httpx.LocalProtocolError as e:
                # Our own request could not be sent (a header the registry's answers made
                # invalid); its text may quote the header, so only its kind is shown.
                raise _like(what, RegistryError,
                            f"could not send the request ({type(e).__name__})") from None
            except httpx.TransportError as e:
                cert = _cert_error(e)
                # An untrusted certificate is an answer (and its own error), not an outage.
                outcome = cert is not None
                if cert is not None:
                    # Not transient: retrying an untrusted certificate only delays the error.
                    raise _like(what, RegistryError, f"TLS certificate not trusted: {cert}",
                                hint="give the private CA with --ca-file") from None
                failure = f"cannot reach registry ({wire_failure(e)})"
            except httpx.HTTPError as e:
                raise _like(what, RegistryError, f"unusable answer ({wire_failure(e)})") from None
            except RegistryError:
                outcome = True  # the registry's error answer
                raise
            finally:
                if outcome is True:
                    self.breaker.success(host)
                elif outcome is False:
                    self.breaker.failure(host)
                elif probe:
                    self.breaker.abandon(host)
            if attempt > self.options.retries:
                raise _like(what, RegistryError, failure, status)
            delay = self._backoff(attempt, retry_after)
            if delay >= deadline.remaining():
                asked = f"asked to retry after {retry_after[:40]!r}; " if retry_after else ""
                raise _like(what, RegistryError, f"{failure} ({asked}no time left to retry "
                                                 f"within {deadline.describe()})", status)
            log.debug("%s %s: %s; retrying in %.2fs", method, url, failure, delay)
            await asyncio.sleep(delay)

    async def _attempt(self, method: str, url: str | httpx.URL, headers: dict[str, str],
                       auth: RegistryAuth, what: Asked, limit: int, ok: frozenset[int],
                       bodiless: frozenset[int], budget: RequestBudget, *, last: bool,
                       content: bytes | None = None) -> Fetched:
        extensions = {MAX_BODY: limit, BUDGET: budget}
        left = budget.left()
        if left <= 0:
            raise DeadlineExceeded(budget.why())
        try:
            with _deadline.cutoff(left):
                response = await self._send_following(method, url, headers, auth, extensions,
                                                      content)
        except TimeoutError:
            raise DeadlineExceeded(budget.why()) from None
        try:
            status = response.status_code
            if status in RETRY_STATUS and not last:
                raise _Transient("registry busy or failing", status,
                                 response.headers.get("Retry-After"))
            if status in bodiless:
                await _drain(response)
                return Fetched(status, response.headers, b"", response.url)
            if status not in ok:
                raise await _error_for(response, what)
            try:
                body = await _read_limited(response, limit, what)
            except (httpx.TransportError, DeadlineExceeded) as e:
                if isinstance(e, httpx.LocalProtocolError):
                    raise
                # A body cut short is as transient as a connection that failed.
                raise _Transient(f"reading the response failed ({wire_failure(e)})") from None
            return Fetched(status, response.headers, body, response.url)
        finally:
            await response.aclose()

    async def _send_following(self, method: str, url: str | httpx.URL, headers: dict[str, str],
                              auth: RegistryAuth, extensions: dict[str, object],
                              content: bytes | None = None) -> httpx.Response:
        assert self._http is not None, "use RegistryClient as an async context manager"
        current = url if isinstance(url, httpx.URL) else httpx.URL(url)  # (immutable)
        for _ in range(MAX_REDIRECTS + 1):
            request = self._http.request(method, current, headers, extensions, content)
            same_host = auth._matches(request)
            response = await self._http.send(request, auth if same_host else None)
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            location = response.headers.get("Location")
            await response.aclose()
            if not location:
                return response
            try:
                nxt = current.join(location)
            except httpx.InvalidURL:
                raise _RedirectRefused("redirect to an invalid URL") from None
            if nxt.scheme not in ("https", "http") or (
                    nxt.scheme == "http" and current.scheme == "https"):
                raise _RedirectRefused(
                    f"refusing redirect from {current.scheme} to {nxt.scheme}://{nxt.host}")
            current = nxt
        raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")

    def _under(self, base: str, path: str) -> str | httpx.URL:
        """``base`` (``scheme://host``) + ``path``: parsed once per base when ``path`` is
        plain (see :func:`_with_path`), else the string, which httpx parses."""
        if not _PLAIN_PATH.fullmatch(path) or "/." in path:
            return base + path
        root = self._roots.get(base)
        if root is None:
            try:
                root = httpx.URL(base)
            except httpx.InvalidURL:
                return base + path  # refused where any URL is: when the request is made
            if str(root) != base:
                return base + path  # normalised (a default port, upper case): not a root
            if len(self._roots) >= _ROOTS:
                self._roots.clear()
            self._roots[base] = root
        return _with_path(root, path)

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        """The delay before retry ``attempt``: ``Retry-After`` (seconds or a date, at most
        :data:`MAX_RETRY_AFTER`) when the registry gave a usable one, else jittered
        exponential back-off. The caller checks it against the deadline."""
        if retry_after:
            asked = _retry_after_seconds(retry_after.strip())
            if asked is not None:
                return min(asked, MAX_RETRY_AFTER)
        base: float = self.options.backoff * (2 ** (attempt - 1))
        return float(base * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto


def _with_path(root: httpx.URL, path: str) -> httpx.URL:
    """``root`` (``scheme://host[:port]``, nothing after it) with the plain ``path``.

    ``httpx.URL(root + path)`` parses the whole URL and checks it character by
    character: 126k instructions, an eighth of a registry request's (cachegrind). httpx
    keeps a URL as its parsed parts, and a plain path's parsed form is the path itself,
    so the root's parts with this path are what httpx would have built (a test compares
    the two). httpx is pinned to a minor release (pyproject.toml) for this.
    """
    url = httpx.URL.__new__(httpx.URL)
    url._uri_reference = root._uri_reference._replace(path=path)
    return url


def _retry_after_seconds(value: str) -> float | None:
    """``Retry-After`` as seconds from now; ``None`` when it is neither a number nor a date."""
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (ValueError, TypeError, IndexError, OverflowError):
            return None  # "soon", garbage: back off as if none was given
        if when.tzinfo is None:
            return None
        return max(when.timestamp() - time.time(), 0.0)
    if math.isnan(seconds):
        return None
    return max(seconds, 0.0)


class _Transient(Exception):
    """An attempt failed in a way worth retrying."""

    def __init__(self, reason: str, status: int | None = None,
                 retry_after: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class _RedirectRefused(Exception):
    """A redirect imggate will not follow (downgrade, odd scheme, bad URL)."""


def _like(template: Asked, cls: type[RegistryError], message: str,
          status: int | None = None, hint: str | None = None) -> RegistryError:
    return cls(message, registry=template.registry, repository=template.repository,
               reference=template.reference, status=status, hint=hint)


def _cert_error(e: BaseException) -> str | None:
    """The certificate verification failure behind a transport error, if that is what it is."""
    seen: BaseException | None = e
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return str(seen.verify_message or seen.reason or seen)
        seen = seen.__cause__ or seen.__context__
    return None


async def _read_limited(response: httpx.Response, limit: int, what: Asked) -> bytes:
    take = getattr(response.stream, "take_complete", None)
    if callable(take) and "Content-Encoding" not in response.headers:
        try:
            data = take()
        except BodyTooLarge:
            _refuse_declared(response, limit, what)  # named by its declared length first
            raise
        if data is not None:
            response.is_stream_consumed = True
            if len(data) <= limit:
                # Whole and within the limit: a Content-Length, if any, was this length
                # (llhttp reads a sized body to its length), so it is not looked up (one
                # header lookup less a request: ~2% of its Python opcodes).
                return bytes(data)
            _refuse_declared(response, limit, what)
            raise _like(what, RegistryError, f"response exceeds the {limit} byte limit")
    _refuse_declared(response, limit, what)
    chunks, size = [], 0
    async for chunk in _body(response):
        size += len(chunk)
        if size > limit:
            raise _like(what, RegistryError, f"response exceeds the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse_declared(response: httpx.Response, limit: int, what: Asked) -> None:
    """Refuse a response whose ``Content-Length`` is over ``limit``, before its body is read."""
    declared = response.headers.get("Content-Length")
    if declared and declared.strip().isdigit() and int(declared) > limit:
        raise _like(what, RegistryError, f"response is {declared.strip()} bytes, over the "
                                         f"{limit} byte limit")


def _body(response: httpx.Response) -> AsyncIterator[bytes]:
    """``response``'s body, decoded: straight from its (bounded) stream when it has no
    ``Content-Encoding``, else through httpx's decoding iterator.

    httpx's iterator runs every chunk through two more generators, two context
    managers, a decoder and two chunkers even when there is nothing to decode
    (registries do not compress manifests or configs); skipping them when there is
    nothing to decode saved 1% of a resolve's and of an audit's instructions (cachegrind).
    """
    if "Content-Encoding" in response.headers or not isinstance(response.stream,
                                                                httpx.AsyncByteStream):
        return response.aiter_bytes()
    response.is_stream_consumed = True  # as httpx's iterator marks it
    return response.stream.__aiter__()


async def _drain(response: httpx.Response) -> None:
    """Read a small body nobody wants, so that its connection can carry the next request.

    An HTTP/1.1 connection whose response body was not read to its end is closed:
    every 404 of a signature or referrers lookup cost a new TCP connection (an audit
    with a ``--key`` rule opened 46 connections for 84 requests). Only a body declared
    at most :data:`DRAIN_LIMIT` bytes is read (within the request's budget, as every
    body); anything else, or any failure, just closes the connection as before.
    """
    declared = response.headers.get("Content-Length", "").strip()
    if not declared.isdigit() or int(declared) > DRAIN_LIMIT:
        return
    with contextlib.suppress(httpx.HTTPError, DeadlineExceeded, BodyTooLarge):
        async for _ in response.aiter_raw():
            pass


async def _error_for(response: httpx.Response, what: Asked) -> RegistryError:
    status = response.status_code
    detail = ""
    try:
        body = await _read_limited(response, MAX_ERROR_BODY, what)
        import json

        doc = json.loads(body)
        errs = doc.get("errors") if isinstance(doc, dict) else None
        if isinstance(errs, list) and errs and isinstance(errs[0], dict):
            code, msg = errs[0].get("code"), errs[0].get("message")
            # The registry's own words, quoted: escaped when the error is built.
            detail = f" ({str(code)[:40]}: {str(msg)[:160]})"
    except (ValueError, RecursionError, RegistryError, httpx.HTTPError, BodyTooLarge,
            DeadlineExceeded):
        pass  # the status alone is the message
    if status in (401, 403):
        return _like(what, AuthError, "access denied: credentials missing or refused" + detail,
                     status)
    if status == 404:
        return _like(what, NotFound, "not found" + detail, status)
    return _like(what, RegistryError, "registry error" + detail, status)
