"""Real components for the webhook tests: TLS certificates, ``imggate serve`` processes, Redis.

- :func:`make_tls` - a CA and a server certificate for 127.0.0.1/localhost (cryptography).
- :func:`start_serve` -> :class:`ServeProcess` - ``python -m imggate serve`` over real TLS
  on a free loopback port, waited for on ``/healthz``.
- :func:`start_redis` -> :class:`RedisServer` - a real ``redis-server`` on loopback.
- :func:`review` - an AdmissionReview around a workload object.

Used by the tests and by ``bench/admission_bench.py``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from registry_harness import MissingComponentError, free_port, stop_process

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass(frozen=True)
class Tls:
    """A CA certificate and a server certificate/key it signed."""

    ca: Path
    cert: Path
    key: Path
    serial: int


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_tls(directory: Path, *, ca_key: ec.EllipticCurvePrivateKey | None = None,
             ca_cert: x509.Certificate | None = None, prefix: str = "server") -> Tls:
    """A CA (new unless given) and a server certificate for 127.0.0.1 and localhost."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    if ca_key is None or ca_cert is None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = (x509.CertificateBuilder().subject_name(_name("imggate test CA"))
                   .issuer_name(_name("imggate test CA")).public_key(ca_key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                   .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()
    cert = (x509.CertificateBuilder().subject_name(_name("imggate.imggate.svc"))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                False)
            .sign(ca_key, hashes.SHA256()))
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path, key_path = directory / f"{prefix}.crt", directory / f"{prefix}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    # Keep the CA for rotation (a new leaf from the same CA).
    (directory / "ca.key").write_bytes(ca_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return Tls(ca_path, cert_path, key_path, serial)


def rotate_tls(tls: Tls, directory: Path) -> Tls:
    """A new server certificate from the same CA, written into temporary files (not in place)."""
    ca_key = serialization.load_pem_private_key((tls.ca.parent / "ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(tls.ca.read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    return make_tls(directory, ca_key=ca_key, ca_cert=ca_cert, prefix="rotated")


@dataclass
class ServeProcess:
    """A running ``imggate serve``."""

    process: subprocess.Popen[bytes]
    port: int
    tls: Tls
    log_path: Path
    #: (certificate, key) the harness presents to a server run with --client-ca.
    client_cert: tuple[Path, Path] | None = None

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``."""
        return f"https://127.0.0.1:{self.port}"

    def client(self, timeout: float = 30, **kw: Any) -> httpx.Client:
        """An httpx client that trusts the server's CA."""
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), timeout=timeout,
                            **kw)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting the server's CA (and presenting :attr:`client_cert`)."""
        ctx = ssl.create_default_context(cafile=str(self.tls.ca))
        if self.client_cert is not None:
            ctx.load_cert_chain(str(self.client_cert[0]), str(self.client_cert[1]))
        return ctx

    def settle(self) -> None:
        """Make sure every review answered so far is in the log.

        The server writes the review lines of one event-loop iteration at its end
        (``admission.reviewlog``): once a later request is answered, they are written.
        """
        if self.process.poll() is None:
            with contextlib.suppress(httpx.HTTPError), self.client(timeout=5) as c:
                c.get("/healthz")

    def log_text(self) -> str:
        """Everything the server wrote so far (every review answered so far included)."""
        self.settle()
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> list[str]:
        """:meth:`log_text`, as lines."""
        return self.log_text().splitlines()

    def reviews(self) -> list[dict[str, Any]]:
        """The JSON review log lines so far."""
        out = []
        for line in self.log_lines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict) and "decision" in doc:
                    out.append(doc)
        return out

    def stop(self) -> None:
        """SIGTERM, then wait (SIGKILL when it does not stop)."""
        stop_process(self.process)


def start_serve(workdir: Path, args: Sequence[str] = (), *, tls: Tls | None = None,
                env: Mapping[str, str] | None = None, timeout: float = 20.0,
                client_cert: tuple[Path, Path] | None = None,
                new_session: bool = False) -> ServeProcess:
    """Start ``python -m imggate serve`` with ``args`` over TLS; wait until it answers
    (presenting ``client_cert`` when given: for a server run with ``--client-ca``). With
    ``new_session``, in a session of its own (the benchmarks give it a scheduling
    priority of its own that way, ``bench/admission_bench.py``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    tls = tls or make_tls(workdir / "tls")
    last = ""
    for _attempt in range(3):
        port = free_port()
        log_path = workdir / f"serve-{port}.log"
        # Whether the tests themselves run in a pod (a CI runner on Kubernetes) must not
        # turn on reading pull secrets from that cluster: only a test that asks for it.
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        full_env.update({"PYTHONPATH": str(SRC), **(env or {})})
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "imggate", "serve", "--host", "127.0.0.1",
                 "--port", str(port), "--tls-cert", str(tls.cert), "--tls-key", str(tls.key),
                 *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=full_env, start_new_session=new_session)
        server = ServeProcess(proc, port, tls, log_path, client_cert)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                with server.client() as c:
                    if c.get("/healthz").status_code == 200:
                        return server
            except httpx.HTTPError:
                time.sleep(0.05)
        last = log_path.read_text(errors="replace")[-3000:]
        server.stop()
        if "address already in use" not in last.lower():
            break
    raise RuntimeError(f"imggate serve did not start:\n{last}")


@dataclass
class RedisServer:
    """A running ``redis-server`` on loopback, without persistence."""

    process: subprocess.Popen[bytes]
    port: int
    password: str | None = None
    tls: Tls | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0`` (``rediss://:PASSWORD@…?ssl_ca_certs=CA`` with TLS
        and a password)."""
        auth = f":{self.password}@" if self.password else ""
        if self.tls is None:
            return f"redis://{auth}127.0.0.1:{self.port}/0"
        return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls.ca}"

    def stop(self) -> None:
        """Terminate and wait."""
        stop_process(self.process)


def start_redis(workdir: Path, port: int | None = None, *, password: str | None = None,
                tls: Tls | None = None) -> RedisServer:
    """Start ``redis-server`` (raises :class:`MissingComponentError` when not installed);
    with ``password`` it requires AUTH, with ``tls`` it speaks TLS only."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise MissingComponentError("missing redis-server: apt-get install -y redis-server")
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(workdir)]
    if password:
        args += ["--requirepass", password]
    if tls is not None:
        args[1:3] = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls.cert),
                     "--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.ca),
                     "--tls-auth-clients", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import socket

    hello = (f"AUTH {password}\r\n" if password else "").encode() + b"PING\r\n"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as raw:
                s = ssl.create_default_context(cafile=str(tls.ca)).wrap_socket(
                    raw, server_hostname="127.0.0.1") if tls is not None else raw
                s.sendall(hello)
                time.sleep(0.05)
                if b"+PONG" in s.recv(64):
                    return RedisServer(proc, port, password, tls)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not answer PING")


def pod(images: Sequence[str], *, name: str = "app", namespace: str = "default",
        init: Sequence[str] = ()) -> dict[str, Any]:
    """A v1 Pod with one container per image (and init containers)."""
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": im}
                                           for i, im in enumerate(images)]}
    if init:
        spec["initContainers"] = [{"name": f"i{i}", "image": im} for i, im in enumerate(init)]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def review(obj: Mapping[str, Any] | None, *, namespace: str = "default",
           api_version: str = "admission.k8s.io/v1", operation: str = "CREATE",
           dry_run: bool = False, uid: str | None = None, sub_resource: str | None = None
           ) -> dict[str, Any]:
    """An AdmissionReview request for ``obj`` as the API server sends it."""
    kind = obj.get("kind", "Pod") if obj else "Pod"
    group, _, version = (obj.get("apiVersion", "v1") if obj else "v1").rpartition("/")
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
        "namespace": namespace, "name": (obj or {}).get("metadata", {}).get("name", ""),
        "operation": operation, "userInfo": {"username": "tester"},
        "object": obj, "oldObject": None, "dryRun": dry_run,
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": request}
