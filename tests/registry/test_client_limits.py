"""A body over its limit, through the client's own connections (a scripted server on
loopback): refused whole or cut short, named by what the registry declared when it
declared a length, else by the limit; one within its limit is read whole."""

from __future__ import annotations

import asyncio

import pytest

from imggate.errors import RegistryError
from imggate.registry.client import Asked, RegistryClient
from imggate.registry.options import RegistryOptions


async def _fetch(answer: bytes, limit: int) -> bytes:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if (await reader.readexactly(1)) == b"\x16":
                return  # the client's TLS probe: this server speaks plain HTTP
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    host = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with RegistryClient(RegistryOptions(retries=0)) as client:
            fetched = await client.fetch("GET", host, "/v2/app/blobs/x", headers={},
                                         what=Asked(host, "app"), limit=limit)
            return fetched.body
    finally:
        server.close()


SIZED = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n" + b"x" * 20
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"14\r\n" + b"x" * 20 + b"\r\n0\r\n\r\n")


@pytest.mark.parametrize("answer", [SIZED, CHUNKED], ids=["sized", "chunked"])
def test_a_body_within_its_limit_is_read_whole(answer: bytes) -> None:
    assert asyncio.run(_fetch(answer, limit=20)) == b"x" * 20


@pytest.mark.parametrize(("answer", "message"), [
    (SIZED, "response is 20 bytes, over the 10 byte limit"),
    (CHUNKED, "response body exceeds the 10 byte limit"),
], ids=["sized", "chunked"])
def test_a_body_over_its_limit_is_refused(answer: bytes, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        asyncio.run(_fetch(answer, limit=10))
