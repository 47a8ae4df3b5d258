"""The pool's network streams over real loopback sockets: reads, writes, their timeouts
and their failures come out as httpcore's exceptions, as httpcore's own stream raises them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpcore
import pytest

from imggate.registry.network import CachedSocketBackend


async def _with_server(handler, test):  # type: ignore[no-untyped-def]
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        stream = await CachedSocketBackend().connect_tcp("127.0.0.1", port, timeout=5)
        try:
            return await test(stream)
        finally:
            await stream.aclose()
    finally:
        server.close()


def test_a_write_is_answered_and_read() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(5))
        await writer.drain()
        writer.close()

    async def test(stream: httpcore.AsyncNetworkStream) -> tuple[bytes, bytes]:
        await stream.write(b"hello", timeout=5)
        await stream.write(b"", timeout=5)  # nothing to send: nothing sent
        first = await stream.read(1024, timeout=5)
        return first, await stream.read(1024, timeout=5)

    assert asyncio.run(_with_server(echo, test)) == (b"hello", b"")  # then the server's end


def test_a_read_that_waits_too_long_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    async def test(stream: httpcore.AsyncNetworkStream) -> None:
        await stream.read(1024, timeout=0.2)

    with pytest.raises(httpcore.ReadTimeout):
        asyncio.run(_with_server(silent, test))


@pytest.mark.parametrize(("use", "error"), [
    (lambda stream: stream.read(1024, timeout=1), httpcore.ReadError),
    (lambda stream: stream.write(b"x", timeout=1), httpcore.WriteError),
], ids=["read", "write"])
def test_using_a_closed_stream_is_a_read_or_write_error(
        use: Callable[[httpcore.AsyncNetworkStream], Awaitable[object]],
        error: type[Exception]) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(1)

    async def test(stream: httpcore.AsyncNetworkStream) -> None:
        await stream.aclose()
        await use(stream)

    with pytest.raises(error):
        asyncio.run(_with_server(silent, test))
