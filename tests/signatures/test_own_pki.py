"""Your own PKI (cosign --certificate-chain): chain rules on fresh certificates."""

from __future__ import annotations

import asyncio
import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from imggate.signatures import check_signatures
from imggate.signatures.interface import TrustConfig
from signatures.cosign_format_signer import CosignFormatSigner, make_image, simple_signing_payload
from signatures.inmemory import InMemoryRepository


def run(repo, digest, trust):  # type: ignore[no-untyped-def]
    return asyncio.run(check_signatures(repo, digest, trust))


def _pki(eku: list[x509.ObjectIdentifier] | None, *, ca_intermediate: bool = True):  # type: ignore[no-untyped-def]
    """root -> intermediate -> leaf; returns (root, intermediate, leaf, leaf key)."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC)

    def build(cn: str, key, issuer_name, signer, ca: bool, extra=None):  # type: ignore[no-untyped-def]
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(issuer_name).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(days=1))
             .not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if extra is not None:
            b = b.add_extension(extra, critical=False)
        return b.sign(signer, hashes.SHA256())

    rk, ik, lk = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = build("root", rk, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "root")]), rk,
                 True)
    inter = build("inter", ik, root.subject, rk, ca_intermediate)
    leaf = build("leaf", lk, inter.subject, ik, False,
                 x509.ExtendedKeyUsage(eku) if eku is not None else None)
    return root, inter, leaf, lk


@pytest.mark.parametrize(("eku", "ca_intermediate", "expected", "why"), [
    (None, True, True, ""),
    ([x509.oid.ExtendedKeyUsageOID.CODE_SIGNING], True, True, ""),
    ([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH], True, False, "not for code signing"),
    (None, False, False, "not a CA"),
])
def test_own_pki_chain_rules(eku, ca_intermediate: bool, expected: bool, why: str) -> None:  # type: ignore[no-untyped-def]
    from imggate.signatures import CertificateAuthority

    root, inter, leaf, key = _pki(eku, ca_intermediate=ca_intermediate)
    repo = InMemoryRepository()
    image = make_image(repo)
    payload = simple_signing_payload(image, repo.name)
    sig = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    enc = serialization.Encoding.PEM
    CosignFormatSigner().sign_image(repo, image, signature=base64.b64encode(sig).decode(),
                                    annotations={
                                        "dev.sigstore.cosign/certificate":
                                            leaf.public_bytes(enc).decode(),
                                        "dev.sigstore.cosign/chain":
                                            inter.public_bytes(enc).decode()})
    trust = TrustConfig(authorities=(CertificateAuthority("my-ca", (root,)),), ignore_tlog=True)
    checks = run(repo, image, trust)
    assert checks[0].verified is expected, checks[0].reason
    if expected:
        assert checks[0].signer == "my-ca"
    else:
        assert why in checks[0].reason
