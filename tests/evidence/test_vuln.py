"""Reading vuln predicates as evidence, and picking the newest valid attestation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fixture_paths import FIXTURES
from imggate import values
from imggate.evidence.attested import judge
from imggate.evidence.vuln import (
    LEGACY_VULN_PREDICATE,
    VULN_PREDICATE,
    PredicateError,
    build_predicate,
    read_predicate,
)
from imggate.models import Digest, ScannerInfo, Severity, SignatureCheck, SignatureKind
from imggate.scanners.detect import load_report

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SUBJECT = Digest.parse("sha256:" + "1" * 64)


def trivy_predicate(finished: datetime = NOW - timedelta(hours=1)) -> dict[str, Any]:
    """What ``trivy image --format cosign-vuln`` writes around a real Trivy report."""
    report = json.loads((FIXTURES / "trivy" / "debian-buster.json").read_text())
    return {"invocation": {"parameters": None, "uri": "", "event_id": "", "builder.id": ""},
            "scanner": {"uri": "pkg:github/aquasecurity/trivy@0.50.0", "version": "0.50.0",
                        "db": {"uri": "", "version": ""}, "result": report},
            "metadata": {"scanStartedOn": (finished - timedelta(minutes=1)).isoformat(),
                         "scanFinishedOn": finished.isoformat().replace("+00:00", "Z")}}


def test_a_trivy_cosign_vuln_predicate_is_a_report_dated_by_scan_finished_on() -> None:
    report = read_predicate(trivy_predicate(), subject=SUBJECT, source="att", now=NOW)
    assert report.finished == NOW - timedelta(hours=1)
    assert report.image_digests == (SUBJECT,)
    assert report.scanner.name.lower() == "trivy" and report.scanner.version == "0.50.0"
    assert {f.id for f in report.findings} == {"CVE-2019-18276", "CVE-2019-18224"}
    assert any(f.severity is Severity.CRITICAL for f in report.findings)


def test_cosigns_own_vuln_predicate_has_no_trivy_result_and_is_refused() -> None:
    predicate = json.loads((FIXTURES / "evidence" / "cosign-testdata-vuln-predicate.json")
                           .read_text())
    with pytest.raises(PredicateError, match="not a Trivy JSON report"):
        read_predicate(predicate, subject=SUBJECT, source="att", now=NOW)


@pytest.mark.parametrize("result", [
    {"version": "2.1.0", "runs": []},  # SARIF
    [], "text", 42,
    {"SchemaVersion": 2, "Results": "not a list"},  # looks like Trivy, is not
])
def test_results_that_are_not_trivy_reports_are_refused(result: object) -> None:
    predicate = trivy_predicate()
    predicate["scanner"]["result"] = result
    with pytest.raises(PredicateError, match=r"scanner\.result"):
        read_predicate(predicate, subject=SUBJECT, source="att", now=NOW)


def test_future_dated_and_inconsistent_scans_are_refused() -> None:
    with pytest.raises(PredicateError, match="in the future"):
        read_predicate(trivy_predicate(NOW + timedelta(days=1)), subject=SUBJECT,
                       source="att", now=NOW)
    backwards = trivy_predicate()
    backwards["metadata"]["scanStartedOn"] = NOW.isoformat()
    with pytest.raises(PredicateError, match="after scanFinishedOn"):
        read_predicate(backwards, subject=SUBJECT, source="att", now=NOW)
    garbage = trivy_predicate()
    garbage["metadata"]["scanFinishedOn"] = "yesterday"
    with pytest.raises(PredicateError, match="RFC 3339"):
        read_predicate(garbage, subject=SUBJECT, source="att", now=NOW)


def test_imggates_own_predicate_round_trips() -> None:
    report = load_report(FIXTURES / "trivy" / "debian-buster.json")
    predicate = build_predicate(report.findings, image="r/app@" + str(SUBJECT),
                                operating_system="debian 10.1",
                                scanners=(ScannerInfo("Trivy", "0.50.0"),),
                                started=NOW - timedelta(minutes=2),
                                finished=NOW - timedelta(minutes=1), version="0.1.0")
    assert predicate["scanner"]["uri"] == "pkg:pypi/imggate@0.1.0"
    assert predicate["metadata"]["scanFinishedOn"] == "2026-06-01T11:59:00Z"
    back = read_predicate(json.loads(json.dumps(predicate)), subject=SUBJECT, source="a",
                          now=NOW)
    assert back.findings == report.findings
    assert back.finished == NOW - timedelta(minutes=1)


def _check(finished: datetime, *, verified: bool = True, n: int = 0,
           ptype: str = VULN_PREDICATE) -> SignatureCheck:
    return SignatureCheck(SignatureKind.ATTESTATION, f".att layers[{n}]", verified,
                          "verified with key k" if verified else "signature does not verify",
                          signer="k" if verified else None, predicate_type=ptype,
                          predicate=trivy_predicate(finished) if verified else None,
                          signed_digest=SUBJECT)


def test_the_newest_valid_attestation_wins_and_failures_are_listed() -> None:
    old, new = _check(NOW - timedelta(days=3), n=0), _check(NOW - timedelta(hours=2), n=1)
    forged = _check(NOW, verified=False, n=2)
    got = judge((old, new, forged), subject=SUBJECT, now=NOW)
    assert got.report is not None and got.report.finished == NOW - timedelta(hours=2)
    assert got.checks[0].location == ".att layers[1]"
    assert [c.location for c in got.refused] == [".att layers[2]"]
    assert "superseded" in got.checks[1].reason


def test_a_verified_but_unusable_predicate_becomes_a_failed_check() -> None:
    bad = _check(NOW - timedelta(hours=1))
    bad = values.replace(bad, predicate={"scanner": {"result": None}})
    got = judge((bad,), subject=SUBJECT, now=NOW)
    assert got.report is None
    assert not got.checks[0].verified and "not a Trivy JSON report" in got.checks[0].reason


def test_legacy_predicate_type_is_read_and_other_types_are_ignored() -> None:
    legacy = _check(NOW - timedelta(hours=1), ptype=LEGACY_VULN_PREDICATE)
    slsa = _check(NOW, ptype="https://slsa.dev/provenance/v0.2")
    got = judge((legacy, slsa), subject=SUBJECT, now=NOW)
    assert got.report is not None and len(got.checks) == 1
