"""TLS against a real Distribution registry serving HTTPS on loopback.

A loopback registry that speaks TLS is used over HTTPS (docker's rule: HTTPS
first, plain HTTP only when the host does not speak TLS), and its
certificate is verified: untrusted without ``--ca-file``, trusted with the
private CA that issued it, refused with another CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harness_images import LayoutBuilder
from registry_harness import free_port, run_imggate, write_htpasswd

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class TlsRegistry:
    def __init__(self, workdir: Path, users: dict[str, str] | None = None) -> None:
        ca_key, self.ca = _ca("imggate test CA")
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        leaf = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
                .issuer_name(self.ca.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        workdir.mkdir(parents=True, exist_ok=True)
        self.ca_file = workdir / "ca.pem"
        self.ca_file.write_bytes(_pem(self.ca))
        (workdir / "tls.crt").write_bytes(_pem(leaf))
        (workdir / "tls.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self.host = f"127.0.0.1:{free_port()}"
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")}},
            "http": {"addr": self.host, "tls": {"certificate": str(workdir / "tls.crt"),
                                                "key": str(workdir / "tls.key")}},
        }
        if users:
            write_htpasswd(workdir / "htpasswd", users)
            config["auth"] = {"htpasswd": {"realm": "imggate-test",
                                           "path": str(workdir / "htpasswd")}}
        (workdir / "config.yml").write_text(json.dumps(config))
        self.log = (workdir / "registry.log").open("wb")
        self.process = subprocess.Popen(["docker-registry", "serve",
                                         str(workdir / "config.yml")],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"https://{self.host}/v2/", context=ctx, timeout=1):
                    break
            except urllib.error.HTTPError as e:
                if e.code == 401:  # up, and asking for credentials
                    break
                raise
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def tls_registry(harness_binaries: dict[str, str],
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRegistry]:
    reg = TlsRegistry(tmp_path_factory.mktemp("tls-registry"))
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def tls_image(tls_registry: TlsRegistry, image_layout: LayoutBuilder) -> tuple[str, str]:
    ref = f"{tls_registry.host}/tls/app:v1"
    subprocess.run(["skopeo", "copy", "--insecure-policy", "--dest-tls-verify=false", "-q",
                    f"oci:{image_layout.path}:app", f"docker://{ref}"], check=True)
    digest = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--format",
                             "{{.Digest}}", f"docker://{ref}"], check=True,
                            capture_output=True, text=True).stdout.strip()
    return ref, digest


def test_loopback_tls_registry_is_verified_with_the_private_ca(
        tls_registry: TlsRegistry, tls_image: tuple[str, str]) -> None:
    ref, digest = tls_image
    res = run_imggate(["resolve", "--ca-file", str(tls_registry.ca_file), ref])
    assert res.code == 0, res.output
    assert res.stdout.strip() == f"{tls_registry.host}/tls/app@{digest}"


def test_untrusted_certificate_is_refused_not_downgraded(
        tls_registry: TlsRegistry, tls_image: tuple[str, str]) -> None:
    ref, _ = tls_image
    res = run_imggate(["resolve", ref])
    assert res.code == 3
    assert "TLS certificate not trusted" in res.output
    assert "--ca-file" in res.output
    assert tls_registry.host in res.output


def test_another_ca_is_refused(tls_registry: TlsRegistry, tls_image: tuple[str, str],
                               tmp_path: Path) -> None:
    ref, _ = tls_image
    other = tmp_path / "other-ca.pem"
    other.write_bytes(_pem(_ca("some other CA")[1]))
    res = run_imggate(["resolve", "--ca-file", str(other), ref])
    assert res.code == 3
    assert "certificate" in res.output.lower()


CANARY_USER, CANARY_PASSWORD = "canary-tls", "CanaryTls-" + "9f3c7a1e5b"


@pytest.fixture(scope="module")
def auth_tls_registry(harness_binaries: dict[str, str], image_layout: LayoutBuilder,
                      tmp_path_factory: pytest.TempPathFactory
                      ) -> Iterator[tuple[TlsRegistry, str]]:
    reg = TlsRegistry(tmp_path_factory.mktemp("tls-auth-registry"),
                      {CANARY_USER: CANARY_PASSWORD})
    ref = f"{reg.host}/tls/app:v1"
    subprocess.run(["skopeo", "copy", "--insecure-policy", "--dest-tls-verify=false", "-q",
                    "--dest-creds", f"{CANARY_USER}:{CANARY_PASSWORD}",
                    f"oci:{image_layout.path}:app", f"docker://{ref}"], check=True)
    yield reg, ref
    reg.stop()


def test_vv_over_tls_shows_no_credential(auth_tls_registry: tuple[TlsRegistry, str],
                                         tmp_path: Path) -> None:
    """With -vv every connection and exchange is logged; the Basic credentials sent over
    TLS must not be recoverable from anything imggate printed. The registry (Go's TLS)
    offers HTTP/2; imggate speaks HTTP/1.1."""
    import base64

    reg, ref = auth_tls_registry
    pair = f"{CANARY_USER}:{CANARY_PASSWORD}"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {reg.host: {
        "auth": base64.b64encode(pair.encode()).decode()}}}))
    res = run_imggate(["-vv", "resolve", "--ca-file", str(reg.ca_file), ref],
                      env={"DOCKER_CONFIG": str(tmp_path), "DOCKER_AUTH_CONFIG": None,
                           "REGISTRY_AUTH_FILE": None})
    assert res.code == 0, res.output[-2000:]
    assert "imggate: DEBUG: connecting to 127.0.0.1:" in res.output
    assert '"HTTP/1.1 200 OK"' in res.output  # the exchanges were logged
    for secret in (CANARY_PASSWORD, pair, base64.b64encode(pair.encode()).decode()):
        assert secret not in res.output
