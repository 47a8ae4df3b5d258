"""Sigstore bundles v0.3 (cosign v3's default), verified with sigstore-python.

A bundle found as an OCI referrer carries a Fulcio leaf, a Rekor entry with
inclusion promise and proof, and a DSSE envelope. sigstore-python's
``Verifier`` checks chain, SCT, log entry and signature against the same
``trusted_root.json`` the legacy path uses (read from disk: no TUF refresh,
no network); imggate then applies its own identity rule and the in-toto
subject / predicate type checks. A bundle whose predicate type is cosign's
``https://sigstore.dev/cosign/sign/v1`` is an image *signature*; any other
is an attestation.

Key-based bundles (``verificationMaterial.publicKey``) are reported as
unsupported, a failed check, never a pass.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509

from imggate.models import SignatureCheck, SignatureKind
from imggate.signatures.attestations import StatementError, check_statement, parse_statement
from imggate.signatures.interface import Attachment, Identity, TrustConfig
from imggate.signatures.keyless import CertificateError, identities, oidc_issuer

logger = logging.getLogger("imggate.signatures")

COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
_verifiers: dict[str, Any] = {}


class _IdentityPolicy:
    """A sigstore ``VerificationPolicy`` applying one imggate :class:`Identity`."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.matched: str | None = None

    def verify(self, cert: x509.Certificate) -> None:
        from sigstore.errors import VerificationError

        try:
            sans, issuer = identities(cert), oidc_issuer(cert)
        except CertificateError as e:
            raise VerificationError(str(e)) from None
        san = self.identity.match(sans, issuer)
        if san is None:
            raise VerificationError(f"certificate identity {', '.join(sans)[:200]} "
                                    f"(issuer {issuer[:100]}) does not match")
        self.matched = f"{san} ({issuer})"


def _verifier(trust: TrustConfig) -> Any:
    """A sigstore ``Verifier`` for the trust root in force, built once per root document."""
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

    raw = trust.root().raw
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


def verify_bundle(att: Attachment, trust: TrustConfig) -> SignatureCheck:
    """Verify one bundle against every keyless anchor of ``trust``; never raises."""
    kind = SignatureKind.ATTESTATION

    def fail(reason: str, ptype: str | None = None) -> SignatureCheck:
        return SignatureCheck(kind, att.location, False, reason, predicate_type=ptype,
                              signed_digest=att.subject)

    if att.error is not None or att.payload is None:
        return fail(att.error or "bundle missing")
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle

    try:
        bundle = Bundle.from_json(att.payload)
    except (SigstoreError, ValueError, TypeError, KeyError) as e:
        return fail(f"not a valid Sigstore bundle ({type(e).__name__}: {str(e)[:200]})")
    except Exception as e:
        return fail(f"not a valid Sigstore bundle ({type(e).__name__})")
    if not trust.identities:
        return fail("bundles are verified against keyless identities; none configured"
                    + (" (key-based bundles are not supported)" if trust.keys else ""))
    try:
        verifier = _verifier(trust)
    except Exception as e:
        return fail(f"Sigstore trusted root unusable ({type(e).__name__}: {str(e)[:200]})")
    reasons = []
    for ident in trust.identities:
        policy = _IdentityPolicy(ident)
        try:
            ptype_env, payload = verifier.verify_dsse(bundle, policy)
        except Exception as e:
            reasons.append(f"{ident.label}: {str(e)[:300] or type(e).__name__}")
            continue
        kind = _kind_of(payload)
        try:
            if kind is SignatureKind.SIGNATURE:
                st = parse_statement(payload)
                if att.subject not in st.subject_digests:
                    raise StatementError(f"bundle subject does not include this image "
                                         f"{att.subject}")
            else:
                st = check_statement(ptype_env, payload, att.subject, trust)
        except StatementError as e:
            return fail(str(e))
        return SignatureCheck(kind, att.location, True,
                              f"verified Sigstore bundle: {policy.matched}",
                              signer=policy.matched, predicate_type=st.predicate_type,
                              predicate=st.predicate if kind is SignatureKind.ATTESTATION
                              else None, tlog=True, signed_digest=att.subject)
    return fail("; ".join(reasons)[:2000])
