"""The registry client's TLS context: verifying from the start, CA bundle read on first use."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import certifi
import pytest

from imggate.registry.client import RegistryClient, _DeferredTrustContext
from imggate.registry.options import RegistryOptions


def _wrap(ctx: ssl.SSLContext) -> ssl.SSLObject:
    return ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="registry.example")


def test_verifies_from_the_start_and_reads_the_bundle_on_first_tls_use(monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    ctx = _DeferredTrustContext()
    assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] == 0  # nothing read yet
    _wrap(ctx)
    expected = ssl.create_default_context(cafile=certifi.where()).cert_store_stats()
    assert ctx.cert_store_stats() == expected
    _wrap(ctx)  # read once
    assert ctx.cert_store_stats() == expected


def test_ssl_cert_file_is_honoured_as_httpx_does(monkeypatch, tmp_path: Path):
    pem = Path(certifi.where()).read_text()
    end = "-----END CERTIFICATE-----\n"
    one = tmp_path / "one-ca.pem"
    one.write_text(pem[pem.index("-----BEGIN CERTIFICATE-----"):pem.index(end) + len(end)])
    monkeypatch.setenv("SSL_CERT_FILE", str(one))
    ctx = _DeferredTrustContext()
    _wrap(ctx)
    assert ctx.cert_store_stats()["x509_ca"] == 1


def test_an_unknown_ca_is_refused(monkeypatch, tmp_path: Path):
    # A handshake against a server whose certificate no bundle holds fails: the
    # deferred context is never a non-verifying one.
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    ctx = _DeferredTrustContext()
    client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ctx.wrap_bio(client_in, client_out, server_hostname="localhost")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*_self_signed(tmp_path))
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_ctx.wrap_bio(server_in, server_out, server_side=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake((client, client_out, server_in), (server, server_out, client_in))


def _handshake(*sides: tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]) -> None:
    """Shuttle handshake bytes between in-memory TLS ends until an error (or 10 rounds)."""
    for _ in range(10):
        for side, out, peer_in in sides:
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
            peer_in.write(out.read())


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_the_client_uses_the_deferred_context_unless_a_ca_file_is_given(tmp_path: Path):
    cert, _ = _self_signed(tmp_path)

    async def contexts() -> list[ssl.SSLContext]:
        found = []
        for options in (RegistryOptions(), RegistryOptions(ca_file=cert)):
            async with RegistryClient(options) as client:
                assert client._http is not None
                assert client.guard is not None and client.guard.pool is not None
                found.append(client.guard.pool.ssl_context)
        return found

    default, custom = asyncio.run(contexts())
    assert isinstance(default, _DeferredTrustContext)
    assert not isinstance(custom, _DeferredTrustContext)
    assert custom.cert_store_stats()["x509"] == 1
