"""Key files that cannot be used are named with what they hold, in imggate's words.

The keys are made here (openssl-style PEM from ``cryptography``): a secp256k1 key and a
1024-bit RSA key (valid PEM, kinds cosign does not sign with), a private key given by
mistake, a truncated block, and text that is no PEM at all.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from imggate.errors import ConfigError
from imggate.signatures.keys import parse_public_key


def _public(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


GOOD = _public(ec.generate_private_key(ec.SECP256R1()))
PRIVATE = ec.generate_private_key(ec.SECP256R1()).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
    serialization.NoEncryption())
#: Phrases of the crypto library's own errors: never shown to a user.
LIBRARY_WORDS = ("Could not deserialize", "Unable to load", "ASN.1", "InvalidData",
                 "MalformedFraming", "openssl", "error:")


@pytest.mark.parametrize(("data", "why"), [
    (b"hello\n", "no PEM block (-----BEGIN PUBLIC KEY-----) in it"),
    (PRIVATE, "it holds a private key (EC PRIVATE KEY), not the public key"),
    (b"-----BEGIN PGP PUBLIC KEY BLOCK-----\nx\n-----END PGP PUBLIC KEY BLOCK-----\n",
     "its PEM block is PGP PUBLIC KEY BLOCK, not PUBLIC KEY or CERTIFICATE"),
    (GOOD[:60], "its PUBLIC KEY block has no -----END PUBLIC KEY----- line"),
    (GOOD.replace(GOOD.splitlines()[1], b"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEbad"),
     "its PUBLIC KEY block does not decode (malformed base64, or not a public key)"),
    (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
     "its CERTIFICATE block does not decode (malformed base64, or not a certificate)"),
    (_public(ec.generate_private_key(ec.SECP256K1())), "unsupported elliptic curve secp256k1"),
    (_public(rsa.generate_private_key(65537, 1024)),
     "RSA key of 1024 bits is too small (>= 2048)"),
# Keys made afresh at import: fixed ids, so every xdist worker collects the same test names.
], ids=["not-pem", "private-key", "pgp", "no-end-line", "bad-base64", "bad-certificate",
        "secp256k1", "rsa-1024"])
def test_an_unusable_key_file_says_what_it_holds(data: bytes, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_public_key(data, "release.pub")
    message = caught.value.message
    assert message == f"release.pub: not a usable PEM public key or certificate: {why}"
    assert not any(w in message for w in LIBRARY_WORDS), message


def test_a_private_key_given_by_mistake_is_never_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_public_key(PRIVATE, "release.pub")
    body = b"".join(PRIVATE.splitlines()[1:-1]).decode()
    assert body[:16] not in str(caught.value.diagnostics())


def test_a_good_key_loads() -> None:
    assert parse_public_key(GOOD, "release.pub").label == "release.pub"
