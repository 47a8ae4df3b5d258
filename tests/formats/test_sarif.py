"""SARIF 2.1.0 writer, and that imggate reads its own SARIF back."""

from __future__ import annotations

import json

from imggate.formats import sarif
from imggate.models import Finding, FixState, ScannerInfo, Severity
from imggate.scanners.detect import load_report, parse_report
from imggate.scanners.merge import merge
from scanners.report_fixtures import FIXTURES, TRIVY_SARIF

IMAGE = "registry.example.com/group/app@sha256:" + "cd" * 32


def test_structure_rules_and_results() -> None:
    report = load_report(FIXTURES / "grype" / "cgvulnreport-redis-3.0.7.json")
    findings = merge([report])
    doc = sarif.render(findings, image=IMAGE, scanners=[report.scanner])
    assert doc["version"] == "2.1.0" and doc["$schema"].startswith("https://")
    (run,) = doc["runs"]
    rules, results = run["tool"]["driver"]["rules"], run["results"]
    assert len(results) == len(findings)
    assert len({r["id"] for r in rules}) == len(rules) == len({f.id for f in findings})
    for res in results:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note")
        assert res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert run["properties"] == {"imageName": IMAGE, "scanners": ["grype 0.86.1"]}
    json.dumps(doc)  # plain JSON values only


def test_levels_and_security_severity() -> None:
    crit = Finding("CVE-1", "a", "1", Severity.CRITICAL)
    low = Finding("CVE-2", "b", "1", Severity.LOW)
    doc = sarif.render([crit, low], image=IMAGE)
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    assert [r["properties"]["security-severity"] for r in rules] == ["9.5", "2.0"]
    assert [r["level"] for r in doc["runs"][0]["results"]] == ["error", "note"]


def test_own_sarif_reads_back_to_the_same_findings() -> None:
    report = load_report(FIXTURES / "trivy" / "centos-7.json")
    findings = merge([report])
    doc = sarif.render(findings, image=IMAGE, scanners=[report.scanner])
    back = parse_report(json.dumps(doc).encode(), source="imggate.sarif")
    assert back.image_name == IMAGE
    assert {(f.key, f.severity, f.fixed_versions, f.fix_state, f.sources) for f in back.findings} \
        == {(f.key, f.severity, f.fixed_versions, f.fix_state, f.sources) for f in findings}
    assert {f.fix_state for f in back.findings} == {FixState.FIXED, FixState.WONT_FIX}


def test_trivy_sarif_in_sarif_out_keeps_every_result() -> None:
    report = load_report(TRIVY_SARIF[0])
    doc = sarif.render(merge([report]), image=report.image_name or IMAGE,
                       scanners=[ScannerInfo("trivy")])
    back = parse_report(json.dumps(doc).encode(), source="x.sarif")
    assert {f.key for f in back.findings} == {f.key for f in report.findings}
