"""Hosts that hold a registry client's requests at each stage, on loopback.

Written for imggate's tests; each runs on raw sockets in an asyncio loop of
its own thread (:class:`HostileHosts`), so it can do what no server library
lets a server do:

- ``black_hole``: a listening socket whose accept queue is full and never
  drained, so a connect hangs (the kernel drops the SYNs, as a firewall does);
- ``silent``: accepts and reads, never writes (a TLS handshake or a request
  waits for ever);
- ``headers``: answers ``HTTP/1.1 200 OK`` and then drips header bytes;
- ``body``: answers complete headers with a large ``Content-Length`` and
  drips the body a byte at a time, whatever was asked (the "dripping
  registry" of the siege tests: every manifest it serves takes for ever).

:class:`HostileProcess` runs them in a child process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class HostileHosts:
    """The hosts, started with :meth:`start`, stopped with :meth:`stop`."""

    drip_gap: float = 0.5
    ports: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _holes: list[socket.socket] = field(default_factory=list)

    def start(self) -> HostileHosts:
        """Start every host; :attr:`ports` names their ports."""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._serve_all())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="hostile-hosts")
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("hostile hosts did not start")
        self.ports["black_hole"] = self._black_hole()
        return self

    def url(self, name: str) -> str:
        """``http://127.0.0.1:PORT`` of host ``name``."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def host(self, name: str) -> str:
        """``127.0.0.1:PORT`` of host ``name``."""
        return f"127.0.0.1:{self.ports[name]}"

    def stop(self) -> None:
        """Stop the hosts' connections and loop, and close the black hole."""
        for s in self._holes:
            s.close()
        if self._loop is not None:
            with contextlib.suppress(TimeoutError, RuntimeError):
                asyncio.run_coroutine_threadsafe(self._cancel_all(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    async def _cancel_all(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _black_hole(self) -> int:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        self._holes.append(listener)
        # Fill the accept queue: later SYNs are dropped and connects hang.
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
            self._holes.append(s)
        return port

    async def _serve_all(self) -> None:
        for name, handler in (("silent", self._silent), ("headers", self._headers),
                              ("body", self._body)):
            server = await asyncio.start_server(self._counted(handler), "127.0.0.1", 0,
                                                backlog=4096)
            self.ports[name] = server.sockets[0].getsockname()[1]

    def _counted(self, handler: Handler) -> Handler:
        async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await handler(reader, writer)
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        return wrapped

    async def _silent(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass

    async def _headers(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n")
        while True:
            writer.write(b"X")
            await writer.drain()
            await asyncio.sleep(self.drip_gap)

    async def _body(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000\r\n\r\n")
        while True:
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(self.drip_gap)


@dataclass
class HostileProcess:
    """:class:`HostileHosts` in a process of its own, so that a test process measuring
    a server's answers does not share its interpreter lock with hundreds of drips."""

    process: subprocess.Popen[str]
    ports: dict[str, int]

    @classmethod
    def start(cls, drip_gap: float = 0.5) -> HostileProcess:
        """Start the hosts in a child process; wait for their ports."""
        proc = subprocess.Popen([sys.executable, __file__, str(drip_gap)],
                                stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            raise RuntimeError("hostile hosts did not start")
        return cls(proc, json.loads(line))

    def host(self, name: str) -> str:
        """``127.0.0.1:PORT`` of host ``name``."""
        return f"127.0.0.1:{self.ports[name]}"

    def stop(self) -> None:
        """Stop the process: every host is gone (connections reset, ports closed)."""
        self.process.kill()
        self.process.wait(10)


if __name__ == "__main__":
    hosts = HostileHosts(drip_gap=float(sys.argv[1])).start()
    print(json.dumps(hosts.ports), flush=True)
    sys.stdin.read()  # until the parent goes away
    hosts.stop()
