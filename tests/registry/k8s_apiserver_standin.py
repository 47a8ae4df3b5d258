"""A STAND-IN for kube-apiserver (no apiserver binary runs here): real objects, real TLS, a token.

It answers what imggate's webhook asks the API server for pull secrets:
``GET /api/v1/namespaces/{ns}/secrets/{name}`` and
``GET /api/v1/namespaces/{ns}/serviceaccounts/{name}``, with the objects it was
given (real Secret / ServiceAccount JSON from tests/fixtures/k8s), over HTTPS
with a certificate from its own CA, and only for ``Authorization: Bearer
<token>`` (401 otherwise), as an in-cluster client expects. Errors are
``v1.Status`` objects, as the API server sends them. ``forbidden`` names
objects it answers 403 for (RBAC missing), ``slow`` those it answers only after
that many seconds (an overloaded API server). :meth:`service_account_dir`
writes what the kubelet mounts into a pod (token, namespace, ca.crt).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_KINDS = {"secrets": "Secret", "serviceaccounts": "ServiceAccount"}


def _cert(subject: str, issuer_key: ec.EllipticCurvePrivateKey | None,
          issuer: x509.Name | None, *, ca: bool) -> tuple[ec.EllipticCurvePrivateKey,
                                                          x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(hours=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return key, builder.sign(issuer_key or key, hashes.SHA256())


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class KubeApiStandIn:
    """The stand-in API server on 127.0.0.1 (see the module docstring)."""

    def __init__(self, workdir: Path, objects: list[dict[str, Any]]) -> None:
        self.token = secrets.token_urlsafe(32)
        self.objects = {(_plural(o), o["metadata"].get("namespace", "default"),
                         o["metadata"]["name"]): o for o in objects}
        self.forbidden: set[tuple[str, str, str]] = set()
        self.slow: dict[tuple[str, str, str], float] = {}
        self.requests: list[str] = []
        workdir.mkdir(parents=True, exist_ok=True)
        ca_key, ca = _cert("standin-ca", None, None, ca=True)
        key, cert = _cert("kube-apiserver-standin", ca_key, ca.subject, ca=False)
        self.ca_pem = ca.public_bytes(serialization.Encoding.PEM)
        (workdir / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (workdir / "server.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(workdir / "server.pem", workdir / "server.key")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                standin.requests.append(self.path)
                code, body = standin.answer(self.path, self.headers.get("Authorization"))
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        """What kube-apiserver answers for ``GET path``."""
        if authorization != f"Bearer {self.token}":
            return 401, _status(401, "Unauthorized", "Unauthorized")
        parts = path.split("?")[0].strip("/").split("/")
        if len(parts) != 6 or parts[:3] != ["api", "v1", "namespaces"] or parts[4] not in _KINDS:
            return 404, _status(404, "NotFound", "the server could not find the requested "
                                                 "resource")
        key = (parts[4], parts[3], parts[5])
        if key in self.slow:
            time.sleep(self.slow[key])
        if key in self.forbidden:
            return 403, _status(403, "Forbidden", f'{parts[4]} "{parts[5]}" is forbidden: '
                                                  "User \"system:serviceaccount:imggate:"
                                                  f"imggate\" cannot get resource \"{parts[4]}\"")
        if key not in self.objects:
            return 404, _status(404, "NotFound", f'{parts[4]} "{parts[5]}" not found')
        return 200, self.objects[key]

    def service_account_dir(self, path: Path, namespace: str = "imggate") -> Path:
        """What the kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount."""
        path.mkdir(parents=True, exist_ok=True)
        (path / "token").write_text(self.token)
        (path / "namespace").write_text(namespace)
        (path / "ca.crt").write_bytes(self.ca_pem)
        return path

    def stop(self) -> None:
        """Shut the server down."""
        self._server.shutdown()
        self._server.server_close()


def _plural(obj: dict[str, Any]) -> str:
    return {"Secret": "secrets", "ServiceAccount": "serviceaccounts"}[obj["kind"]]
