"""The registry client's HTTP/1.1 connections against a scripted server on loopback: what is
reused, what is closed, and which httpx failure each broken answer becomes. Every test runs
on asyncio's own loop and on uvloop (the command line's), whose transports differ."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import httpx
import pytest
import uvloop

from imggate.registry.http1 import MAX_HEAD, Http1Pool

#: One scripted connection: gets the reader and writer, answers as it likes.
Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

OK_BODY = b'{"ok": true}'
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n" + OK_BODY


async def _request_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def _answer(raw: bytes, *, close: bool = False) -> Script:
    """A server that answers every request on a connection with ``raw``."""
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await _request_head(reader)
                writer.write(raw)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
    return script


class Server:
    """A loopback server running ``script`` per connection; counts connections."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.accepted = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            await self.script(reader, writer)

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()


#: Runs a coroutine to its end on an event loop.
Runner = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    """Runs a test's coroutine on one of the two event loops."""
    return uvloop.run if request.param == "uvloop" else asyncio.run


def _pool() -> Http1Pool:
    return Http1Pool(ssl.create_default_context(), max_idle=4)


def _get(url: str, method: str = "GET", content: bytes | None = None,
         read: float = 5.0) -> httpx.Request:
    return httpx.Request(method, url, content=content,
                         extensions={"timeout": {"connect": 5.0, "read": read, "write": 5.0}})


async def _fetch(pool: Http1Pool, request: httpx.Request) -> tuple[int, bytes]:
    response = await pool.send(request)
    try:
        return response.status_code, b"".join([part async for part in response.stream])  # type: ignore[union-attr]
    finally:
        await response.aclose()


def test_a_connection_is_reused_once_its_answer_was_read(run: Runner) -> None:
    async def main() -> tuple[list[tuple[int, bytes]], int, list[str]]:
        async with Server(_answer(OK)) as server:
            pool = _pool()
            got = [await _fetch(pool, _get(server.url + "/v2/")) for _ in range(5)]
            left = pool.connections()
            await pool.aclose()
            return got, server.accepted, left

    got, accepted, left = run(main())
    assert got == [(200, OK_BODY)] * 5
    assert accepted == 1 and left == ["IDLE"]


def test_chunked_bodies_and_interim_answers_are_read_whole(run: Runner) -> None:
    raw = (b"HTTP/1.1 100 Continue\r\n\r\n"
           b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")

    async def main() -> list[tuple[int, bytes]]:
        async with Server(_answer(raw)) as server:
            pool = _pool()
            got = [await _fetch(pool, _get(server.url + "/v2/")) for _ in range(2)]
            assert server.accepted == 1
            await pool.aclose()
            return got

    assert run(main()) == [(200, b"hello world")] * 2


def test_connection_close_and_unread_bodies_are_not_reused(run: Runner) -> None:
    async def main() -> tuple[int, list[str]]:
        closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 12\r\n\r\n" + OK_BODY
        async with Server(_answer(closing, close=True)) as server:
            pool = _pool()
            for _ in range(3):
                assert await _fetch(pool, _get(server.url + "/v2/")) == (200, OK_BODY)
            # A response closed before its body was read closes its connection too.
            response = await pool.send(_get(server.url + "/v2/"))
            await response.aclose()
            left = pool.connections()
            await pool.aclose()
            return server.accepted, left

    assert run(main()) == (4, [])


def test_a_head_answer_has_no_body_whatever_its_length_says(run: Runner) -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 345\r\n\r\n"

    async def main() -> tuple[tuple[int, bytes], int]:
        async with Server(_answer(raw)) as server:
            pool = _pool()
            first = await _fetch(pool, _get(server.url + "/v2/", "HEAD"))
            again = await _fetch(pool, _get(server.url + "/v2/", "HEAD"))
            await pool.aclose()
            assert first == again
            return first, server.accepted

    assert run(main()) == ((200, b""), 1)


@pytest.mark.parametrize(("raw", "error"), [
    (b"NOT HTTP AT ALL\r\n\r\n", httpx.RemoteProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", httpx.RemoteProtocolError),
    # A head that has not ended within MAX_HEAD bytes is refused.
    (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEAD + b"\r\n\r\n",
     httpx.RemoteProtocolError),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
     httpx.RemoteProtocolError),
    (b"", httpx.RemoteProtocolError),
], ids=["not-http", "body-cut-short", "head-too-large", "two-lengths", "nothing"])
def test_a_broken_answer_is_a_protocol_error_and_its_connection_is_closed(run: Runner,
        raw: bytes, error: type[Exception]) -> None:
    async def main() -> list[str]:
        async with Server(_answer(raw, close=True)) as server:
            pool = _pool()
            with pytest.raises(error):
                await _fetch(pool, _get(server.url + "/v2/"))
            left = pool.connections()
            await pool.aclose()
            return left

    assert run(main()) == []


def test_an_answer_that_does_not_come_is_a_read_timeout(run: Runner) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    async def main() -> list[str]:
        async with Server(silent) as server:
            pool = _pool()
            with pytest.raises(httpx.ReadTimeout):
                await _fetch(pool, _get(server.url + "/v2/", read=0.2))
            left = pool.connections()
            await pool.aclose()
            return left

    assert run(main()) == []


def test_nobody_listening_is_a_connect_error_with_the_system_reason_as_its_cause(
        run: Runner) -> None:
    async def main() -> BaseException:
        async with Server(_answer(OK)) as server:
            url = server.url
        pool = _pool()
        with pytest.raises(httpx.ConnectError) as caught:
            await pool.send(_get(url + "/v2/"))
        return caught.value

    assert isinstance(run(main()).__cause__, ConnectionRefusedError)


@pytest.mark.parametrize(("method", "content", "new_connections", "ok"), [
    ("GET", None, 1, True),          # sent again, once, on a new connection
    ("PUT", b"{}", 0, False),        # not idempotent: the failure is the caller's to handle
], ids=["GET", "PUT"])
def test_a_reused_connection_the_server_dropped_unanswered(run: Runner,
        method: str, content: bytes | None, new_connections: int, ok: bool) -> None:
    # The server answers a connection's first request, then reads the second and drops the
    # connection without a word (a keep-alive close racing the request).
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        writer.write(OK)
        await writer.drain()
        await _request_head(reader)
        writer.transport.abort()

    async def main() -> tuple[bool, int]:
        async with Server(once) as server:
            pool = _pool()
            assert await _fetch(pool, _get(server.url + "/v2/")) == (200, OK_BODY)
            try:
                await _fetch(pool, _get(server.url + "/v2/", method, content))
                done = True
            except httpx.RemoteProtocolError:
                done = False
            except httpx.ReadError:
                done = False
            await pool.aclose()
            return done, server.accepted - 1

    assert run(main()) == (ok, new_connections)


def test_a_cancelled_request_leaves_no_connection_behind(run: Runner) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request_head(reader)
        await asyncio.sleep(2)
        writer.close()

    async def main() -> tuple[list[str], list[str]]:
        async with Server(slow) as server:
            pool = _pool()
            task = asyncio.ensure_future(pool.send(_get(server.url + "/v2/")))
            await asyncio.sleep(0.1)
            during = pool.connections()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            after = pool.connections()
            await pool.aclose()
            return during, after

    assert run(main()) == (["ACTIVE"], [])


def test_a_header_with_a_line_break_is_not_sent(run: Runner) -> None:
    async def main() -> list[str]:
        async with Server(_answer(OK)) as server:
            pool = _pool()
            request = _get(server.url + "/v2/")
            request.headers["X-Evil"] = "a\r\nInjected: yes"
            with pytest.raises(httpx.LocalProtocolError):
                await pool.send(request)
            left = pool.connections()
            await pool.aclose()
            return left

    assert run(main()) == []


def test_a_body_that_runs_to_the_close_and_a_large_body_are_read_whole(
        run: Runner) -> None:
    big = bytes(range(256)) * 8192  # 2 MiB: past the unread-bytes bound, so reads pause
    until_close = b"HTTP/1.1 200 OK\r\n\r\n" + OK_BODY
    sized = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big

    async def main() -> tuple[tuple[int, bytes], tuple[int, bytes], list[str]]:
        async with Server(_answer(until_close, close=True)) as one, \
                Server(_answer(sized)) as two:
            pool = _pool()
            first = await _fetch(pool, _get(one.url + "/v2/"))
            response = await pool.send(_get(two.url + "/v2/"))
            parts = []
            async for part in response.stream:  # type: ignore[union-attr]
                parts.append(part)
                await asyncio.sleep(0)  # a slow reader
            await response.aclose()
            left = pool.connections()
            await pool.aclose()
            return first, (response.status_code, b"".join(parts)), left

    first, second, left = run(main())
    assert first == (200, OK_BODY) and second == (200, big)
    assert left == ["IDLE"]  # the sized answer's connection; the one read to its close is gone


@pytest.mark.parametrize(("value", "encoding"), [
    (b"sha256:abc", "ascii"), ("caf\u00e9".encode(), "utf-8"), (b"caf\xe9", "iso-8859-1"),
], ids=["ascii", "utf-8", "latin-1"])
def test_an_answers_headers_read_as_httpx_reads_them(run: Runner, value: bytes,
                                                      encoding: str) -> None:
    raw = b"HTTP/1.1 200 OK\r\nX-Digest: " + value + b"\r\ncontent-LENGTH: 12\r\n\r\n" + OK_BODY

    async def main() -> tuple[str, str, str, bytes, int]:
        async with Server(_answer(raw)) as server:
            pool = _pool()
            response = await pool.send(_get(server.url + "/v2/"))
            body = b"".join([part async for part in response.stream])  # type: ignore[union-attr]
            await response.aclose()
            again = await _fetch(pool, _get(server.url + "/v2/"))
            assert again == (200, OK_BODY)
            await pool.aclose()
            return (response.headers.encoding, response.headers["x-digest"],
                    httpx.Headers(response.headers.raw).get("X-Digest", ""), body,
                    server.accepted)

    got_encoding, seen, httpx_seen, body, accepted = run(main())
    assert got_encoding == encoding
    assert seen == httpx_seen == value.decode(encoding)
    assert body == OK_BODY and accepted == 1  # sized in any case: the connection reused


def test_a_name_that_only_contains_content_length_does_not_size_the_body(run: Runner) -> None:
    raw = b"HTTP/1.1 200 OK\r\nX-Content-Length: 3\r\n\r\n" + OK_BODY

    async def main() -> tuple[tuple[int, bytes], list[str]]:
        async with Server(_answer(raw, close=True)) as server:
            pool = _pool()
            got = await _fetch(pool, _get(server.url + "/v2/"))
            left = pool.connections()
            await pool.aclose()
            return got, left

    assert run(main()) == ((200, OK_BODY), [])  # read to the close, not reused


@pytest.mark.parametrize("raw", [
    OK + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",  # an answer nobody asked for
    OK + b"garbage",
], ids=["second-answer", "trailing-garbage"])
def test_bytes_after_a_complete_answer_close_its_connection(run: Runner,
                                                           raw: bytes) -> None:
    async def main() -> tuple[tuple[int, bytes], list[str], int]:
        async with Server(_answer(raw)) as server:
            pool = _pool()
            got = await _fetch(pool, _get(server.url + "/v2/"))
            await asyncio.sleep(0.05)
            again = await _fetch(pool, _get(server.url + "/v2/"))
            assert again == got
            left = pool.connections()
            await pool.aclose()
            return got, left, server.accepted

    got, left, accepted = run(main())
    assert got == (200, OK_BODY)
    assert accepted == 2 and left == []


def test_an_answer_that_switches_protocols_is_refused(run: Runner) -> None:
    raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"

    async def main() -> None:
        async with Server(_answer(raw)) as server:
            pool = _pool()
            with pytest.raises(httpx.RemoteProtocolError):
                await _fetch(pool, _get(server.url + "/v2/"))
            await pool.aclose()

    run(main())


def test_request_heads_are_checked_every_time_and_keep_no_credential() -> None:
    from imggate.registry import http1

    good = httpx.Request("GET", "http://r.test/v2/", headers={"Accept": "a/b"})
    assert b"Accept: a/b\r\n" in http1._head(good, b"")
    assert b"Accept: a/b\r\n" in http1._head(good, b"")  # the second time from what was kept
    for bad in ({"Accept": "a/b\r\nX-Injected: 1"}, {"Bad Name": "v"}):
        with pytest.raises(httpx.LocalProtocolError):
            http1._head(httpx.Request("GET", "http://r.test/v2/", headers=bad), b"")
        with pytest.raises(httpx.LocalProtocolError):  # refused again, not kept
            http1._head(httpx.Request("GET", "http://r.test/v2/", headers=bad), b"")
    token = httpx.Request("GET", "http://r.test/v2/",
                          headers={"Authorization": "Bearer kept-nowhere"})
    assert b"Authorization: Bearer kept-nowhere\r\n" in http1._head(token, b"")
    assert not any(b"kept-nowhere" in value for _, value in http1._CHECKED)
    assert not any(b"kept-nowhere" in block for block, _ in http1._BLOCKS.values())


def test_a_request_head_is_the_same_made_or_kept() -> None:
    from imggate.registry import http1

    def request(**headers: str) -> httpx.Request:
        return httpx.Request("GET", "http://r.test/v2/x", headers=headers)

    made = http1._head(request(Accept="a/b", **{"User-Agent": "u"}), b"")
    assert made == (b"GET /v2/x HTTP/1.1\r\nHost: r.test\r\nAccept: a/b\r\n"
                    b"User-Agent: u\r\n\r\n")
    assert http1._head(request(Accept="a/b", **{"User-Agent": "u"}), b"") == made
    # Kept by name and value in order: another value, or another order, is another block.
    assert b"Accept: c/d\r\n" in http1._head(request(Accept="c/d", **{"User-Agent": "u"}), b"")
    assert http1._head(request(**{"User-Agent": "u"}, Accept="a/b"), b"").index(b"User") < \
        http1._head(request(**{"User-Agent": "u"}, Accept="a/b"), b"").index(b"Accept")
    # A body's length is added unless the headers declare one, the block kept or not.
    post = httpx.Request("POST", "http://r.test/v2/x", headers={"Accept": "a/b"},
                         content=b"12345")
    assert http1._head(post, b"12345").count(b"Content-Length: 5\r\n") == 1
    assert http1._head(post, b"12345").count(b"Content-Length: 5\r\n") == 1
