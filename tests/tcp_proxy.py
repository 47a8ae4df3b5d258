"""A TCP proxy on loopback in front of a real server, written for imggate's tests and
benchmarks.

It forwards bytes both ways untouched. It counts the connections it accepts, notes
when each HTTP/1.1 request line reaches it (a plain-HTTP registry: the tests' Distribution
registry), and can hold back the requests whose path matches a pattern, or delay every
chunk in both directions (a registry further away than loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

_REQUEST_LINE = re.compile(rb"(?:GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.1\r\n")


class TcpProxy:
    """Loopback proxy to ``target`` (``host:port``).

    ``hold``: a pattern; a request whose path matches it is passed on ``hold_for`` seconds
    after it arrived (``None``: never). ``rtt``: seconds each chunk is held in all, half
    on the way there and half on the way back.
    """

    def __init__(self, target: str, *, hold: str | None = None,
                 hold_for: float | None = None, rtt: float = 0.0) -> None:
        host, _, port = target.rpartition(":")
        self._target = (host, int(port))
        self._hold = re.compile(hold) if hold is not None else None
        self._hold_for = hold_for
        self._half = rtt / 2
        self._t0 = time.monotonic()
        #: Connections accepted.
        self.accepted = 0
        #: (arrival, path) of every request, in arrival order (seconds since the start).
        self.arrived: list[tuple[float, str]] = []
        #: When held requests were passed on.
        self.released: list[float] = []

    def first(self, pattern: str) -> float:
        """When the first request whose path matches ``pattern`` arrived."""
        return next(t for t, path in self.arrived if re.search(pattern, path))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                    requests: bool) -> None:
        try:
            while data := await reader.read(65536):
                if requests:
                    await self._request(data)
                if self._half:
                    await asyncio.sleep(self._half)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _request(self, data: bytes) -> None:
        found = _REQUEST_LINE.search(data)
        if found is None:
            return
        path = found.group(1).decode("latin-1")
        self.arrived.append((time.monotonic() - self._t0, path))
        if self._hold is None or not self._hold.search(path):
            return
        if self._hold_for is None:
            await asyncio.Event().wait()  # held until the proxy stops
        else:
            await asyncio.sleep(self._hold_for)
        self.released.append(time.monotonic() - self._t0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        # (cancelled when the caller's loop closes: nothing to report)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(self._pipe(reader, up_writer, requests=True),
                                 self._pipe(up_reader, writer, requests=False))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Serve on the caller's loop while in the block; yields ``127.0.0.1:PORT``."""
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        try:
            yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        finally:
            server.close()

    def start_in_thread(self) -> str:
        """Serve from a daemon thread of its own until the process ends (for a caller
        without an event loop); returns ``127.0.0.1:PORT``."""
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        where: list[str] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
            where.append(f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
            ready.set()
            loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        ready.wait()
        return where[0]
