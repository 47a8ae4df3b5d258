"""The faults the hostile registry can answer with, and what imggate must make of each.

Each :class:`Fault` names the requests it spoils (by role: ``tag``, ``index``,
``manifest`` (the platform child), ``config``, ``token``, ``sig``,
``sig-payload``; ``*`` for all) and the exit codes ``resolve``, ``verify``
and ``check`` may give. Codes follow the CLI's contract: 0 only when the
evidence is complete (a fault the client recovers from: one 429, one reset),
3 when the registry could not give a trustworthy answer, 1 when signatures
were found but do not verify.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass

from faults.hostile_registry import Action, Request, reset, send, send_chunked

OK = {"resolve": {0}, "verify": {0}, "check": {0}}
FAIL = {"resolve": {3}, "verify": {3}, "check": {3}}
# Signatures spoilt: the image itself resolves; a signature that cannot be fetched is exit 3,
# one that is there but malformed does not verify (1). Never 0.
SIGFAIL = {"resolve": {0}, "verify": {1, 3}, "check": {1, 3}}
# The platform manifest or the config spoilt: every command reads both (verify checks them
# against their digests too: an image whose bytes lie is never "verified").
CHILD = FAIL


@dataclass(frozen=True)
class Fault:
    """One fault: which requests it spoils, how, and the exit codes allowed per command."""

    name: str
    roles: frozenset[str]
    spoil: Callable[[Request, asyncio.StreamWriter], object]
    expect: dict[str, set[int]]
    once: bool = False  # spoil only the first such request of a run (recoverable faults)
    slow: bool = False  # costs up to the deadline by design
    deadline: float = 2.0  # --deadline of its runs (one that waits 1 s needs more)


def status(code: int, headers: dict[str, str] | None = None, body: bytes = b"") -> Callable[
        [Request, asyncio.StreamWriter], object]:
    async def act(r: Request, w: asyncio.StreamWriter) -> bool:
        return await send(w, code, {"Content-Type": "application/json", **(headers or {})}, body)
    return act


async def silence(r: Request, w: asyncio.StreamWriter) -> bool:
    await asyncio.sleep(60)
    return False


async def partial_headers(r: Request, w: asyncio.StreamWriter) -> bool:
    w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nDock")
    await w.drain()
    await asyncio.sleep(60)
    return False


async def drip(r: Request, w: asyncio.StreamWriter) -> bool:
    head = {**r.reply_headers}
    await send(w, 200, head, b"", length=len(r.body))
    for byte in r.body:
        await asyncio.sleep(0.4)
        w.write(bytes([byte]))
        await w.drain()
    return True


async def reset_mid_body(r: Request, w: asyncio.StreamWriter) -> bool:
    await send(w, 200, r.reply_headers, r.body[: len(r.body) // 2], length=len(r.body))
    await asyncio.sleep(0.05)
    reset(w)
    return False


async def length_longer(r: Request, w: asyncio.StreamWriter) -> bool:
    await send(w, 200, r.reply_headers, r.body, length=len(r.body) + 100)
    w.close()
    return False


async def length_shorter(r: Request, w: asyncio.StreamWriter) -> bool:
    await send(w, 200, r.reply_headers, r.body, length=len(r.body) - 7)
    return False


def replace_body(make: Callable[[Request], bytes], *, digest: str | None = None,
                 announce_own: bool = False) -> Callable[[Request, asyncio.StreamWriter], object]:
    """Answer with other bytes (keeping or faking ``Docker-Content-Digest``)."""
    async def act(r: Request, w: asyncio.StreamWriter) -> bool:
        from imggate.models import Digest

        body = make(r)
        head = {**r.reply_headers}
        if digest is not None:
            head["Docker-Content-Digest"] = digest
        elif announce_own:
            head["Docker-Content-Digest"] = str(Digest.of(body))
        return await send(w, 200, head, body)
    return act


def tampered(r: Request) -> bytes:
    body = bytearray(r.body)
    at = body.find(b"sha256:") + 7 if b"sha256:" in body else len(body) // 2
    body[at] = ord("0") if body[at] != ord("0") else ord("1")
    return bytes(body)


def chunked(size: int, piece: bytes = b" " * 65536, status_code: int = 200,
            prefix: bytes = b"") -> Callable[[Request, asyncio.StreamWriter], object]:
    async def act(r: Request, w: asyncio.StreamWriter) -> bool:
        def gen() -> object:
            yield prefix
            for _ in range(size // len(piece)):
                yield piece
        return await send_chunked(w, status_code, {"Content-Type": r.reply_headers.get(
            "Content-Type", "application/json")}, gen)
    return act


async def declared_huge(r: Request, w: asyncio.StreamWriter) -> bool:
    await send(w, 200, r.reply_headers, b"", length=10 * 1024**3)
    await asyncio.sleep(1)
    return False


def redirect(where: Callable[[Request], str]) -> Callable[[Request, asyncio.StreamWriter], object]:
    async def act(r: Request, w: asyncio.StreamWriter) -> bool:
        return await send(w, 307, {"Location": where(r)})
    return act


def serve_other_host(r: Request) -> str:
    return f"http://{r.registry.other_host}{r.path}"


def token_body(token: str) -> Callable[[Request, asyncio.StreamWriter], object]:
    async def act(r: Request, w: asyncio.StreamWriter) -> bool:
        return await send(w, 200, {"Content-Type": "application/json"},
                          json.dumps({"token": token}, ensure_ascii=False).encode())
    return act


async def echo_credentials(r: Request, w: asyncio.StreamWriter) -> bool:
    c = r.registry.canary
    said = (f"you sent {r.headers.get('authorization')}; your password is {c.password}; "
            f"basic {c.basic}")
    body = json.dumps({"errors": [{"code": "DENIED", "message": said}]}).encode()
    return await send(w, 403, {"Content-Type": "application/json"}, body)


async def token_echo(r: Request, w: asyncio.StreamWriter) -> bool:
    body = json.dumps({"errors": [{"code": "DENIED", "message": r.headers.get(
        "authorization", "")}], "token": None}).encode()
    return await send(w, 500, {"Content-Type": "application/json"}, body)


INJECTION = ("denied\r\x1b[2K\x1b[32mResult: ALLOW (exit code 0)\x1b[0m\n"
             "imggate: all images allowed\u202e")


def _fault(name: str, roles: Collection[str], spoil: Callable[..., object],
           expect: dict[str, set[int]], **kw: float) -> Fault:
    return Fault(name, frozenset(roles), spoil, expect, **kw)


def _nested_ok(r: Request) -> bytes:
    return r.body


FAULTS: tuple[Fault, ...] = (
    _fault("healthy", (), status(200), OK),
    # 5xx and 429, with every kind of Retry-After
    _fault("http-500", {"tag"}, status(500), FAIL),
    _fault("http-503-always", {"*"}, status(503), FAIL),
    _fault("http-429-once-seconds", {"tag"}, status(429, {"Retry-After": "1"}), OK, once=True,
           deadline=4.0),
    _fault("http-503-once-past-date", {"tag"},
           status(503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), OK, once=True),
    _fault("http-503-once-soon", {"tag"}, status(503, {"Retry-After": "soon"}), OK, once=True),
    _fault("http-429-once-negative", {"config"}, status(429, {"Retry-After": "-3"}), OK,
           once=True),
    _fault("http-503-retry-after-huge", {"tag"}, status(503, {"Retry-After": "999999"}), FAIL),
    _fault("http-429-retry-after-2099", {"tag"},
           status(429, {"Retry-After": "Thu, 31 Dec 2099 23:59:59 GMT"}), FAIL),
    _fault("http-429-retry-after-1-always", {"tag"}, status(429, {"Retry-After": "1"}), FAIL,
           slow=True),
    # silence, partial headers, drip-feeding
    _fault("silence", {"tag"}, silence, FAIL, slow=True),
    _fault("partial-headers", {"tag"}, partial_headers, FAIL, slow=True),
    _fault("drip-manifest", {"manifest"}, drip, CHILD, slow=True),
    _fault("drip-token", {"token"}, drip, FAIL, slow=True),
    # resets and Content-Length lies
    _fault("reset-mid-body", {"config"}, reset_mid_body, CHILD),
    _fault("reset-mid-body-once", {"config"}, reset_mid_body, OK, once=True),
    _fault("length-longer-than-body", {"tag"}, length_longer, FAIL),
    _fault("length-shorter-than-body", {"tag"}, length_shorter, FAIL),
    # digest lies
    _fault("digest-lie-tag-header", {"tag"},
           replace_body(_nested_ok, digest="sha256:" + "b" * 64), FAIL),
    _fault("digest-lie-tag-body", {"tag"}, replace_body(tampered), FAIL),
    _fault("digest-lie-child", {"manifest"}, replace_body(tampered), CHILD),
    _fault("digest-lie-config", {"config"}, replace_body(tampered), CHILD),
    # oversized and deeply nested bodies
    _fault("oversized-manifest-chunked", {"tag"}, chunked(8 * 1024 * 1024), FAIL),
    _fault("oversized-manifest-declared", {"tag"}, declared_huge, FAIL),
    _fault("oversized-config-chunked", {"config"}, chunked(16 * 1024 * 1024), CHILD),
    _fault("deeply-nested-array", {"tag"},
           replace_body(lambda r: b"[" * 200_000 + b"]" * 200_000, announce_own=True), FAIL),
    _fault("deeply-nested-object", {"tag"},
           replace_body(lambda r: b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
                        announce_own=True), FAIL),
    # self-listing indexes: the child asked for by digest is answered with the index itself
    _fault("self-listing-index", {"manifest"},
           replace_body(lambda r: r.registry.content.manifests[
               r.registry.content.tags["1.0.0"]]), CHILD),
    # redirects
    _fault("redirect-cross-host", {"config"}, redirect(serve_other_host), OK),
    _fault("redirect-loop", {"tag"}, redirect(lambda r: r.path), FAIL),
    _fault("redirect-to-file-scheme", {"config"}, redirect(lambda r: "file:///etc/passwd"),
           CHILD),
    # token endpoints
    _fault("token-huge", {"token"}, chunked(64 * 1024 * 1024, prefix=b'{"token":"'), FAIL),
    _fault("token-not-json", {"token"}, status(200, {}, b"<html>token</html>"), FAIL),
    _fault("token-crlf", {"token"}, token_body("CanaryTokCRLF\r\nX-Injected: 1"), FAIL),
    _fault("token-non-ascii", {"token"}, token_body("CanaryTok\u00e9\u2603"), FAIL),
    _fault("token-echoes-credentials", {"token"}, token_echo, FAIL),
    # a registry that echoes the credentials it received, and one that forges log lines
    _fault("echo-credentials", {"tag"}, echo_credentials, FAIL),
    _fault("log-injection", {"tag"}, status(500, {}, json.dumps(
        {"errors": [{"code": "X\x1b[1m", "message": INJECTION}]}).encode()), FAIL),
    # malformed .sig manifests and payloads
    _fault("sig-not-json", {"sig"}, replace_body(lambda r: b"\x00not json{", announce_own=True),
           SIGFAIL),
    _fault("sig-layers-not-a-list", {"sig"}, replace_body(
        lambda r: json.dumps({"schemaVersion": 2, "config": json.loads(r.body)["config"],
                              "mediaType": "application/vnd.oci.image.manifest.v1+json",
                              "layers": {"a": 1}}).encode(), announce_own=True), SIGFAIL),
    _fault("sig-bad-annotation", {"sig"}, replace_body(
        lambda r: r.body.replace(b'"dev.cosignproject.cosign/signature":"',
                                 b'"dev.cosignproject.cosign/signature":"!!\\u0000'),
        announce_own=True), SIGFAIL),
    _fault("sig-payload-lie", {"sig-payload"}, replace_body(tampered), SIGFAIL),
    _fault("sig-deeply-nested", {"sig"},
           replace_body(lambda r: b"[" * 100_000, announce_own=True), SIGFAIL),
    _fault("sig-oversized", {"sig"}, chunked(8 * 1024 * 1024), SIGFAIL),
)


def actions() -> dict[str, Action]:
    """The hostile registry's action per fault name (only for the roles each fault spoils)."""
    out: dict[str, Action] = {}
    for fault in FAULTS:
        async def act(r: Request, w: asyncio.StreamWriter, fault: Fault = fault) -> bool:
            hit = not r.cross_host and ("*" in fault.roles or r.role in fault.roles)
            if hit and (not fault.once or r.count == 0):
                result = await fault.spoil(r, w)  # type: ignore[misc]
                return bool(result)
            return await send(w, r.status, r.reply_headers, r.body)
        out[fault.name] = act
    return out
