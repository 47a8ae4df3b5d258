"""The engine on real scanner reports from tests/fixtures (parsed by imggate.scanners)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imggate.models import Binding, Decision, Digest, Evidence, ScanReport
from imggate.policy.allowlists import load_allowlist
from imggate.policy.engine import evaluate
from imggate.policy.kev import KevCatalog
from imggate.policy.loader import load_rules
from imggate.scanners.detect import load_report
from policy.policy_builders import (
    FIXTURES,
    NOW,
    OTHER_DIGEST,
    REGISTRY,
    REPO,
    evidence,
    image,
    ref,
    rules,
)


@pytest.fixture(scope="module")
def buster() -> ScanReport:
    return load_report(FIXTURES / "trivy" / "debian-buster.json")


def _for(report: ScanReport, digest: Digest | None = None, *,
         registry: str = REGISTRY, repository: str = REPO) -> Evidence:
    d = digest or report.image_digests[0]
    r = ref(None, d, registry=registry, repository=repository)
    return evidence(r, reports=(report,), resolved=image(r, digest=d))


def test_critical_in_a_real_trivy_report_denies(buster: ScanReport) -> None:
    v = evaluate(_for(buster), load_rules().effective("dev"), now=NOW)
    assert v.decision is Decision.DENY
    sev = next(x for x in v.rules if x.rule == "severity")
    assert sev.messages[0] == "1 findings Critical or above (1 Critical)"
    assert sev.messages[1].startswith("CVE-2019-18224 (Critical")
    assert "in libidn2-0" in sev.messages[1]
    binding = next(x for x in v.rules if x.rule == "report-binding")
    assert binding.passed


def test_real_report_for_another_image_denies(buster: ScanReport) -> None:
    v = evaluate(_for(buster, OTHER_DIGEST), load_rules().effective("dev"),
                 now=NOW)
    # Its Critical finding is not this image's: only the binding fails, and the
    # image is NOT SCANNED (a warning in dev, where no report is required).
    assert {x.rule for x in v.violations} == {"report-binding"}
    assert v.findings == () and v.reports == () and not v.scanned
    msg = next(x for x in v.rules if x.rule == "report-binding").messages[0]
    assert "is for another image (testdata/fixtures/images/debian-buster.tar.gz)" in msg
    assert [w.rule for w in v.warnings] == ["severity"]
    (info,) = v.evidence
    assert (info.binding, info.used, info.findings) == (Binding.OTHER_IMAGE, False, 2)


def test_trivyignore_excepts_the_real_finding(buster: ScanReport, tmp_path: Path) -> None:
    p = tmp_path / ".trivyignore"
    p.write_text("# libidn2 is not used for user input\nCVE-2019-18224 exp:2026-12-31\n")
    v = evaluate(_for(buster), load_rules().effective("dev"),
                 exceptions=load_allowlist(p), now=NOW)
    assert v.decision is Decision.ALLOW
    assert [(u.vulnerability, u.status, u.reason) for u in v.exceptions] == [
        ("CVE-2019-18224", "used", "libidn2 is not used for user input")]
    assert [f.id for f, _ in v.suppressed] == ["CVE-2019-18224"]


def test_kev_fails_even_unfixed_findings_in_a_real_grype_report(tmp_path: Path) -> None:
    report = load_report(FIXTURES / "grype" / "defectdojo-many_vulns_with_epss_values.json")
    (tmp_path / "kev.json").write_text("{}")
    text = ("environments:\n  prod:\n    severity:\n      fail_on: Critical\n"
            "      ignore_unfixed: true\n      kev: kev.json\n")
    env = rules(text, tmp_path).effective("prod")
    plain = evaluate(_for(report), env, now=NOW,
                     kev=KevCatalog(frozenset()))
    assert plain.decision is Decision.ALLOW  # everything Critical is unfixed, so ignored
    kev = KevCatalog(frozenset({"CVE-2022-48174"}))
    v = evaluate(_for(report), env, now=NOW, kev=kev)
    assert [x.rule for x in v.violations] == ["severity.kev"]
    assert "CVE-2022-48174 (Critical" in v.violations[0].messages[1]


def test_gitlab_report_naming_no_digest_is_used_with_a_note() -> None:
    report = load_report(FIXTURES / "gitlab-cs" / "gcs-schema15-trivy-alpine.json")
    assert report.image_digests == ()
    d = Digest.of(b"some image")
    mine = _for(report, d, registry="registry.gitlab.com",
                repository="caneldem/trivy-test/caneldem-master-patch-27986")
    v = evaluate(mine, load_rules().effective("dev"), now=NOW)
    assert v.decision is Decision.DENY
    assert [x.rule for x in v.violations] == ["severity"]
    assert any("names no image digest" in n for n in v.notes)
    (info,) = v.evidence
    assert (info.binding, info.used) == (Binding.UNBOUND, True)
    assert info.created == report.finished and info.scanner == "trivy"
    # The same report given for another repository: refused, its findings used nowhere.
    v = evaluate(_for(report, d), load_rules().effective("dev"), now=NOW)
    assert [x.rule for x in v.violations] == ["report-binding"]
    assert v.findings == () and v.evidence[0].binding is Binding.OTHER_REPOSITORY
    assert "is for another repository (registry.gitlab.com/caneldem" in \
        v.violations[0].messages[0]
