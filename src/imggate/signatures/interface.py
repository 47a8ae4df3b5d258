"""What signature verification takes and gives, and how results become a decision.

Trust anchors (:class:`~imggate.signatures.keys.TrustedKey`, :class:`Identity`,
:class:`CertificateAuthority`) and options live in a frozen :class:`TrustConfig`.
Discovery yields :class:`Attachment` values (a signature layer, an attestation
layer or a Sigstore bundle, with its payload fetched once); verifiers turn each
into one :class:`~imggate.models.SignatureCheck`.

A :class:`Requirement` is a verification policy over those checks, shaped like
sigstore-python's policies: ``verify`` returns ``None`` or raises
:class:`NotVerified`; :class:`AllOf`, :class:`AnyOf` and :class:`Threshold`
compose them (Connaisseur's threshold, Kyverno's ``attestors.count``), and an
empty composition is never satisfied: it fails closed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import msgspec
from msgspec import Struct

from imggate._files import read_config_file
from imggate.errors import ConfigError, SignatureError
from imggate.models import Digest, SignatureCheck, SignatureKind
from imggate.signatures.keys import TrustedKey
from imggate.userregex import user_search, why_not_compiled

if TYPE_CHECKING:
    from cryptography import x509

    # Sigstore's trust roots are read only for keyless signatures, bundles and
    # transparency-log entries: a key-only check does not import them.
    from imggate.signatures.trustroot import SigstoreTrustRoot

SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
ANN_SIGNATURE = "dev.cosignproject.cosign/signature"
ANN_CERTIFICATE = "dev.sigstore.cosign/certificate"
ANN_CHAIN = "dev.sigstore.cosign/chain"
ANN_BUNDLE = "dev.sigstore.cosign/bundle"
SIMPLESIGNING_TYPE = "cosign container image signature"


class NotVerified(SignatureError):
    """A requirement over signature checks is not met (a deny, exit 1)."""

    exit_code: ClassVar[int] = 1


class AttachmentKind(str, Enum):
    """Where an attachment came from."""

    SIGNATURE = "signature"      # a `.sig` simple-signing layer
    ATTESTATION = "attestation"  # a `.att` DSSE envelope layer
    BUNDLE = "bundle"            # a Sigstore bundle v0.3 found through referrers


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class Attachment(Struct, frozen=True):
    """One signature/attestation layer or bundle, with its payload fetched and verified.

    ``payload`` is ``None`` when it could not be used, and ``error`` says why
    (too large, digest mismatch, missing): that is a failed check, not a crash.
    ``subject`` is the image digest this attachment was found for.
    """

    kind: AttachmentKind
    location: str
    subject: Digest
    media_type: str
    annotations: Mapping[str, str] = msgspec.field(default_factory=dict)
    payload: bytes | None = None
    error: str | None = None
    layer_digest: Digest | None = None


class Identity(Struct, frozen=True):
    """A keyless signer: cosign's certificate identity and OIDC issuer rules.

    Exactly one of ``identity``/``identity_regexp`` and one of
    ``issuer``/``issuer_regexp`` is required. Regular expressions are searched,
    unanchored, as cosign (Go ``regexp.MatchString``) does: anchor them with ``^…$``.
    """

    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None

    def __post_init__(self) -> None:
        if (self.identity is None) == (self.identity_regexp is None):
            raise ConfigError("give exactly one of --certificate-identity and "
                              "--certificate-identity-regexp")
        if (self.issuer is None) == (self.issuer_regexp is None):
            raise ConfigError("give exactly one of --certificate-oidc-issuer and "
                              "--certificate-oidc-issuer-regexp")
        for rx in (self.identity_regexp, self.issuer_regexp):
            if rx is not None:
                try:
                    re.compile(rx)
                except re.error as e:
                    raise ConfigError(f"invalid regular expression {rx[:80]!r}: "
                                      f"{why_not_compiled(e)}") from None

    @property
    def label(self) -> str:
        """``identity (issuer)`` as the user wrote it (regexps shown as ``/rx/``)."""
        ident = self.identity if self.identity is not None else f"/{self.identity_regexp}/"
        iss = self.issuer if self.issuer is not None else f"/{self.issuer_regexp}/"
        return f"{ident} ({iss})"

    def matches_identity(self, san: str) -> bool:
        """Whether one SAN value satisfies the identity rule."""
        if self.identity is not None:
            return san == self.identity
        return user_search(str(self.identity_regexp), san)

    def matches_issuer(self, issuer: str) -> bool:
        """Whether the certificate's OIDC issuer satisfies the issuer rule."""
        if self.issuer is not None:
            return issuer == self.issuer
        return user_search(str(self.issuer_regexp), issuer)

    def match(self, sans: Sequence[str], issuer: str) -> str | None:
        """The SAN that satisfies this identity with ``issuer``, else ``None``."""
        if not self.matches_issuer(issuer):
            return None
        return next((s for s in sans if self.matches_identity(s)), None)


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """Your own PKI (cosign ``--certificate-chain``): certificates on signatures must chain here."""

    label: str
    roots: tuple[x509.Certificate, ...] = field(compare=False, repr=False)


def load_certificate_authority(path: str | Path, label: str | None = None
                               ) -> CertificateAuthority:
    """Read a PEM file of root certificates; :class:`ConfigError` naming it when unusable."""
    from imggate.signatures.keyless import load_certificates
    from imggate.signatures.keys import CertificateError

    p = Path(path)
    data = read_config_file(p, 256 * 1024, what="certificate chain")
    try:
        roots = load_certificates(data, str(p))
    except CertificateError as e:
        raise ConfigError(f"{p}: {e}") from None
    if not roots:
        raise ConfigError(f"{p}: no certificates in this certificate chain file")
    return CertificateAuthority(label or p.name, roots)


Anchor = TrustedKey | Identity | CertificateAuthority


def anchor_label(anchor: Anchor) -> str:
    """The name a check's ``signer`` carries for ``anchor`` (keyless: the matched SAN)."""
    return anchor.label


class TrustConfig(Struct, frozen=True):
    """Everything a verification trusts and requires, fixed before any fetch.

    ``attestation_types`` are full predicate type URIs (see
    :func:`imggate.signatures.attestations.predicate_type_uri` for cosign's
    short names); empty means any type. ``ignore_tlog`` is cosign's
    ``--insecure-ignore-tlog``: key-based signatures without a Rekor entry are
    accepted and a warning naming ``ignore_tlog_by`` (the flag, or the rule
    that asked for it) is logged every time. ``trusted_root`` ``None``
    means Sigstore's production root shipped with the ``sigstore`` package;
    ``trusted_roots`` are every root given (``--trusted-root``, JSON lines:
    public-good and GitHub's instance at once), each bundle being verified
    against the root its certificate chains to.
    ``check_bundles``: look for Sigstore bundles among the OCI referrers
    (only when there are keys or keyless identities to verify them against).
    ``accept_platform_signatures``: when checking a platform manifest of an
    index, a signature on that manifest itself also counts (a signature on
    the index always does).
    """

    keys: tuple[TrustedKey, ...] = ()
    identities: tuple[Identity, ...] = ()
    authorities: tuple[CertificateAuthority, ...] = ()
    check_signatures: bool = True
    check_attestations: bool = False
    check_bundles: bool = True
    attestation_types: tuple[str, ...] = ()
    ignore_tlog: bool = False
    ignore_tlog_by: str = "--insecure-ignore-tlog"
    trusted_root: SigstoreTrustRoot | None = None
    trusted_roots: tuple[SigstoreTrustRoot, ...] = ()
    annotations: Mapping[str, str] = msgspec.field(default_factory=dict)
    docker_reference: str | None = None
    accept_platform_signatures: bool = False

    def __post_init__(self) -> None:
        labels = [a.label for a in self.anchors]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            # Results name signers by label: two anchors with one name would be ambiguous.
            raise ConfigError(f"trust anchors share a label: {', '.join(dupes)[:200]}",
                              hint="give key files distinct paths or labels")

    @property
    def anchors(self) -> tuple[Anchor, ...]:
        """Every trust anchor, keys first."""
        return (*self.keys, *self.identities, *self.authorities)

    def root(self) -> SigstoreTrustRoot:
        """The Sigstore trust root in force (production unless configured); the first
        given when there are several."""
        if self.trusted_root is not None:
            return self.trusted_root
        if self.trusted_roots:
            return self.trusted_roots[0]
        from imggate.signatures.trustroot import production_trusted_root
        return production_trusted_root()

    def roots(self) -> tuple[SigstoreTrustRoot, ...]:
        """Every Sigstore trust root in force, the primary first."""
        first = self.root()
        return (first, *(r for r in self.trusted_roots if r is not first))


# --------------------------------------------------------------------------- requirements


class Requirement:
    """A policy over checks: ``verify`` returns ``None`` or raises :class:`NotVerified`.

    Each kind defines :meth:`verify` and :meth:`describe`. They are frozen values, msgspec
    Structs, not frozen dataclasses, which write and compile their methods when defined
    (~3M instructions each, on every check's path; issue 22).
    """

    __slots__ = ()

    def verify(self, checks: Sequence[SignatureCheck]) -> None:
        """Raise :class:`NotVerified` naming what is missing."""
        raise NotImplementedError

    def describe(self) -> str:
        """A one-line human description."""
        raise NotImplementedError

    def satisfied(self, checks: Sequence[SignatureCheck]) -> bool:
        """Whether :meth:`verify` passes."""
        try:
            self.verify(checks)
        except NotVerified:
            return False
        return True


class SignedBy(Struct, Requirement, frozen=True):
    """A verified check by ``anchor`` (any anchor when ``None``) of the given kind.

    For attestations, ``predicate_type`` (a full URI) must match when given.
    """

    anchor: Anchor | None = None
    kind: SignatureKind = SignatureKind.SIGNATURE
    predicate_type: str | None = None

    def _matches(self, check: SignatureCheck) -> bool:
        if not check.verified or check.kind is not self.kind or check.signer is None:
            return False
        if self.predicate_type is not None and check.predicate_type != self.predicate_type:
            return False
        a = self.anchor
        if a is None:
            return True
        if isinstance(a, Identity):
            san, sep, rest = check.signer.rpartition(" (")
            return bool(sep) and rest.endswith(")") and a.match([san], rest[:-1]) is not None
        return check.signer == a.label

    def verify(self, checks: Sequence[SignatureCheck]) -> None:
        """Pass when any check matches."""
        if not any(self._matches(c) for c in checks):
            raise NotVerified(f"no verified {self.describe()}")

    def describe(self) -> str:
        """E.g. ``signature by cosign.pub``."""
        who = "any trusted signer" if self.anchor is None else anchor_label(self.anchor)
        what = self.kind.value
        if self.predicate_type:
            what += f" of type {self.predicate_type}"
        return f"{what} by {who}"


class Threshold(Struct, Requirement, frozen=True):
    """At least ``k`` of ``children`` hold. ``k`` < 1 or an empty list never holds."""

    k: int
    children: tuple[Requirement, ...]

    def verify(self, checks: Sequence[SignatureCheck]) -> None:
        """Count satisfied children; fail closed when misconfigured."""
        if not self.children or self.k < 1:
            raise NotVerified(f"empty or invalid requirement ({self.describe()}) "
                              "is never satisfied")
        met = sum(1 for c in self.children if c.satisfied(checks))
        if met < self.k:
            missing = [c.describe() for c in self.children if not c.satisfied(checks)]
            raise NotVerified(f"threshold not reached: {met} of {self.k} required "
                              f"(missing: {'; '.join(missing)[:500]})")

    def describe(self) -> str:
        """E.g. ``2 of [signature by a, signature by b]``."""
        return f"{self.k} of [{', '.join(c.describe() for c in self.children)}]"


class AllOf(Struct, Requirement, frozen=True):
    """Every child holds; an empty ``AllOf`` never does."""

    children: tuple[Requirement, ...] = ()

    def verify(self, checks: Sequence[SignatureCheck]) -> None:
        """Raise for the first child that fails."""
        if not self.children:
            raise NotVerified("empty all-of requirement is never satisfied")
        for child in self.children:
            child.verify(checks)

    def describe(self) -> str:
        """E.g. ``all of [...]``."""
        return f"all of [{', '.join(c.describe() for c in self.children)}]"


class AnyOf(Struct, Requirement, frozen=True):
    """At least one child holds; an empty ``AnyOf`` never does."""

    children: tuple[Requirement, ...] = ()

    def verify(self, checks: Sequence[SignatureCheck]) -> None:
        """Pass when one child passes."""
        if not self.children:
            raise NotVerified("empty any-of requirement is never satisfied")
        reasons = []
        for child in self.children:
            try:
                child.verify(checks)
            except NotVerified as e:
                reasons.append(e.message)
            else:
                return
        if len(reasons) == 1:
            raise NotVerified(reasons[0])
        raise NotVerified("none of: " + "; ".join(reasons)[:1000])

    def describe(self) -> str:
        """E.g. ``any of [...]``."""
        return f"any of [{', '.join(c.describe() for c in self.children)}]"


def default_requirement(trust: TrustConfig, threshold: int | None = None) -> Requirement:
    """What ``cosign verify`` requires: a verified signature from any anchor.

    With ``threshold`` k: k distinct anchors. With attestation checking on, an
    attestation of each requested predicate type (any type when none) is
    required as well. No anchors is a :class:`ConfigError`, never a pass.
    """
    anchors = trust.anchors
    if not anchors:
        raise ConfigError("no trust anchors: give --key, --certificate-identity/"
                          "--certificate-oidc-issuer or --certificate-chain")
    parts: list[Requirement] = []
    if trust.check_signatures:
        per = tuple(SignedBy(a, SignatureKind.SIGNATURE) for a in anchors)
        parts.append(Threshold(threshold, per) if threshold else AnyOf(per))
    if trust.check_attestations:
        for ptype in trust.attestation_types or (None,):
            per = tuple(SignedBy(a, SignatureKind.ATTESTATION, ptype) for a in anchors)
            parts.append(Threshold(threshold, per) if threshold else AnyOf(per))
    return AllOf(tuple(parts))


def evaluate(requirement: Requirement, checks: Sequence[SignatureCheck]) -> tuple[bool, str]:
    """Apply ``requirement`` to ``checks``; return (met, explanation). Never raises."""
    try:
        requirement.verify(checks)
    except NotVerified as e:
        return False, e.message
    return True, f"satisfied: {requirement.describe()}"
