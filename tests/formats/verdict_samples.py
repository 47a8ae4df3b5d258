"""Hand-built verdicts for the output-format tests.

Three images: one allowed (signed, an exception used), one denied (a
violation, a warning, many findings with hostile strings), one that could not
be decided (no image, an error). Strings are chosen to break naive writers:
markup, quotes, control characters, rich markup, lone surrogates, RTL text.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from fixture_paths import FIXTURES as _FIXTURES
from imggate.models import (
    Binding,
    ConfigSummary,
    Cvss,
    Decision,
    Digest,
    EvidenceKind,
    ExceptionUse,
    Finding,
    FixState,
    ImageRef,
    ImageVerdict,
    Mode,
    Platform,
    PlatformChild,
    ReportInfo,
    ResolvedImage,
    RuleResult,
    RunInfo,
    ScannerInfo,
    ScanReport,
    Severity,
    SignatureCheck,
    SignatureKind,
    Verdict,
)
from imggate.values import replace

XSS_TITLE = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned2'\">"
CONTROL = "bell\x07 nul\x00 esc\x1b[31m vt\x0b del\x7f"
RICH_MARKUP = "[bold red]not markup[/bold red] [link=http://evil]x[/link]"
SURROGATE = "bad\udcff-bytes"
RTL = "\u202eevil\u202c \u05e9\u05dc\u05d5\u05dd \U0001f4a5"
DENY_REASON = 'Critical CVE-2024-0001 in openssl 3.0.1 (fixed in 3.0.2) & "more"'

D_ALLOW = Digest.of(b"image-allow")
D_DENY = Digest.of(b"image-deny")
D_CFG = Digest.of(b"config")
D_ARM = Digest.of(b"arm64")
D_AMD = Digest.of(b"amd64")

GENERATED = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)


def info_of(report: ScanReport, *, used: bool = True, binding: Binding = Binding.BOUND,
            problems: tuple[str, ...] = ()) -> ReportInfo:
    """How ``report`` was judged (made 3 hours before the samples' run by default)."""
    created = report.created or GENERATED - timedelta(hours=3)
    bound = next(iter(report.image_digests), None) if binding is Binding.BOUND else None
    return ReportInfo(kind=report.kind, location=report.source or "report",
                      scanner=report.scanner.name, scanner_version=report.scanner.version,
                      created=created, age=GENERATED - created, subject=report.image_name,
                      binding=binding, bound_to=bound, used=used,
                      findings=len(report.findings), problems=problems)


RUN = RunInfo(rules_source="rules/default.yaml", rules_sha256="ab" * 32,
              rules_found_by="./rules/", env="prod", env_origin="CI_ENVIRONMENT_TIER",
              env_reason="CI_ENVIRONMENT_TIER=production (alias 'production')",
              imggate_version="0.1.0")

SEVERITIES = [Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW,
              Severity.INFO, Severity.UNKNOWN]


def finding(i: int, severity: Severity, **kw: object) -> Finding:
    """A plausible finding number ``i``."""
    base: dict[str, object] = {
        "id": f"CVE-2024-{i:05d}",
        "package": f"pkg{i % 17}",
        "version": f"1.{i}.0",
        "severity": severity,
        "fixed_versions": (f"1.{i}.1",) if i % 3 else (),
        "fix_state": FixState.FIXED if i % 3 else FixState.NOT_FIXED,
        "cvss": (Cvss("nvd", "3.1", None, round(1 + (i % 90) / 10, 1)),),
        "title": f"Issue number {i}",
        "links": (f"https://nvd.nist.gov/vuln/detail/CVE-2024-{i:05d}",),
        "sources": ("trivy",),
    }
    base.update(kw)
    return Finding(**base)  # type: ignore[arg-type]


def many_findings(n: int) -> tuple[Finding, ...]:
    """``n`` findings cycling through every severity."""
    return tuple(finding(i, SEVERITIES[i % len(SEVERITIES)]) for i in range(n))


def nasty_findings() -> tuple[Finding, ...]:
    """Findings whose every field tries to break a writer."""
    return (
        finding(90001, Severity.CRITICAL, id="CVE-2024-0001", package="openssl", version="3.0.1",
                fixed_versions=("3.0.2",), title=XSS_TITLE,
                links=("javascript:document.title='pwned3'", "https://example.org/CVE-2024-0001")),
        finding(90002, Severity.HIGH, package=CONTROL, title=RICH_MARKUP,
                links=("javascript:alert(1)",)),
        finding(90003, Severity.MEDIUM, package=SURROGATE, version=RTL, title="a & b < c > d \" ' `"),
    )


def allow_image() -> ImageVerdict:
    """Allowed in prod: pinned, signed, one exception used."""
    ref = ImageRef("registry.example.com", "team/app", "1.2.3", D_ALLOW)
    img = ResolvedImage(
        ref=ref, digest=D_ALLOW, media_type="application/vnd.oci.image.index.v1+json",
        platforms=(
            PlatformChild(D_AMD, "application/vnd.oci.image.manifest.v1+json", 1234,
                          Platform("linux", "amd64")),
            PlatformChild(D_ARM, "application/vnd.oci.image.manifest.v1+json", 1235,
                          Platform("linux", "arm64", "v8")),
        ),
        manifest_digest=D_AMD,
        config=ConfigSummary(
            digest=D_CFG, created=datetime(2026, 11, 1, 12, 0, tzinfo=UTC), os="linux",
            architecture="amd64", variant=None, user="10001",
            labels={"org.opencontainers.image.source": "https://git.example.com/team/app",
                    "org.opencontainers.image.revision": "0123abc"},
            layer_count=7,
        ),
    )
    return ImageVerdict(
        reference="registry.example.com/team/app:1.2.3@" + str(D_ALLOW),
        env="prod",
        decision=Decision.ALLOW,
        image=img,
        rules=(
            RuleResult("severity", True, Mode.ENFORCE),
            RuleResult("digest-pinning", True, Mode.ENFORCE),
            RuleResult("signature", True, Mode.ENFORCE, ("verified by cosign.pub",)),
        ),
        findings=(finding(7, Severity.LOW),),
        suppressed=((finding(8, Severity.HIGH), "exception: patched in our fork"),),
        exceptions=(
            ExceptionUse("CVE-2024-00008", "used", "patched in our fork", "rules/prod.yaml",
                         date(2027, 1, 1), "pkg8", ("pkg8 1.8.0",)),
            ExceptionUse("CVE-2023-99999", "stale", "old entry", ".trivyignore"),
        ),
        signatures=(
            SignatureCheck(SignatureKind.SIGNATURE, "registry.example.com/team/app:sha256-x.sig",
                           True, "verified with key", signer="cosign.pub", tlog=True,
                           signed_digest=D_ALLOW),
            SignatureCheck(SignatureKind.ATTESTATION, "referrers", True, "SLSA provenance ok",
                           signer="https://github.com/org/wf (https://token.actions.githubusercontent.com)",
                           predicate_type="https://slsa.dev/provenance/v1"),
        ),
        reports=(ALLOW_REPORT,),
        evidence=(info_of(ALLOW_REPORT),),
    )


ALLOW_REPORT = ScanReport(ScannerInfo("trivy", "0.57.0"), (finding(7, Severity.LOW),),
                          source="trivy.json", image_name="registry.example.com/team/app",
                          image_digests=(D_ALLOW,))
#: A report given for the denied image whose time is hostile text's neighbour.
DENY_REPORT = ScanReport(ScannerInfo("grype", "0.80.0"), (), source="grype <b>.json",
                         image_name="registry.example.com/team/<evil>",
                         finished=datetime(2026, 11, 20, 7, 0, tzinfo=UTC))


def deny_image(n: int = 200) -> ImageVerdict:
    """Denied in prod: a critical finding, a `latest` tag warning, hostile strings."""
    ref = ImageRef("registry.example.com", "team/<evil>", "latest")
    img = ResolvedImage(
        ref=ref, digest=D_DENY, media_type="application/vnd.oci.image.manifest.v1+json",
        platforms=(), manifest_digest=D_DENY,
        config=ConfigSummary(digest=D_CFG, created=None, os="linux", architecture="amd64",
                             variant=None, user=None, labels={"evil": XSS_TITLE}, layer_count=3),
    )
    return ImageVerdict(
        reference="registry.example.com/team/<evil>:latest",
        env="prod",
        decision=Decision.DENY,
        image=img,
        rules=(
            RuleResult("severity", False, Mode.ENFORCE, (DENY_REASON, XSS_TITLE)),
            RuleResult("tags", False, Mode.WARN, ("tag 'latest' is denied in prod", CONTROL)),
            RuleResult("labels", False, Mode.WARN, (RICH_MARKUP,)),
            RuleResult("signature", True, Mode.ENFORCE),
        ),
        findings=nasty_findings() + many_findings(n),
        exceptions=(
            ExceptionUse("CVE-2024-0001", "expired", XSS_TITLE, "rules/prod.yaml",
                         date(2026, 1, 1)),
        ),
        signatures=(
            SignatureCheck(SignatureKind.SIGNATURE, "registry.example.com/team/<evil>:sha256-y.sig",
                           False, "no signature found"),
        ),
        notes=("report trivy.json names no digest: used with a warning", SURROGATE),
        evidence=(info_of(DENY_REPORT, binding=Binding.UNBOUND,
                          problems=("names no image digest; used anyway (allow_unbound)",)),),
    )


def unscanned_image() -> ImageVerdict:
    """Allowed in dev, but nobody scanned it: its one report was for another image."""
    ref = ImageRef("registry.example.com", "team/unscanned", None, D_AMD)
    img = ResolvedImage(ref=ref, digest=D_AMD, media_type="application/vnd.oci.image.manifest.v1+json",
                        platforms=(), manifest_digest=D_AMD, config=None)
    foreign = ScanReport(ScannerInfo("trivy", "0.57.0"), (finding(9, Severity.CRITICAL),),
                         source="redis.json", image_name="docker.io/library/redis:7",
                         image_digests=(D_ARM,), kind=EvidenceKind.REPORT)
    return ImageVerdict(
        reference=f"registry.example.com/team/unscanned@{D_AMD}", env="dev",
        decision=Decision.ALLOW, image=img,
        rules=(RuleResult("severity", False, Mode.WARN,
                          ("NOT SCANNED: no scanner evidence for this image was used",)),),
        evidence=(info_of(foreign, used=False, binding=Binding.OTHER_IMAGE,
                          problems=("is for another image (docker.io/library/redis:7)",)),),
    )


def error_image() -> ImageVerdict:
    """Could not decide: the registry was down."""
    return ImageVerdict(
        reference="registry.invalid/team/down:1.0",
        env="prod",
        decision=Decision.ERROR,
        error="registry.invalid/team/down:1.0: connection refused <b>&amp;</b>",
    )


def sample_verdict(n: int = 200) -> Verdict:
    """allow + deny + error: overall exit 1 (a denial beside an undecided image)."""
    return Verdict(env="prod", images=(allow_image(), deny_image(n), error_image()),
                   generated=GENERATED, run=RUN)


def single(iv: ImageVerdict) -> Verdict:
    """A run of one image."""
    return Verdict(env=iv.env, images=(iv,), generated=datetime(2026, 11, 22, 7, 0, tzinfo=UTC))


FIXTURES = _FIXTURES
REAL_REPORTS = ["grype/cgvulnreport-redis-3.0.7.json", "grype/defectdojo-many_vulns3.json",
                "trivy/defectdojo-issue_9333.json", "trivy/ubuntu-1804.json",
                "trivy/spring4shell-jre11.json"]


def real_verdict() -> Verdict:
    """One denied image per real scanner report, its findings as the evidence."""
    from imggate.scanners.detect import load_report

    images = []
    for name in REAL_REPORTS:
        report = load_report(FIXTURES / name)
        images.append(replace(deny_image(0), reference=f"example.test/{name}",
                              findings=report.findings, reports=(report,),
                              evidence=(info_of(report),)))
    return Verdict(env="prod", images=tuple(images), generated=datetime(2026, 1, 1, tzinfo=UTC))
