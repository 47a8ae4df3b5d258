"""The OCI distribution API client: verified manifests and blobs, tags, referrers.

One :class:`RegistryClient` (one connection pool, HTTP/2 where offered) serves
many registries and repositories concurrently. Every manifest and blob
fetched by digest is hashed before it is parsed; a tag is resolved once and
the body must hash to the digest the registry announced. Bytes that do not
match are a :class:`DigestMismatch`, never accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ipaddress
import logging
import math
import os
import random
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx

from imggate.errors import AuthError, DigestMismatch, NotFound, RegistryError, UsageError
from imggate.models import Digest
from imggate.registry import deadline as _deadline
from imggate.registry.auth import RegistryAuth, TokenError
from imggate.registry.bounded import (
    BUDGET,
    MAX_BODY,
    MAX_ERROR_BODY,
    BodyTooLarge,
    bound_responses,
)
from imggate.registry.credentials import CredentialStore
from imggate.registry.deadline import Deadline, DeadlineExceeded, RequestBudget
from imggate.registry.interface import (
    ACCEPT,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    Descriptor,
    Manifest,
    Repository,
)

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 502, 503, 504})
MAX_REDIRECTS = 5
MAX_RETRY_AFTER = 30.0
MAX_TAG_PAGES = 1000
_OK = frozenset({200})


@dataclass(frozen=True, slots=True)
class Fetched:
    """One registry answer, its body read within its cap and deadline."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: httpx.URL


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """How to talk to registries."""

    credentials: CredentialStore = field(default_factory=CredentialStore)
    insecure_registries: frozenset[str] = frozenset()
    ca_file: str | None = None
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5
    max_connections: int = 16
    #: After ``timeout`` seconds a response body must keep coming at this rate (bytes/s).
    min_rate: float = 32 * 1024


def is_loopback(host: str) -> bool:
    """``localhost``, ``127.0.0.0/8`` and ``[::1]`` (with or without a port)."""
    name = host
    if name.startswith("["):
        name = name[1:name.find("]")] if "]" in name else name[1:]
    else:
        name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class _DeferredTrustContext(ssl.SSLContext):
    """A verifying client context that reads its CA bundle on the first TLS connection.

    Reading the bundle (as httpx does for ``verify=True``: ``$SSL_CERT_FILE``,
    else ``$SSL_CERT_DIR``, else certifi's) costs ~40 ms per process, and a
    run against an OCI layout or a loopback registry never opens a TLS
    connection. The context verifies from the start (``CERT_REQUIRED``, host
    names checked): anything that reached OpenSSL without going through
    :meth:`wrap_bio`/:meth:`wrap_socket` would find no trust anchors and fail.
    """

    _loaded: bool
    _lock: threading.Lock

    def __new__(cls) -> _DeferredTrustContext:
        ctx = super().__new__(cls, ssl.PROTOCOL_TLS_CLIENT)
        ctx._loaded = False
        ctx._lock = threading.Lock()
        return ctx

    def __init__(self) -> None:
        # As ssl.create_default_context(): verify the chain and the host name.
        self.verify_mode = ssl.CERT_REQUIRED
        self.check_hostname = True
        keylog = os.environ.get("SSLKEYLOGFILE")
        if keylog and not sys.flags.ignore_environment:
            self.keylog_filename = keylog

    def _load_trust(self) -> None:
        with self._lock:
            if self._loaded:
                return
            if os.environ.get("SSL_CERT_FILE"):
                self.load_verify_locations(cafile=os.environ["SSL_CERT_FILE"])
            elif os.environ.get("SSL_CERT_DIR"):
                self.load_verify_locations(capath=os.environ["SSL_CERT_DIR"])
            else:
                import certifi

                self.load_verify_locations(cafile=certifi.where())
            self._loaded = True

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        """:meth:`ssl.SSLContext.wrap_bio` (asyncio, anyio) once the trust anchors are in."""
        self._load_trust()
        return super().wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        """:meth:`ssl.SSLContext.wrap_socket` once the trust anchors are in."""
        self._load_trust()
        return super().wrap_socket(*args, **kwargs)


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
        self._http: httpx.AsyncClient | None = None
        self._auth: dict[str, RegistryAuth] = {}
        self._schemes: dict[str, str] = {}
        self._probes: dict[str, asyncio.Lock] = {}

    async def __aenter__(self) -> Self:
        verify: ssl.SSLContext = _DeferredTrustContext()
        if self.options.ca_file:
            try:
                verify = ssl.create_default_context(cafile=self.options.ca_file)
            except (OSError, ssl.SSLError) as e:
                raise UsageError(f"--ca-file {self.options.ca_file}: cannot load ({e})") from None
        limits = httpx.Limits(max_connections=self.options.max_connections,
                              max_keepalive_connections=self.options.max_connections)
        self._http = httpx.AsyncClient(
            http2=True, verify=verify, timeout=self.options.timeout, limits=limits,
            follow_redirects=False, transport=self._transport,
            headers={"User-Agent": "imggate/0.1"},
            event_hooks={"response": [bound_responses(self.options.timeout,
                                                      self.options.min_rate)]},
        )
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def repository(self, registry: str, repository: str) -> RegistryRepository:
        """One repository on one registry."""
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
        if not self.plain_http_allowed(registry):
            return f"https://{host}"
        if registry not in self._schemes:
            if registry not in self._probes:
                self._probes[registry] = asyncio.Lock()
            async with self._probes[registry]:
                if registry not in self._schemes:
                    # An injected transport (tests) has no sockets to probe.
                    tls = self._transport is None and await _speaks_tls(
                        host, self.options.timeout)
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
                    what: RegistryError, limit: int, ok: frozenset[int] = _OK,
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
        if url.startswith("/"):
            url = await self.base_url(registry) + url
        auth = self._auth_for(registry)
        attempt = 0
        while True:
            attempt += 1
            retry_after: str | None = None
            status: int | None = None
            try:
                with deadline.applied():
                    return await self._attempt(method, url, headers, auth, what, limit, ok,
                                               bodiless, last=attempt > self.options.retries,
                                               content=content)
            except _Transient as t:
                failure, status, retry_after = t.reason, t.status, t.retry_after
            except DeadlineExceeded as e:
                failure = f"gave up: {e}"
                if deadline.expired:
                    raise _like(what, RegistryError, failure) from None
            except TokenError as e:
                raise _like(what, AuthError, str(e)) from None
            except BodyTooLarge as e:
                raise _like(what, RegistryError, str(e)) from None
            except _RedirectRefused as e:
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
                if cert is not None:
                    # Not transient: retrying an untrusted certificate only delays the error.
                    raise _like(what, RegistryError, f"TLS certificate not trusted: {cert}",
                                hint="give the private CA with --ca-file") from None
                failure = f"cannot reach registry ({_describe(e)})"
            except httpx.HTTPError as e:
                raise _like(what, RegistryError, f"unusable answer ({_describe(e)})") from None
            if attempt > self.options.retries:
                raise _like(what, RegistryError, failure, status)
            delay = self._backoff(attempt, retry_after)
            if delay >= deadline.remaining():
                asked = f"asked to retry after {retry_after[:40]!r}; " if retry_after else ""
                raise _like(what, RegistryError, f"{failure} ({asked}no time left to retry "
                                                 f"within {deadline.describe()})", status)
            log.debug("%s %s: %s; retrying in %.2fs", method, url, failure, delay)
            await asyncio.sleep(delay)

    async def _attempt(self, method: str, url: str, headers: dict[str, str],
                       auth: RegistryAuth, what: RegistryError, limit: int, ok: frozenset[int],
                       bodiless: frozenset[int], *, last: bool,
                       content: bytes | None = None) -> Fetched:
        budget = RequestBudget(_deadline.current(), self.options.timeout, self.options.min_rate)
        extensions = {MAX_BODY: limit, BUDGET: budget}
        left = budget.left()
        if left <= 0:
            raise DeadlineExceeded(budget.why())
        try:
            async with asyncio.timeout(left):
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
                return Fetched(status, response.headers, b"", response.url)
            if status not in ok:
                raise await _error_for(response, what)
            try:
                body = await _read_limited(response, limit, what)
            except (httpx.TransportError, DeadlineExceeded) as e:
                if isinstance(e, httpx.LocalProtocolError):
                    raise
                # A body cut short is as transient as a connection that failed.
                raise _Transient(f"reading the response failed ({_describe(e)})") from None
            return Fetched(status, response.headers, body, response.url)
        finally:
            await response.aclose()

    async def _send_following(self, method: str, url: str, headers: dict[str, str],
                              auth: RegistryAuth, extensions: dict[str, object],
                              content: bytes | None = None) -> httpx.Response:
        assert self._http is not None, "use RegistryClient as an async context manager"
        current = httpx.URL(url)
        for _ in range(MAX_REDIRECTS + 1):
            request = self._http.build_request(method, current, headers=headers,
                                               extensions=extensions, content=content)
            same_host = auth._matches(request)
            response = await self._http.send(request, auth=auth if same_host else None,
                                             stream=True)
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


def _describe(e: BaseException) -> str:
    """``ReadError: message``, or just the kind when the message is empty."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


async def _speaks_tls(host: str, timeout: float) -> bool:
    """Whether ``host[:port]`` completes a TLS handshake (443 when no port is given).

    Only decides the scheme; certificates are verified on the real
    connection. No CA bundle is needed, so probing costs one handshake.
    """
    name, port = host, 443
    if host.startswith("["):
        end = host.find("]")
        name = host[1:end]
        if host[end + 1:].startswith(":"):
            port = int(host[end + 2:])
    elif ":" in host:
        name, _, p = host.rpartition(":")
        port = int(p)
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE  # scheme detection only, never used for data
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(name, port, ssl=probe), timeout=min(timeout, 5.0))
    except (OSError, ssl.SSLError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return True


def _like(template: RegistryError, cls: type[RegistryError], message: str,
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


async def _read_limited(response: httpx.Response, limit: int, what: RegistryError) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.strip().isdigit() and int(declared) > limit:
        raise _like(what, RegistryError, f"response is {declared.strip()} bytes, over the "
                                         f"{limit} byte limit")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _like(what, RegistryError, f"response exceeds the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def _error_for(response: httpx.Response, what: RegistryError) -> RegistryError:
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


class RegistryRepository(Repository):
    """One repository on a registry."""

    def __init__(self, client: RegistryClient, registry: str, repository: str) -> None:
        self.client = client
        self.registry = registry
        self.repository = repository
        self.name = f"{registry}/{repository}"
        self._base = f"/v2/{repository}"

    def _what(self, reference: str | None) -> RegistryError:
        return RegistryError("", registry=self.registry, repository=self.repository,
                             reference=reference)

    async def _get_manifest(self, reference: str, expect: Digest | None,
                            missing_ok: bool = False) -> Manifest | None:
        what = self._what(reference)
        r = await self.client.fetch("GET", self.registry, f"{self._base}/manifests/{reference}",
                                    headers={"Accept": ACCEPT}, what=what,
                                    limit=MAX_MANIFEST_BYTES,
                                    bodiless=frozenset({404}) if missing_ok else frozenset())
        if r.status == 404:
            return None
        raw = r.body
        announced = r.headers.get("Docker-Content-Digest")
        content_type = r.headers.get("Content-Type", "").split(";")[0].strip() or None
        digest = expect
        if digest is None:
            if announced:
                try:
                    digest = Digest.parse(announced.strip())
                except ValueError:
                    raise _like(what, RegistryError,
                                "Docker-Content-Digest header is not a digest") from None
            else:
                digest = Digest.of(raw)
        elif announced and announced.strip() != str(expect):
            raise _like(what, DigestMismatch,
                        f"registry announced {announced.strip()[:80]} for a request by digest")
        if not digest.matches(raw):
            raise _like(what, DigestMismatch,
                        f"manifest bytes hash to {Digest.of(raw, digest.algorithm)}, not "
                        f"{digest}: refusing it")
        try:
            return Manifest.parse(raw, digest, content_type, f"{self.name}@{digest}")
        except ValueError as e:
            raise _like(what, RegistryError, f"invalid manifest: {e}") from None

    async def resolve(self, reference: str | Digest) -> Manifest:
        """Resolve a tag (once) or digest to a verified manifest."""
        if isinstance(reference, Digest):
            return await self.manifest(reference)
        m = await self._get_manifest(reference, None)
        assert m is not None
        return m

    async def try_resolve_tag(self, tag: str) -> Manifest | None:
        """Like :meth:`resolve` for a tag; ``None`` when it does not exist."""
        return await self._get_manifest(tag, None, missing_ok=True)

    async def manifest(self, digest: Digest) -> Manifest:
        """A verified manifest by digest."""
        m = await self._get_manifest(str(digest), digest)
        assert m is not None
        return m

    async def blob(self, digest: Digest, *, max_size: int = 64 * 1024 * 1024) -> bytes:
        """A verified blob by digest."""
        what = self._what(str(digest))
        r = await self.client.fetch("GET", self.registry, f"{self._base}/blobs/{digest}",
                                    headers={}, what=what, limit=max_size)
        data = r.body
        if not digest.matches(data):
            raise _like(what, DigestMismatch,
                        f"blob bytes hash to {Digest.of(data, digest.algorithm)}: refusing them")
        return data

    async def tags(self) -> tuple[str, ...]:
        """Every tag, following ``Link`` pagination."""
        import json

        what = self._what(None)
        url: str | None = f"{self._base}/tags/list"
        out: list[str] = []
        for _ in range(MAX_TAG_PAGES):
            if url is None:
                break
            r = await self.client.fetch("GET", self.registry, url, headers={}, what=what,
                                        limit=MAX_MANIFEST_BYTES)
            body, link, current = r.body, r.headers.get("Link"), r.url
            try:
                doc = json.loads(body)
                tags = doc.get("tags") or []
                if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                    raise ValueError
            except (ValueError, AttributeError):
                raise _like(what, RegistryError, "tags/list response is malformed") from None
            out.extend(tags)
            url = _next_link(link, current)
        return tuple(out)

    async def referrers(
        self, digest: Digest, artifact_type: str | None = None
    ) -> tuple[Descriptor, ...]:
        """The referrers API, falling back to the ``sha256-<hex>`` tag schema."""
        what = self._what(str(digest))
        url = f"{self._base}/referrers/{digest}"
        if artifact_type:
            url += "?" + str(httpx.QueryParams({"artifactType": artifact_type}))
        index: Manifest | None = None
        r = await self.client.fetch("GET", self.registry, url, headers={"Accept": OCI_INDEX},
                                    what=what, limit=MAX_MANIFEST_BYTES,
                                    bodiless=frozenset({404, 400, 405}))
        if r.status == 200:
            try:
                # A referrers response is generated, so it has no digest to check;
                # every descriptor in it is verified when fetched by digest.
                index = Manifest.parse(r.body, Digest.of(r.body), OCI_INDEX,
                                       f"{self.name} referrers")
            except ValueError as e:
                raise _like(what, RegistryError, f"invalid referrers response: {e}") from None
        if index is None:
            index = await self.try_resolve_tag(digest.tag_form)
            if index is None or not index.is_index:
                return ()
        try:
            found = index.manifests
        except ValueError as e:
            raise _like(what, RegistryError, f"invalid referrers index: {e}") from None
        if artifact_type:
            found = tuple(d for d in found if d.artifact_type == artifact_type)
        return found

    async def push_blob(self, data: bytes) -> Digest:
        """Store ``data`` as a blob (a monolithic upload) unless the registry has it already."""
        digest = Digest.of(data)
        what = self._what(str(digest))
        have = await self.client.fetch("HEAD", self.registry, f"{self._base}/blobs/{digest}",
                                       headers={}, what=what, limit=0, ok=frozenset(),
                                       bodiless=frozenset({200, 404}))
        if have.status == 200:
            return digest
        started = await self.client.fetch(
            "POST", self.registry, f"{self._base}/blobs/uploads/",
            headers={"Content-Length": "0"}, what=what, limit=0, ok=frozenset(),
            bodiless=frozenset({202}))
        location = started.headers.get("Location")
        if not location:
            raise _like(what, RegistryError, "blob upload started without a Location")
        target = started.url.join(location).copy_merge_params({"digest": str(digest)})
        await self.client.fetch("PUT", self.registry, str(target),
                                headers={"Content-Type": "application/octet-stream"},
                                what=what, limit=0, ok=frozenset(),
                                bodiless=frozenset({201, 204}), content=data)
        return digest

    async def push_manifest(self, reference: str, raw: bytes, media_type: str) -> Digest:
        """Store a manifest under a tag or digest; its blobs must be pushed first."""
        await self.client.fetch("PUT", self.registry, f"{self._base}/manifests/{reference}",
                                headers={"Content-Type": media_type}, what=self._what(reference),
                                limit=0, ok=frozenset(), bodiless=frozenset({200, 201, 204}),
                                content=raw)
        return Digest.of(raw)


def _next_link(link: str | None, current: httpx.URL) -> str | None:
    if not link:
        return None
    for part in link.split(","):
        if 'rel="next"' in part or "rel=next" in part:
            start, end = part.find("<"), part.find(">")
            if start != -1 and end > start:
                nxt = current.join(part[start + 1:end])
                if nxt.host != current.host:
                    return None  # pagination never leaves the registry
                return str(nxt)
    return None
