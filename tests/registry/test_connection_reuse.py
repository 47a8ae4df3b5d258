"""The registry client reuses its connections, keeps none of a registry's cookies, and
does not send a request on an idle connection the server has closed.

Connections are counted by a TCP proxy in front of the real registry (it counts
what it accepts, and forwards bytes both ways untouched: ``tcp_proxy``).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from harness_images import PushedImage
from imggate.models import Digest
from imggate.registry.client import RegistryClient
from imggate.registry.limits import RequestLimits
from imggate.registry.options import RegistryOptions
from tcp_proxy import TcpProxy

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]


def test_sequential_requests_share_one_connection(anon_image: PushedImage) -> None:
    proxy = TcpProxy(anon_image.registry.host)

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
    proxy = TcpProxy(anon_image.registry.host)

    async def main() -> list[object]:
        async with proxy.running() as host, RegistryClient(RegistryOptions()) as client:
            repo = client.repository(host, anon_image.repository)
            return [await repo.try_resolve_tag(f"missing-{i}") for i in range(20)]

    assert asyncio.run(main()) == [None] * 20
    assert proxy.accepted == 2  # the scheme probe, and one for the 20 lookups


def test_concurrent_requests_open_at_most_the_per_host_share(anon_image: PushedImage) -> None:
    proxy = TcpProxy(anon_image.registry.host)
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
    # Each wave's requests take the connections the previous wave left idle.
    proxy = TcpProxy(anon_image.registry.host)
    per_host = RequestLimits().per_host

    async def main() -> list[str]:
        async with proxy.running() as host, RegistryClient(RegistryOptions()) as client:
            repo = client.repository(host, anon_image.repository)
            for _ in range(5):
                await asyncio.gather(*(repo.resolve(anon_image.tag) for _ in range(64)))
            assert client.guard is not None
            return client.guard.connections()

    left = asyncio.run(main())
    assert proxy.accepted <= 1 + per_host
    assert left == ["IDLE"] * per_host  # nothing active once every response is closed


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


def test_an_idle_connection_the_server_closed_is_not_used_again() -> None:
    # A keep-alive server that closes each connection after its first answer (as servers
    # do at their idle timeout): the second request goes out on a new connection, and
    # succeeds, whether the close is seen before the request is sent or only after.
    accepted = 0

    async def main() -> list[int]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal accepted
            accepted += 1
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        host = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        statuses = []
        try:
            async with RegistryClient(RegistryOptions(retries=0)) as client:
                repo = client.repository(host, "team/app")
                for _ in range(3):
                    statuses.append(0 if await repo.try_resolve_tag("v1") is None else 1)
        finally:
            server.close()
        return statuses

    assert asyncio.run(main()) == [0, 0, 0]
    assert accepted == 1 + 3  # the scheme probe, and one connection per request
