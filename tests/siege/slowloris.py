"""Slow clients, written for the siege tests: TLS connections that trickle a request.

:func:`siege` opens ``n`` TLS connections to a server (``concurrency`` handshakes
at a time), then sends each one's request headers (or body) a byte every
``gap`` seconds, and reports which connections the server closed and when.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass, field

HEADERS = (b"POST /validate HTTP/1.1\r\nHost: imggate\r\nContent-Type: application/json\r\n"
           b"X-Padding: " + b"a" * 200 + b"\r\n")


@dataclass
class Siege:
    """What happened to the slow connections."""

    opened: int = 0
    failed: int = 0
    #: Seconds from each connection's opening to the server closing it.
    closed_after: list[float] = field(default_factory=list)


async def _one(port: int, ctx: ssl.SSLContext, gap: float, hold: float, payload: bytes,
               gate: asyncio.Semaphore, result: Siege, opened: asyncio.Event) -> None:
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                        server_hostname="localhost"), 30)
        except (OSError, ssl.SSLError, TimeoutError):
            result.failed += 1
            return
    result.opened += 1
    start = time.monotonic()
    try:
        for i in range(len(payload)):
            if time.monotonic() - start > hold:
                return
            writer.write(payload[i:i + 1])
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                # A closed connection reads EOF (or fails): the server cut it off.
                data = await asyncio.wait_for(reader.read(1024), gap)
                if not data:
                    result.closed_after.append(time.monotonic() - start)
                    return
    except (OSError, ssl.SSLError):
        result.closed_after.append(time.monotonic() - start)
    finally:
        writer.transport.abort()


async def siege(port: int, ctx: ssl.SSLContext, n: int, *, gap: float = 2.0,
                hold: float = 20.0, payload: bytes = HEADERS * 4,
                concurrency: int = 200) -> Siege:
    """Open ``n`` slow connections and trickle ``payload`` on each for ``hold`` seconds."""
    result = Siege()
    gate = asyncio.Semaphore(concurrency)
    opened = asyncio.Event()
    await asyncio.gather(*(_one(port, ctx, gap, hold, payload, gate, result, opened)
                           for _ in range(n)))
    return result
