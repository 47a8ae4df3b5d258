"""Authenticated callers: with ``--client-ca`` only a caller holding a client certificate
from that CA is answered; anyone else is refused in the TLS handshake, before a byte of
its request is read. Without it, the startup log says so once."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from admission.serve_harness import ServeProcess, make_tls, pod, review, start_serve
from siege.harness import client_cert, foreign_client_cert

#: Each test is bounded (the siege suite stays under 3 minutes).
pytestmark = pytest.mark.timeout(60)

UNAUTHENTICATED = "callers not authenticated"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, Path]]:
    work = tmp_path_factory.mktemp("callers")
    tls = make_tls(work / "tls")
    harness = client_cert(tls, work / "harness", "harness")
    server = start_serve(work, ["--env", "dev", "--client-ca", str(tls.ca)], tls=tls,
                         client_cert=(harness.cert, harness.key))
    yield server, work
    server.stop()


def _post(server: ServeProcess, ctx: object, body: dict[str, object]) -> httpx.Response:
    with httpx.Client(base_url=server.url, verify=ctx, timeout=10) as c:  # type: ignore[arg-type]
        return c.post("/validate", json=body)


def test_a_caller_without_the_api_servers_certificate_is_refused_before_its_body(
        guarded: tuple[ServeProcess, Path]) -> None:
    server, work = guarded
    body = review(pod(["registry.example.com/app@sha256:" + "0" * 64]), uid="stranger")
    anonymous = ssl.create_default_context(cafile=str(server.tls.ca))
    # A certificate with the right name from another CA: the handshake fails.
    with pytest.raises(httpx.TransportError):
        _post(server, foreign_client_cert(work / "x").context(server.tls.ca), body)
    # No certificate: refused as soon as the headers are in, on both webhook paths.
    for path in ("/validate", "/mutate"):
        with httpx.Client(base_url=server.url, verify=anonymous, timeout=10) as c:
            refused = c.post(path, json=body)
        assert refused.status_code == 403
        assert "client certificate" in refused.json()["error"]
    # ... before its body: one that declares 8 MB and sends none is answered at once.
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port)) as raw, \
            anonymous.wrap_socket(raw, server_hostname="localhost") as tls_sock:
        tls_sock.sendall(b"POST /validate HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 8000000\r\n\r\n")
        answer = tls_sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 403") and time.monotonic() - start < 2
    # The kubelet's probes have no certificate either, and get in.
    with httpx.Client(base_url=server.url, verify=anonymous, timeout=10) as c:
        assert c.get("/healthz").status_code == 200
    trusted = client_cert(server.tls, work / "apiserver")
    answer_ok = _post(server, trusted.context(server.tls.ca), review(
        pod(["registry.example.com/app@sha256:" + "0" * 64]), uid="apiserver"))
    assert answer_ok.status_code == 200 and answer_ok.json()["response"]["uid"] == "apiserver"
    # Only the API server's review reached imggate: nothing of the strangers' was read.
    log = server.log_text()
    uids = [json.loads(line).get("uid") for line in log.splitlines()
            if line.startswith("{") and '"decision"' in line]
    assert uids == ["apiserver"]
    assert UNAUTHENTICATED not in log


def test_without_client_ca_the_log_says_callers_are_not_authenticated_once(
        tmp_path: Path) -> None:
    server = start_serve(tmp_path, ["--env", "dev"])
    try:
        with server.client() as c:
            assert c.get("/healthz").status_code == 200
        lines = [line for line in server.log_lines() if UNAUTHENTICATED in line]
        assert len(lines) == 1 and "WARNING" in lines[0]
    finally:
        server.stop()


def test_a_client_ca_that_is_not_a_ca_bundle_is_a_configuration_error(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(RuntimeError, match="--client-ca"):
        start_serve(tmp_path, ["--env", "dev", "--client-ca", str(bad)], timeout=10)
