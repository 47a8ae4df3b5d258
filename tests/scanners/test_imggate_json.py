"""imggate's normalised findings JSON, read back: convert once, gate later."""

from __future__ import annotations

import json

import pytest

from imggate.errors import ReportError
from imggate.formats import findings_json
from imggate.scanners import imggate_json
from imggate.scanners.detect import load_report, parse_report
from imggate.scanners.merge import merge
from scanners.report_fixtures import FIXTURES

TRIVY_DEBIAN = FIXTURES / "trivy" / "legacy" / "defectdojo-legacy_many_vulns.json"
GRYPE_DEBIAN = FIXTURES / "grype" / "defectdojo-many_vulns3.json"
IMAGE = "registry.example.com/team/app@sha256:" + "9a" * 32


def _doc() -> dict:
    reports = [load_report(TRIVY_DEBIAN), load_report(GRYPE_DEBIAN)]
    return findings_json.render(merge(reports), image=IMAGE, operating_system="debian 10",
                                scanners=[r.scanner for r in reports])


def test_format_names_agree() -> None:
    assert imggate_json.FORMAT == findings_json.FORMAT


def test_round_trip_keeps_every_finding_exactly() -> None:
    reports = [load_report(TRIVY_DEBIAN), load_report(GRYPE_DEBIAN)]
    merged = merge(reports)
    back = parse_report(json.dumps(_doc()).encode(), source="findings.json")
    assert back.findings == merged  # every field, in order
    assert back.image_name == IMAGE and [str(d) for d in back.image_digests] == [IMAGE[-71:]]
    assert back.operating_system == "debian 10"
    assert back.scanner.name == "trivy+grype"
    assert merge([back]) == merged


@pytest.mark.parametrize(("mutate", "where"), [
    (lambda d: d["findings"][3].update(severity="Severe"), "$.findings[3].severity"),
    (lambda d: d["findings"][0].update(fix_state=None), "$.findings[0].fix_state"),
    (lambda d: d["findings"][1]["cvss"].append({"source": "x", "score": 99}),
     "$.findings[1].cvss"),
    (lambda d: d.update(findings=None), "$.findings"),
    (lambda d: d["findings"][2].pop("package"), "$.findings[2].package"),
])
def test_tampered_findings_json_is_an_error(mutate, where: str) -> None:
    doc = _doc()
    mutate(doc)
    with pytest.raises(ReportError) as e:
        parse_report(json.dumps(doc).encode(), source="f.json")
    assert f"at {where}" in e.value.message
