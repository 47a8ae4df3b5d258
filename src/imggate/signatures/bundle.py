"""Sigstore bundles v0.3 (cosign v3's default), verified with sigstore-python.

A bundle found as an OCI referrer carries a Fulcio leaf, a Rekor entry with
inclusion promise and proof, and a DSSE envelope. sigstore-python's
``Verifier`` checks chain, SCT, log entry and signature against the same
``trusted_root.json`` the legacy path uses (read from disk: no TUF refresh,
no network); imggate then applies its own identity rule and the in-toto
subject / predicate type checks. A bundle whose predicate type is cosign's
``https://sigstore.dev/cosign/sign/v1`` is an image *signature*; any other
is an attestation.

Key-based bundles (cosign v3 ``sign --key``: ``verificationMaterial.publicKey``
and a DSSE envelope) are verified by imggate itself, sigstore-python needing a
certificate: the DSSE signature with each trusted key, the inclusion promise
(SET) with the trusted Rekor key, the inclusion proof and signed checkpoint
when present (imggate.signatures.merkle), and the ``dsse`` body's payload
hash, signature and verifier. Rekor v2 entries (proof only, no SET) are not
accepted for keys: a failed check.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509

from imggate.models import SignatureCheck, SignatureKind
from imggate.signatures.attestations import (
    IN_TOTO_PAYLOAD_TYPE,
    Statement,
    StatementError,
    check_statement,
    pae,
    parse_envelope,
    parse_statement,
)
from imggate.signatures.interface import Attachment, Identity, TrustConfig
from imggate.signatures.keyless import fulcio_claims, identities, oidc_issuer
from imggate.signatures.keys import BadSignature, CertificateError
from imggate.signatures.merkle import verify_bundle_proof
from imggate.signatures.rekor import TlogError, check_envelope_entry, entry_from_bundle, verify_set
from imggate.signatures.signers import SignedContent, verify_any
from imggate.signatures.sigstore_failures import sigstore_failure
from imggate.signatures.timestamped import (
    TimestampError,
    bundle_certificate,
    issued_by,
    signed_timestamps,
    tlog_entries,
    verify_timestamped,
)
from imggate.signatures.trustroot import SigstoreTrustRoot

logger = logging.getLogger("imggate.signatures")

COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
_verifiers: dict[str, Any] = {}


class _IdentityPolicy:
    """A sigstore ``VerificationPolicy`` applying one imggate :class:`Identity`."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.matched: str | None = None
        # imggate's own reason when this policy refused, reported instead of sigstore's text.
        self.refused: str | None = None

    def verify(self, cert: x509.Certificate) -> None:
        from sigstore.errors import VerificationError

        try:
            sans, issuer = identities(cert), oidc_issuer(cert)
        except CertificateError as e:
            self.refused = str(e)
            raise VerificationError(self.refused) from None
        san = self.identity.match(sans, issuer)
        if san is None:
            self.refused = (f"certificate identity {', '.join(sans)[:200]} "
                            f"(issuer {issuer[:100]}) does not match")
            raise VerificationError(self.refused)
        self.matched = f"{san} ({issuer})"


def _verifier(root: SigstoreTrustRoot) -> Any:
    """A sigstore ``Verifier`` for one trust root, built once per root document."""
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

    raw = root.raw
    key = hashlib.sha256(raw).hexdigest()
    if key not in _verifiers:
        # sigstore-python reads trusted roots from files only.
        with tempfile.TemporaryDirectory(prefix="imggate-trust-") as tmp:
            path = Path(tmp) / "trusted_root.json"
            path.write_bytes(raw)
            _verifiers[key] = Verifier(trusted_root=TrustedRoot.from_file(str(path)))
    return _verifiers[key]


def _kind_of(payload: bytes) -> SignatureKind:
    try:
        ptype = json.loads(payload).get("predicateType")
    except (ValueError, AttributeError, RecursionError):
        return SignatureKind.ATTESTATION
    return SignatureKind.SIGNATURE if ptype == COSIGN_SIGN_PREDICATE else \
        SignatureKind.ATTESTATION


def _judge(payload_type: str, payload: bytes, att: Attachment,
           trust: TrustConfig) -> tuple[SignatureKind, Statement]:
    """Kind and statement of a verified DSSE payload; :class:`StatementError` if not for us."""
    kind = _kind_of(payload)
    if kind is SignatureKind.SIGNATURE:
        if payload_type != IN_TOTO_PAYLOAD_TYPE:
            raise StatementError(f"DSSE payloadType {payload_type[:80]!r} is not in-toto")
        st = parse_statement(payload)
        if att.subject not in st.subject_digests:
            raise StatementError(f"bundle subject does not include this image {att.subject}")
        return kind, st
    return kind, check_statement(payload_type, payload, att.subject, trust)


def _verify_keyed(doc: Any, att: Attachment, trust: TrustConfig) -> tuple[SignatureCheck | None,
                                                                      list[str]]:
    """Key-based bundles (cosign v3 ``sign --key``): DSSE over PAE, SET, dsse body."""
    env = doc.get("dsseEnvelope") if isinstance(doc, dict) else None
    if not isinstance(env, dict):
        return None, ["key-based bundles need a DSSE envelope (message signatures unsupported)"]
    try:
        envelope = parse_envelope(json.dumps(env).encode())
    except StatementError as e:
        return None, [str(e)]
    material = doc.get("verificationMaterial")
    entries = material.get("tlogEntries") if isinstance(material, dict) else None
    pae_bytes = pae(envelope.payload_type, envelope.payload)
    reasons = []
    for key in trust.keys:
        try:
            sig = verify_any(key.key, SignedContent(pae_bytes, envelope.signatures,
                                                     lambda *_: None))
            tlog = False
            if trust.ignore_tlog:
                logger.warning("UNSAFE: %s: accepting %s without checking "
                               "a transparency log entry", trust.ignore_tlog_by, att.location)
            else:
                if not isinstance(entries, list) or not entries:
                    raise TlogError("bundle has no transparency log entry")
                entry = entry_from_bundle(entries[0])
                verify_set(entry, trust.root())
                verify_bundle_proof(entries[0], trust.root())
                check_envelope_entry(entry, None, envelope.payload, (sig,), key.spki)
                tlog = True
            kind, st = _judge(envelope.payload_type, envelope.payload, att, trust)
        except (BadSignature, TlogError, StatementError, ValueError) as e:
            reasons.append(f"{key.label}: {e}")
            continue
        return SignatureCheck(kind, att.location, True,
                              f"verified Sigstore bundle with key {key.label}",
                              signer=key.label, predicate_type=st.predicate_type,
                              predicate=st.predicate if kind is SignatureKind.ATTESTATION
                              else None, tlog=tlog, signed_digest=att.subject), []
    return None, reasons


def _verify_keyless(att: Attachment, doc: Any, trust: TrustConfig
                    ) -> tuple[SignatureCheck | None, list[str]]:
    """Fulcio bundles, against the root their certificate chains to: through sigstore-python
    when the root has a transparency log and the bundle an entry in it, else by RFC 3161
    timestamps (imggate.signatures.timestamped) when the root has timestamp authorities."""
    try:
        leaf = bundle_certificate(doc)
    except TimestampError as e:
        return None, [f"not a valid Sigstore bundle ({e})"]
    roots = [r for r in trust.roots() if issued_by(leaf, r)]
    if not roots:
        return None, [f"certificate issued by {leaf.issuer.rfc4514_string()[:120]!r} chains "
                      "to no trusted root (give its root with --trusted-root)"]
    try:
        has_log, has_stamps = bool(tlog_entries(doc)), bool(signed_timestamps(doc))
    except TimestampError as e:
        return None, [str(e)]
    reasons: list[str] = []
    for root in roots:
        if root.tlogs and has_log:
            found, why = _verify_logged(att, doc, trust, root)
        elif root.timestamp_authorities and has_stamps:
            found, why = _verify_stamped(att, doc, trust, root)
        else:
            need = " or ".join(x for x, ok in (("a transparency-log entry", bool(root.tlogs)),
                                               ("an RFC 3161 timestamp",
                                                bool(root.timestamp_authorities))) if ok)
            found, why = None, [f"{root.label}: needs {need}, and the bundle has none"]
        if found is not None:
            return found, []
        reasons += why
    return None, reasons


def _verify_stamped(att: Attachment, doc: Any, trust: TrustConfig, root: SigstoreTrustRoot
                    ) -> tuple[SignatureCheck | None, list[str]]:
    reasons = []
    for ident in trust.identities:
        try:
            got = verify_timestamped(doc, root, ident, att.subject)
            if got.envelope is None:
                # A message signature over the subject digest itself: a blob signature.
                return SignatureCheck(SignatureKind.SIGNATURE, att.location, True,
                                      f"verified Sigstore bundle: {got.signer}, timestamped "
                                      f"{got.when.isoformat()} ({root.label})",
                                      signer=got.signer, signed_digest=att.subject,
                                      claims=got.claims, timestamped=True), []
            kind, st = _judge(got.envelope.payload_type, got.envelope.payload, att, trust)
        except (TimestampError, StatementError) as e:
            reasons.append(f"{ident.label}: {e}")
            continue
        return SignatureCheck(kind, att.location, True,
                              f"verified Sigstore bundle: {got.signer}, timestamped "
                              f"{got.when.isoformat()} ({root.label})",
                              signer=got.signer, predicate_type=st.predicate_type,
                              predicate=st.predicate if kind is SignatureKind.ATTESTATION
                              else None, tlog=False, signed_digest=att.subject,
                              claims=got.claims, timestamped=True), []
    return None, reasons


def _verify_logged(att: Attachment, doc: Any, trust: TrustConfig, root: SigstoreTrustRoot
                   ) -> tuple[SignatureCheck | None, list[str]]:
    """Fulcio bundles through sigstore-python's ``Verifier`` with imggate's identity rule."""
    from sigstore.models import Bundle

    assert att.payload is not None
    try:
        bundle = Bundle.from_json(att.payload)
    except Exception as e:  # third-party parser: any failure is a failed check, in our words
        return None, [f"not a valid Sigstore bundle (sigstore-python refused it: "
                      f"{type(e).__name__})"]
    try:
        verifier = _verifier(root)
    except Exception as e:  # an unusable trust root fails every bundle
        return None, [f"{root.label}: Sigstore trusted root unusable (sigstore-python "
                      f"refused it: {type(e).__name__})"]
    reasons = []
    for ident in trust.identities:
        policy = _IdentityPolicy(ident)
        try:
            ptype_env, payload = verifier.verify_dsse(bundle, policy)
        except Exception as e:  # sigstore raises assorted errors: all are fails
            reasons.append(f"{ident.label}: {policy.refused or sigstore_failure(e, doc, root)}")
            continue
        try:
            kind, st = _judge(ptype_env, payload, att, trust)
        except StatementError as e:
            reasons.append(f"{ident.label}: {e}")
            continue
        return SignatureCheck(kind, att.location, True,
                              f"verified Sigstore bundle: {policy.matched}",
                              signer=policy.matched, predicate_type=st.predicate_type,
                              predicate=st.predicate if kind is SignatureKind.ATTESTATION
                              else None, tlog=True, signed_digest=att.subject,
                              claims=fulcio_claims(bundle.signing_certificate)), []
    return None, reasons


def verify_bundle(att: Attachment, trust: TrustConfig) -> SignatureCheck:
    """Verify one bundle against the keys, then the keyless identities, of ``trust``.

    Never raises. A failed bundle is reported as an attestation check unless
    its payload says it is a cosign image signature.
    """
    def fail(reason: str, kind: SignatureKind = SignatureKind.ATTESTATION) -> SignatureCheck:
        return SignatureCheck(kind, att.location, False, reason, signed_digest=att.subject)

    if att.error is not None or att.payload is None:
        return fail(att.error or "bundle missing")
    try:
        doc = json.loads(att.payload)
    except (ValueError, RecursionError):
        return fail("not a valid Sigstore bundle (not JSON)")
    mt = doc.get("mediaType") if isinstance(doc, dict) else None
    if not isinstance(mt, str) or not mt.startswith("application/vnd.dev.sigstore.bundle"):
        return fail("not a valid Sigstore bundle (mediaType)")
    reasons: list[str] = []
    if trust.keys:
        found, why = _verify_keyed(doc, att, trust)
        if found is not None:
            return found
        reasons += why
    if trust.identities:
        found, why = _verify_keyless(att, doc, trust)
        if found is not None:
            return found
        reasons += why
    if not trust.keys and not trust.identities:
        reasons.append("bundles are verified against keys or keyless identities; none given")
    kind = SignatureKind.ATTESTATION
    env = doc.get("dsseEnvelope")
    if isinstance(env, dict):
        with contextlib.suppress(StatementError):
            kind = _kind_of(parse_envelope(json.dumps(env).encode()).payload)
    return fail("; ".join(reasons)[:2000], kind)
