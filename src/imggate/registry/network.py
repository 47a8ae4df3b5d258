"""The registry pool's network backend: httpcore's AnyIO backend, its most frequent
question, its reads and its writes answered with less of AnyIO's machinery.

Before it reuses an idle HTTP/1.1 connection, and on every pass over its
connections (two per request), httpcore's pool asks each idle connection
whether its socket is readable: a server that closed it. httpcore asks the
AnyIO stream for its raw socket through ``extra()``, which builds a mapping
of every socket attribute (one of them a ``getpeername`` call) on every ask:
10-15% of the CPU of a 200-image resolve or a 1,000-tag audit (py-spy).
:class:`CachedSocketStream` keeps the socket it was made with and asks the
kernel directly.

Reads and writes go to the AnyIO stream under httpcore's wrapper, timed by
``asyncio.timeout`` and their exceptions mapped to httpcore's as httpcore maps
them: httpcore's wrapper spends an AnyIO cancel scope (``fail_after``) and a
generator-based context manager on every read and write, 2% of a resolve's
instructions (cachegrind). Connecting, TLS and closing are AnyIO's, unchanged.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import typing

import anyio
import httpcore


def _readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has something to read now (for an idle connection: the server
    closed it, or sent what it should not have); a closed socket counts as readable."""
    fd = sock.fileno()
    if fd < 0:
        return True
    poll = select.poll()
    poll.register(fd, select.POLLIN)
    return bool(poll.poll(0))


class CachedSocketStream(httpcore.AsyncNetworkStream):
    """An AnyIO stream whose socket is looked up once, when the stream is made."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        """Wrap ``inner`` (a connected, possibly TLS, AnyIO stream)."""
        self._inner = inner
        # The AnyIO stream under httpcore's wrapper (see read); None if httpcore changed.
        self._stream: anyio.abc.ByteStream | None = getattr(inner, "_stream", None)
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Read up to ``max_bytes`` from AnyIO's stream, as httpcore does (its exceptions)."""
        if self._stream is None:
            return await self._inner.read(max_bytes, timeout)
        try:
            async with asyncio.timeout(timeout):
                return await self._stream.receive(max_bytes)
        except anyio.EndOfStream:
            return b""
        except TimeoutError as e:
            raise httpcore.ReadTimeout(e) from e
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as e:
            raise httpcore.ReadError(e) from e

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Write ``buffer`` to AnyIO's stream, as httpcore does (its exceptions)."""
        if self._stream is None:
            return await self._inner.write(buffer, timeout)
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._stream.send(buffer)
        except TimeoutError as e:
            raise httpcore.WriteTimeout(e) from e
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as e:
            raise httpcore.WriteError(e) from e

    async def aclose(self) -> None:
        """Close the stream."""
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        """Upgrade to TLS (AnyIO's handshake); the TLS stream keeps the same socket."""
        return CachedSocketStream(
            await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        """``is_readable`` and ``socket`` from the kept socket; the rest from AnyIO."""
        if info == "is_readable":
            return self._socket is not None and _readable(self._socket)
        if info == "socket":
            return self._socket
        return self._inner.get_extra_info(info)


class CachedSocketBackend(httpcore.AnyIOBackend):
    """httpcore's AnyIO backend, its TCP streams made :class:`CachedSocketStream`."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        """Connect (AnyIO's connect and its exceptions), then wrap the stream."""
        return CachedSocketStream(
            await super().connect_tcp(host, port, timeout, local_address, socket_options))

