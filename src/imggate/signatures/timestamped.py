"""Keyless DSSE bundles proved by RFC 3161 timestamps alone (GitHub's Sigstore instance).

Private repositories' attestations are signed by GitHub's Fulcio and stamped by
GitHub's timestamp authority; nothing is written to a transparency log.
sigstore-python refuses both such a trusted root ("no transparency log
instances") and such a bundle ("tlogEntries required"), so this path is
imggate's own, on ``rfc3161-client`` (what sigstore-python uses for
timestamps) and ``cryptography``:

1. the DSSE signature verifies with the certificate's key over the PAE (or,
   for a message-signature bundle, over the SHA-256 digest it names, which
   must be the subject's);
2. at least one RFC 3161 timestamp over that signature verifies against a
   timestamp authority of the root (its chain), and was issued while that
   authority was valid;
3. the certificate was valid at the timestamp, and chains to a Fulcio CA of
   the same root at that time (with an embedded SCT when the root lists CT
   logs; GitHub's lists none);
4. the identity rule matches the certificate's SAN and issuer.

Every failure is a :class:`TimestampError` naming what did not hold.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from imggate.models import Digest
from imggate.signatures.attestations import Envelope, StatementError, pae, parse_envelope
from imggate.signatures.interface import Identity
from imggate.signatures.keyless import (
    fulcio_claims,
    identities,
    oidc_issuer,
    verify_fulcio_chain,
    verify_sct,
)
from imggate.signatures.keys import BadSignature, CertificateError, certificate_key, verify_raw
from imggate.signatures.trustroot import SigstoreTrustRoot

#: Most timestamps read from one bundle, and the largest one.
MAX_TIMESTAMPS = 16
MAX_TIMESTAMP_BYTES = 64 * 1024


class TimestampError(Exception):
    """A timestamp-only bundle does not verify; the message says what failed."""


@dataclass(frozen=True, slots=True)
class Timestamped:
    """A verified timestamp-only bundle: its DSSE envelope, or ``None`` for a message
    signature (over the subject digest itself)."""

    envelope: Envelope | None
    signer: str
    when: datetime
    claims: dict[str, str]


def bundle_certificate(doc: Any) -> x509.Certificate:
    """The signing (leaf) certificate of a bundle; :class:`TimestampError` when absent."""
    vm = doc.get("verificationMaterial") if isinstance(doc, dict) else None
    cert = vm.get("certificate") if isinstance(vm, dict) else None
    if not isinstance(cert, dict) and isinstance(vm, dict):
        chain = vm.get("x509CertificateChain")
        certs = chain.get("certificates") if isinstance(chain, dict) else None
        cert = certs[0] if isinstance(certs, list) and certs else None
    raw = cert.get("rawBytes") if isinstance(cert, dict) else None
    if not isinstance(raw, str):
        raise TimestampError("bundle has no signing certificate")
    try:
        return x509.load_der_x509_certificate(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        raise TimestampError("bundle signing certificate is not a DER certificate") from None


def signed_timestamps(doc: Any) -> list[bytes]:
    """The raw RFC 3161 responses of a bundle (possibly none)."""
    vm = doc.get("verificationMaterial") if isinstance(doc, dict) else None
    data = vm.get("timestampVerificationData") if isinstance(vm, dict) else None
    items = data.get("rfc3161Timestamps") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return []
    if len(items) > MAX_TIMESTAMPS:
        raise TimestampError(f"{len(items)} timestamps, at most {MAX_TIMESTAMPS} are read")
    out = []
    for item in items:
        text = item.get("signedTimestamp") if isinstance(item, dict) else None
        if not isinstance(text, str) or len(text) > MAX_TIMESTAMP_BYTES * 2:
            raise TimestampError("a timestamp is missing or too large")
        try:
            out.append(base64.b64decode(text, validate=True))
        except (binascii.Error, ValueError):
            raise TimestampError("a timestamp is not base64") from None
    return out


def tlog_entries(doc: Any) -> list[Any]:
    """The bundle's transparency-log entries (possibly none)."""
    vm = doc.get("verificationMaterial") if isinstance(doc, dict) else None
    entries = vm.get("tlogEntries") if isinstance(vm, dict) else None
    return entries if isinstance(entries, list) else []


def _verified_time(raw: bytes, signature: bytes, root: SigstoreTrustRoot) -> datetime:
    """The time an RFC 3161 response vouches for ``signature``, checked against the root's TSAs."""
    from rfc3161_client import VerificationError as TsaVerificationError
    from rfc3161_client import VerifierBuilder, decode_timestamp_response

    try:
        response = decode_timestamp_response(raw)
    except Exception:  # a third-party DER parser: any failure is "not a timestamp"
        raise TimestampError("a timestamp is not an RFC 3161 response") from None
    why = "no timestamp authority of the trusted root"
    # An authority that signed the timestamp but was not valid then says more than the
    # other generations of the same instance, which did not sign it: its reason wins.
    outside: str | None = None
    for tsa in root.timestamp_authorities:
        if len(tsa.chain) < 2:
            why = "the timestamp authority's chain is incomplete"
            continue
        builder = VerifierBuilder().tsa_certificate(tsa.chain[0]).add_root_certificate(
            tsa.chain[-1])
        for inter in tsa.chain[1:-1]:
            builder = builder.add_intermediate_certificate(inter)
        try:
            builder.build().verify_message(response, signature)
        except (TsaVerificationError, ValueError):
            why = "the timestamp does not verify against the trusted timestamp authorities"
            continue
        when = response.tst_info.gen_time
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        if not tsa.validity.contains(when):
            outside = f"the timestamp ({when.isoformat()}) is outside its authority's validity"
            continue
        return when
    raise TimestampError(outside or why)


def _message_signature(doc: Any, subject: Digest | None,
                       key: Any) -> bytes:
    """The signature of a message-signature bundle, checked over ``subject``'s digest."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    ms = doc.get("messageSignature")
    md = ms.get("messageDigest") if isinstance(ms, dict) else None
    try:
        algo = md.get("algorithm") if isinstance(md, dict) else None
        digest = base64.b64decode(str(md.get("digest")), validate=True) \
            if isinstance(md, dict) else b""
        sig = base64.b64decode(str(ms.get("signature")), validate=True) \
            if isinstance(ms, dict) else b""
    except (binascii.Error, ValueError):
        raise TimestampError("message signature is not base64") from None
    if algo != "SHA2_256" or len(digest) != 32:
        raise TimestampError("message signature needs a SHA2_256 message digest")
    if subject is None or subject.algorithm != "sha256" or subject.hex != digest.hex():
        raise TimestampError(f"message digest sha256:{digest.hex()} is not {subject}")
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise TimestampError("message signatures are verified for ECDSA keys only")
    try:
        key.verify(sig, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except (InvalidSignature, ValueError):
        raise TimestampError("message signature does not verify with the certificate's "
                             "key") from None
    return sig


def verify_timestamped(doc: Any, root: SigstoreTrustRoot, identity: Identity,
                       subject: Digest | None = None) -> Timestamped:
    """Verify a bundle by its RFC 3161 timestamps against ``root``; see the module doc."""
    cert = bundle_certificate(doc)
    try:
        key = certificate_key(cert)
    except CertificateError as e:  # imggate's words (keys.certificate_key)
        raise TimestampError(f"certificate key unusable: {e}") from None
    env_doc = doc.get("dsseEnvelope") if isinstance(doc, dict) else None
    envelope: Envelope | None = None
    signature: bytes | None = None
    if isinstance(env_doc, dict):
        try:
            envelope = parse_envelope(json.dumps(env_doc).encode())
        except StatementError as e:
            raise TimestampError(str(e)) from None
        data = pae(envelope.payload_type, envelope.payload)
        for sig in envelope.signatures:
            try:
                verify_raw(key, sig, data)
            except BadSignature:
                continue
            signature = sig
            break
        if signature is None:
            raise TimestampError("DSSE signature does not verify with the certificate's key")
    elif isinstance(doc, dict) and "messageSignature" in doc:
        signature = _message_signature(doc, subject, key)
    else:
        raise TimestampError("bundle has neither a DSSE envelope nor a message signature")
    stamps = signed_timestamps(doc)
    if not stamps:
        raise TimestampError("bundle has no RFC 3161 timestamp")
    reasons: list[str] = []
    for raw in stamps:
        try:
            when = _verified_time(raw, signature, root)
        except TimestampError as e:
            reasons.append(str(e))
            continue
        if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
            reasons.append(f"the timestamp ({when.isoformat()}) is outside the certificate's "
                           f"validity ({cert.not_valid_before_utc.isoformat()} to "
                           f"{cert.not_valid_after_utc.isoformat()})")
            continue
        try:
            chain = verify_fulcio_chain(cert, root, when)
            if root.ctlogs:
                verify_sct(cert, chain, root)
            sans, issuer = identities(cert), oidc_issuer(cert)
        except CertificateError as e:
            reasons.append(str(e))
            continue
        san = identity.match(sans, issuer)
        if san is None:
            raise TimestampError(f"certificate identity {', '.join(sans)[:200]} "
                                 f"(issuer {issuer[:100]}) does not match")
        return Timestamped(envelope, f"{san} ({issuer})", when, fulcio_claims(cert))
    raise TimestampError("; ".join(dict.fromkeys(reasons))[:1000])


def issued_by(cert: x509.Certificate, root: SigstoreTrustRoot) -> bool:
    """Whether a CA of ``root`` has the name that issued ``cert`` (a cheap first sort)."""
    return any(ca.chain and ca.chain[0].subject == cert.issuer
               for ca in root.certificate_authorities)
