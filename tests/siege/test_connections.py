"""Connection hygiene on port 8443, against a real ``imggate serve`` over TLS.

- 9,000 TLS connections that trickle their headers a byte every 2 s: each is
  cut off (headers must be complete 5 s after the connection starts), the
  webhook's RSS stays under deploy/'s request (256 MiB) throughout and is back
  near its baseline within 60 s;
- a body trickled after complete headers is cut off 10 s after the headers;
- 60 connections sending most of an 8 MiB body: at most 16 bodies are in flight,
  the others are refused at once (503), and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from admission.serve_harness import ServeProcess, start_serve
from siege.harness import settles
from siege.memory import RSS_LIMIT_MB, RssSampler, rss_mb
from siege.slowloris import HEADERS, siege

#: Each test is bounded (the siege suite stays under 3 minutes).
pytestmark = pytest.mark.timeout(90)

#: How far above its baseline the RSS may stay once an attack is over (~10 MiB on a quiet
#: machine; 33 seen once with seven agents loading both cores; 591 MB held before issue 18).
SETTLED_MB = 48


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    s = start_serve(tmp_path_factory.mktemp("connections"), ["--env", "dev"])
    yield s
    s.stop()


def _baseline(server: ServeProcess) -> float:
    with server.client() as c:  # the app and its TLS stack warmed up
        for _ in range(20):
            c.get("/healthz")
    time.sleep(0.5)
    return rss_mb(server.process.pid)


@pytest.mark.alone  # 9,000 handshakes and a timed cut-off: the machine is its own
@pytest.mark.timeout(150)
def test_nine_thousand_slowloris_connections_are_cut_off_and_memory_comes_back(
        server: ServeProcess) -> None:
    baseline = _baseline(server)
    with RssSampler(server.process.pid) as rss:
        result = asyncio.run(siege(server.port, server.ssl_context(), 9000, gap=2.0,
                                   hold=20.0, concurrency=500))
    assert result.opened >= 8900, (result.opened, result.failed)
    cut = [t for t in result.closed_after if t < 20.0]
    assert len(cut) >= 0.9 * result.opened, f"{len(cut)} of {result.opened} cut off"
    # The 5 s header limit plus a trickle gap (and this busy client's own lag at worst).
    assert sorted(cut)[len(cut) // 2] < 5.0 + 2.0 and max(cut) < 12.0
    assert rss.peak < RSS_LIMIT_MB, f"RSS peaked at {rss.peak:.0f} MiB"
    took = settles(server.process.pid, baseline + SETTLED_MB, 60)
    assert took < 60, f"RSS {rss_mb(server.process.pid):.0f} MiB, baseline {baseline:.0f}"
    with server.client() as c:
        assert c.get("/healthz").status_code == 200


def _tls(server: ServeProcess) -> socket.socket:
    raw = socket.create_connection(("127.0.0.1", server.port))
    return server.ssl_context().wrap_socket(raw, server_hostname="localhost")


def _closed_after(sock: socket.socket, payload: bytes, gap: float, limit: float) -> float:
    """Trickle ``payload`` a byte every ``gap`` s; seconds until the server closed."""
    start = time.monotonic()
    sock.settimeout(gap)
    for i in range(len(payload)):
        try:
            sock.sendall(payload[i:i + 1])
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            pass
        except OSError:
            return time.monotonic() - start
        if time.monotonic() - start > limit:
            break
    return float("inf")


@pytest.mark.alone  # timed to the second
def test_a_trickled_body_is_cut_off_ten_seconds_after_its_headers(
        server: ServeProcess) -> None:
    with _tls(server) as sock:
        sock.sendall(HEADERS + b"Content-Length: 100000\r\n\r\n")
        took = _closed_after(sock, b"{" * 100000, 1.0, 20)
    assert 9.0 < took < 12.0, took


@pytest.mark.alone  # 60 refusals timed at 0.3 s each, and memory
def test_bodies_in_flight_are_capped(server: ServeProcess) -> None:
    baseline = _baseline(server)
    size = 8 * 1024 * 1024 - 1000
    socks: list[socket.socket] = []
    refused = 0
    with RssSampler(server.process.pid) as rss:
        for _ in range(60):
            s = _tls(server)
            s.sendall(HEADERS + f"Content-Length: {size}\r\n\r\n".encode())
            s.settimeout(0.3)
            # All but the last bytes (the server may stop reading: refused, or full).
            with contextlib.suppress(TimeoutError, OSError):
                s.sendall(b" " * (size - 10))
            try:
                answer = s.recv(4096)
                refused += answer.startswith(b"HTTP/1.1 503")
            except TimeoutError:
                pass
            socks.append(s)
        time.sleep(1)
    for s in socks:
        s.close()
    assert refused >= 60 - 16
    assert rss.peak < RSS_LIMIT_MB, f"RSS peaked at {rss.peak:.0f} MiB"
    assert settles(server.process.pid, baseline + SETTLED_MB, 60) < 60


def test_a_keep_alive_connection_serves_at_most_a_thousand_requests(
        server: ServeProcess) -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with server.client(limits=limits) as c:
        closing = [i for i in range(1, 1001)
                   if c.get("/healthz").headers.get("connection") == "close"]
    assert closing == [1000]
