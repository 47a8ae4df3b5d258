"""Keyless (Fulcio) certificates: chain, SCT, identity; and bring-your-own PKI chains.

A Fulcio leaf lives ten minutes, so its chain is validated at the Rekor
entry's ``integratedTime`` (proved by the SET), never at "now". The embedded
SCT must verify against a CT log key of the trusted root (RFC 6962 §3.2,
precertificate entry). Identity is the SAN (email or URI); the issuer is the
Fulcio extension 1.3.6.1.4.1.57264.1.8 (DER UTF8String) or, in older
certificates, 1.3.6.1.4.1.57264.1.1 (raw bytes).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from imggate.signatures.keys import BadSignature, verify_raw
from imggate.signatures.keys import CertificateError as CertificateError  # re-exported
from imggate.signatures.trustroot import SigstoreTrustRoot

OID_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_MAX_PEM = 256 * 1024
_MAX_DEPTH = 6


def load_certificate(pem: str | bytes, what: str) -> x509.Certificate:
    """Parse one PEM certificate; :class:`CertificateError` when malformed."""
    data = pem.encode() if isinstance(pem, str) else pem
    if len(data) > _MAX_PEM:
        raise CertificateError(f"{what} is too large")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CertificateError(f"{what} is not a valid PEM certificate") from None


def load_certificates(pem: str | bytes, what: str) -> tuple[x509.Certificate, ...]:
    """Parse concatenated PEM certificates (cosign's chain annotation has no final newline)."""
    data = pem.encode() if isinstance(pem, str) else pem
    if len(data) > _MAX_PEM:
        raise CertificateError(f"{what} is too large")
    try:
        return tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        raise CertificateError(f"{what} is not valid PEM certificates") from None


def identities(cert: x509.Certificate) -> tuple[str, ...]:
    """The certificate's SAN emails and URIs (what cosign calls the identity)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CertificateError("certificate has no subjectAlternativeName (no identity)") \
            from None
    except ValueError:
        raise CertificateError("certificate extensions are malformed") from None
    values = [*san.get_values_for_type(x509.RFC822Name),
              *san.get_values_for_type(x509.UniformResourceIdentifier)]
    if not values:
        raise CertificateError("certificate SAN has no email or URI identity")
    return tuple(values)


def _der_utf8(raw: bytes) -> str:
    # DER UTF8String: tag 0x0c, definite length (short or long form), content.
    if len(raw) < 2 or raw[0] != 0x0C:
        raise CertificateError("Fulcio issuer extension is not a UTF8String")
    length, offset = raw[1], 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 2 or len(raw) < 2 + n:
            raise CertificateError("Fulcio issuer extension has a bad length")
        length, offset = int.from_bytes(raw[2:2 + n], "big"), 2 + n
    if len(raw) != offset + length:
        raise CertificateError("Fulcio issuer extension has a bad length")
    return raw[offset:].decode("utf-8", errors="strict")


def oidc_issuer(cert: x509.Certificate) -> str:
    """The OIDC issuer Fulcio recorded (extension .1.8, else the legacy .1.1)."""
    try:
        for oid, der in ((OID_ISSUER_V2, True), (OID_ISSUER_V1, False)):
            try:
                ext = cert.extensions.get_extension_for_oid(oid).value
            except x509.ExtensionNotFound:
                continue
            raw = ext.value if isinstance(ext, x509.UnrecognizedExtension) else b""
            return _der_utf8(raw) if der else raw.decode("utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise CertificateError("Fulcio issuer extension is not valid UTF-8") from None
    raise CertificateError("certificate has no Fulcio OIDC issuer extension "
                           "(not issued by Fulcio)")


#: Fulcio's build claims (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md), by
#: the names imggate gives them: DER UTF8String extensions, set for CI identities.
FULCIO_CLAIMS = {
    "build_signer_uri": x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.9"),
    "source_repository_uri": x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.12"),
    "source_repository_ref": x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.14"),
    "build_config_uri": x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.18"),
}
#: The deprecated GitHub-only extensions (raw bytes) that older certificates carry instead.
_LEGACY_REPOSITORY = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.5")  # "owner/repo"
_LEGACY_REF = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.6")
_MAX_CLAIM = 2048


def _raw_extension(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(oid).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    return ext.value if isinstance(ext, x509.UnrecognizedExtension) else None


def fulcio_claims(cert: x509.Certificate) -> dict[str, str]:
    """The build claims a Fulcio certificate states (see :data:`FULCIO_CLAIMS`).

    Only what is present and well-formed is returned: a claim that cannot be read is
    absent, never guessed. Certificates from before Fulcio's v2 extensions state the
    GitHub repository and ref in the legacy .1.5/.1.6 extensions, read as a fallback.
    """
    out: dict[str, str] = {}
    for name, oid in FULCIO_CLAIMS.items():
        raw = _raw_extension(cert, oid)
        if raw is None or len(raw) > _MAX_CLAIM:
            continue
        try:
            out[name] = _der_utf8(raw)
        except (CertificateError, UnicodeDecodeError):
            continue
    legacy = {"source_repository_uri": _LEGACY_REPOSITORY, "source_repository_ref": _LEGACY_REF}
    for name, oid in legacy.items():
        raw = _raw_extension(cert, oid)
        if name in out or raw is None or len(raw) > _MAX_CLAIM:
            continue
        try:
            text = raw.decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            continue
        if name == "source_repository_uri":
            # Only GitHub Actions certificates carry .1.5, as owner/repo on github.com.
            text = f"https://github.com/{text}"
        out[name] = text
    return out


def verify_fulcio_chain(cert: x509.Certificate, root: SigstoreTrustRoot,
                        when: datetime) -> tuple[x509.Certificate, ...]:
    """Chain ``cert`` to a Fulcio CA of ``root`` at ``when``; return [issuer, ..., root].

    Fulcio leaves carry the code-signing EKU, not client-auth, so only the EKU
    rule of the WebPKI client profile is relaxed (and code-signing checked here).
    """
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise CertificateError("certificate lacks the code-signing extended key usage") from None
    except ValueError:
        raise CertificateError("certificate extensions are malformed") from None
    if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise CertificateError("certificate lacks the code-signing extended key usage")
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    tried = []
    for ca in root.certificate_authorities:
        if not ca.validity.contains(when):
            continue
        tried.append(ca.chain)
        # Every certificate of the CA's chain comes from the trusted root, so all are
        # anchors (as in sigstore-python): the path stops at the issuing intermediate
        # and the intermediate-to-root signature is not re-checked per signature.
        verifier = (PolicyBuilder().store(Store(list(ca.chain))).time(when.replace(tzinfo=None))
                    .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
                    .build_client_verifier())
        try:
            chain = verifier.verify(cert, []).chain
        except (VerificationError, ValueError):
            # cryptography's words are not imggate's: say which check failed ourselves.
            continue
        return tuple(chain[1:])
    raise CertificateError(f"certificate does not chain to a trusted Fulcio CA at "
                           f"{when.isoformat()}: {_why_not_chained(cert, tried, when)}")


def _why_not_chained(cert: x509.Certificate, chains: Sequence[Sequence[x509.Certificate]],
                     when: datetime) -> str:
    """Which check of :func:`verify_fulcio_chain` failed, in imggate's words."""
    if not chains:
        return "no certificate authority of the trusted root is valid at that time"
    if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
        return (f"the certificate is valid only from {cert.not_valid_before_utc.isoformat()} "
                f"to {cert.not_valid_after_utc.isoformat()}")
    for chain in chains:
        for ca_cert in chain:
            if ca_cert.subject != cert.issuer:
                continue
            try:
                cert.verify_directly_issued_by(ca_cert)
            except (ValueError, TypeError, InvalidSignature):
                continue
            name = ca_cert.subject.rfc4514_string()[:120]
            if not ca_cert.not_valid_before_utc <= when <= ca_cert.not_valid_after_utc:
                return f"its issuing CA certificate {name!r} is not valid at that time"
            return (f"it was issued by {name!r} but breaks the Fulcio certificate profile "
                    "(key usage, basic constraints or other extensions)")
    return (f"no trusted CA certificate signed it (it names issuer "
            f"{cert.issuer.rfc4514_string()[:120]!r})")


def _sct_signed_data(cert: x509.Certificate, issuer: x509.Certificate,
                     sct: x509.certificate_transparency.SignedCertificateTimestamp) -> bytes:
    # RFC 6962 §3.2 digitally-signed struct for a precert_entry.
    issuer_key_hash = hashlib.sha256(issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).digest()
    tbs = cert.tbs_precertificate_bytes
    ts = int(sct.timestamp.replace(tzinfo=UTC).timestamp() * 1000 + 0.5)
    ext = sct.extension_bytes
    return (struct.pack(">BBQH", 0, 0, ts, 1) + issuer_key_hash
            + len(tbs).to_bytes(3, "big") + tbs + struct.pack(">H", len(ext)) + ext)


def verify_sct(cert: x509.Certificate, chain: Sequence[x509.Certificate],
               root: SigstoreTrustRoot) -> None:
    """At least one embedded SCT verifies against a CT log key of the trusted root."""
    if not chain:
        raise CertificateError("no issuer to check the SCT against")
    try:
        scts = cert.extensions.get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps).value
    except x509.ExtensionNotFound:
        raise CertificateError("certificate has no embedded SCT") from None
    except ValueError:
        raise CertificateError("certificate SCT list is malformed") from None
    for sct in scts:
        log = root.ctlog(sct.log_id)
        if log is None:
            continue
        try:
            verify_raw(log.key, sct.signature, _sct_signed_data(cert, chain[0], sct))
        except (BadSignature, ValueError):
            continue
        return
    raise CertificateError("no embedded SCT verifies against a trusted CT log")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False


def verify_pki_chain(cert: x509.Certificate, intermediates: Sequence[x509.Certificate],
                     roots: Sequence[x509.Certificate], when: datetime) -> None:
    """Bring-your-own PKI (``--certificate-chain``): a signature path from ``cert`` to a root.

    Each link is checked with the issuer's key and every certificate must be
    valid at ``when``; roots are trusted as given (they may share a DN with
    the leaf, so keys, not names, decide).
    """
    if not roots:
        raise CertificateError("no trusted certificate roots configured")
    # As Go's x509 (cosign): a leaf without EKU may sign anything; with one, code signing.
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CODE_SIGNING not in eku and \
                ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku:
            raise CertificateError("certificate is not for code signing (extended key usage)")
    except x509.ExtensionNotFound:
        pass
    except ValueError:
        raise CertificateError("certificate extensions are malformed") from None
    current = cert
    for _ in range(_MAX_DEPTH):
        if not current.not_valid_before_utc <= when <= current.not_valid_after_utc:
            raise CertificateError(f"certificate {current.subject.rfc4514_string()[:80]!r} "
                                   f"is not valid at {when.isoformat()}")
        for anchor in roots:
            if anchor == current:
                return
            try:
                current.verify_directly_issued_by(anchor)
            except (ValueError, TypeError, InvalidSignature):  # not issued by this root
                continue
            if not anchor.not_valid_before_utc <= when <= anchor.not_valid_after_utc:
                raise CertificateError("trusted root is not valid at signing time")
            return
        for inter in intermediates:
            if inter == current:
                continue
            try:
                current.verify_directly_issued_by(inter)
            except (ValueError, TypeError, InvalidSignature):  # not issued by this one
                continue
            # Intermediates come from the registry: only a CA may issue.
            if not _is_ca(inter):
                raise CertificateError("an intermediate in the chain is not a CA")
            current = inter
            break
        else:
            raise CertificateError("certificate does not chain to a trusted root")
    raise CertificateError("certificate chain is too long")
