"""Private keys for ``check --attest``, in the formats ``cosign --key`` takes.

* cosign's encrypted keys (``cosign generate-key-pair``): a PEM block of type
  ``ENCRYPTED SIGSTORE PRIVATE KEY`` (or the older ``ENCRYPTED COSIGN PRIVATE
  KEY``) whose body is JSON, as go-securesystemslib's ``encrypted`` package
  writes it::

      {"kdf": {"name": "scrypt", "params": {"N": 65536, "r": 8, "p": 1}, "salt": b64},
       "cipher": {"name": "nacl/secretbox", "nonce": b64},
       "ciphertext": b64}

  The key is scrypt(password, salt) (32 bytes, :func:`hashlib.scrypt`); the
  ciphertext is a NaCl secretbox (PyNaCl) of the PKCS#8 DER private key.
  The password comes from ``COSIGN_PASSWORD`` as in cosign: set but empty is
  the empty password, unset is an error (a CI job cannot answer a prompt).
* Unencrypted PEM keys cosign imports: PKCS#8 ``PRIVATE KEY``, ``EC PRIVATE
  KEY`` and ``RSA PRIVATE KEY``.

Signatures are made as cosign makes them: ECDSA with SHA-256 (P-256), SHA-384
(P-384) or SHA-512 (P-521), ASN.1 DER; RSA PKCS#1 v1.5 with SHA-256.
Ed25519 keys are refused: cosign signs with Ed25519ph, which the verifiers
here and cosign's ``--key`` verification would not agree on. No password,
key byte or derived secret ever reaches a message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from imggate._files import read_config_file
from imggate.errors import ConfigError
from imggate.signatures.keys import as_verifying_key

ENCRYPTED_SIGSTORE = "ENCRYPTED SIGSTORE PRIVATE KEY"
ENCRYPTED_COSIGN = "ENCRYPTED COSIGN PRIVATE KEY"
ENCRYPTED_TYPES = (ENCRYPTED_SIGSTORE, ENCRYPTED_COSIGN)
_PLAIN_TYPES = ("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY")
#: cosign's current scrypt parameters (go-securesystemslib ``encrypted``).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 65536, 8, 1
#: Most scrypt work a key file may ask for (128 * N * r bytes of memory):
#: cosign's keys need 64 MiB; a hostile file must not take the machine.
_MAX_SCRYPT_MEMORY = 256 * 1024 * 1024
_MAX_KEY_FILE = 64 * 1024

SigningPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key that signs as cosign does; ``label`` names it in messages."""

    label: str
    private: SigningPrivateKey = field(repr=False, compare=False)

    def sign(self, data: bytes) -> bytes:
        """A raw signature over ``data`` (what goes, base64, into a DSSE ``sig``)."""
        k = self.private
        if isinstance(k, ec.EllipticCurvePrivateKey):
            algo: hashes.HashAlgorithm = (
                hashes.SHA384() if isinstance(k.curve, ec.SECP384R1)
                else hashes.SHA512() if isinstance(k.curve, ec.SECP521R1)
                else hashes.SHA256())
            return k.sign(data, ec.ECDSA(algo))
        return k.sign(data, padding.PKCS1v15(), hashes.SHA256())

    @property
    def public_pem(self) -> bytes:
        """The public key as ``cosign public-key`` prints it (PEM SubjectPublicKeyInfo)."""
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def password_from_env(environ: Mapping[str, str] | None = None) -> bytes | None:
    """``COSIGN_PASSWORD`` as cosign reads it: ``None`` when unset, ``b""`` when empty."""
    env = os.environ if environ is None else environ
    value = env.get("COSIGN_PASSWORD")
    if value:
        from imggate.redact import register

        register(value)  # never printed, whatever message might quote it
    return None if value is None else value.encode()


def _pem_block(data: bytes, label: str) -> tuple[str, bytes]:
    text = data.decode("ascii", "replace")
    start = text.find("-----BEGIN ")
    if start < 0:
        raise ConfigError(f"{label}: not a PEM private key")
    head_end = text.find("-----", start + 11)
    kind = text[start + 11:head_end]
    end = text.find(f"-----END {kind}-----", head_end)
    if head_end < 0 or end < 0:
        raise ConfigError(f"{label}: PEM block {kind[:40]!r} is not terminated")
    body = "".join(text[head_end + 5:end].split())
    try:
        return kind, base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{label}: PEM body is not base64") from None


def _b64(doc: Mapping[str, Any], key: str, label: str) -> bytes:
    value = doc.get(key)
    try:
        if not isinstance(value, str):
            raise ValueError
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{label}: encrypted key field {key!r} is not base64") from None


def decrypt_cosign_key(body: bytes, password: bytes, label: str) -> bytes:
    """The PKCS#8 DER inside an encrypted cosign key's PEM body.

    :class:`ConfigError` when the JSON is malformed, the parameters are not
    scrypt + ``nacl/secretbox`` or ask for too much work, or the password is wrong.
    """
    import nacl.exceptions
    import nacl.secret

    try:
        doc = json.loads(body)
        kdf, cipher = doc["kdf"], doc["cipher"]
        params = kdf["params"]
        n, r, p = params["N"], params["r"], params["p"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{label}: not a cosign encrypted key (JSON with kdf, cipher and "
                          "ciphertext)") from None
    if kdf.get("name") != "scrypt" or cipher.get("name") != "nacl/secretbox":
        raise ConfigError(f"{label}: unsupported key encryption (need scrypt and "
                          "nacl/secretbox)")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (n, r, p)) \
            or n & (n - 1) or 128 * n * r * p > _MAX_SCRYPT_MEMORY:
        raise ConfigError(f"{label}: scrypt parameters N={str(n)[:12]} r={str(r)[:4]} "
                          f"p={str(p)[:4]} are invalid or too costly")
    salt, nonce = _b64(kdf, "salt", label), _b64(cipher, "nonce", label)
    ciphertext = _b64(doc, "ciphertext", label)
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise ConfigError(f"{label}: secretbox nonce must be 24 bytes")
    key = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32,
                         maxmem=_MAX_SCRYPT_MEMORY + 1024 * 1024)
    try:
        return nacl.secret.SecretBox(key).decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError:
        raise ConfigError(f"{label}: cannot decrypt the private key: wrong COSIGN_PASSWORD, "
                          "or the key file is damaged") from None


def encrypt_cosign_key(private: SigningPrivateKey, password: bytes, *,
                       pem_type: str = ENCRYPTED_SIGSTORE, n: int = SCRYPT_N) -> bytes:
    """``private`` as ``cosign generate-key-pair`` writes it (PEM, 64-column base64 of the JSON)."""
    import nacl.secret

    if pem_type not in ENCRYPTED_TYPES:
        raise ValueError(f"unknown PEM type {pem_type!r}")
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    salt = secrets.token_bytes(32)
    nonce = secrets.token_bytes(nacl.secret.SecretBox.NONCE_SIZE)
    key = hashlib.scrypt(password, salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, dklen=32,
                         maxmem=_MAX_SCRYPT_MEMORY + 1024 * 1024)
    sealed = nacl.secret.SecretBox(key).encrypt(der, nonce).ciphertext
    doc = {"kdf": {"name": "scrypt", "params": {"N": n, "r": SCRYPT_R, "p": SCRYPT_P},
                   "salt": base64.b64encode(salt).decode()},
           "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
           "ciphertext": base64.b64encode(sealed).decode()}
    body = base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return (f"-----BEGIN {pem_type}-----\n" + "\n".join(lines)
            + f"\n-----END {pem_type}-----\n").encode()


def _usable(key: object, label: str) -> SigningPrivateKey:
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        # The curves and sizes a signature is verified with are the ones imggate signs with.
        try:
            as_verifying_key(key.public_key(), label)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        return key
    raise ConfigError(f"{label}: unsupported signing key type {type(key).__name__}",
                      hint="use an ECDSA P-256 key (`cosign generate-key-pair`) or RSA")


def parse_signing_key(data: bytes, label: str, *, password: bytes | None) -> SigningKey:
    """A signing key from PEM bytes (encrypted cosign key or unencrypted PEM)."""
    kind, der = _pem_block(data, label)
    if kind in ENCRYPTED_TYPES:
        if password is None:
            raise ConfigError(f"{label}: the private key is encrypted and COSIGN_PASSWORD "
                              "is not set", hint="export COSIGN_PASSWORD (empty for a key "
                                                 "generated with an empty password)")
        der = decrypt_cosign_key(der, password, label)
        kind = "PRIVATE KEY"
    if kind not in _PLAIN_TYPES:
        raise ConfigError(f"{label}: unsupported PEM type {kind[:40]!r}",
                          hint="give a cosign key (`cosign generate-key-pair`) or a PKCS#8 "
                               "PEM private key; KMS and k8s:// keys are not supported")
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{label}: the private key cannot be parsed") from None
    except Exception as e:  # cryptography raises assorted types on bad DER
        raise ConfigError(f"{label}: the private key cannot be parsed "
                          f"({type(e).__name__})") from None
    return SigningKey(label, _usable(key, label))


def load_signing_key(path: str | Path, *, password: bytes | None) -> SigningKey:
    """Read ``--attest-key``; :class:`ConfigError` (exit 2) says what is wrong."""
    text = str(path)
    if "://" in text:
        raise ConfigError(f"--attest-key {text[:80]}: KMS and k8s:// keys are not supported",
                          hint="export the key to a file (`cosign generate-key-pair`)")
    p = Path(path)
    data = read_config_file(p, _MAX_KEY_FILE, what="the signing key")
    return parse_signing_key(data, p.name, password=password)
