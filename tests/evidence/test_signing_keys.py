"""Signing keys for ``--attest``: cosign's encrypted format (real cosign key and our writer)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from fixture_paths import FIXTURES
from imggate.errors import ConfigError
from imggate.evidence.signing_keys import (
    ENCRYPTED_COSIGN,
    encrypt_cosign_key,
    load_signing_key,
    parse_signing_key,
    password_from_env,
)
from imggate.signatures.keys import parse_public_key, verify_raw

REAL_COSIGN_KEY = FIXTURES / "evidence" / "keys" / "cosign_generated_encrypted_empty_private.key"


def _json_of(pem: bytes) -> dict[str, object]:
    body = b"".join(pem.splitlines()[1:-1])
    doc: dict[str, object] = json.loads(base64.b64decode(body))
    return doc


def test_a_real_cosign_generated_key_decrypts_with_its_empty_password() -> None:
    key = load_signing_key(REAL_COSIGN_KEY, password=b"")
    assert isinstance(key.private, ec.EllipticCurvePrivateKey)
    assert key.private.curve.name == "secp256r1"
    sig = key.sign(b"payload")
    verify_raw(parse_public_key(key.public_pem, "pub").key, sig, b"payload")
    doc = _json_of(REAL_COSIGN_KEY.read_bytes())
    assert doc["kdf"] == {"name": "scrypt", "params": {"N": 65536, "r": 8, "p": 1},
                          "salt": doc["kdf"]["salt"]}  # type: ignore[index]


def test_the_real_key_with_a_wrong_password_or_none_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="wrong COSIGN_PASSWORD") as e:
        load_signing_key(REAL_COSIGN_KEY, password=b"guess")
    assert "guess" not in str(e.value) and e.value.exit_code == 2
    with pytest.raises(ConfigError, match="COSIGN_PASSWORD is not set"):
        load_signing_key(REAL_COSIGN_KEY, password=None)


def test_our_writer_makes_cosigns_format_and_reads_it_back(tmp_path: Path) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = encrypt_cosign_key(private, b"s3cret")
    lines = pem.decode().splitlines()
    assert lines[0] == "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"
    assert lines[-1] == "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----"
    assert all(len(line) == 64 for line in lines[1:-2]) and 0 < len(lines[-2]) <= 64
    doc = _json_of(pem)
    assert list(doc) == ["kdf", "cipher", "ciphertext"]
    assert doc["cipher"]["name"] == "nacl/secretbox"  # type: ignore[index]
    assert len(base64.b64decode(doc["cipher"]["nonce"])) == 24  # type: ignore[index]
    assert doc["kdf"]["params"] == {"N": 65536, "r": 8, "p": 1}  # type: ignore[index]
    path = tmp_path / "cosign.key"
    path.write_bytes(pem)
    key = load_signing_key(path, password=b"s3cret")
    assert key.public_pem == private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    old = encrypt_cosign_key(private, b"", pem_type=ENCRYPTED_COSIGN, n=16384)
    assert parse_signing_key(old, "old", password=b"").public_pem == key.public_pem
    with pytest.raises(ConfigError, match="wrong COSIGN_PASSWORD"):
        parse_signing_key(old, "old", password=b"s3cret")


def test_pkcs8_and_traditional_pem_keys_sign_as_cosign() -> None:
    ec_key = ec.generate_private_key(ec.SECP384R1())
    pkcs8 = ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    k = parse_signing_key(pkcs8, "ec.pem", password=None)
    ec_key.public_key().verify(k.sign(b"x"), b"x", ec.ECDSA(hashes.SHA384()))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    trad = rsa_key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption())
    k = parse_signing_key(trad, "rsa.pem", password=None)
    verify_raw(parse_public_key(k.public_pem, "p").key, k.sign(b"y"), b"y")


@pytest.mark.parametrize(("data", "message"), [
    (b"not a pem", "not a PEM private key"),
    (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "unsupported PEM type"),
    (b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nbm90IGEga2V5\n"
     b"-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n", "not a cosign encrypted key"),
])
def test_bad_key_files_are_config_errors(data: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_signing_key(data, "k", password=b"")


def test_weak_or_unverifiable_signing_keys_are_refused_naming_why() -> None:
    def pem(key: object) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined,no-any-return]
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ConfigError, match=r"k\.pem: RSA key of 1024 bits is too small"):
        parse_signing_key(pem(small), "k.pem", password=None)
    curve = ec.generate_private_key(ec.SECP256K1())
    with pytest.raises(ConfigError, match=r"k\.pem: unsupported elliptic curve secp256k1"):
        parse_signing_key(pem(curve), "k.pem", password=None)
    with pytest.raises(ConfigError, match="unsupported signing key type"):
        parse_signing_key(pem(ed25519.Ed25519PrivateKey.generate()), "k.pem", password=None)


def test_hostile_scrypt_parameters_are_refused_before_any_work() -> None:
    doc = {"kdf": {"name": "scrypt", "params": {"N": 2 ** 30, "r": 8, "p": 1}, "salt": "AA=="},
           "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(b"n" * 24).decode()},
           "ciphertext": "AA=="}
    body = base64.b64encode(json.dumps(doc).encode())
    pem = b"-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n" + body + \
        b"\n-----END ENCRYPTED COSIGN PRIVATE KEY-----\n"
    with pytest.raises(ConfigError, match="too costly"):
        parse_signing_key(pem, "k", password=b"")


def test_ed25519_and_remote_keys_are_refused_with_a_hint(tmp_path: Path) -> None:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with pytest.raises(ConfigError, match="unsupported signing key type"):
        parse_signing_key(pem, "ed.pem", password=None)
    with pytest.raises(ConfigError, match="not supported"):
        load_signing_key("k8s://ns/secret", password=None)
    with pytest.raises(ConfigError, match="cannot read"):
        load_signing_key(tmp_path / "missing.key", password=None)


def test_cosign_password_semantics() -> None:
    assert password_from_env({}) is None
    assert password_from_env({"COSIGN_PASSWORD": ""}) == b""
    assert password_from_env({"COSIGN_PASSWORD": "p"}) == b"p"
