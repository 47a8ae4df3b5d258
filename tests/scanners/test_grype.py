"""Grype adapter: every generation from 0.7 to 0.94."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from imggate.errors import ReportError
from imggate.models import Digest, FixState, Severity
from imggate.scanners.detect import load_report, parse_report
from scanners.report_fixtures import FIXTURES, GRYPE, fixture_id, load, raw_keys

G = FIXTURES / "grype"


def _parse(doc: object, name: str = "grype-mut.json"):
    return parse_report(json.dumps(doc).encode(), source=name)


@pytest.mark.parametrize("path", GRYPE, ids=fixture_id)
def test_every_grype_fixture_parses_to_its_unique_entries(path: Path) -> None:
    report = load_report(path)
    keys = [f.key for f in report.findings]
    assert len(keys) == len(set(keys))
    assert set(keys) == raw_keys(path, "grype")
    assert report.scanner.name == "grype"
    assert all(f.sources == ("grype",) for f in report.findings)


def test_grype_086_fix_states_severities_and_image() -> None:
    report = load_report(G / "cgvulnreport-redis-3.0.7.json")
    assert report.scanner.version == "0.86.1"
    assert Counter(f.fix_state for f in report.findings) == {
        FixState.FIXED: 178, FixState.WONT_FIX: 129, FixState.NOT_FIXED: 98,
        FixState.UNKNOWN: 2}
    sev = Counter(f.severity for f in report.findings)
    assert sev[Severity.INFO] == 90  # Negligible
    assert (sev[Severity.HIGH], sev[Severity.MEDIUM], sev[Severity.LOW],
            sev[Severity.CRITICAL]) == (70, 167, 77, 3)
    assert report.operating_system == "debian 8"
    assert report.image_name == "redis:3.0.7"
    assert {str(d) for d in report.image_digests} == {
        "sha256:730b765df9fe96af414da64a2b67f3a5f70b8fd13a31e5096fee4807ed802e20",  # repoDigests
        "sha256:f441cd5b76b0339a9edea615f8a354b3d04252ef460d7fbb361e02f81d895307",  # manifest
        "sha256:c44fa74ead882d6417e2736700dce8fdef2f12849d45f9f92023cf1d319a9ee4",  # imageID
    }
    apt = next(f for f in report.findings if f.key == ("CVE-2019-3462", "apt", "1.0.9.8.4"))
    assert apt.fixed_versions == ("1.0.9.8.5",) and apt.purl
    assert apt.layer and apt.path == "/usr/share/doc/apt/copyright"
    # CVSS comes from the related NVD record when the distro record has none
    assert apt.max_cvss == 9.3


def test_grype_07_old_shapes() -> None:
    report = load_report(G / "defectdojo-many_vulns3.json")
    assert report.scanner.version == "0.7.0"
    assert Counter(f.fix_state for f in report.findings)[FixState.FIXED] == 28
    zstd = next(f for f in report.findings
                if f.key == ("CVE-2021-24031", "libzstd1", "1.3.8+dfsg-3"))
    assert zstd.fixed_versions == ("1.3.8+dfsg-3+deb10u1",)
    assert zstd.severity is Severity.UNKNOWN
    proto = next(f for f in report.findings if f.id == "CVE-2015-5237")
    assert {(c.version, c.score) for c in proto.cvss} == {("2.0", 6.5), ("3.1", 8.8)}
    assert Counter(f.severity for f in report.findings)[Severity.INFO] == 106


def test_grype_094_epss_and_empty_fix_state() -> None:
    report = load_report(G / "defectdojo-many_vulns_with_epss_values.json")
    f = next(f for f in report.findings if f.id == "CVE-2022-28391")
    assert f.epss == pytest.approx(0.0719)
    assert f.fix_state is FixState.UNKNOWN  # state ""
    assert f.links[0] == "https://nvd.nist.gov/vuln/detail/CVE-2022-28391"
    assert Digest.parse("sha256:ae39a6f5c07297d7ab64dbd4f82c77c874cc6a94cea29fdec309d0992574b4f7"
                        ) in report.image_digests


def test_redacted_image_id_is_skipped_not_fatal() -> None:
    report = load_report(G / "defectdojo-fix_not_available.json")
    assert [str(d) for d in report.image_digests] == [
        "sha256:4e1c538085614cbc0c9affbb206abbec3220118425409662e46b3d4bb71d1b6d"]
    assert report.findings[0].fix_state is FixState.UNKNOWN


def test_related_vulnerabilities_become_aliases() -> None:
    doc = load(G / "grype-snapshot-TestJsonImgsPresenter.json")
    doc["matches"][0]["vulnerability"]["id"] = "GHSA-aaaa-bbbb-cccc"
    doc["matches"][0]["relatedVulnerabilities"] = [
        {"id": "CVE-2099-0001", "severity": "High", "urls": [], "cvss": []}]
    f = _parse(doc).findings[0]
    assert f.id == "GHSA-aaaa-bbbb-cccc" and f.aliases == ("CVE-2099-0001",)


def test_directory_scan_target_is_a_string() -> None:
    doc = load(G / "grype-snapshot-TestJsonImgsPresenter.json")
    doc["source"] = {"type": "directory", "target": "/src"}
    report = _parse(doc)
    assert report.image_name == "/src" and report.image_digests == ()


@pytest.mark.parametrize(("mutate", "where"), [
    (lambda d: d.pop("matches"), "$.matches"),
    (lambda d: d.update(matches={}), "$.matches"),
    (lambda d: d.update(matches=None), "$.matches"),
    (lambda d: d["matches"][1]["artifact"].update(version=2), "$.matches[1].artifact.version"),
    (lambda d: d["matches"][0]["vulnerability"].update(severity="Bad"),
     "$.matches[0].vulnerability.severity"),
    (lambda d: d["matches"][0]["vulnerability"]["fix"].update(versions="1.0"),
     "$.matches[0].vulnerability.fix.versions"),
    (lambda d: d["matches"][0]["vulnerability"]["cvss"][0]["metrics"].update(baseScore=-1),
     "$.matches[0].vulnerability.cvss[0].metrics.baseScore"),
    (lambda d: d["matches"][0]["vulnerability"]["epss"][0].update(epss=3),
     "$.matches[0].vulnerability.epss[0].epss"),
    # An integer no float can hold (found by tests/fuzz): refused, not an OverflowError.
    (lambda d: d["matches"][0]["vulnerability"]["epss"][0].update(epss=10 ** 400),
     "$.matches[0].vulnerability.epss[0].epss"),
    (lambda d: d["matches"][0].update(matchDetails="x"), "$.matches[0].matchDetails"),
    (lambda d: d["matches"][1].pop("artifact"), "$.matches[1].artifact"),
    (lambda d: d["source"].update(target=5), "$.source.target"),
])
def test_malformed_grype_names_file_and_json_path(mutate, where: str) -> None:
    doc = load(G / "grype-snapshot-TestJsonImgsPresenter.json")
    mutate(doc)
    with pytest.raises(ReportError) as e:
        parse_report(json.dumps(doc).encode(), source="g.json", kind="grype")
    assert e.value.message.startswith("g.json: invalid Grype JSON report at ")
    assert f" at {where}: " in e.value.message
