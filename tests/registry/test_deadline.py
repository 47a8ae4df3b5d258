"""Deadlines, retries that fit in them, bodies bounded while streaming, and transport faults
turned into imggate errors (via httpx.MockTransport; real sockets are in tests/faults)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from imggate.errors import AuthError, RegistryError
from imggate.models import Digest
from imggate.redact import SECRETS
from imggate.registry.client import RegistryClient
from imggate.registry.credentials import Credentials, CredentialStore
from imggate.registry.deadline import Deadline, current, cutoff
from imggate.registry.options import RegistryOptions

REG = "reg.example.com"
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": []}).encode()
MDIGEST = Digest.of(MANIFEST)



def manifest_response() -> httpx.Response:
    return httpx.Response(200, content=MANIFEST, headers={"Docker-Content-Digest": str(MDIGEST)})


CHALLENGE = {"WWW-Authenticate": 'Bearer realm="https://auth.example.com/jwt",service="reg"'}


def run(handler: Callable[[httpx.Request], httpx.Response], coro_fn: Callable[..., object], *,
        deadline: float | None = None, retries: int = 3, timeout: float = 30.0,
        creds: Credentials | None = None) -> object:
    store = CredentialStore(explicit=creds, explicit_hosts=frozenset({REG}), environ={})
    opts = RegistryOptions(credentials=store, retries=retries, backoff=0.01, timeout=timeout,
                           min_rate=1024)

    async def main() -> object:
        limit = Deadline.after(deadline) if deadline else None
        async with RegistryClient(opts, transport=httpx.MockTransport(handler),
                                  deadline=limit) as c:
            return await coro_fn(c.repository(REG, "team/app"))  # type: ignore[misc]

    return asyncio.run(main())


def test_deadline_values() -> None:
    d = Deadline.after(10)
    assert 9 < d.remaining() <= 10 and not d.expired and d.cap(3) == 3
    assert "10 s deadline" in d.describe()
    for bad in (0, -1, math.nan):
        with pytest.raises(ValueError, match="positive"):
            Deadline.after(bad)
    assert current() == Deadline.never()
    with d.applied():
        assert current() is d
    assert current(d) is d


def _outcome_of(timeout: Callable[[float], object], seconds: float, work: float,
                cancel_after: float | None) -> tuple[str, int]:
    """How a block that takes ``work`` seconds ends under ``timeout(seconds)``, the task
    cancelled from outside after ``cancel_after`` seconds (``None``: never); and the
    task's pending cancellations afterwards."""

    async def block() -> tuple[str, int]:
        task = asyncio.current_task()
        assert task is not None
        try:
            cm = timeout(seconds)
            if isinstance(cm, cutoff):
                with cm:
                    await asyncio.sleep(work)
            else:
                async with cm:  # type: ignore[attr-defined]
                    await asyncio.sleep(work)
            outcome = "done"
        except TimeoutError:
            outcome = "timeout"
        except asyncio.CancelledError:
            outcome = "cancelled"
        return outcome, task.cancelling()

    async def main() -> tuple[str, int]:
        task = asyncio.ensure_future(block())
        if cancel_after is not None:
            asyncio.get_running_loop().call_later(cancel_after, task.cancel)
        return await task

    return asyncio.run(main())


@pytest.mark.parametrize(("seconds", "work", "cancel_after"), [
    (1.0, 0.0, None),     # done in time
    (0.02, 1.0, None),    # cut off
    (0.0, 1.0, None),     # nothing left: cut off at once
    (1.0, 1.0, 0.02),     # cancelled from outside first: stays a cancellation
    (0.02, 1.0, 0.02),    # both at once (either order): what asyncio.timeout does
])
def test_cutoff_ends_a_block_as_asyncio_timeout_does(seconds: float, work: float,
                                                     cancel_after: float | None) -> None:
    ours = _outcome_of(cutoff, seconds, work, cancel_after)
    assert ours == _outcome_of(asyncio.timeout, seconds, work, cancel_after)
    expected = {(1.0, 0.0): "done", (0.02, 1.0): "timeout", (0.0, 1.0): "timeout"}
    if cancel_after is None:
        assert ours == (expected[seconds, work], 0)


@pytest.mark.parametrize("value", ["soon", "Mon, 99 Foo 2026 25:61:61 GMT", "nan", "", "-5"])
def test_unusable_retry_after_backs_off_normally(value: str) -> None:
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        if len(calls) == 1:
            return httpx.Response(503, headers={"Retry-After": value})
        return manifest_response()

    assert run(handler, lambda r: r.resolve("v1")).digest == MDIGEST  # type: ignore[attr-defined]
    assert len(calls) == 2


@pytest.mark.parametrize("value", ["999999", "Fri, 31 Dec 2099 23:59:59 GMT"])
def test_retry_after_beyond_the_deadline_fails_at_once(value: str) -> None:
    start = time.monotonic()
    with pytest.raises(RegistryError, match="no time left to retry within the 3 s deadline"):
        run(lambda req: httpx.Response(429, headers={"Retry-After": value}),
            lambda r: r.resolve("v1"), deadline=3)
    assert time.monotonic() - start < 1.5


def test_retries_stop_at_the_deadline() -> None:
    async def slow(req: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.4)
        raise httpx.ConnectError("refused")

    start = time.monotonic()
    with pytest.raises(RegistryError, match="deadline"):
        run(slow, lambda r: r.resolve("v1"), deadline=1, retries=50)  # type: ignore[arg-type]
    assert time.monotonic() - start < 1.6


def test_a_read_error_mid_body_is_retried() -> None:
    calls = []

    async def broken() -> AsyncIterator[bytes]:
        yield MANIFEST[:10]
        raise httpx.ReadError("")

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        if len(calls) == 1:
            return httpx.Response(200, content=broken(), headers={
                "Docker-Content-Digest": str(MDIGEST)})
        return manifest_response()

    assert run(handler, lambda r: r.resolve("v1")).digest == MDIGEST  # type: ignore[attr-defined]
    assert len(calls) == 2


def test_a_body_cut_short_every_time_is_an_error_naming_the_kind() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"{"
        raise httpx.RemoteProtocolError("peer closed connection")

    with pytest.raises(RegistryError) as caught:
        run(lambda req: httpx.Response(200, content=broken()), lambda r: r.resolve("v1"),
            retries=1)
    assert ("reading the response failed (the answer is not valid HTTP or the connection "
            "closed before it was complete)") in caught.value.message


def test_a_slow_body_is_cut_off_by_the_request_budget() -> None:
    async def drip() -> AsyncIterator[bytes]:
        for _ in range(100):
            await asyncio.sleep(0.2)
            yield b" "

    start = time.monotonic()
    with pytest.raises(RegistryError, match="too slowly"):
        run(lambda req: httpx.Response(200, content=drip()), lambda r: r.resolve("v1"),
            retries=0, timeout=0.5)
    assert time.monotonic() - start < 2


class _ReadyStream(httpx.AsyncByteStream):
    """A body whose parts are all there: it says so (as imggate's HTTP/1.1 bodies do)."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts

    def ready(self) -> bool:
        return True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part


def test_a_body_that_is_there_is_still_capped_and_bounded_by_its_budget() -> None:
    from imggate.registry.bounded import BodyTooLarge, BoundedStream
    from imggate.registry.deadline import DeadlineExceeded, RequestBudget

    async def read(stream: BoundedStream) -> bytes:
        return b"".join([part async for part in stream])

    budget = RequestBudget(Deadline.never(), 30.0, 1024)
    assert asyncio.run(read(BoundedStream(_ReadyStream([b"ab", b"cd"]), budget, 4))) == b"abcd"
    with pytest.raises(BodyTooLarge):
        asyncio.run(read(BoundedStream(_ReadyStream([b"ab", b"cde"]), budget, 4)))
    spent = RequestBudget(Deadline.after(0.01), 30.0, 1024)
    time.sleep(0.02)
    with pytest.raises(DeadlineExceeded):
        asyncio.run(read(BoundedStream(_ReadyStream([b"ab"]), spent, 4)))


class _Arrived(_ReadyStream):
    """A body that has all arrived, and says so."""

    def take_complete(self) -> bytes | None:
        data, self.parts = b"".join(self.parts), []
        return data


def test_a_body_taken_whole_is_still_capped_and_bounded_by_its_budget() -> None:
    from imggate.registry.bounded import BodyTooLarge, BoundedStream
    from imggate.registry.deadline import RequestBudget

    budget = RequestBudget(Deadline.never(), 30.0, 1024)
    assert BoundedStream(_Arrived([b"ab", b"cd"]), budget, 4).take_complete() == b"abcd"
    assert BoundedStream(_ReadyStream([b"ab"]), budget, 4).take_complete() is None
    with pytest.raises(BodyTooLarge):
        BoundedStream(_Arrived([b"ab", b"cde"]), RequestBudget(Deadline.never(), 30.0, 1024),
                      4).take_complete()
    spent = RequestBudget(Deadline.after(0.01), 30.0, 1024)
    time.sleep(0.02)
    # Left to the iteration, which says the deadline passed.
    assert BoundedStream(_Arrived([b"ab"]), spent, 4).take_complete() is None


def test_a_redirect_loop_is_an_error() -> None:
    with pytest.raises(RegistryError, match="redirect loop"):
        run(lambda req: httpx.Response(302, headers={"Location": req.url.path}),
            lambda r: r.resolve("v1"))


def test_a_downgrading_redirect_is_refused_without_retrying() -> None:
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        return httpx.Response(307, headers={"Location": "http://reg.example.com/x"})

    with pytest.raises(RegistryError, match="refusing redirect from https to http"):
        run(handler, lambda r: r.resolve("v1"))
    assert len(calls) == 1


@pytest.mark.parametrize("token", ["t\u00f6ken-non-ascii", "tok-abc\r\nX-Evil: 1", "tok en"])
def test_tokens_that_cannot_be_a_header_are_refused_and_never_shown(token: str) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "auth.example.com":
            return httpx.Response(200, json={"token": token})
        return httpx.Response(401, headers=CHALLENGE)

    try:
        with pytest.raises(AuthError, match="cannot be sent in an HTTP header") as e:
            run(handler, lambda r: r.resolve("v1"), creds=Credentials("ci", "pw-123456", False,
                                                                       "t"))
        assert token not in e.value.message and "tok-abc" not in e.value.message
    finally:
        SECRETS.clear()


def test_a_huge_chunked_token_response_is_capped_while_streaming() -> None:
    sent = []

    async def endless() -> AsyncIterator[bytes]:
        yield b'{"token": "'
        for _ in range(10_000):
            sent.append(1)
            yield b"a" * 65536

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "auth.example.com":
            return httpx.Response(200, content=endless())
        return httpx.Response(401, headers=CHALLENGE)

    with pytest.raises(AuthError, match="too large"):
        run(handler, lambda r: r.resolve("v1"))
    assert len(sent) <= 20  # stopped at 1 MiB, not read to the end (655 MB)


def test_a_huge_error_body_is_not_read_whole() -> None:
    sent = []

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(10_000):
            sent.append(1)
            yield json.dumps({"errors": []}).encode() * 4096

    with pytest.raises(RegistryError, match="HTTP 500"):
        run(lambda req: httpx.Response(500, content=endless()), lambda r: r.resolve("v1"))
    assert len(sent) <= 20


def test_the_tls_probe_of_a_plain_http_registry_ends_by_the_deadline() -> None:
    """A loopback (or --insecure-registry) host is probed for TLS first; a host that accepts
    and never answers must not hold the caller past its deadline, and a probe the deadline
    cut short decides nothing: the next caller, with time, probes again."""
    import socket

    from imggate.registry.reference import parse_reference
    from imggate.registry.resolve import open_repository, resolve_image

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    ref = parse_reference(f"127.0.0.1:{listener.getsockname()[1]}/silent/app:1")

    async def go() -> tuple[float, str, bool]:
        async with RegistryClient(RegistryOptions(timeout=30.0)) as client:
            started = time.monotonic()
            with Deadline.after(0.5).applied(), pytest.raises(RegistryError) as e:
                await resolve_image(open_repository(ref, client), ref)
            return time.monotonic() - started, e.value.message, ref.registry in client._schemes

    try:
        took, message, remembered = asyncio.run(go())
    finally:
        listener.close()
    assert took < 1.5, took
    assert "deadline passed" in message
    assert not remembered
