"""The scenario matrix at the engine level: evidence + rules -> decision, rules and exceptions."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from msgspec.structs import replace

from imggate.errors import ConfigError
from imggate.models import (
    Decision,
    Evidence,
    ImageRef,
    ImageVerdict,
    Mode,
    ScanReport,
    Severity,
    SignatureCheck,
)
from imggate.policy.engine import evaluate, merge_findings
from imggate.policy.exceptions import AllowEntry, ExceptionSet
from imggate.policy.loader import load_rules
from policy.policy_builders import (
    DIGEST,
    NOW,
    OTHER_DIGEST,
    evidence,
    finding,
    image,
    ref,
    report,
    rules,
    signature,
)

CLEAN = report(finding("CVE-2024-0100", Severity.LOW))
CRITICAL = report(finding("CVE-2024-0001", Severity.CRITICAL))
SIGNED = """
environments:
  prod:
    signatures: {keys: [/keys/cosign.pub]}
"""


def _exc(expires: date, vid: str = "CVE-2024-0001") -> ExceptionSet:
    return ExceptionSet((AllowEntry(ids=(vid,), reason="tracked in APP-1", source="ex.yaml:3",
                                    kind="imggate", expires=expires),))


def _failed(v: ImageVerdict) -> set[str]:
    return {r.rule for r in v.rules if not r.passed}


def _run(env: str, ev: Evidence, *, text: str | None = None,
         exceptions: ExceptionSet | None = None) -> ImageVerdict:
    rf = rules(text) if text is not None else load_rules()
    return evaluate(ev, rf.effective(env), exceptions=exceptions, now=NOW)


# (name, env, reference, reports, signatures, rules text, exceptions, decision, failed rules)
MATRIX = [
    ("latest in prod", "prod", ref("latest"), (CLEAN,), (), None, None,
     Decision.DENY, {"tags.denied", "tags.digest-pinning"}),
    ("latest in dev", "dev", ref("latest"), (CLEAN,), (), None, None, Decision.ALLOW, set()),
    ("tag-only in prod", "prod", ref("1.2.3"), (CLEAN,), (), None, None,
     Decision.DENY, {"tags.digest-pinning"}),
    ("by digest in prod", "prod", ref(None, DIGEST), (CLEAN,), (), None, None,
     Decision.ALLOW, set()),
    ("critical finding", "dev", ref(None, DIGEST), (CRITICAL,), (), None, None,
     Decision.DENY, {"severity"}),
    ("excepted", "dev", ref(None, DIGEST), (CRITICAL,), (), None, _exc(date(2026, 12, 31)),
     Decision.ALLOW, set()),
    ("expired exception", "dev", ref(None, DIGEST), (CRITICAL,), (), None,
     _exc(date(2026, 11, 1)), Decision.DENY, {"severity", "exceptions"}),
    ("stale exception", "dev", ref(None, DIGEST), (CLEAN,), (), None,
     _exc(date(2026, 12, 31), "CVE-1999-0001"), Decision.ALLOW, {"exceptions"}),
    ("unsigned where required", "prod", ref(None, DIGEST), (CLEAN,), (), SIGNED, None,
     Decision.DENY, {"signatures"}),
    ("signed where required", "prod", ref(None, DIGEST), (CLEAN,), (signature(),), SIGNED,
     None, Decision.ALLOW, set()),
    ("report for another image", "dev", ref(None, DIGEST),
     (report(digests=(OTHER_DIGEST,), name="ghcr.io/other/app"),), (), None, None,
     Decision.DENY, {"report-binding", "severity"}),
    # Fail closed on missing, stale or unbound evidence (the built-in prod).
    ("no report in prod", "prod", ref(None, DIGEST), (), (), None, None,
     Decision.DENY, {"severity"}),
    ("no report in dev", "dev", ref(None, DIGEST), (), (), None, None,
     Decision.ALLOW, {"severity"}),
    ("stale report in prod", "prod", ref(None, DIGEST),
     (report(finished=NOW - timedelta(days=8)),), (), None, None,
     Decision.DENY, {"report-age"}),
    ("undated report in prod", "prod", ref(None, DIGEST), (report(finished=None),), (), None,
     None, Decision.DENY, {"report-age"}),
    ("unbound report in prod", "prod", ref(None, DIGEST), (report(digests=()),), (), None,
     None, Decision.DENY, {"report-binding", "severity"}),
    ("report for another repository", "prod", ref(None, DIGEST),
     (report(finding(), digests=(), name="docker.io/library/redis:7"),), (), None, None,
     Decision.DENY, {"report-binding", "severity"}),
]


@pytest.mark.parametrize(("name", "env", "r", "reports", "sigs", "text", "exceptions",
                          "decision", "failed"), MATRIX, ids=[m[0] for m in MATRIX])
def test_scenario(name: str, env: str, r: ImageRef, reports: tuple[ScanReport, ...],
                  sigs: tuple[SignatureCheck, ...], text: str | None,
                  exceptions: ExceptionSet | None,
                  decision: Decision, failed: set[str]) -> None:
    ev = evidence(r, reports=reports, signatures=sigs)
    v = _run(env, ev, text=text, exceptions=exceptions)
    assert v.decision is decision, [(x.rule, x.messages) for x in v.rules]
    assert _failed(v) == failed
    assert v.env == env


def test_broken_rules_are_a_config_error_with_file_and_line() -> None:
    with pytest.raises(ConfigError) as info:
        rules("environments:\n  prod:\n    tags:\n      require_digests: true\n")
    assert info.value.location == "rules.yaml:4"
    assert info.value.exit_code == 2


def test_latest_in_prod_says_why() -> None:
    v = _run("prod", evidence(ref("latest"), reports=(CLEAN,)))
    by_rule = {x.rule: x for x in v.rules}
    assert by_rule["tags.denied"].messages == ("tag 'latest' is denied (pattern 'latest')",)
    assert "referenced by tag only" in by_rule["tags.digest-pinning"].messages[0]
    assert {x.rule for x in v.violations} == {"tags.denied", "tags.digest-pinning"}


def test_excepted_finding_is_suppressed_and_use_reported() -> None:
    v = _run("dev", evidence(ref(None, DIGEST), reports=(CRITICAL,)),
             exceptions=_exc(date(2026, 12, 31)))
    assert v.findings == ()
    (f, why), = v.suppressed
    assert f.id == "CVE-2024-0001" and "tracked in APP-1" in why and "ex.yaml:3" in why
    (use,) = v.exceptions
    assert (use.status, use.matched) == ("used", ("CVE-2024-0001 in openssl 3.0.1",))


def test_expired_exception_is_reported_and_finding_counts_again() -> None:
    v = _run("dev", evidence(ref(None, DIGEST), reports=(CRITICAL,)),
             exceptions=_exc(date(2026, 11, 1)))
    (use,) = v.exceptions
    assert use.status == "expired" and use.expires == date(2026, 11, 1)
    assert [f.id for f in v.findings] == ["CVE-2024-0001"]
    warn = next(x for x in v.rules if x.rule == "exceptions")
    assert warn.mode is Mode.WARN and "expired on 2026-11-01" in warn.messages[0]


def test_stale_exception_is_reported_as_a_warning() -> None:
    v = _run("dev", evidence(ref(None, DIGEST), reports=(CLEAN,)),
             exceptions=_exc(date(2026, 12, 31), "CVE-1999-0001"))
    assert [u.status for u in v.exceptions] == ["stale"]
    assert [w.rule for w in v.warnings] == ["exceptions"]
    assert v.decision is Decision.ALLOW


def test_evidence_errors_are_never_an_allow() -> None:
    ev = evidence(ref(None, DIGEST), resolve=False, errors=("registry unreachable",))
    v = _run("dev", ev)
    assert v.decision is Decision.ERROR and v.error == "registry unreachable"
    ok = evidence(ref(None, DIGEST), reports=(CLEAN,), errors=("trivy failed",))
    assert _run("dev", ok).decision is Decision.ERROR


def test_warn_mode_reports_but_does_not_deny() -> None:
    text = "environments:\n  prod:\n    mode: warn\n    tags: {deny: [latest]}\n"
    v = _run("prod", evidence(ref("latest"), reports=(CLEAN,)), text=text)
    assert v.decision is Decision.ALLOW
    assert [w.rule for w in v.warnings] == ["tags.denied"]
    per_rule = "environments:\n  prod:\n    tags: {deny: [latest], mode: warn}\n" \
               "    severity: {fail_on: Critical}\n"
    v = _run("prod", evidence(ref("latest"), reports=(CRITICAL,)), text=per_rule)
    assert v.decision is Decision.DENY
    assert [x.rule for x in v.violations] == ["severity"]
    assert [x.rule for x in v.warnings] == ["tags.denied"]


def test_report_naming_no_digest_is_used_with_a_note() -> None:
    unbound = report(finding("CVE-2024-0001", Severity.CRITICAL), digests=(), name=None)
    v = _run("dev", evidence(ref(None, DIGEST), reports=(unbound,)))
    assert v.decision is Decision.DENY and [x.rule for x in v.violations] == ["severity"]
    assert any("names no image digest" in n for n in v.notes)
    (warning,) = v.warnings
    assert warning.rule == "report-binding" and "used anyway" in warning.messages[0]
    clean = _run("dev", evidence(ref(None, DIGEST), reports=(report(digests=()),)))
    assert clean.decision is Decision.ALLOW and [w.rule for w in clean.warnings] \
        == ["report-binding"]
    strict = "environments:\n  dev:\n    report_binding: {allow_unbound: false}\n"
    v = _run("dev", evidence(ref(None, DIGEST), reports=(report(digests=()),)), text=strict)
    assert _failed(v) == {"report-binding"}


def test_report_naming_the_config_digest_is_bound() -> None:
    img = image(ref(None, DIGEST))
    assert img.config is not None
    v = _run("dev", evidence(ref(None, DIGEST), reports=(report(digests=(img.config.digest,)),)))
    binding = next(x for x in v.rules if x.rule == "report-binding")
    assert binding.passed


def test_report_for_another_image_message() -> None:
    other = report(digests=(OTHER_DIGEST,), name="ghcr.io/other/app")
    v = _run("dev", evidence(ref(None, DIGEST), reports=(other,)))
    (msg,) = next(x for x in v.rules if x.rule == "report-binding").messages
    assert "trivy.json is for another image (ghcr.io/other/app), not sha256:" in msg
    assert msg.endswith("its findings are not used")


def test_image_override_applies_in_engine() -> None:
    text = ("environments:\n  prod:\n    severity: {fail_on: Critical}\n    images:\n"
            "      - match: registry.example.com/team/*\n        severity: {mode: warn}\n")
    v = _run("prod", evidence(ref(None, DIGEST), reports=(CRITICAL,)), text=text)
    assert v.decision is Decision.ALLOW and [w.rule for w in v.warnings] == ["severity"]
    assert "registry.example.com/team/*" in v.notes[0]


def test_cli_signers_require_a_signature() -> None:
    env = load_rules().effective("dev").with_signers(keys=(Path("k.pub"),))
    unsigned = evaluate(evidence(ref(None, DIGEST), reports=(CLEAN,)), env, now=NOW)
    assert unsigned.decision is Decision.DENY
    signed = evaluate(evidence(ref(None, DIGEST), reports=(CLEAN,),
                               signatures=(signature("k.pub"),)), env, now=NOW)
    assert signed.decision is Decision.ALLOW


def test_findings_from_two_scanners_are_merged() -> None:
    a = finding("CVE-2024-0001", Severity.HIGH, fixed=())
    b = finding("CVE-2024-0001", Severity.CRITICAL)
    b = replace(b, sources=("grype",))
    (m,) = merge_findings((report(a), report(b)))
    assert m.severity is Severity.CRITICAL and set(m.sources) == {"grype", "trivy"}
    assert m.fixed_versions == ("3.0.2",)


def test_verdict_carries_evidence_through() -> None:
    ev = evidence(ref(None, DIGEST), reports=(CLEAN,), signatures=(signature(),))
    v = _run("dev", ev)
    assert v.reports == ev.reports and v.signatures == ev.signatures and v.image == ev.image
    assert v.reference == ev.reference


def test_unresolved_image_without_error_text_is_still_an_error() -> None:
    v = _run("dev", evidence(ref(None, DIGEST), resolve=False))
    assert v.decision is Decision.ERROR and v.error == "the image was not resolved to a digest"


def test_unresolved_image_only_checks_the_reference() -> None:
    ev = evidence(ref("latest"), resolve=False, reports=(CRITICAL,),
                  errors=("registry.example.com: HTTP 503",))
    v = _run("prod", ev)
    # `latest` in prod is denied whatever the registry said: a retry cannot fix it.
    assert v.decision is Decision.DENY and v.error == "registry.example.com: HTTP 503"
    assert {x.rule for x in v.rules} == {"tags.denied", "tags.digest-pinning"}
    assert v.findings == () and v.reports == () and v.evidence == ()
    pinned = evidence(ref(None, DIGEST), resolve=False, errors=("registry.example.com: 503",))
    assert _run("prod", pinned).decision is Decision.ERROR


def test_a_signature_over_the_config_digest_does_not_count() -> None:
    img = image(ref(None, DIGEST))
    assert img.config is not None
    sig = signature(digest=img.config.digest)
    v = _run("prod", evidence(ref(None, DIGEST), reports=(CLEAN,), signatures=(sig,)),
             text=SIGNED)
    assert _failed(v) == {"signatures"}


# Tags of one image, as an audit judges them: every rule that reads the tag (denied,
# allowed, pinning), an `images:` override, report binding and age, labels, and
# exceptions scoped by repository, by digest and by tag.
TAGGED = """
environments:
  prod:
    severity: {fail_on: High, max_report_age: 7d}
    tags: {deny: ["latest"], allow: ['v[0-9.]+'], require_digest: true}
    registries: {allowed: [registry.example.com/team]}
    labels: {required: [org.opencontainers.image.source]}
    images:
      - match: "registry.example.com/team/*"
        labels: {mode: warn}
"""


def _entry(vid: str, images: tuple[str, ...], expires: date = date(2026, 12, 31)
           ) -> ExceptionSet:
    return ExceptionSet((AllowEntry(ids=(vid,), reason="accepted", source="ex.yaml:1",
                                    kind="imggate", expires=expires, images=images),))


@pytest.mark.parametrize("exceptions", [
    None,
    _entry("CVE-2024-0001", ("registry.example.com/team/*",)),
    _entry("CVE-2024-0001", (f"registry.example.com/team/app@{DIGEST}",)),
    _entry("CVE-2024-0001", ("registry.example.com/team/app:v1",))
    + _entry("CVE-1999-0001", ("registry.example.com/team/app:latest",)),
], ids=["none", "by-repository", "by-digest", "by-tag"])
@pytest.mark.parametrize("reports", [
    (CRITICAL,), (), (report(finished=NOW - timedelta(days=9)),)],
    ids=["critical", "no-report", "stale"])
def test_evaluate_each_is_evaluate_under_each_tag(exceptions: ExceptionSet | None,
                                                  reports: tuple[ScanReport, ...]) -> None:
    """An image's evidence judged once under several tags gives, for each, exactly the
    verdict of evaluating it named by that tag."""
    from imggate.policy.engine import evaluate_each

    env = rules(TAGGED).effective("prod")
    base = evidence(ref(None, DIGEST), reports=reports)
    refs = [ref(t, DIGEST) for t in ("v1", "latest", "v2", "feature-x", "v1")]
    refs.append(ref("v1", DIGEST, registry="ghcr.io"))  # another repository: its own rules
    got = evaluate_each(base, refs, env, exceptions=exceptions, now=NOW)
    want = [evaluate(replace(base, reference=str(r), ref=r), env, exceptions=exceptions,
                     now=NOW) for r in refs]
    assert got == want
    assert [v.reference for v in got] == [str(r) for r in refs]
    # latest, feature-x, the v tags and ghcr.io's fail reference rules of their own (and
    # a tag-scoped exception splits the v tags further).
    assert len({frozenset(_failed(v)) for v in got}) >= 4


def test_an_exception_scoped_to_a_tag_applies_under_that_tag_only() -> None:
    from imggate.policy.engine import evaluate_each

    env = rules(TAGGED).effective("prod")
    base = evidence(ref(None, DIGEST), reports=(CRITICAL,))
    v1, v2 = evaluate_each(base, [ref("v1", DIGEST), ref("v2", DIGEST)], env,
                           exceptions=_entry("CVE-2024-0001",
                                             ("registry.example.com/team/app:v1",)), now=NOW)
    assert (v1.decision, v2.decision) == (Decision.ALLOW, Decision.DENY)
    assert [f.id for f in v2.findings] == ["CVE-2024-0001"] and not v1.findings
