"""The registry client reuses its connections, keeps none of a registry's cookies, and
answers the pool's "is this idle connection still open?" correctly.

Connections are counted by a TCP proxy in front of the real registry (it counts
what it accepts, and forwards bytes both ways untouched).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpcore
import httpx
import pytest

from harness_images import PushedImage
from imggate.models import Digest
from imggate.registry.client import RegistryClient
from imggate.registry.limits import RequestLimits
from imggate.registry.network import CachedSocketBackend
from imggate.registry.options import RegistryOptions

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]


class CountingProxy:
    """Accepts on loopback, forwards each connection to ``target``; counts connections."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self._target = (host, int(port))
        self.accepted = 0
        self.port = 0

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Serve while in the block; yields ``127.0.0.1:PORT``."""
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield f"127.0.0.1:{self.port}"
        finally:
            server.close()


def test_sequential_requests_share_one_connection(anon_image: PushedImage) -> None:
    proxy = CountingProxy(anon_image.registry.host)

    async def main() -> list[Digest]:
        async with proxy.running() as host, RegistryClient(RegistryOptions()) as client:
            repo = client.repository(host, anon_image.repository)
            return [(await repo.resolve(anon_image.tag)).digest for _ in range(30)]

    digests = asyncio.run(main())
    assert {str(d) for d in digests} == {anon_image.digest}
    # The scheme probe (TLS handshake attempt) is one connection; the 30 GETs share one.
    assert proxy.accepted == 2


def test_answers_not_found_keep_their_connection(anon_image: PushedImage) -> None:
    # A signature or referrers lookup of an unsigned image is a 404 (its body unwanted).
    proxy = CountingProxy(anon_image.registry.host)

    async def main() -> list[object]:
        async with proxy.running() as host, RegistryClient(RegistryOptions()) as client:
            repo = client.repository(host, anon_image.repository)
            return [await repo.try_resolve_tag(f"missing-{i}") for i in range(20)]

    assert asyncio.run(main()) == [None] * 20
    assert proxy.accepted == 2  # the scheme probe, and one for the 20 lookups


def test_concurrent_requests_open_at_most_the_per_host_share(anon_image: PushedImage) -> None:
    proxy = CountingProxy(anon_image.registry.host)
    limits = RequestLimits(total=32, per_host=4)

    async def main() -> None:
        async with proxy.running() as host, \
                RegistryClient(RegistryOptions(limits=limits)) as client:
            repo = client.repository(host, anon_image.repository)
            for _ in range(3):
                await asyncio.gather(*(repo.resolve(anon_image.tag) for _ in range(40)))

    asyncio.run(main())
    # 120 requests, 4 at a time: 4 connections (and the probe's), reused across rounds.
    assert proxy.accepted <= 1 + limits.per_host


def test_waves_of_requests_open_no_more_than_the_per_host_share(anon_image: PushedImage
                                                                ) -> None:
    # A connection given to a request that has not reached it yet is not given to another
    # (which would fail, go round again and open a connection of its own).
    # Each request costs the pool two passes over its connections (one to be given a
    # connection, one when its response is closed), not a third and fourth for a retry.
    proxy = CountingProxy(anon_image.registry.host)
    per_host = RequestLimits().per_host
    passes = 0

    async def main() -> None:
        nonlocal passes
        async with proxy.running() as host, RegistryClient(RegistryOptions()) as client:
            assert client.guard is not None and client.guard.pool is not None
            pool = client.guard.pool
            assign = pool._assign_requests_to_connections

            def counted() -> list[httpcore.AsyncConnectionInterface]:
                nonlocal passes
                passes += 1
                return assign()

            pool._assign_requests_to_connections = counted  # type: ignore[method-assign]
            repo = client.repository(host, anon_image.repository)
            for _ in range(5):
                await asyncio.gather(*(repo.resolve(anon_image.tag) for _ in range(64)))

    asyncio.run(main())
    assert proxy.accepted <= 1 + per_host
    assert passes == 2 * 5 * 64


def test_a_registry_cookie_is_never_sent_back() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Cookie"))
        return httpx.Response(404, headers={"Set-Cookie": "session=abc123; Path=/"})

    async def main() -> None:
        async with RegistryClient(RegistryOptions(retries=0),
                                  transport=httpx.MockTransport(handler)) as client:
            repo = client.repository("reg.example.com", "team/app")
            for _ in range(2):
                assert await repo.try_resolve_tag("v1") is None

    asyncio.run(main())
    assert seen == [None, None]


def test_an_idle_connection_the_server_closed_is_seen_as_readable() -> None:
    async def main() -> tuple[bool, bool]:
        closed = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await closed.wait()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        stream = await CachedSocketBackend().connect_tcp("127.0.0.1", port, timeout=5)
        try:
            before = bool(stream.get_extra_info("is_readable"))
            closed.set()
            for _ in range(100):
                if stream.get_extra_info("is_readable"):
                    break
                await asyncio.sleep(0.01)
            after = bool(stream.get_extra_info("is_readable"))
        finally:
            await stream.aclose()
            server.close()
        return before, after

    assert asyncio.run(main()) == (False, True)
