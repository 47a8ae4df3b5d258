"""Public keys and raw signature checks, the way cosign does them.

cosign signs with ECDSA (P-256/SHA-256, P-384/SHA-384), RSA (PKCS#1 v1.5 with
SHA-256; PSS accepted too) and Ed25519. A signature is checked over the bytes
exactly as stored: nothing is parsed or re-serialised before this step.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

if TYPE_CHECKING:
    from cryptography import x509

from imggate._files import read_config_file
from imggate.errors import ConfigError

#: Keys imggate can verify with.
VerifyingKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

_MAX_KEY_FILE = 64 * 1024


class BadSignature(Exception):
    """A signature does not verify; the message says why (never secret)."""


class CertificateError(Exception):
    """A certificate is unusable or untrusted; the message says why.

    Defined here, beside :class:`BadSignature`, so that code catching it need not
    import :mod:`imggate.signatures.keyless` (and the X.509 stack) to do so.
    """


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A public key the user trusts, with the label results name it by.

    ``label`` is what a :class:`~imggate.models.SignatureCheck` reports as its
    signer (the file name, or what the caller chose).
    """

    label: str
    key: VerifyingKey = field(compare=False, repr=False)

    @property
    def spki(self) -> bytes:
        """DER SubjectPublicKeyInfo: the key's identity for comparisons."""
        return spki_der(self.key)

    @property
    def fingerprint(self) -> str:
        """``sha256:<hex>`` of the DER SubjectPublicKeyInfo."""
        return "sha256:" + hashlib.sha256(self.spki).hexdigest()


def spki_der(key: PublicKeyTypes) -> bytes:
    """DER SubjectPublicKeyInfo of ``key``."""
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def as_verifying_key(key: PublicKeyTypes, where: str) -> VerifyingKey:
    """Narrow ``key`` to a kind cosign signs with; ``ValueError`` otherwise."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1 | ec.SECP521R1):
            raise ValueError(f"{where}: unsupported elliptic curve {key.curve.name}")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError(f"{where}: RSA key of {key.key_size} bits is too small (>= 2048)")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise ValueError(f"{where}: unsupported key type {type(key).__name__}")


def certificate_key(cert: x509.Certificate) -> VerifyingKey:
    """The key a certificate certifies; :class:`CertificateError` in imggate's words if unusable."""
    try:
        key = cert.public_key()
    except Exception:  # cryptography raises assorted types on an unknown key; its text is not ours
        raise CertificateError("certificate public key is of an unknown or malformed "
                               "kind") from None
    try:
        return as_verifying_key(key, "certificate")
    except ValueError as e:  # as_verifying_key's own words: the kind of key it refused
        raise CertificateError(str(e)) from None


_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----")
_PUBLIC_PEMS = frozenset({"PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE"})


def pem_problem(data: bytes) -> str:
    """Why ``data`` is no PEM public key or certificate, in imggate's words: what the file
    holds, never its content (a private key pasted by mistake is named, not echoed)."""
    found = _PEM_BEGIN.search(data)
    if found is None:
        return "no PEM block (-----BEGIN PUBLIC KEY-----) in it"
    kind = found.group(1).decode("ascii")  # [A-Z0-9 ] only: safe to print
    if "PRIVATE KEY" in kind:
        return f"it holds a private key ({kind}), not the public key"
    if kind not in _PUBLIC_PEMS:
        return f"its PEM block is {kind}, not PUBLIC KEY or CERTIFICATE"
    if f"-----END {kind}-----".encode() not in data[found.end():]:
        return f"its {kind} block has no -----END {kind}----- line"
    return f"its {kind} block does not decode (malformed base64, or not a {kind.lower()})"


def parse_public_key(data: bytes, label: str) -> TrustedKey:
    """Parse a PEM public key (or a PEM certificate, whose key is used).

    Raises :class:`ConfigError` naming ``label`` and what is wrong when the PEM is
    unusable (imggate's words, not the crypto library's).
    """
    hint = "export it with `cosign public-key` or `openssl pkey -pubout`"
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            from cryptography import x509

            key: PublicKeyTypes = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except Exception:  # cryptography raises assorted types on bad PEM; its text is not ours
        raise ConfigError(f"{label}: not a usable PEM public key or certificate: "
                          f"{pem_problem(data)}", hint=hint) from None
    try:
        return TrustedKey(label, as_verifying_key(key, label))
    except ValueError as e:  # as_verifying_key's own words: the kind of key it refused
        why = str(e).removeprefix(f"{label}: ")
        raise ConfigError(f"{label}: not a usable PEM public key or certificate: {why}",
                          hint=hint) from None


def load_public_key(path: str | Path, label: str | None = None) -> TrustedKey:
    """Read a PEM public key file; the label defaults to the file name."""
    from imggate.keyrefs import unsupported_key_ref

    why = unsupported_key_ref(str(path)) if isinstance(path, str) else None
    if why is not None:
        raise ConfigError(why)
    p = Path(path)
    name = label or p.name
    return parse_public_key(read_config_file(p, _MAX_KEY_FILE, what="key file"), name)


def decode_b64(text: str | bytes, what: str) -> bytes:
    """Strict standard base64 (padding optional, whitespace not allowed inside)."""
    try:
        raw = text.encode("ascii") if isinstance(text, str) else text
        raw = raw.strip()
        raw += b"=" * (-len(raw) % 4)
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise BadSignature(f"{what} is not valid base64") from None


def verify_raw(key: VerifyingKey, signature: bytes, data: bytes) -> None:
    """Verify ``signature`` over ``data`` as cosign would; raise :class:`BadSignature`."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            algo: hashes.HashAlgorithm = (
                hashes.SHA384() if isinstance(key.curve, ec.SECP384R1)
                else hashes.SHA512() if isinstance(key.curve, ec.SECP521R1)
                else hashes.SHA256()
            )
            key.verify(signature, data, ec.ECDSA(algo))
        elif isinstance(key, rsa.RSAPublicKey):
            try:
                key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                # cosign's RSA default is PKCS#1 v1.5; PSS signers exist too.
                key.verify(signature, data,
                           padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO),
                           hashes.SHA256())
        else:
            key.verify(signature, data)
    except InvalidSignature:
        raise BadSignature("signature does not verify") from None
    except (ValueError, TypeError):
        raise BadSignature(f"signature is malformed for this {_kind(key)} key") from None


def _kind(key: VerifyingKey) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}-bit"
    return "Ed25519"
