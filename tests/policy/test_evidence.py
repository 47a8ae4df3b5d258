"""Judging scanner evidence for one image: binding, age, and what is used."""

from __future__ import annotations

from datetime import timedelta

import pytest

from imggate.errors import ConfigError
from imggate.models import Binding, Decision, EvidenceKind, Mode, ScanReport
from imggate.policy.engine import evaluate
from imggate.policy.evidence import Judged, format_age, judge_reports, same_repository
from imggate.policy.rules import BindingRules, SeverityRules
from imggate.scanners.detect import load_report
from imggate.values import replace
from policy.policy_builders import (
    DIGEST,
    FIXTURES,
    NOW,
    OTHER_DIGEST,
    evidence,
    finding,
    image,
    ref,
    report,
    rules,
)

E = Mode.ENFORCE


def _judge(*reports_: ScanReport, severity: SeverityRules | None = None,
           binding: BindingRules | None = None) -> Judged:
    r = ref(None, DIGEST)
    return judge_reports(reports_, r, image(r), severity=severity or SeverityRules(),
                         binding=binding or BindingRules(), severity_mode=E, binding_mode=E,
                         now=NOW)


def test_max_report_age_is_a_duration() -> None:
    text = ("environments:\n  prod:\n    severity: {max_report_age: 7d, allow_undated: true}\n"
            "  dev:\n    severity: {max_report_age: 12h}\n")
    r = rules(text)
    assert r.effective("prod").rules.severity.max_report_age == timedelta(days=7)
    assert r.effective("dev").rules.severity.max_report_age == timedelta(hours=12)
    described = r.effective("prod").explain()["rules"]
    assert isinstance(described, dict) and described["severity"]["max_report_age"] == "7d"
    with pytest.raises(ConfigError, match="expected a duration such as 7d"):
        rules("environments:\n  prod:\n    severity: {max_report_age: soon}\n")
    with pytest.raises(ConfigError, match="more than zero"):
        rules("environments:\n  prod:\n    severity: {max_report_age: 0d}\n")


def test_a_stale_report_is_a_report_age_violation_and_its_findings_still_count() -> None:
    old = replace(report(finding()), finished=NOW - timedelta(days=30))
    judged = _judge(old, severity=SeverityRules(max_report_age=timedelta(days=7)))
    assert judged.used == (old,)
    age = next(r for r in judged.results if r.rule == "report-age")
    assert not age.passed and age.mode is E
    assert "trivy.json is 30d old (created 2026-10-23 12:00 UTC), older than " \
           "max_report_age 7d" in age.messages[0]
    (info,) = judged.infos
    assert info.age == timedelta(days=30) and info.used and info.binding is Binding.BOUND
    fresh = replace(old, finished=NOW - timedelta(hours=2))
    ok = _judge(fresh, severity=SeverityRules(max_report_age=timedelta(days=7)))
    assert next(r for r in ok.results if r.rule == "report-age").passed


def test_undated_reports_need_allow_undated_and_future_ones_are_suspect() -> None:
    undated = report(finding(), finished=None)
    limit = timedelta(days=7)
    judged = _judge(undated, severity=SeverityRules(max_report_age=limit))
    age = next(r for r in judged.results if r.rule == "report-age")
    assert not age.passed and "has no creation time" in age.messages[0]
    allowed = _judge(undated, severity=SeverityRules(max_report_age=limit, allow_undated=True))
    assert next(r for r in allowed.results if r.rule == "report-age").passed
    future = replace(undated, finished=NOW + timedelta(days=1))
    judged = _judge(future, severity=SeverityRules(max_report_age=limit))
    assert "was created in the future" in next(
        r for r in judged.results if r.rule == "report-age").messages[0]
    # No max_report_age: no report-age rule at all.
    assert all(r.rule != "report-age" for r in _judge(undated).results)


def test_real_report_creation_times_are_read() -> None:
    trivy = load_report(FIXTURES / "trivy" / "debian-buster.json")
    assert trivy.created is not None
    r = ref(None, trivy.image_digests[0])
    v = evaluate(evidence(r, reports=(trivy,), resolved=image(r, digest=trivy.image_digests[0])),
                 rules("environments:\n  prod:\n    severity: {max_report_age: 7d}\n")
                 .effective("prod"), now=NOW)
    assert v.decision is Decision.DENY
    assert [x.rule for x in v.violations] == ["report-age"]
    (info,) = v.evidence
    assert info.kind is EvidenceKind.REPORT and info.scanner == "trivy"
    assert info.created == trivy.created and info.age == NOW - trivy.created


def test_binding_kinds() -> None:
    bound = report(finding())
    other_image = report(finding("CVE-9"), digests=(OTHER_DIGEST,), name="ghcr.io/x/redis",
                         source="redis.json")
    other_repo = report(finding("CVE-8"), digests=(), name="docker.io/library/redis:7",
                        source="redis-by-tag.json")
    unbound = report(finding("CVE-7"), digests=(), name="registry.example.com/team/app:1.2.3",
                     source="app-by-tag.json")
    judged = _judge(bound, other_image, other_repo, unbound,
                    binding=BindingRules(allow_unbound=False))
    assert [(i.binding, i.used) for i in judged.infos] == [
        (Binding.BOUND, True), (Binding.OTHER_IMAGE, False),
        (Binding.OTHER_REPOSITORY, False), (Binding.UNBOUND, False)]
    assert judged.used == (bound,)
    assert judged.infos[0].bound_to == DIGEST
    (binding,) = judged.results
    assert not binding.passed and binding.mode is E and len(binding.messages) == 3
    assert "redis-by-tag.json is for another repository (docker.io/library/redis:7), not " \
           "registry.example.com/team/app" in binding.messages[1]
    assert "not used (allow_unbound is false)" in binding.messages[2]
    lenient = _judge(bound, unbound, binding=BindingRules(allow_unbound=True))
    assert lenient.used == (bound, unbound)
    (warn,) = lenient.results
    assert warn.mode is Mode.WARN and "used anyway (allow_unbound)" in warn.messages[0]


@pytest.mark.parametrize(("named", "expected"), [
    ("registry.example.com/team/app:1.0", True),
    ("registry.example.com/team/app", True),
    ("team/app:1.0", True),                      # typed without the registry
    ("app:1.0 (alpine 3.19.1)", True),           # Trivy's Target form
    ("registry.example.com/team/other:1.0", False),
    ("ghcr.io/team/app:1.0", False),             # another registry
    ("localhost:5000/team/app", False),
    ("redis:7", False),
    ("app.tar", None),                           # an archive: cannot tell
    ("/src", None),                              # a directory scan
])
def test_same_repository(named: str, expected: bool | None) -> None:
    assert same_repository(named, ref()) is expected


def test_format_age() -> None:
    assert format_age(timedelta(days=3, hours=4, minutes=5)) == "3d 4h"
    assert format_age(timedelta(hours=5, minutes=12)) == "5h 12m"
    assert format_age(timedelta(minutes=40)) == "40m"
    assert format_age(timedelta(days=400)) == "400d"
