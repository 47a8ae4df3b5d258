"""The registry pool's network backend: httpcore's AnyIO backend, with the one question
the pool asks most answered without AnyIO's machinery.

Before it reuses an idle HTTP/1.1 connection, and on every pass over its
connections (two per request), httpcore's pool asks each idle connection
whether its socket is readable: a server that closed it. httpcore asks the
AnyIO stream for its raw socket through ``extra()``, which builds a mapping
of every socket attribute (one of them a ``getpeername`` call) on every ask:
10-15% of the CPU of a 200-image resolve or a 1,000-tag audit (py-spy).
:class:`CachedSocketStream` keeps the socket it was made with and asks the
kernel directly; everything else (reads, writes, TLS, timeouts and their
exceptions) is AnyIO's, unchanged.
"""

from __future__ import annotations

import select
import socket
import ssl
import typing

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
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Read up to ``max_bytes`` (AnyIO's read)."""
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Write ``buffer`` (AnyIO's write)."""
        await self._inner.write(buffer, timeout)

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

