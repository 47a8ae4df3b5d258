"""The registry client's sender: what it puts on each request, how it bounds each answer,
and how it runs an auth flow (over httpx's mock transport; the integration tests send
the same way to a real registry)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from imggate.registry.auth import RegistryAuth
from imggate.registry.bounded import MAX_BODY, MAX_ERROR_BODY, BodyTooLarge
from imggate.registry.credentials import Credentials
from imggate.registry.sending import Sender


class Streamed(httpx.AsyncByteStream):
    """A body that arrives as a stream (httpx reads a body given as bytes at once)."""

    def __init__(self, body: bytes, closed: list[bool] | None = None) -> None:
        self._body = body
        self._closed = closed

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        for i in range(0, len(self._body), 1024):
            yield self._body[i:i + 1024]

    async def aclose(self) -> None:
        if self._closed is not None:
            self._closed.append(True)


class Recorder:
    """A mock registry that records what it was sent (a copy: an auth flow changes the
    request it retries) and answers from a script."""

    def __init__(self, answer: object) -> None:
        self.seen: list[httpx.Request] = []
        self._answer = answer

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            self.seen.append(httpx.Request(request.method, request.url,
                                           headers=request.headers.copy(),
                                           extensions=dict(request.extensions)))
            assert callable(self._answer)
            response = self._answer(request)
            assert isinstance(response, httpx.Response)
            return response

        return httpx.MockTransport(handle)


def _sender(transport: httpx.AsyncBaseTransport, timeout: float = 7.0) -> Sender:
    return Sender(transport, timeout=timeout, min_rate=1024.0, user_agent="imggate/test")


def test_each_request_carries_the_client_headers_the_callers_and_the_timeouts() -> None:
    rec = Recorder(lambda r: httpx.Response(200, content=b"{}"))

    async def go() -> None:
        sender = _sender(rec.transport())
        request = sender.request("GET", httpx.URL("http://r.test/v2/"),
                                 {"Accept": "application/x-one", "X-Extra": "1"}, {})
        response = await sender.send(request, None)
        assert await response.aread() == b"{}"
        await sender.aclose()

    asyncio.run(go())
    (sent,) = rec.seen
    assert sent.headers["User-Agent"] == "imggate/test"
    assert sent.headers["Accept"] == "application/x-one"  # the caller's wins
    assert sent.headers["X-Extra"] == "1"
    assert sent.headers["Host"] == "r.test"
    assert "Cookie" not in sent.headers
    assert sent.extensions["timeout"] == {"connect": 7.0, "read": 7.0, "write": 7.0,
                                          "pool": 7.0}


def test_a_body_over_the_requests_cap_is_refused_while_it_streams() -> None:
    rec = Recorder(lambda r: httpx.Response(200, stream=Streamed(b"x" * 5000)))

    async def go() -> None:
        sender = _sender(rec.transport())
        request = sender.request("GET", httpx.URL("http://r.test/v2/a/blobs/b"), {},
                                 {MAX_BODY: 4096})
        response = await sender.send(request, None)
        with pytest.raises(BodyTooLarge):
            await response.aread()

    asyncio.run(go())


def test_an_error_answer_is_read_only_up_to_the_error_cap() -> None:
    rec = Recorder(lambda r: httpx.Response(500, stream=Streamed(b"e" * (MAX_ERROR_BODY + 1))))

    async def go() -> None:
        sender = _sender(rec.transport())
        request = sender.request("GET", httpx.URL("http://r.test/v2/"), {},
                                 {MAX_BODY: 10 * MAX_ERROR_BODY})
        response = await sender.send(request, None)
        with pytest.raises(BodyTooLarge):
            await response.aread()

    asyncio.run(go())


def test_an_auth_flow_gets_its_token_within_bounds_and_retries_with_it() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return httpx.Response(200, content=json.dumps({"token": "tok-123"}).encode())
        if request.headers.get("Authorization") == "Bearer tok-123":
            return httpx.Response(200, content=b"manifest")
        return httpx.Response(401, content=b"denied", headers={
            "WWW-Authenticate": 'Bearer realm="https://auth.test/token",service="r.test"'})

    rec = Recorder(answer)

    async def go() -> bytes:
        sender = _sender(rec.transport())
        auth = RegistryAuth("r.test", Credentials("user", "pw"), plain_http_ok=False)
        request = sender.request("GET", httpx.URL("https://r.test/v2/app/manifests/v1"), {},
                                 {})
        response = await sender.send(request, auth)
        try:
            return await response.aread()
        finally:
            await response.aclose()

    assert asyncio.run(go()) == b"manifest"
    first, token, retry = rec.seen
    assert "Authorization" not in first.headers  # anonymous first
    assert token.url.host == "auth.test"
    assert token.url.params["scope"] == "repository:app:pull"
    assert token.headers["Authorization"].startswith("Basic ")
    # The token server's request is bounded in time like the others.
    assert token.extensions["timeout"]["read"] == 7.0
    assert retry.headers["Authorization"] == "Bearer tok-123"


def test_only_the_first_request_to_a_registry_is_sent_anonymously() -> None:
    """Until a challenge, a request goes out as it is (the sender sends it without the
    flow); after one, each new scope's token comes before its request, and a Basic
    registry gets the credentials on every later request: as the whole flow decides."""
    def answer(request: httpx.Request) -> httpx.Response:
        given = request.headers.get("Authorization", "")
        if request.url.host == "auth.test":
            return httpx.Response(200, content=json.dumps({"token": "tok-1"}).encode())
        if request.url.host == "basic.test":
            if given.startswith("Basic "):
                return httpx.Response(200, content=b"ok")
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        if request.url.path.startswith("/v2/open/"):
            return httpx.Response(401)  # no challenge: the 401 is the answer
        if given == "Bearer tok-1":
            return httpx.Response(200, content=b"ok")
        return httpx.Response(401, headers={
            "WWW-Authenticate": 'Bearer realm="https://auth.test/token",service="r.test"'})

    rec = Recorder(answer)

    async def go() -> list[int]:
        sender = _sender(rec.transport())
        bearer = RegistryAuth("r.test", None, plain_http_ok=False)
        basic = RegistryAuth("basic.test", Credentials("user", "pw"), plain_http_ok=False)
        statuses = []
        for auth, url in [(bearer, "https://r.test/v2/open/manifests/v1"),
                          (bearer, "https://r.test/v2/a/manifests/v1"),
                          (bearer, "https://r.test/v2/b/manifests/v1"),
                          (basic, "https://basic.test/v2/a/manifests/v1"),
                          (basic, "https://basic.test/v2/b/manifests/v1")]:
            response = await sender.send(sender.request("GET", httpx.URL(url), {}, {}), auth)
            statuses.append(response.status_code)
            await response.aread()
            await response.aclose()
        return statuses

    assert asyncio.run(go()) == [401, 200, 200, 200, 200]
    sent = [(r.url.host, r.url.path, r.headers.get("Authorization", "")) for r in rec.seen]
    assert sent == [
        ("r.test", "/v2/open/manifests/v1", ""),
        ("r.test", "/v2/a/manifests/v1", ""),  # anonymous first: challenged
        ("auth.test", "/token", ""),
        ("r.test", "/v2/a/manifests/v1", "Bearer tok-1"),
        ("auth.test", "/token", ""),  # a new scope: its token first, no 401
        ("r.test", "/v2/b/manifests/v1", "Bearer tok-1"),
        ("basic.test", "/v2/a/manifests/v1", ""),
        ("basic.test", "/v2/a/manifests/v1", sent[7][2]),
        ("basic.test", "/v2/b/manifests/v1", sent[7][2]),  # Basic from then on
    ]
    assert sent[7][2].startswith("Basic ")


def test_a_flow_that_fails_closes_the_answer_it_was_given() -> None:
    closed: list[bool] = []
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return httpx.Response(200, stream=Streamed(b"{}", closed))  # not a usable token answer
        return httpx.Response(401, content=b"", headers={
            "WWW-Authenticate": 'Bearer realm="https://auth.test/token"'})

    rec = Recorder(answer)

    async def go() -> None:
        sender = _sender(rec.transport())
        auth = RegistryAuth("r.test", None, plain_http_ok=False)
        request = sender.request("GET", httpx.URL("https://r.test/v2/app/manifests/v1"), {},
                                 {})
        with pytest.raises(Exception, match="no token"):
            await sender.send(request, auth)

    asyncio.run(go())
    assert closed  # the token server's answer was read and closed, not left open


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_bodiless_request_is_the_one_httpx_would_build_and_its_own(method: str) -> None:
    sender = _sender(httpx.MockTransport(lambda r: httpx.Response(200)))
    url = httpx.URL("http://[::1]:5000/v2/team/app/manifests/v1")
    first = sender.request(method, url, {"Accept": "application/x-one"}, {})
    built = httpx.Request(method, url, headers=[
        ("Accept-Encoding", "gzip, deflate"), ("Connection", "keep-alive"),
        ("User-Agent", "imggate/test"), ("Accept", "application/x-one")])
    assert first.headers.raw == built.headers.raw  # Host first, as httpx puts it
    assert first.headers["Host"] == "[::1]:5000"
    assert first.content == built.content == b""
    # An auth flow adds its header to one request, never to the next one's.
    first.headers["Authorization"] = "Bearer one"
    second = sender.request(method, url, {"Accept": "application/x-one"}, {})
    assert "Authorization" not in second.headers
    assert second.headers.raw == built.headers.raw


def test_a_callers_host_header_is_the_only_one() -> None:
    sender = _sender(httpx.MockTransport(lambda r: httpx.Response(200)))
    request = sender.request("GET", httpx.URL("http://r.test/v2/"), {"host": "other.test"}, {})
    assert request.headers.get_list("Host") == ["other.test"]
