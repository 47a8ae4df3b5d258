"""Signatures and attestations: cosign key/keyless, Sigstore bundles, in-toto.

Public API (what the gate calls)::

    trust = TrustConfig(keys=(load_public_key("cosign.pub"),), identities=(...,))
    checks = await check_signatures(repo, digest, trust)      # tuple[SignatureCheck, ...]
    met, why = evaluate(default_requirement(trust, threshold=None), checks)

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
