"""Faults a real registry cannot be made to produce, via httpx.MockTransport.

429 with Retry-After, persistent 503, a cross-host redirect to blob storage,
a lying Docker-Content-Digest header, an oversized manifest, the bearer
challenge with per-scope token caching, and secrets kept out of errors.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from imggate.errors import AuthError, DigestMismatch, RegistryError
from imggate.models import Digest
from imggate.registry.client import RegistryClient
from imggate.registry.credentials import Credentials, CredentialStore
from imggate.registry.options import RegistryOptions

REG = "reg.example.com"
CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "config": {}}).encode()
MANIFEST = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
               "digest": str(Digest.of(CONFIG)), "size": len(CONFIG)},
    "layers": [],
}).encode()
MDIGEST = Digest.of(MANIFEST)
SECRET = "s3cr3t-Pa55"


def run(handler: Callable[[httpx.Request], httpx.Response], coro_fn: Callable[..., object],
        creds: Credentials | None = None, retries: int = 3) -> object:
    store = CredentialStore(explicit=creds, explicit_hosts=frozenset({REG}), environ={})
    opts = RegistryOptions(credentials=store, retries=retries, backoff=0.01)

    async def main() -> object:
        async with RegistryClient(opts, transport=httpx.MockTransport(handler)) as c:
            return await coro_fn(c.repository(REG, "team/app"))  # type: ignore[misc]

    return asyncio.run(main())


def manifest_response(body: bytes = MANIFEST, digest: str | None = None) -> httpx.Response:
    return httpx.Response(200, content=body, headers={
        "Content-Type": "application/vnd.oci.image.manifest.v1+json",
        "Docker-Content-Digest": digest or str(Digest.of(body))})


def test_429_retry_after_is_honoured() -> None:
    calls: list[float] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "1"})
        return manifest_response()

    m = run(handler, lambda r: r.resolve("v1"))
    assert m.digest == MDIGEST  # type: ignore[attr-defined]
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 0.9


def test_persistent_503_is_an_error_naming_registry_repo_and_status() -> None:
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        return httpx.Response(503)

    with pytest.raises(RegistryError) as e:
        run(handler, lambda r: r.manifest(MDIGEST), retries=2)
    assert len(calls) == 3
    msg = str(e.value)
    assert REG in msg and "team/app" in msg and str(MDIGEST) in msg and "HTTP 503" in msg
    assert e.value.exit_code == 3


def test_connection_errors_are_retried_then_reported() -> None:
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        raise httpx.ConnectError("connection refused")

    with pytest.raises(RegistryError, match="cannot reach registry"):
        run(handler, lambda r: r.resolve("v1"), retries=2)
    assert len(calls) == 3


def test_cross_host_redirect_drops_credentials() -> None:
    seen: list[tuple[str, str | None]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append((req.url.host, req.headers.get("Authorization")))
        if req.url.host == REG:
            if "Authorization" not in req.headers:
                return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
            return httpx.Response(307, headers={
                "Location": "https://storage.example.net/blob?sig=x"})
        return httpx.Response(200, content=CONFIG)

    data = run(handler, lambda r: r.blob(Digest.of(CONFIG)),
               creds=Credentials("ci", SECRET, False, "test"))
    assert data == CONFIG
    assert ("storage.example.net", None) in seen
    assert any(h == REG and a and a.startswith("Basic ") for h, a in seen)


def test_lying_content_digest_header_is_refused() -> None:
    other = "sha256:" + "b" * 64
    with pytest.raises(DigestMismatch):
        run(lambda req: manifest_response(digest=other), lambda r: r.resolve("v1"))


def test_tampered_manifest_by_digest_is_refused() -> None:
    tampered = MANIFEST.replace(b'"layers": []', b'"layers":  []')
    with pytest.raises(DigestMismatch, match="refusing"):
        run(lambda req: httpx.Response(200, content=tampered), lambda r: r.manifest(MDIGEST))


def test_tampered_blob_is_refused() -> None:
    with pytest.raises(DigestMismatch):
        run(lambda req: httpx.Response(200, content=CONFIG + b" "),
            lambda r: r.blob(Digest.of(CONFIG)))


def test_manifest_over_4_mib_is_refused() -> None:
    huge = b"{" + b" " * (4 * 1024 * 1024 + 10) + b"}"
    with pytest.raises(RegistryError, match="limit"):
        run(lambda req: httpx.Response(200, content=huge), lambda r: r.resolve("v1"))


def test_bearer_challenge_token_cached_per_scope() -> None:
    token_calls: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "auth.example.com":
            token_calls.append(req)
            expected = "Basic " + base64.b64encode(f"ci:{SECRET}".encode()).decode()
            if req.headers.get("Authorization") != expected:
                return httpx.Response(401)
            assert req.url.params["scope"] == "repository:team/app:pull"
            assert req.url.params["service"] == "reg"
            return httpx.Response(200, json={"token": "tok-1", "expires_in": 300})
        if req.headers.get("Authorization") != "Bearer tok-1":
            return httpx.Response(401, headers={"WWW-Authenticate":
                'Bearer realm="https://auth.example.com/jwt",service="reg",'
                'scope="repository:team/app:pull"'})
        if "/blobs/" in req.url.path:
            return httpx.Response(200, content=CONFIG)
        return manifest_response()

    async def two(r: object) -> object:
        m = await r.resolve("v1")  # type: ignore[attr-defined]
        await r.blob(Digest.of(CONFIG))  # type: ignore[attr-defined]
        return m

    m = run(handler, two, creds=Credentials("ci", SECRET, False, "test"))
    assert m.digest == MDIGEST  # type: ignore[attr-defined]
    assert len(token_calls) == 1


def test_refused_credentials_never_leak_the_secret() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "auth.example.com":
            return httpx.Response(401, json={"details": "bad"})
        return httpx.Response(401, headers={"WWW-Authenticate":
            'Bearer realm="https://auth.example.com/jwt",service="reg"'})

    with pytest.raises(AuthError) as e:
        run(handler, lambda r: r.resolve("v1"), creds=Credentials("ci", SECRET, False, "t"))
    assert SECRET not in str(e.value) and SECRET not in repr(e.value)
    assert SECRET not in repr(Credentials("ci", SECRET, False, "t"))


def test_plain_http_token_realm_is_refused_for_remote_registry() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate":
            'Bearer realm="http://auth.example.com/jwt",service="reg"'})

    with pytest.raises(AuthError, match="not HTTPS"):
        run(handler, lambda r: r.resolve("v1"), creds=Credentials("ci", SECRET, False, "t"))


def test_tags_follow_link_pagination() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.params.get("last") == "b":
            return httpx.Response(200, json={"name": "team/app", "tags": ["c"]})
        return httpx.Response(200, json={"name": "team/app", "tags": ["a", "b"]}, headers={
            "Link": '</v2/team/app/tags/list?n=2&last=b>; rel="next"'})

    assert run(handler, lambda r: r.tags()) == ("a", "b", "c")


def _link_pages(seen: list[str], pages: int) -> Callable[[httpx.Request], httpx.Response]:
    """A registry whose tag list is ``pages`` pages of one tag each (``t0``, ``t1``...)."""
    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(str(req.url.query, "ascii"))
        n = int(req.url.params.get("last", "t-1")[1:]) + 1
        more = {"Link": f'</v2/team/app/tags/list?n=1&last=t{n}>; rel="next"'} \
            if n + 1 < pages else {}
        return httpx.Response(200, json={"name": "team/app", "tags": [f"t{n}"]}, headers=more)
    return handler


def test_tag_pages_come_one_at_a_time_asked_with_the_page_size() -> None:
    seen: list[str] = []

    async def each(r: object) -> list[tuple[tuple[str, ...], int]]:
        # Each page is handed over before the next one is asked for.
        return [(page, len(seen)) async for page in r.tag_pages(1)]  # type: ignore[attr-defined]

    assert run(_link_pages(seen, 3), each) == [(("t0",), 1), (("t1",), 2), (("t2",), 3)]
    assert seen == ["n=1", "n=1&last=t0", "n=1&last=t1"]


def test_a_tag_list_past_the_page_bound_is_an_error_not_a_partial_list(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from imggate.registry import repository

    monkeypatch.setattr(repository, "MAX_TAG_PAGES", 3)
    assert run(_link_pages([], 3), lambda r: r.tags()) == ("t0", "t1", "t2")
    with pytest.raises(RegistryError, match="past 3 pages"):
        run(_link_pages([], 4), lambda r: r.tags())


def test_a_tag_list_page_that_fails_fails_the_list() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.params.get("last"):
            return httpx.Response(200, content=b"{not json")
        return httpx.Response(200, json={"name": "team/app", "tags": ["a"]}, headers={
            "Link": '</v2/team/app/tags/list?last=a>; rel="next"'})

    with pytest.raises(RegistryError, match="malformed"):
        run(handler, lambda r: r.tags())


def test_referrers_fall_back_to_the_tag_schema() -> None:
    child = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": "sha256:" + "c" * 64, "size": 10,
             "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"}
    index = json.dumps({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [child]}).encode()

    def handler(req: httpx.Request) -> httpx.Response:
        if "/referrers/" in req.url.path:
            return httpx.Response(404)
        assert req.url.path.endswith(f"/manifests/{MDIGEST.tag_form}")
        return httpx.Response(200, content=index, headers={
            "Content-Type": "application/vnd.oci.image.index.v1+json"})

    found = run(handler, lambda r: r.referrers(MDIGEST))
    assert [str(d.digest) for d in found] == [child["digest"]]  # type: ignore[attr-defined]


def _index(*digests: str) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                      "digest": d, "size": 10} for d in digests]}).encode()


def _index_response(body: bytes) -> httpx.Response:
    return httpx.Response(200, content=body, headers={
        "Content-Type": "application/vnd.oci.image.index.v1+json"})


def test_a_registry_without_the_referrers_api_is_asked_its_tag_beside_it_from_then_on() -> None:
    # The first lookup learns that the API is not there (404) and then asks the fallback
    # tag; the next asks both at once: the tag is asked while the API's answer is awaited.
    events: list[str] = []

    async def handler(req: httpx.Request) -> httpx.Response:
        if "/referrers/" in req.url.path:
            events.append("api asked")
            await asyncio.sleep(0.2)
            events.append("api answered")
            return httpx.Response(404)
        events.append("tag asked")
        return _index_response(_index("sha256:" + "c" * 64))

    async def twice(repo: Any) -> list[tuple[Any, ...]]:
        return [await repo.referrers(MDIGEST), await repo.referrers(MDIGEST)]

    first, second = run(handler, twice)  # type: ignore[misc]
    assert first == second and [str(d.digest) for d in first] == ["sha256:" + "c" * 64]
    assert events == ["api asked", "api answered", "tag asked",
                      "api asked", "tag asked", "api answered"], events


def test_an_api_that_answers_is_the_one_used_though_the_tag_was_asked_beside_it() -> None:
    # A registry that gained the API meanwhile: its answer wins over the tag's (asked at
    # once, as the API was missing before), and the tag is not asked again after.
    api, tag = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    asked: list[str] = []

    async def handler(req: httpx.Request) -> httpx.Response:
        if "/referrers/" in req.url.path:
            asked.append("api")
            await asyncio.sleep(0.1)  # (the tag, when asked beside it, is asked meanwhile)
            return httpx.Response(404) if asked.count("api") == 1 else \
                _index_response(_index(api))
        asked.append("tag")
        return _index_response(_index(tag))

    async def three(repo: Any) -> list[list[str]]:
        return [[str(d.digest) for d in await repo.referrers(MDIGEST)] for _ in range(3)]

    assert run(handler, three) == [[tag], [api], [api]]
    assert asked == ["api", "tag", "api", "tag", "api"], asked


class _Streamed(httpx.AsyncByteStream):
    """A body that arrives as a stream (httpx reads a body given as bytes at once)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        for i in range(0, len(self._body), 100):
            yield self._body[i:i + 100]


@pytest.mark.parametrize("encoding", ["gzip", None])
def test_an_answer_is_decoded_before_it_is_verified(encoding: str | None) -> None:
    # Registries do not compress manifests, but a proxy in front of one may: the bytes
    # verified against the digest are the decoded ones, compressed or not.
    body = gzip.compress(MANIFEST) if encoding else MANIFEST
    headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
               "Docker-Content-Digest": str(MDIGEST)}
    if encoding:
        headers["Content-Encoding"] = encoding

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=_Streamed(body), headers=headers)

    manifest = run(handler, lambda r: r.resolve("v1"))
    assert getattr(manifest, "digest", None) == MDIGEST
