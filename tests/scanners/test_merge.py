"""Merging reports: one finding per (vulnerability, package, version), every source listed."""

from __future__ import annotations

from msgspec.structs import replace

from imggate.models import Cvss, Finding, FixState, ScannerInfo, ScanReport, Severity
from imggate.scanners.detect import load_report
from imggate.scanners.merge import canonical_id, merge
from scanners.report_fixtures import FIXTURES, TRIVY_LEGACY

# The same Debian 10 base (glibc 2.28-10, tar 1.30+dfsg-6, ...) scanned by Trivy and by Grype.
TRIVY_DEBIAN = TRIVY_LEGACY[0]
GRYPE_DEBIAN = FIXTURES / "grype" / "defectdojo-many_vulns3.json"


def _report(name: str, *findings: Finding) -> ScanReport:
    return ScanReport(ScannerInfo(name), findings)


def test_trivy_and_grype_of_the_same_base_merge_without_duplicates() -> None:
    t, g = load_report(TRIVY_DEBIAN), load_report(GRYPE_DEBIAN)
    t_keys, g_keys = {f.key for f in t.findings}, {f.key for f in g.findings}
    overlap = t_keys & g_keys
    assert len(overlap) >= 60  # real overlap: the tests below mean something
    merged = merge([t, g])
    keys = [f.key for f in merged]
    assert len(keys) == len(set(keys)) == len(t_keys | g_keys)
    by_key = {f.key: f for f in merged}
    for key in overlap:
        f = by_key[key]
        assert f.sources == ("trivy", "grype")
        worst = max(x.severity.rank for r in (t, g) for x in r.findings if x.key == key)
        assert f.severity.rank == worst
    assert all(by_key[k].sources == ("trivy",) for k in t_keys - g_keys)
    assert all(by_key[k].sources == ("grype",) for k in g_keys - t_keys)


def test_merge_is_order_independent_and_sorted() -> None:
    t, g = load_report(TRIVY_DEBIAN), load_report(GRYPE_DEBIAN)
    a, b = merge([t, g]), merge([g, t])
    assert [f.key for f in a] == [f.key for f in b]
    assert [f.severity for f in a] == [f.severity for f in b]
    ranks = [f.severity.rank for f in a]
    assert ranks == sorted(ranks, reverse=True)


def test_most_severe_wins_unless_a_scanner_is_preferred() -> None:
    base = Finding("CVE-2021-1", "openssl", "1.1", Severity.LOW, sources=("trivy",))
    other = replace(base, severity=Severity.CRITICAL, sources=("grype",))
    reports = [_report("trivy", base), _report("grype", other)]
    assert merge(reports)[0].severity is Severity.CRITICAL
    assert merge(reports, prefer=("trivy",))[0].severity is Severity.LOW
    assert merge(reports, prefer=("snyk", "grype"))[0].severity is Severity.CRITICAL


def test_ghsa_with_related_cve_merges_with_the_cve() -> None:
    trivy = Finding("CVE-2021-44228", "log4j-core", "2.14.1", Severity.CRITICAL,
                    fixed_versions=("2.15.0",), fix_state=FixState.FIXED,
                    cvss=(Cvss("nvd", "3.1", None, 10.0),), sources=("trivy",))
    grype = Finding("GHSA-jfh8-c2jp-5v3q", "log4j-core", "2.14.1", Severity.HIGH,
                    aliases=("CVE-2021-44228",), fixed_versions=("2.16.0",), epss=0.97,
                    fix_state=FixState.UNKNOWN, sources=("grype",))
    assert canonical_id(grype) == "CVE-2021-44228"
    (m,) = merge([_report("grype", grype), _report("trivy", trivy)])
    assert m.id == "CVE-2021-44228" and m.aliases == ("GHSA-jfh8-c2jp-5v3q",)
    assert m.severity is Severity.CRITICAL and m.fix_state is FixState.FIXED
    assert set(m.fixed_versions) == {"2.15.0", "2.16.0"} and m.epss == 0.97
    assert m.sources == ("grype", "trivy") and m.max_cvss == 10.0


def test_two_cves_in_aliases_keep_the_own_id() -> None:
    f = Finding("GHSA-x", "p", "1", Severity.LOW, aliases=("CVE-1", "CVE-2"))
    assert canonical_id(f) == "GHSA-x"


def test_different_versions_stay_apart() -> None:
    a = Finding("CVE-1", "zlib", "1.2.11", Severity.HIGH, sources=("trivy",))
    b = replace(a, version="1.2.12", sources=("grype",))
    assert len(merge([_report("trivy", a), _report("grype", b)])) == 2


def test_single_report_is_unchanged_apart_from_order() -> None:
    r = load_report(FIXTURES / "grype" / "cgvulnreport-redis-3.0.7.json")
    assert set(merge([r])) == set(r.findings)


def _tuple_order(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return [f.key for f in sorted(findings, key=lambda f: (-f.severity.rank, *f.key))]


def test_order_is_by_severity_then_id_package_version_whatever_the_text() -> None:
    # Ids that are prefixes of one another, characters below and above ASCII and a "\0"
    # inside a part (which the one-string sort key cannot take: the tuples are sorted).
    texts = ["CVE-1", "CVE-1a", "CVE-1-", "CVE-10", "a", "a\x01", "ä", "😀", "a b"]
    base = [Finding(i, p, v, Severity.HIGH if (len(i) + len(p)) % 2 else Severity.UNKNOWN)
            for i in texts for p in texts[:4] for v in ("1", "1.0", "1\x7f")]
    for findings in (base, [*base, Finding("CVE-1\x00", "a", "1", Severity.HIGH)],
                     [*base, Finding("CVE-1", "a\x00b", "1", Severity.LOW)]):
        merged = merge([_report("trivy", *reversed(findings))])
        assert [f.key for f in merged] == _tuple_order(findings)
