"""Failures on the wire in imggate's words: the kind of failure and the operating
system's reason, never httpx's or the OS's wording (which may quote what a server sent)."""

from __future__ import annotations

import asyncio
import socket
import ssl

import httpx
import pytest

from imggate.errors import RegistryError
from imggate.registry.client import RegistryClient
from imggate.registry.deadline import DeadlineExceeded
from imggate.registry.options import RegistryOptions
from imggate.registry.wire import wire_failure
from registry_harness import free_port


def _caused(e: BaseException, cause: BaseException) -> BaseException:
    e.__cause__ = cause
    return e


@pytest.mark.parametrize(("failure", "said"), [
    (_caused(httpx.ConnectError("[Errno 111] Connection refused"),
             ConnectionRefusedError(111, "Connection refused")),
     "could not connect: connection refused"),
    (_caused(httpx.ConnectError("[Errno -2] Name or service not known"),
             socket.gaierror(-2, "Name or service not known")),
     "could not connect: host name not found"),
    (_caused(httpx.ConnectError("x"), OSError(113, "No route to host")),
     "could not connect: host unreachable"),
    (_caused(httpx.ConnectError("x"), ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER]")),
     "could not connect: TLS handshake failed"),
    (_caused(httpx.ReadError("peer said \x1b[31mhi"), ConnectionResetError(104, "reset")),
     "the connection broke while reading the answer: connection reset"),
    (httpx.ReadTimeout("timed out"), "no answer within the time allowed"),
    (httpx.ConnectTimeout(""), "no connection within the time allowed"),
    (httpx.RemoteProtocolError("illegal header line: b'\\xff evil'"),
     "the answer is not valid HTTP or the connection closed before it was complete"),
    (httpx.DecodingError("Error -3 while decompressing data"),
     "the body could not be decoded as its Content-Encoding says"),
    (DeadlineExceeded("the review's deadline (8s) passed"),
     "the review's deadline (8s) passed"),
    (ValueError("internal text"), "ValueError"),
], ids=["refused", "no-host", "unreachable", "tls", "reset", "read-timeout",
        "connect-timeout", "protocol", "decoding", "deadline", "other"])
def test_each_failure_is_named_in_imggates_words(failure: BaseException, said: str) -> None:
    assert wire_failure(failure) == said


def test_a_refused_connection_is_said_so_through_the_whole_client() -> None:
    # A loopback port nobody listens on: the real socket's refusal, through httpcore,
    # AnyIO and imggate's pool.
    host = f"127.0.0.1:{free_port()}"

    async def go() -> RegistryError:
        options = RegistryOptions(retries=0, insecure_registries=frozenset({host}))
        async with RegistryClient(options) as client:
            with pytest.raises(RegistryError) as caught:
                await client.repository(host, "team/app").resolve("v1")
        return caught.value

    error = asyncio.run(go())
    assert "cannot reach registry (could not connect: connection refused)" in error.message
