"""GitLab container-scanning reports as input (schema 3.0.0, 14.x, 15.x)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imggate.errors import ReportError
from imggate.models import Digest, FixState, Severity
from imggate.scanners.detect import load_report, parse_report
from scanners.report_fixtures import FIXTURES, GITLAB, fixture_id, load, raw_keys

GL = FIXTURES / "gitlab-cs"


def _parse(doc: object):
    return parse_report(json.dumps(doc).encode(), source="gl.json")


@pytest.mark.parametrize("path", GITLAB, ids=fixture_id)
def test_every_gitlab_fixture_parses_to_its_unique_entries(path: Path) -> None:
    report = load_report(path)
    keys = [f.key for f in report.findings]
    assert len(keys) == len(set(keys))
    assert set(keys) == raw_keys(path, "gitlab")


def test_schema15_analyzer_report() -> None:
    report = load_report(GL / "gcs-schema15-trivy-alpine.json")
    assert len(report.findings) == 76
    assert report.scanner.name == "trivy" and report.scanner.version == "0.19.2"
    assert report.operating_system == "alpine 3.7.1"
    assert report.image_name and report.image_name.startswith("registry.gitlab.com/caneldem/")
    assert report.image_digests == ()  # a tag, not a digest
    curl = next(f for f in report.findings if f.key == ("CVE-2018-14618", "curl", "7.61.0-r0"))
    assert curl.severity is Severity.CRITICAL
    assert curl.fixed_versions == ("7.61.1-r0",) and curl.fix_state is FixState.FIXED
    assert curl.links == ("https://nvd.nist.gov/vuln/detail/CVE-2018-14618",)
    assert all(f.sources == ("gitlab:trivy",) for f in report.findings)


def test_schema14_report_with_ghsa_and_duplicate_entry() -> None:
    report = load_report(GL / "gcs-schema14-grype-with-language.json")
    assert len(load(GL / "gcs-schema14-grype-with-language.json")["vulnerabilities"]) == 30
    assert len(report.findings) == 29  # one exact repeat in the input
    log4j = next(f for f in report.findings
                 if f.key == ("GHSA-jfh8-c2jp-5v3q", "log4j-core", "2.14.1"))
    assert log4j.fixed_versions == ("2.15.0",)
    assert log4j.title == "GHSA-jfh8-c2jp-5v3q in log4j-core-2.14.1"
    beanutils = next(f for f in report.findings if f.id == "CVE-2014-0114")
    assert beanutils.fix_state is FixState.UNKNOWN  # "No solution provided"


def test_old_report_without_analyzer_and_no_vulnerabilities() -> None:
    report = load_report(GL / "defectdojo-gl-container-scanning-report-0-vuln.json")
    assert report.findings == ()
    assert report.scanner.name == "trivy" and report.scanner.version == "0.16.0"
    assert report.started is not None and report.finished is not None


def test_report_without_scan_and_image_with_digest() -> None:
    doc = load(GL / "trivy-template-alpine-310.gitlab.json")
    del doc["scan"]
    digest = "sha256:" + "0f" * 32
    for v in doc["vulnerabilities"]:
        v["location"]["image"] = f"registry.example.com/app@{digest}"
    report = _parse(doc)
    assert report.scanner.name == "gitlab"
    assert report.image_digests == (Digest.parse(digest),)
    assert len(report.findings) == 4


def test_cvss_vectors_and_secondary_identifiers_are_kept() -> None:
    doc = load(GL / "trivy-template-alpine-310.gitlab.json")
    v = doc["vulnerabilities"][0]
    v["identifiers"].insert(0, {"type": "rhsa", "name": "RHSA-2020:1", "value": "RHSA-2020:1"})
    v["cvss_vectors"] = [{"vendor": "nvd", "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"}]
    f = next(f for f in _parse(doc).findings if f.package == "libcrypto1.1"
             and f.id == "CVE-2019-1549")
    assert f.aliases == ("RHSA-2020:1",)  # the CVE stays primary
    assert f.cvss[0].version == "3.1" and f.cvss[0].source == "nvd"


@pytest.mark.parametrize(("mutate", "where"), [
    (lambda d: d.update(vulnerabilities=None), "$.vulnerabilities"),
    (lambda d: d.pop("vulnerabilities"), "$.vulnerabilities"),
    (lambda d: d["vulnerabilities"][1].update(identifiers=[]), "$.vulnerabilities[1].identifiers"),
    (lambda d: d["vulnerabilities"][2].pop("location"), "$.vulnerabilities[2].location"),
    (lambda d: d["vulnerabilities"][0]["location"]["dependency"]["package"].update(name=None),
     "$.vulnerabilities[0].location.dependency.package.name"),
    (lambda d: d["vulnerabilities"][0]["location"]["dependency"].update(version=1.2),
     "$.vulnerabilities[0].location.dependency.version"),
    (lambda d: d["vulnerabilities"][3].update(severity="Urgent"),
     "$.vulnerabilities[3].severity"),
    (lambda d: d["vulnerabilities"][3].update(links=["https://x"]), "$.vulnerabilities[3].links[0]"),
    (lambda d: d["scan"].update(scanner=[]), "$.scan.scanner"),
])
def test_malformed_gitlab_report_names_the_place(mutate, where: str) -> None:
    doc = load(GL / "trivy-template-alpine-310.gitlab.json")
    mutate(doc)
    if "vulnerabilities" not in doc:  # no longer recognisable as a GitLab report
        with pytest.raises(ReportError, match=r"invalid GitLab .* at \$\.vulnerabilities: "):
            parse_report(json.dumps(doc).encode(), source="gl.json", kind="gitlab")
        return
    with pytest.raises(ReportError) as e:
        _parse(doc)
    assert e.value.message.startswith("gl.json: invalid GitLab container-scanning report at ")
    assert f" at {where}: " in e.value.message
