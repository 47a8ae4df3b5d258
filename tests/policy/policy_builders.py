"""Builders for policy tests: images, findings, reports, signatures and rules as plain values.

The one place tests build evidence by hand: the gate's and the formats' tests use it too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fixture_paths import FIXTURES as _FIXTURES
from imggate.models import (
    ConfigSummary,
    Digest,
    Evidence,
    Finding,
    FixState,
    ImageRef,
    ResolvedImage,
    ScannerInfo,
    ScanReport,
    Severity,
    SignatureCheck,
    SignatureKind,
    Unchecked,
)
from imggate.policy.loader import RulesFile, parse_rules

FIXTURES = _FIXTURES
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
REGISTRY = "registry.example.com"
REPO = "team/app"
DIGEST = Digest.of(b"manifest of team/app")
OTHER_DIGEST = Digest.of(b"manifest of something else")
CONFIG_DIGEST = Digest.of(b"config of team/app")


def ref(tag: str | None = "1.2.3", digest: Digest | None = None, *,
        registry: str = REGISTRY, repository: str = REPO) -> ImageRef:
    """A registry reference."""
    return ImageRef(registry, repository, tag, digest)


def image(r: ImageRef, *, created: datetime | None = datetime(2026, 11, 1, tzinfo=UTC),
          labels: dict[str, str] | None = None, digest: Digest = DIGEST,
          config_digest: Digest = CONFIG_DIGEST) -> ResolvedImage:
    """A resolved single-platform image for ``r``."""
    config = ConfigSummary(digest=config_digest, created=created, os="linux",
                           architecture="amd64", variant=None, user=None,
                           labels=labels or {}, layer_count=3)
    return ResolvedImage(ref=r.with_digest(digest), digest=digest,
                         media_type="application/vnd.oci.image.manifest.v1+json",
                         platforms=(), manifest_digest=digest, config=config)


def finding(vid: str = "CVE-2024-0001", severity: Severity = Severity.CRITICAL, *,
            package: str = "openssl", version: str = "3.0.1", fixed: tuple[str, ...] = ("3.0.2",),
            aliases: tuple[str, ...] = (), purl: str | None = None,
            cvss: float | None = None, path: str | None = None) -> Finding:
    """A finding; fixed unless ``fixed=()``."""
    from imggate.models import Cvss

    return Finding(id=vid, package=package, version=version, severity=severity,
                   aliases=aliases, purl=purl, fixed_versions=fixed,
                   fix_state=FixState.FIXED if fixed else FixState.NOT_FIXED,
                   cvss=(Cvss("nvd", "3.1", None, cvss),) if cvss is not None else (),
                   path=path, sources=("trivy",))


#: When :func:`report`'s reports were made by default: a day before :data:`NOW`.
REPORTED = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def report(*findings: Finding, digests: tuple[Digest, ...] = (DIGEST,),
           name: str | None = f"{REGISTRY}/{REPO}", source: str = "trivy.json",
           finished: datetime | None = REPORTED) -> ScanReport:
    """A Trivy report naming ``digests`` (empty: names no image), made at ``finished``."""
    return ScanReport(scanner=ScannerInfo("trivy", "0.50.0"), findings=tuple(findings),
                      source=source, image_name=name, image_digests=digests,
                      finished=finished)


def signature(signer: str | None = "cosign.pub", *, verified: bool = True,
              digest: Digest | None = DIGEST, reason: str = "verified",
              tlog: bool = True) -> SignatureCheck:
    """A signature check result."""
    return SignatureCheck(kind=SignatureKind.SIGNATURE, location=f"sig by {signer}",
                          verified=verified, reason=reason, signer=signer, tlog=tlog,
                          signed_digest=digest)


def attestation(predicate_type: str, predicate: dict[str, object], *,
                signer: str = "cosign.pub", verified: bool = True) -> SignatureCheck:
    """A verified attestation check."""
    return SignatureCheck(kind=SignatureKind.ATTESTATION, location="att", verified=verified,
                          reason="verified", signer=signer, predicate_type=predicate_type,
                          predicate=predicate, tlog=True, signed_digest=DIGEST)


def evidence(r: ImageRef, *, reports: tuple[ScanReport, ...] = (),
             signatures: tuple[SignatureCheck, ...] = (),
             errors: tuple[str | Unchecked, ...] = (),
             resolved: ResolvedImage | None = None, resolve: bool = True) -> Evidence:
    """Evidence for ``r``; resolved to :data:`DIGEST` unless ``resolve=False``. An error
    given as text leaves every group of evidence unread."""
    img = resolved if resolved is not None else (image(r) if resolve else None)
    return Evidence(reference=str(r), ref=r, image=img, reports=reports,
                    signatures=signatures,
                    errors=tuple(e if isinstance(e, Unchecked) else Unchecked(e)
                                 for e in errors))


def rules(text: str, tmp: Path | None = None) -> RulesFile:
    """Parse rules text (paths relative to ``tmp``)."""
    return parse_rules(text, "rules.yaml", tmp)
