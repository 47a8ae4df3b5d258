"""A hostile OCI registry for the fault matrix, written for imggate's tests.

It speaks HTTP/1.1 on raw loopback sockets (asyncio, in a thread of the
test process), so it can do what no well-behaved server library lets a
server do: stay silent, stop half-way through its headers, drip a body a
byte at a time, reset the connection mid-body, send a ``Content-Length``
that lies, or a chunked body that never ends.

Every path names its fault and run: ``/v2/f/<fault>/<run>/manifests/<ref>``
(repository ``f/<fault>/<run>``), so the runs of one fault (one per
imggate command) neither share nor disturb each other's state, and all the
faults are served by one server at once. The registry requires a bearer
token from its own token endpoint (``/token/<fault>/<run>``, Basic auth with
the canary credentials), so every run sends the canary password and the
canary token and every output can be searched for them. Requests that reach
it under another host name (``localhost:PORT``, the target of cross-host
redirects) are served anonymously and their ``Authorization`` headers are
recorded in :attr:`HostileRegistry.cross_host_auth`.

What each fault does is :class:`Fault`'s ``action`` (see ``catalogue.py``); a
fault without an action for a request is a healthy registry.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import struct
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from imggate.models import Digest

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class Canary:
    """The credentials every run uses; none of their forms may appear in any output."""

    user: str
    password: str
    token: str

    @property
    def basic(self) -> str:
        """The ``Authorization`` value a client sends with the canary credentials."""
        return "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()

    def forms(self) -> list[bytes]:
        """Every spelling of a canary secret that must never be output."""
        pair = f"{self.user}:{self.password}".encode()
        out = []
        for secret in (self.password.encode(), self.token.encode(), pair):
            out += [secret, base64.b64encode(secret), base64.b64encode(secret).rstrip(b"="),
                    base64.urlsafe_b64encode(secret).rstrip(b"=")]
        return out


@dataclass
class Content:
    """What the registry holds: manifests and blobs by digest, tags, media types."""

    manifests: dict[Digest, bytes]
    blobs: dict[Digest, bytes]
    tags: dict[str, Digest]
    roles: dict[Digest, str] = field(default_factory=dict)

    def media_type(self, raw: bytes) -> str:
        """The manifest's own ``mediaType``."""
        try:
            return str(json.loads(raw).get("mediaType") or OCI_INDEX)
        except (ValueError, AttributeError):
            return OCI_INDEX


@dataclass
class Request:
    """One request as the fault sees it, with the healthy answer it would get."""

    method: str
    path: str
    headers: Mapping[str, str]
    fault: str
    run: str
    role: str  # tag, index, manifest, config, layer, sig, sig-payload, sig-config, token, ...
    count: int  # how many requests for this role this run made before (0: the first)
    status: int
    body: bytes
    reply_headers: dict[str, str]
    registry: HostileRegistry
    cross_host: bool = False  # asked for under another host name: served as is


#: A fault's action: write an answer (or not) and say whether the connection may be reused.
Action = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]


async def send(writer: asyncio.StreamWriter, status: int, headers: Mapping[str, str],
               body: bytes = b"", *, length: int | None = None) -> bool:
    """A plain answer; ``length`` overrides the ``Content-Length`` written (to lie)."""
    reason = {200: "OK", 302: "Found", 307: "Temporary Redirect", 401: "Unauthorized",
              403: "Forbidden", 404: "Not Found"}.get(status, "Status")
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
    return length is None or length == len(body)


async def send_chunked(writer: asyncio.StreamWriter, status: int, headers: Mapping[str, str],
                       chunks: Callable[[], object], *, delay: float = 0.0) -> bool:
    """A chunked answer from an iterable of byte strings, each after ``delay`` seconds."""
    lines = [f"HTTP/1.1 {status} Status", *(f"{k}: {v}" for k, v in headers.items()),
             "Transfer-Encoding: chunked"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    for chunk in chunks():  # type: ignore[attr-defined]
        if delay:
            await asyncio.sleep(delay)
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), not an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class HostileRegistry:
    """The server: start it, point imggate at :attr:`host`, stop it."""

    def __init__(self, content: Content, actions: Mapping[str, Action], canary: Canary) -> None:
        self.content = content
        self.actions = dict(actions)
        self.canary = canary
        self.cross_host_auth: list[str] = []
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.port: int = future.result(10)

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry imggate is pointed at."""
        return f"127.0.0.1:{self.port}"

    @property
    def other_host(self) -> str:
        """``localhost:PORT``: the same server under another name (cross-host redirects)."""
        return f"localhost:{self.port}"

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=65536)
        return int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        """Stop serving and cut every open connection."""
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            with contextlib.suppress(Exception):
                writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        first, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = first.split(" ", 2)
        headers = {}
        for line in lines:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if headers.get("content-length", "0").isdigit() and int(headers.get("content-length",
                                                                            "0")):
            await reader.readexactly(int(headers["content-length"]))
        request = self._route(method, target.split("?", 1)[0], headers)
        action = self.actions.get(request.fault)
        if action is not None:
            keep = await action(request, writer)
        else:
            keep = await send(writer, request.status, request.reply_headers, request.body)
        return keep and headers.get("connection", "").lower() != "close"

    def _route(self, method: str, path: str, headers: Mapping[str, str]) -> Request:
        parts = path.strip("/").split("/")
        fault, run = (parts[2], parts[3]) if len(parts) > 4 and parts[:2] == ["v2", "f"] else (
            (parts[1], parts[2]) if len(parts) == 3 and parts[0] == "token" else ("", ""))

        def req(role: str, status: int, body: bytes, reply: dict[str, str]) -> Request:
            count = self.counts[(fault, run, role)]
            self.counts[(fault, run, role)] += 1
            return Request(method, path, headers, fault, run, role, count, status, body, reply,
                           self, headers.get("host") == self.other_host)

        json_type = {"Content-Type": "application/json"}
        if parts[0] == "token":
            if headers.get("authorization") != self.canary.basic:
                return req("token", 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', json_type)
            return req("token", 200, json.dumps({"token": self.canary.token,
                                                 "expires_in": 300}).encode(), json_type)
        if headers.get("host") == self.other_host:
            if headers.get("authorization"):
                self.cross_host_auth.append(headers["authorization"])
        elif headers.get("authorization") != f"Bearer {self.canary.token}":
            realm = f"http://{self.host}/token/{fault}/{run}"
            return req("challenge", 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {
                **json_type, "WWW-Authenticate": f'Bearer realm="{realm}",service="hostile"'})
        if parts == ["v2"] or not fault:
            return req("ping", 200, b"{}", json_type)
        kind, ref = parts[-2], parts[-1]
        not_found = b'{"errors":[{"code":"NOT_FOUND","message":"unknown"}]}'
        if kind == "manifests":
            digest = self.content.tags.get(ref)
            role = "tag" if digest is not None and not ref.startswith("sha256-") else None
            if digest is None:
                with contextlib.suppress(ValueError):
                    digest = Digest.parse(ref)
            raw = self.content.manifests.get(digest) if digest is not None else None
            if raw is None or digest is None:
                return req("missing", 404, not_found, json_type)
            role = role or self.content.roles.get(digest, "manifest")
            return req(role, 200, raw, {"Content-Type": self.content.media_type(raw),
                                        "Docker-Content-Digest": str(digest)})
        if kind == "blobs":
            try:
                digest = Digest.parse(ref)
            except ValueError:
                return req("missing", 404, not_found, json_type)
            blob = self.content.blobs.get(digest)
            if blob is None:
                return req("missing", 404, not_found, json_type)
            return req(self.content.roles.get(digest, "layer"), 200, blob,
                       {"Content-Type": "application/octet-stream",
                        "Docker-Content-Digest": str(digest)})
        return req(kind, 404, not_found, json_type)  # referrers, tags: not offered
