"""Signatures and attestations: cosign key/keyless, Sigstore bundles, in-toto.

Public API (what the gate and ``imggate verify`` call)::

    trust = TrustConfig(keys=(load_public_key("cosign.pub"),),
                        identities=(Identity(identity="a@b.c", issuer="https://…"),))
    checks = await check_signatures(repo, digest, trust,
                                    signature_repo=None, platform_digest=None)
    met, why = evaluate(default_requirement(trust, threshold=None), checks)

Choices, cosign's unless said otherwise:

* One :class:`~imggate.models.SignatureCheck` per signature layer, attestation
  layer or bundle found. ``signer`` is the key's label (the path given, or the
  file name via :func:`load_public_key`), ``identity (issuer)`` for keyless
  (the SAN that matched and the certificate's issuer), or the
  :class:`CertificateAuthority` label; the first anchor that verifies wins,
  and ``reason`` lists, per anchor, why none did.
* Key-based signatures need a valid Rekor entry (SET + matching body) unless
  ``ignore_tlog`` (``--insecure-ignore-tlog``), which logs a warning for every
  signature accepted that way. Keyless signatures always need the SET: it is
  the only trusted signing time for a ten-minute certificate.
* Requirements (:class:`SignedBy`, :class:`AllOf`, :class:`AnyOf`,
  :class:`Threshold`) return or raise :class:`NotVerified`; empty ones never pass.
* Bundles (OCI referrers) are looked up only when there are keys or
  identities to verify them with; keyless bundles go through sigstore-python,
  key-based ones through imggate's own DSSE/SET checks.

Heavy dependencies (sigstore) are imported only when a bundle is verified.
"""

from imggate.signatures.check import check_signatures, verify_attachment
from imggate.signatures.interface import (
    AllOf,
    AnyOf,
    CertificateAuthority,
    Identity,
    NotVerified,
    Requirement,
    SignedBy,
    Threshold,
    TrustConfig,
    default_requirement,
    evaluate,
)
from imggate.signatures.keys import TrustedKey, load_public_key, parse_public_key

__all__ = [
    "AllOf",
    "AnyOf",
    "CertificateAuthority",
    "Identity",
    "NotVerified",
    "Requirement",
    "SignedBy",
    "Threshold",
    "TrustConfig",
    "TrustedKey",
    "check_signatures",
    "default_requirement",
    "evaluate",
    "load_public_key",
    "parse_public_key",
    "verify_attachment",
]
