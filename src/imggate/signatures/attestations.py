"""cosign ``.att`` attestations: DSSE envelopes carrying in-toto statements.

The signature covers the DSSE pre-authentication encoding of the *decoded*
payload (``DSSEv1 <len> <type> <len> <payload>``), not the envelope. The
statement's subject must contain the image digest, and its predicate type
must be one the caller asked for (cosign's short names are accepted). The
verified predicate is returned in the check so rules can inspect it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imggate.errors import ConfigError
from imggate.models import Digest, SignatureCheck, SignatureKind
from imggate.predicates import PREDICATE_SHORT_NAMES
from imggate.signatures.interface import DSSE_MEDIA_TYPE, Attachment, TrustConfig
from imggate.signatures.keys import BadSignature, decode_b64
from imggate.signatures.rekor import check_envelope_entry
from imggate.signatures.signers import SignedContent, find_signer

MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_STATEMENT_TYPES = frozenset({
    "https://in-toto.io/Statement/v0.1",
    "https://in-toto.io/Statement/v1",
})



def predicate_type_uri(name: str) -> str:
    """A cosign short name (``slsaprovenance``…) or a full URI; :class:`ConfigError` otherwise."""
    text = name.strip()
    if text.lower() in PREDICATE_SHORT_NAMES:
        return PREDICATE_SHORT_NAMES[text.lower()]
    if "://" in text:
        return text
    raise ConfigError(f"unknown predicate type {text[:80]!r}",
                      hint=f"use a URI or one of {', '.join(PREDICATE_SHORT_NAMES)}")


class StatementError(Exception):
    """A DSSE envelope or in-toto statement is malformed or about something else."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed DSSE envelope."""

    payload_type: str
    payload: bytes
    signatures: tuple[bytes, ...]


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def parse_envelope(raw: bytes) -> Envelope:
    """Validate a DSSE envelope; :class:`StatementError` when malformed."""
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise StatementError("DSSE envelope is too large")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise StatementError("DSSE envelope is not JSON") from None
    if not isinstance(doc, dict):
        raise StatementError("DSSE envelope is not a JSON object")
    ptype, payload, sigs = doc.get("payloadType"), doc.get("payload"), doc.get("signatures")
    if not isinstance(ptype, str) or not isinstance(payload, str):
        raise StatementError("DSSE envelope needs string payloadType and payload")
    if not ptype.isascii():
        # Media types are ASCII; a lone surrogate ("\ud800" is valid JSON) cannot even be
        # encoded for the PAE, and nothing else could match the in-toto type.
        shown = ptype.encode("ascii", "backslashreplace").decode("ascii")[:80]
        raise StatementError(f"DSSE payloadType {shown!r} is not a media type")
    if not isinstance(sigs, list) or not sigs:
        raise StatementError("DSSE envelope has no signatures")
    try:
        body = decode_b64(payload, "DSSE payload")
        decoded = tuple(decode_b64(str(s.get("sig", "")) if isinstance(s, dict) else "",
                                   "DSSE signature") for s in sigs)
    except BadSignature as e:
        raise StatementError(str(e)) from None
    return Envelope(ptype, body, decoded)


@dataclass(frozen=True, slots=True)
class Statement:
    """The parts of an in-toto statement imggate relies on."""

    predicate_type: str
    subject_digests: tuple[Digest, ...]
    predicate: Mapping[str, Any]


def parse_statement(payload: bytes) -> Statement:
    """Validate an in-toto statement (v0.1 or v1)."""
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        raise StatementError("in-toto statement is not JSON") from None
    # _type may be any JSON value (a list is unhashable): only a string can name a statement.
    kind = doc.get("_type") if isinstance(doc, dict) else None
    if not isinstance(kind, str) or kind not in _STATEMENT_TYPES:
        raise StatementError("payload is not an in-toto statement")
    ptype = doc.get("predicateType")
    if not isinstance(ptype, str):
        raise StatementError("statement has no predicateType")
    subjects = doc.get("subject")
    if not isinstance(subjects, list):
        raise StatementError("statement subject must be a list")
    digests = []
    for s in subjects:
        dg = s.get("digest") if isinstance(s, dict) else None
        if not isinstance(dg, dict):
            continue
        for algo, hx in dg.items():
            if isinstance(algo, str) and isinstance(hx, str):
                try:
                    digests.append(Digest.parse(f"{algo}:{hx.lower()}"))
                except ValueError:
                    continue
    predicate = doc.get("predicate")
    if predicate is not None and not isinstance(predicate, dict):
        raise StatementError("statement predicate must be an object")
    return Statement(ptype, tuple(digests), predicate or {})


def check_statement(payload_type: str, payload: bytes, subject: Digest,
                    trust: TrustConfig) -> Statement:
    """Type, subject and predicate type rules for a verified or about-to-be-verified payload."""
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise StatementError(f"DSSE payloadType {payload_type[:80]!r} is not in-toto")
    st = parse_statement(payload)
    if subject not in st.subject_digests:
        raise StatementError(f"statement subject does not include this image {subject}")
    if trust.attestation_types and st.predicate_type not in trust.attestation_types:
        raise StatementError(f"predicate type {st.predicate_type[:120]} is not one of "
                             f"{', '.join(trust.attestation_types)[:300]}")
    return st


def _fail(att: Attachment, reason: str, ptype: str | None = None) -> SignatureCheck:
    return SignatureCheck(SignatureKind.ATTESTATION, att.location, False, reason,
                          predicate_type=ptype, signed_digest=att.subject)


def verify_attestation(att: Attachment, trust: TrustConfig) -> SignatureCheck:
    """Verify one ``.att`` DSSE layer against every anchor of ``trust``; never raises."""
    if att.error is not None or att.payload is None:
        return _fail(att, att.error or "envelope missing")
    if att.media_type != DSSE_MEDIA_TYPE:
        return _fail(att, f"not a DSSE envelope layer (mediaType {att.media_type[:80]!r})")
    envelope_bytes = att.payload
    try:
        env = parse_envelope(envelope_bytes)
    except StatementError as e:
        return _fail(att, str(e))
    try:
        st = check_statement(env.payload_type, env.payload, att.subject, trust)
    except StatementError as e:
        # Name the (unverified) predicate type so a report can say what was found.
        try:
            found: str | None = parse_statement(env.payload).predicate_type
        except StatementError:
            found = None
        return _fail(att, str(e), found)
    content = SignedContent(
        pae(env.payload_type, env.payload), env.signatures,
        lambda entry, sig, signer: check_envelope_entry(entry, envelope_bytes, env.payload,
                                                        (sig,), signer))
    result = find_signer(att, trust, content)
    ok = result.signer is not None
    return SignatureCheck(SignatureKind.ATTESTATION, att.location, ok, result.reason,
                          signer=result.signer, predicate_type=st.predicate_type,
                          predicate=st.predicate if ok else None, tlog=result.tlog,
                          signed_digest=att.subject, claims=result.claims if ok else {})
