"""Rekor Signed Entry Timestamps (cosign's ``dev.sigstore.cosign/bundle`` annotation).

The annotation is::

    {"SignedEntryTimestamp": b64, "Payload": {"body": b64, "integratedTime": int,
                                             "logIndex": int, "logID": hex}}

The SET is the log's signature over the canonical JSON (sorted keys, no
whitespace) of ``Payload``, made with the Rekor key whose id (sha256 of its DER
SPKI) is ``logID``. A valid SET proves the entry was logged at
``integratedTime``; the body must then be shown to describe *this* signature
(hash of the payload, the signature, the key or certificate): otherwise an
entry of some other artifact could be transplanted (CVE-2022-36056).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from msgspec import Struct

from imggate.signatures.keys import BadSignature, decode_b64, spki_der, verify_raw

if TYPE_CHECKING:
    from cryptography import x509

    from imggate.signatures.trustroot import SigstoreTrustRoot

_MAX_BUNDLE = 1024 * 1024


class TlogError(Exception):
    """The transparency log evidence does not hold; the message says why."""


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class RekorEntry(Struct, frozen=True):
    """A parsed ``dev.sigstore.cosign/bundle`` annotation."""

    set_signature: bytes
    body_b64: str
    body: dict[str, Any]
    integrated_time: int
    log_index: int
    log_id: str

    @property
    def kind(self) -> str:
        """``hashedrekord``, ``intoto``, ``dsse``..."""
        return str(self.body.get("kind", ""))

    @property
    def api_version(self) -> str:
        """The body's ``apiVersion``."""
        return str(self.body.get("apiVersion", ""))

    @property
    def time(self) -> datetime:
        """``integratedTime`` as an aware datetime; :class:`TlogError` when out of range."""
        try:
            return datetime.fromtimestamp(self.integrated_time, tz=UTC)
        except (ValueError, OverflowError, OSError):
            # datetime's words ("year ... is out of range") are not imggate's.
            raise TlogError(f"Rekor entry integratedTime {str(self.integrated_time)[:30]} "
                            "is out of range") from None


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TlogError(f"Rekor bundle {what} must be a non-negative integer")
    return value


def parse_rekor_bundle(text: str) -> RekorEntry:
    """Validate the annotation; :class:`TlogError` on anything malformed."""
    if len(text) > _MAX_BUNDLE:
        raise TlogError("Rekor bundle annotation is too large")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise TlogError("Rekor bundle annotation is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Payload"), dict):
        raise TlogError("Rekor bundle annotation lacks a Payload object")
    sig = doc.get("SignedEntryTimestamp")
    if not isinstance(sig, str):
        raise TlogError("Rekor bundle annotation lacks SignedEntryTimestamp")
    payload = doc["Payload"]
    body_b64, log_id = payload.get("body"), payload.get("logID")
    if not isinstance(body_b64, str) or not isinstance(log_id, str):
        raise TlogError("Rekor bundle Payload needs string body and logID")
    try:
        body = json.loads(base64.b64decode(body_b64, validate=True))
    except (binascii.Error, ValueError, RecursionError):
        raise TlogError("Rekor entry body is not base64 JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
        raise TlogError("Rekor entry body has no spec")
    try:
        set_sig = decode_b64(sig, "SignedEntryTimestamp")
    except BadSignature as e:
        raise TlogError(str(e)) from None
    return RekorEntry(set_sig, body_b64, body,
                      _int(payload.get("integratedTime"), "integratedTime"),
                      _int(payload.get("logIndex"), "logIndex"), log_id)


def _str_int(value: object, what: str) -> int:
    # Bundles carry int64 fields as JSON strings (protobuf JSON mapping).
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return _int(value, what)


def entry_from_bundle(tle: object) -> RekorEntry:
    """A Sigstore bundle ``tlogEntries[]`` item as a :class:`RekorEntry` (SET-based).

    Entries without an inclusion promise (Rekor v2: inclusion proof and
    checkpoint only) are refused: imggate proves log time by the SET.
    """
    if not isinstance(tle, dict):
        raise TlogError("bundle tlog entry is not an object")
    promise = tle.get("inclusionPromise")
    set_b64 = promise.get("signedEntryTimestamp") if isinstance(promise, dict) else None
    if not isinstance(set_b64, str):
        raise TlogError("bundle tlog entry has no inclusion promise (SET)")
    body_b64, log_id = tle.get("canonicalizedBody"), tle.get("logId")
    key_id = log_id.get("keyId") if isinstance(log_id, dict) else None
    if not isinstance(body_b64, str) or not isinstance(key_id, str):
        raise TlogError("bundle tlog entry needs canonicalizedBody and logId.keyId")
    try:
        body = json.loads(base64.b64decode(body_b64, validate=True))
        log_hex = base64.b64decode(key_id, validate=True).hex()
    except (binascii.Error, ValueError, RecursionError):
        raise TlogError("bundle tlog entry body or log id is not valid base64") from None
    if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
        raise TlogError("bundle tlog entry body has no spec")
    kv = tle.get("kindVersion")
    if isinstance(kv, dict) and (kv.get("kind"), kv.get("version")) != \
            (body.get("kind"), body.get("apiVersion")):
        raise TlogError("bundle tlog entry kindVersion does not match its body")
    try:
        set_sig = decode_b64(set_b64, "signedEntryTimestamp")
    except BadSignature as e:
        raise TlogError(str(e)) from None
    return RekorEntry(set_sig, body_b64, body,
                      _str_int(tle.get("integratedTime"), "integratedTime"),
                      _str_int(tle.get("logIndex"), "logIndex"), log_hex)


def verify_set(entry: RekorEntry, root: SigstoreTrustRoot) -> None:
    """Verify the SET with the trusted Rekor key named by ``logID``."""
    try:
        log_id = bytes.fromhex(entry.log_id)
    except ValueError:
        raise TlogError("Rekor logID is not hex") from None
    log = root.tlog(log_id)
    if log is None:
        raise TlogError(f"Rekor log {entry.log_id[:16]}... is not in the trusted root")
    if not log.validity.contains(entry.time):
        raise TlogError("Rekor key was not valid at the entry's integratedTime")
    canonical = json.dumps(
        {"body": entry.body_b64, "integratedTime": entry.integrated_time,
         "logID": entry.log_id, "logIndex": entry.log_index},
        sort_keys=True, separators=(",", ":"),
    ).encode()
    try:
        verify_raw(log.key, entry.set_signature, canonical)
    except BadSignature:
        raise TlogError("Rekor SignedEntryTimestamp does not verify") from None


def _get(obj: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(p)
    return obj


def _hash_value(obj: Any, where: str) -> str:
    if _get(obj, "algorithm") != "sha256" or not isinstance(_get(obj, "value"), str):
        raise TlogError(f"Rekor body {where} is not a sha256 hash")
    return str(obj["value"]).lower()


def _same_signer(pem_b64: object, signer: x509.Certificate | bytes, where: str) -> None:
    """The body's key/cert (base64 of PEM) must be the one that verified."""
    if not isinstance(pem_b64, str):
        raise TlogError(f"Rekor body lacks {where}")
    try:
        pem = base64.b64decode(pem_b64, validate=True)
    except (binascii.Error, ValueError):
        raise TlogError(f"Rekor body {where} is not base64") from None
    try:
        if b"CERTIFICATE" in pem:
            from cryptography import x509

            logged = x509.load_pem_x509_certificate(pem)
            if isinstance(signer, x509.Certificate):
                ok = logged == signer
            else:
                ok = spki_der(logged.public_key()) == signer
        else:
            key = serialization.load_pem_public_key(pem)
            ours = signer if isinstance(signer, bytes) else spki_der(signer.public_key())
            ok = spki_der(key) == ours
    except (ValueError, TypeError):
        raise TlogError(f"Rekor body {where} is not a PEM key or certificate") from None
    if not ok:
        raise TlogError(f"Rekor entry was made by another key or certificate ({where})")


def check_hashedrekord(entry: RekorEntry, payload: bytes, signature: bytes,
                       signer: x509.Certificate | bytes) -> None:
    """The hashedrekord body names this payload, this signature and this signer.

    ``signer`` is the Fulcio/PKI certificate, or the DER SPKI of the verifying key.
    """
    if entry.kind != "hashedrekord" or entry.api_version != "0.0.1":
        raise TlogError(f"Rekor entry is {entry.kind} {entry.api_version}, "
                        "expected hashedrekord 0.0.1 for a signature")
    spec = entry.body["spec"]
    if _hash_value(_get(spec, "data", "hash"), "data.hash") != hashlib.sha256(payload).hexdigest():
        raise TlogError("Rekor entry is for another payload (hash differs)")
    content = _get(spec, "signature", "content")
    try:
        logged_sig = decode_b64(content if isinstance(content, str) else "", "signature")
    except BadSignature:
        raise TlogError("Rekor entry signature is not base64") from None
    if logged_sig != signature:
        raise TlogError("Rekor entry holds another signature")
    _same_signer(_get(spec, "signature", "publicKey", "content"), signer, "signature.publicKey")


def check_envelope_entry(entry: RekorEntry, envelope: bytes | None, payload: bytes,
                         signatures: tuple[bytes, ...], signer: x509.Certificate | bytes) -> None:
    """An ``intoto`` 0.0.1 or ``dsse`` 0.0.1 body names this DSSE envelope and signer.

    ``envelope`` is ``None`` for an envelope inside a Sigstore bundle: it is a
    re-serialised JSON object there, so its logged hash cannot be recomputed;
    payload hash, signature and signer still bind the entry.
    """
    spec = entry.body["spec"]
    env_hash = hashlib.sha256(envelope).hexdigest() if envelope is not None else None
    payload_hash = hashlib.sha256(payload).hexdigest()
    if entry.kind == "intoto" and entry.api_version == "0.0.1":
        if env_hash is not None and \
                _hash_value(_get(spec, "content", "hash"), "content.hash") != env_hash:
            raise TlogError("Rekor entry is for another envelope (hash differs)")
        if _hash_value(_get(spec, "content", "payloadHash"), "content.payloadHash") != \
                payload_hash:
            raise TlogError("Rekor entry is for another payload (hash differs)")
        _same_signer(_get(spec, "publicKey"), signer, "publicKey")
        return
    if entry.kind == "dsse" and entry.api_version == "0.0.1":
        if env_hash is not None and \
                _hash_value(_get(spec, "envelopeHash"), "envelopeHash") != env_hash:
            raise TlogError("Rekor entry is for another envelope (hash differs)")
        if _hash_value(_get(spec, "payloadHash"), "payloadHash") != payload_hash:
            raise TlogError("Rekor entry is for another payload (hash differs)")
        logged = _get(spec, "signatures")
        if not isinstance(logged, list) or not logged:
            raise TlogError("Rekor dsse entry has no signatures")
        for item in logged:
            try:
                sig = decode_b64(str(_get(item, "signature") or ""), "signature")
            except BadSignature:
                continue
            if sig in signatures:
                _same_signer(_get(item, "verifier"), signer, "signatures[].verifier")
                return
        raise TlogError("Rekor entry holds other signatures than the envelope")
    raise TlogError(f"unsupported Rekor entry kind for an attestation: "
                    f"{entry.kind[:30]} {entry.api_version[:10]}")
