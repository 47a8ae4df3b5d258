"""Registry authentication as an ``httpx.Auth`` flow.

Anonymous first; on ``401`` follow the ``WWW-Authenticate`` challenge:
``Basic`` (send credentials) or ``Bearer realm=…,service=…,scope=…`` (fetch
a token from the realm, with Basic credentials or an identity token, cache it
per scope, retry). The flow only ever adds ``Authorization`` to requests for
the registry host it belongs to; the client follows redirects itself and
never runs this flow for another host.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import AsyncGenerator, Generator

import httpx
from msgspec import Struct

from imggate.redact import register, release
from imggate.registry.bounded import MAX_BODY, BodyTooLarge
from imggate.registry.credentials import Credentials
from imggate.registry.wire import wire_failure

# The two patterns only a challenge or a token answer needs are compiled on first use (by
# re's cache): compiling them at import was ~1.8M instructions of every start-up.
_PARAM = r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))'
_REPO_PATH = re.compile(r"^/v2/(.+?)/(?:manifests|blobs|tags|referrers)/")
_DEFAULT_TOKEN_TTL = 60.0
# A token is renewed at least this often, whatever its expires_in says: it stays in the
# redactor (imggate.redact) no longer than its cache entry, plus a grace period.
_MAX_TOKEN_TTL = 3600.0
#: Scopes with a cached token per registry host (each review's repositories; the oldest
#: go first). Every token leaves the redactor when its entry goes.
MAX_CACHED_TOKENS = 256
_MAX_TOKEN_BYTES = 1024 * 1024
# A longer token cannot be sent: servers and proxies cap a request's headers at 8-64 KiB.
# Refused before it is registered with the redactor (it is never sent nor printed), so a
# token server cannot fill the redactor's budget with a few huge tokens.
MAX_TOKEN_CHARS = 16 * 1024
# RFC 6750's b64token, widened to every visible ASCII character: what can go in a
# header value. CR, LF, spaces and non-ASCII cannot, and are refused, not sent.
_VISIBLE_ASCII = r"[\x21-\x7e]+"


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class Challenge(Struct, frozen=True):
    """A parsed ``WWW-Authenticate`` header."""

    scheme: str
    realm: str | None = None
    service: str | None = None
    scope: str | None = None


def parse_challenge(header: str | None) -> Challenge | None:
    """Parse ``Bearer realm="…",service="…"`` / ``Basic realm="…"``; ``None`` if absent."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in re.finditer(_PARAM, rest)}
    return Challenge(scheme.lower(), params.get("realm"), params.get("service"),
                     params.get("scope"))


def scope_for(path: str, push: bool = False) -> str | None:
    """The token scope a request path needs (``repository:<name>:pull``)."""
    m = _REPO_PATH.match(path)
    if not m:
        return None
    return f"repository:{m.group(1)}:{'pull,push' if push else 'pull'}"


class TokenError(Exception):
    """The token endpoint gave no usable token (message is safe to show)."""


class RegistryAuth(httpx.Auth):
    """Challenge-driven auth for one registry host; tokens cached per scope."""

    requires_response_body = True

    def __init__(self, host: str, credentials: Credentials | None, *, plain_http_ok: bool) -> None:
        self.host = host
        self.credentials = credentials
        self.plain_http_ok = plain_http_ok
        self._tokens: dict[str, tuple[str, float]] = {}
        self._uses: dict[str, int] = {}  # token -> how many cache entries hold it
        self._locks: dict[str, asyncio.Lock] = {}
        self._challenge: Challenge | None = None
        self._basic = False

    def _matches(self, request: httpx.Request) -> bool:
        return request.url.netloc.decode("ascii").lower() == self.host

    def _cached(self, scope: str | None) -> str | None:
        if scope is None:
            return None
        hit = self._tokens.get(scope)
        if hit and hit[1] > time.monotonic():
            return hit[0]
        return None

    def _basic_header(self) -> str:
        assert self.credentials is not None
        raw = f"{self.credentials.username}:{self.credentials.secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """imggate's registry client is async; see :meth:`async_auth_flow`."""
        raise RuntimeError("RegistryAuth is run by the registry client's async sender only")

    def untouched(self, request: httpx.Request) -> bool:
        """Whether :meth:`async_auth_flow` would send ``request`` as it is, with no
        credential: nothing learnt or given applies to it yet (an anonymous registry, any
        registry before its first challenge; a token is only ever cached after one).

        The sender then sends such a request itself and runs :meth:`challenged` only on a
        ``401``: the flow's async generator per request was ~28K instructions, 1.5% of a
        resolve of 200 images (cachegrind). ``False`` is always safe (the whole flow).
        """
        return (self._challenge is None and not self._tokens
                and not (self._basic and self.credentials) and self._matches(request))

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Send ``request``, answering an auth challenge at most once.

        Once a Bearer challenge has been seen for this host, a token for a new
        scope is fetched before the request (saving the 401 round trip), and
        concurrent requests for one scope share a single token fetch.
        """
        if not self._matches(request):
            # Never authenticate anything but our own host.
            request.headers.pop("Authorization", None)
            yield request
            return
        # Writes (attestation pushes) need a push token; reads keep the narrower pull scope.
        scope = scope_for(request.url.path, push=request.method not in ("GET", "HEAD"))
        token = self._cached(scope)
        if token is None and self._challenge is not None and scope is not None:
            async with self._lock(scope):
                token = self._cached(scope)
                if token is None:
                    token_response = yield self._token_request(self._challenge, scope)
                    token = await self._store(scope, scope, token_response)
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        elif self._basic and self.credentials:
            request.headers["Authorization"] = self._basic_header()
        response = yield request
        if response.status_code != 401:
            return
        # The rest of the flow is challenged()'s (async generators cannot delegate with
        # ``yield from``): what it asks to send is sent, and its answer given back.
        rest = self.challenged(request, response, token)
        try:
            answer: httpx.Response | None = None
            while True:
                try:
                    nxt = await (rest.__anext__() if answer is None else rest.asend(answer))
                except StopAsyncIteration:
                    return
                answer = yield nxt
        finally:
            await rest.aclose()

    async def challenged(
        self, request: httpx.Request, response: httpx.Response, token: str | None,
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """The flow after ``response``, a ``401`` to ``request`` (which carried ``token``,
        if any): follow the challenge at most once. Nothing to follow ends the flow with
        that ``401``."""
        challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
        if challenge is None:
            return
        scope = scope_for(request.url.path, push=request.method not in ("GET", "HEAD"))
        if challenge.scheme == "basic":
            if self.credentials is None or "Authorization" in request.headers:
                return
            self._basic = True
            request.headers["Authorization"] = self._basic_header()
            yield request
            return
        if challenge.scheme != "bearer" or not challenge.realm:
            return
        self._challenge = Challenge("bearer", challenge.realm, challenge.service)
        want = challenge.scope or scope
        key = want or ""
        async with self._lock(key):
            fresh = self._cached(key)
            if fresh is None or fresh == token:
                token_response = yield self._token_request(challenge, want)
                fresh = await self._store(key, scope, token_response)
        request.headers["Authorization"] = f"Bearer {fresh}"
        yield request

    def _lock(self, key: str) -> asyncio.Lock:
        if key not in self._locks:
            if len(self._locks) >= 2 * MAX_CACHED_TOKENS:
                # Bounded like the tokens: a lock nobody holds or waits for can go.
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            self._locks[key] = asyncio.Lock()
        return self._locks[key]

    def _put(self, key: str, entry: tuple[str, float]) -> None:
        """Cache ``entry`` under ``key``; a token no entry holds any more is released
        (the redactor forgets it after its grace period)."""
        old = self._tokens.pop(key, None)
        self._tokens[key] = entry
        self._uses[entry[0]] = self._uses.get(entry[0], 0) + 1
        if old is not None:
            self._unuse(old[0])
        while len(self._tokens) > MAX_CACHED_TOKENS:
            oldest = next(iter(self._tokens))
            self._unuse(self._tokens.pop(oldest)[0])

    def _unuse(self, token: str) -> None:
        n = self._uses[token] - 1
        if n:
            self._uses[token] = n
        else:
            del self._uses[token]
            release(token)

    async def _store(self, key: str, scope: str | None, response: httpx.Response) -> str:
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > _MAX_TOKEN_BYTES:
            raise TokenError("token server response is too large")
        try:
            # The cap applies while the body streams in (imggate.registry.bounded).
            await response.aread()
        except BodyTooLarge:
            raise TokenError("token server response is too large") from None
        except httpx.TransportError as e:
            raise TokenError(f"token server {response.url.host}: reading the response failed "
                             f"({wire_failure(e)})") from None
        token, ttl = self._parse_token(response)
        entry = (token, time.monotonic() + max(ttl - 5.0, 1.0))
        self._put(key, entry)
        if scope and scope != key:
            self._put(scope, entry)
        return token

    def _token_request(self, challenge: Challenge, scope: str | None) -> httpx.Request:
        assert challenge.realm is not None
        realm = httpx.URL(challenge.realm)
        if realm.scheme != "https" and not self.plain_http_ok:
            raise TokenError(f"token realm {realm.host} is not HTTPS; refusing to send credentials")
        if realm.scheme not in ("https", "http"):
            raise TokenError(f"token realm has unsupported scheme {realm.scheme!r}")
        params: dict[str, str] = {}
        if challenge.service:
            params["service"] = challenge.service
        if scope:
            params["scope"] = scope
        creds = self.credentials
        if creds is not None and creds.identity_token:
            form = {**params, "grant_type": "refresh_token", "refresh_token": creds.secret,
                    "client_id": "imggate"}
            return httpx.Request("POST", realm, data=form,
                                 extensions={MAX_BODY: _MAX_TOKEN_BYTES})
        headers = {}
        if creds is not None:
            headers["Authorization"] = self._basic_header()
        return httpx.Request("GET", realm, params=params, headers=headers,
                             extensions={MAX_BODY: _MAX_TOKEN_BYTES})

    @staticmethod
    def _parse_token(response: httpx.Response) -> tuple[str, float]:
        if response.status_code != 200:
            raise TokenError(f"token server {response.url.host} answered HTTP "
                             f"{response.status_code}: credentials missing or refused")
        if len(response.content) > _MAX_TOKEN_BYTES:
            raise TokenError("token server response is too large")
        try:
            doc = response.json()
        except ValueError:
            raise TokenError("token server response is not JSON") from None
        if not isinstance(doc, dict):
            raise TokenError("token server response is not a JSON object")
        token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise TokenError("token server response has no token")
        ttl = doc.get("expires_in", _DEFAULT_TOKEN_TTL)
        if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or not ttl > 0:
            ttl = _DEFAULT_TOKEN_TTL
        ttl = min(float(ttl), _MAX_TOKEN_TTL)
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenError(f"token server returned a token of {len(token)} characters; "
                             f"at most {MAX_TOKEN_CHARS} are sent in a header")
        # Known from now on, until its cache entry is gone (plus a grace period): no output
        # may show it, even a refused one.
        register(token, until=time.monotonic() + ttl)
        if not re.fullmatch(_VISIBLE_ASCII, token):
            raise TokenError("token server returned a token that cannot be sent in an HTTP "
                             "header (control, space or non-ASCII characters)")
        return token, ttl
