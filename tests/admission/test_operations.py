"""Running the webhook: rules reload, TLS rotation, a hanging registry, Redis shared by replicas."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from admission.conftest import Images, rules_text
from admission.serve_harness import (
    RedisServer,
    ServeProcess,
    make_tls,
    pod,
    review,
    rotate_tls,
    start_serve,
)
from harness_credentials import write_docker_config
from imggate.admission.runner import protocol_class, set_nodelay
from registry_harness import silent_port
from signatures.cosign_format_signer import CosignFormatSigner


def ask(server: ServeProcess, doc: dict[str, Any], path: str = "/validate") -> dict[str, Any]:
    with server.client() as c:
        r = c.post(path, json=doc)
    assert r.status_code == 200, r.text
    response: dict[str, Any] = r.json()["response"]
    return response


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def served_serial(server: ServeProcess) -> int:
    ctx = ssl.create_default_context(cafile=str(server.tls.ca))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_nodelay_is_set_on_accepted_tcp_connections() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        with client, accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0

            class Transport:
                def get_extra_info(self, name: str) -> object:
                    return accepted if name == "socket" else None

            set_nodelay(Transport())
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    assert "connection_made" in protocol_class().__dict__


@pytest.fixture
def reloading(tmp_path: Path, images: Images, webhook_key: tuple[CosignFormatSigner, Path]
              ) -> Iterator[tuple[ServeProcess, Path]]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_text(images.registry.host, webhook_key[1]))
    server = start_serve(tmp_path, ["--rules", str(rules), "--insecure-ignore-tlog"])
    yield server, rules
    server.stop()


def test_rules_reload_on_change_and_sighup_keeping_old_rules_when_broken(
        reloading: tuple[ServeProcess, Path], images: Images) -> None:
    server, rules = reloading
    ref = images.ref("adm/unsigned")
    doc = lambda: review(pod([ref]), namespace="dev-a")  # noqa: E731
    assert ask(server, doc())["allowed"] is True  # dev needs no signature
    # A change to the file: dev now allows only another registry.
    data = json.loads(rules.read_text())
    data["environments"]["dev"]["registries"] = {"allowed": ["registry.example.com"]}
    rules.write_text(json.dumps(data))
    wait_for(lambda: ask(server, doc())["allowed"] is False)
    # A broken file keeps the rules in use, and says why.
    rules.write_text("environments: [this is: not valid")
    time.sleep(2.5)
    assert ask(server, doc())["allowed"] is False
    with server.client() as c:
        ready = c.get("/readyz").json()
    assert ready["ready"] is True and ready["rules_error"]
    assert any("keeping the rules in use" in line for line in server.log_lines())
    # Fixed again, and reloaded by SIGHUP as well.
    del data["environments"]["dev"]["registries"]
    rules.write_text(json.dumps(data))
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: ask(server, doc())["allowed"] is True)
    assert any("SIGHUP" in line for line in server.log_lines())


def test_tls_certificate_rotated_while_serving(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    server = start_serve(tmp_path, ["--env", "dev"], tls=tls)
    try:
        assert served_serial(server) == tls.serial
        with server.client() as c:  # a connection kept open across the rotation
            assert c.get("/healthz").status_code == 200
            new = rotate_tls(tls, tmp_path / "tls")
            # As a Secret volume does: new files swapped in, not rewritten in place.
            os.replace(new.cert, tls.cert)
            os.replace(new.key, tls.key)
            wait_for(lambda: served_serial(server) == new.serial)
            assert c.get("/healthz").status_code == 200
        # A broken pair is refused; the rotated certificate stays in use.
        tls.key.write_text("not a key")
        time.sleep(2.5)
        assert served_serial(server) == new.serial
        assert any("keeping the one in use" in line for line in server.log_lines())
    finally:
        server.stop()


@pytest.fixture
def hanging_registry() -> Iterator[str]:
    """A TCP server that accepts and never answers (a registry that hangs)."""
    with silent_port() as host:
        yield host


def test_hanging_registry_is_a_denial_within_the_deadline(tmp_path: Path,
                                                          hanging_registry: str) -> None:
    server = start_serve(tmp_path, ["--env", "dev", "--deadline", "1.5", "--timeout", "30"])
    try:
        doc = review(pod([f"{hanging_registry}/team/app:v1"]), namespace="anything")
        started = time.monotonic()
        r = ask(server, doc)
        took = time.monotonic() - started
        assert r["allowed"] is False
        assert "timed out after 1.5s" in r["status"]["message"], r
        assert f"{hanging_registry}/team/app:v1" in r["status"]["message"]
        assert took < 3.0, took
        with server.client() as c:
            assert "imggate_admission_deadline_exceeded_total 1.0" in c.get("/metrics").text
    finally:
        server.stop()


def test_two_replicas_share_verdicts_through_redis_and_survive_it_going_down(
        tmp_path: Path, images: Images, redis_server: RedisServer,
        webhook_key: tuple[CosignFormatSigner, Path]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(rules_text(images.registry.host, webhook_key[1]))
    keys = tmp_path / "cache-keys"
    keys.write_text(secrets.token_hex(32) + "\n")
    args = ["--rules", str(rules), "--insecure-ignore-tlog", "--cache", redis_server.url,
            "--cache-key-file", str(keys)]
    one = start_serve(tmp_path / "one", args)
    two = start_serve(tmp_path / "two", args, tls=one.tls)
    try:
        for server in (one, two):
            wait_for(lambda s=server: s.client().get("/readyz").json()["ready"] is True)
        ref = images.ref("adm/shared")
        first = review(pod([ref]), namespace="prod-shared")
        assert ask(one, first)["allowed"] is True
        second = review(pod([ref]), namespace="prod-shared")
        assert ask(two, second)["allowed"] is True
        line = next(x for x in two.reviews() if x.get("uid") == second["request"]["uid"])
        assert line["cache"] == "redis", line
        redis_server.stop()
        # Redis gone: replica two answers from its local copy, and says Redis is down.
        third = review(pod([ref]), namespace="prod-shared")
        assert ask(two, third)["allowed"] is True
        wait_for(lambda: "down" in two.client().get("/readyz").json().get("redis", ""))
        with two.client() as c:
            assert c.get("/readyz").status_code == 200
            assert "imggate_admission_redis_up 0.0" in c.get("/metrics").text
        # A review that needs the registry still works without Redis.
        unsigned = review(pod([images.ref("adm/unsigned")]), namespace="prod-shared")
        assert ask(two, unsigned)["allowed"] is False
    finally:
        one.stop()
        two.stop()


def test_concurrent_reviews_of_one_digest_share_one_resolution(tmp_path: Path,
                                                               images: Images) -> None:
    server = start_serve(tmp_path, ["--env", "dev"])
    try:
        ref = images.ref("adm/burst")
        docs = [review(pod([ref], name=f"p{i}"), namespace="anything") for i in range(16)]

        def send(doc: dict[str, Any], out: list[bool]) -> None:
            with httpx.Client(base_url=server.url, verify=server.ssl_context()) as c:
                out.append(c.post("/validate", json=doc).json()["response"]["allowed"])

        results: list[bool] = []
        threads = [threading.Thread(target=send, args=(d, results)) for d in docs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [True] * 16
        with server.client() as c:
            text = c.get("/metrics").text
        ops = [line for line in text.splitlines()
               if line.startswith("imggate_admission_registry_operations_total")]
        # One tag lookup and one evaluation (with its own resolve), whatever the concurrency.
        assert ops == ['imggate_admission_registry_operations_total{operation="resolve"} 2.0'], ops
    finally:
        server.stop()


def test_registry_auth_file_in_dockerconfigjson_form(tmp_path: Path, basic_image: Any) -> None:
    registry = basic_image.registry
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    # A kubernetes.io/dockerconfigjson Secret mounts its data as the file .dockerconfigjson.
    auth = write_docker_config(secret_dir, registry.host, registry.username, registry.password)
    mounted = auth.rename(secret_dir / ".dockerconfigjson")
    ref = registry.ref("team/app", "v1")
    doc = lambda: review(pod([ref]), namespace="anything")  # noqa: E731
    without = start_serve(tmp_path / "without", ["--env", "dev"])
    try:
        r = ask(without, doc())
        assert r["allowed"] is False and "401" in r["status"]["message"]
    finally:
        without.stop()
    server = start_serve(tmp_path / "with", ["--env", "dev", "--registry-auth-file",
                                             str(mounted)])
    try:
        r = ask(server, doc())
        assert r["allowed"] is True, r
        assert json.loads(r["auditAnnotations"]["images"])[0]["digest"] == basic_image.digest
        with server.client() as c:
            c.get("/metrics")
        assert registry.password not in server.log_text()
    finally:
        server.stop()
