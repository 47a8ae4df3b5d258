"""What the siege tests share: client certificates, and waiting for memory to come back.

The servers themselves are the webhook tests' (:mod:`admission.serve_harness`:
``imggate serve`` over real TLS, ``redis-server``), the Distribution registry
(:mod:`registry_harness`) and the hostile hosts (:mod:`hostile_hosts`).
"""

from __future__ import annotations

import datetime as dt
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from admission.serve_harness import Tls, make_tls
from siege.memory import rss_mb


@dataclass(frozen=True)
class ClientCert:
    """A client certificate and its key (PEM files)."""

    cert: Path
    key: Path

    def context(self, server_ca: Path) -> ssl.SSLContext:
        """A client context trusting ``server_ca`` and presenting this certificate."""
        ctx = ssl.create_default_context(cafile=str(server_ca))
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx


def client_cert(tls: Tls, directory: Path, cn: str = "kube-apiserver") -> ClientCert:
    """A client certificate for ``cn`` issued by ``tls``'s CA (as the API server's is)."""
    ca_key = serialization.load_pem_private_key((tls.ca.parent / "ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(tls.ca.read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    return _issue(ca_key, ca_cert, directory, cn)


def foreign_client_cert(directory: Path, cn: str = "kube-apiserver") -> ClientCert:
    """A client certificate with the same name from a CA the webhook does not trust."""
    other = make_tls(directory / "foreign-ca")
    return client_cert(other, directory / "foreign", cn)


def _issue(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, directory: Path,
           cn: str) -> ClientCert:
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = directory / f"{cn}.crt", directory / f"{cn}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ClientCert(cert_path, key_path)


def settles(pid: int, under: float, within: float) -> float:
    """Wait up to ``within`` seconds for the RSS of ``pid`` to fall under ``under`` MiB; the
    seconds it took (``inf`` when it did not)."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if rss_mb(pid) < under:
            return time.monotonic() - start
        time.sleep(0.5)
    return float("inf")
