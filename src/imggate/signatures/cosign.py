"""cosign ``.sig`` signatures: simple-signing payloads signed by a key, a PKI or Fulcio.

A ``.sig`` layer is a simple-signing document (the layer blob, signed as
stored) with the signature in the ``dev.cosignproject.cosign/signature``
annotation. Besides the signature, the payload must be of type ``cosign
container image signature`` and its ``critical.image.docker-manifest-digest``
must equal the image digest: without that check a valid signature of *another*
image would pass.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from msgspec import Struct

from imggate.models import Digest, SignatureCheck, SignatureKind
from imggate.signatures.interface import (
    ANN_SIGNATURE,
    SIMPLESIGNING_MEDIA_TYPE,
    SIMPLESIGNING_TYPE,
    Attachment,
    TrustConfig,
)
from imggate.signatures.keys import BadSignature, decode_b64
from imggate.signatures.rekor import check_hashedrekord
from imggate.signatures.signers import SignedContent, find_signer

MAX_PAYLOAD_BYTES = 1024 * 1024


class PayloadError(Exception):
    """A simple-signing payload is malformed or about something else."""


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class SimpleSigning(Struct, frozen=True):
    """The parts of a simple-signing payload imggate relies on."""

    digest: Digest
    docker_reference: str | None
    optional: Mapping[str, Any]


def parse_simple_signing(payload: bytes) -> SimpleSigning:
    """Validate a simple-signing document; :class:`PayloadError` says what is wrong."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError("payload is too large for a simple-signing document")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError):
        raise PayloadError("payload is not JSON") from None
    critical = doc.get("critical") if isinstance(doc, dict) else None
    if not isinstance(critical, dict):
        raise PayloadError("payload has no 'critical' object")
    if critical.get("type") != SIMPLESIGNING_TYPE:
        raise PayloadError(f"payload type is {str(critical.get('type'))[:60]!r}, "
                           f"not {SIMPLESIGNING_TYPE!r}")
    image = critical.get("image")
    dg = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if not isinstance(dg, str):
        raise PayloadError("payload lacks critical.image.docker-manifest-digest")
    try:
        digest = Digest.parse(dg)
    except ValueError as e:
        raise PayloadError(str(e)) from None
    ident = critical.get("identity")
    ref = ident.get("docker-reference") if isinstance(ident, dict) else None
    optional = doc.get("optional")
    if optional is not None and not isinstance(optional, dict):
        raise PayloadError("payload 'optional' must be an object or null")
    return SimpleSigning(digest, ref if isinstance(ref, str) else None, optional or {})


def _repository_of(reference: str) -> str:
    """``host/repo`` from ``host/repo``, ``host/repo:tag`` or ``host/repo@sha256:…``."""
    name = reference.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def check_claims(doc: SimpleSigning, trust: TrustConfig) -> None:
    """Annotation claims (``-a k=v``) and the optional docker-reference rule."""
    for k, v in trust.annotations.items():
        if str(doc.optional.get(k)) != v or k not in doc.optional:
            raise PayloadError(f"annotation {k}={v} is not claimed by the signature")
    if trust.docker_reference is not None:
        signed = _repository_of(doc.docker_reference or "")
        if signed != _repository_of(trust.docker_reference):
            raise PayloadError(f"signed docker-reference {signed[:200]!r} is not "
                               f"{trust.docker_reference[:200]!r}")


def _fail(att: Attachment, reason: str, signed: Digest | None = None) -> SignatureCheck:
    return SignatureCheck(SignatureKind.SIGNATURE, att.location, False, reason,
                          signed_digest=signed or att.subject)


def verify_signature(att: Attachment, trust: TrustConfig) -> SignatureCheck:
    """Verify one ``.sig`` layer against every anchor of ``trust``; never raises."""
    if att.error is not None or att.payload is None:
        return _fail(att, att.error or "payload missing")
    if att.media_type != SIMPLESIGNING_MEDIA_TYPE:
        return _fail(att, f"not a simple-signing layer (mediaType {att.media_type[:80]!r})")
    try:
        doc = parse_simple_signing(att.payload)
    except PayloadError as e:
        return _fail(att, str(e))
    if doc.digest != att.subject:
        return _fail(att, f"payload signs {doc.digest}, not this image {att.subject}",
                     doc.digest)
    try:
        check_claims(doc, trust)
    except PayloadError as e:
        return _fail(att, str(e))
    text = att.annotations.get(ANN_SIGNATURE)
    if not text:
        return _fail(att, "layer has no dev.cosignproject.cosign/signature annotation")
    try:
        sig = decode_b64(text, "signature annotation")
    except BadSignature as e:
        return _fail(att, str(e))
    payload = att.payload
    content = SignedContent(
        payload, (sig,),
        lambda entry, s, signer: check_hashedrekord(entry, payload, s, signer))
    result = find_signer(att, trust, content)
    return SignatureCheck(SignatureKind.SIGNATURE, att.location, result.signer is not None,
                          result.reason, signer=result.signer, tlog=result.tlog,
                          signed_digest=doc.digest)
