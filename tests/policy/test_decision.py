"""The one decision function: a certain violation denies whatever else failed; an error
decides only what no certain violation did; a run's decision follows its images'."""

from __future__ import annotations

import pytest

from imggate.models import Decision, EvidenceGroup, Mode, RuleResult, Severity, Unchecked
from imggate.policy.decision import certain, decide, run_decision
from imggate.policy.engine import evaluate
from imggate.policy.loader import load_rules
from policy.policy_builders import (
    DIGEST,
    NOW,
    evidence,
    finding,
    ref,
    report,
    rules,
    signature,
)

SIGS = Unchecked("signatures: HTTP 503", frozenset({EvidenceGroup.SIGNATURES}))
SCAN = Unchecked("trivy crashed", frozenset({EvidenceGroup.SCANNER}))
ANY = Unchecked("registry unreachable")

CRITICAL = report(finding("CVE-2024-0001", Severity.CRITICAL))
CLEAN = report(finding("CVE-2024-0100", Severity.LOW))
SIGNED_PROD = """
environments:
  prod:
    tags: {deny: [latest], require_digest: true}
    severity: {fail_on: Critical, require_report: true}
    signatures: {keys: [/keys/cosign.pub]}
"""


def _failed(rule: str, *, findings: bool = False, mode: Mode = Mode.ENFORCE) -> RuleResult:
    keys = (("CVE-1", "pkg", "1.0"),) if findings else ()
    return RuleResult(rule, False, mode, ("why",), keys)


@pytest.mark.parametrize(("result", "unchecked", "expected"), [
    # Reference and image rules: certain whatever failed.
    (_failed("tags.denied"), (ANY,), True),
    (_failed("registries"), (ANY,), True),
    (_failed("age"), (SIGS, SCAN), True),
    # Evidence rules: certain when their evidence was read...
    (_failed("signatures"), (SCAN,), True),
    (_failed("severity"), (SIGS,), True),
    # ...not when it was not (unsigned, NOT SCANNED may be the error's doing)...
    (_failed("signatures"), (SIGS,), False),
    (_failed("attestations"), (ANY,), False),
    (_failed("severity"), (SCAN,), False),
    # ...unless the failure names what was found (a Critical in a report that was read).
    (_failed("severity", findings=True), (SCAN,), True),
    # Warnings and passes never deny.
    (_failed("tags.denied", mode=Mode.WARN), (), False),
    (RuleResult("tags.denied", True, Mode.ENFORCE), (), False),
])
def test_certain(result: RuleResult, unchecked: tuple[Unchecked, ...], expected: bool) -> None:
    assert certain(result, unchecked) is expected


def test_decide_orders_denial_then_error_then_allow() -> None:
    assert decide([_failed("tags.denied")], [ANY]) is Decision.DENY
    assert decide([_failed("signatures")], [SIGS]) is Decision.ERROR
    assert decide([_failed("signatures")], []) is Decision.DENY
    assert decide([_failed("signatures", mode=Mode.WARN)], [SIGS]) is Decision.ERROR
    assert decide([RuleResult("signatures", True, Mode.ENFORCE)], []) is Decision.ALLOW
    assert decide([], []) is Decision.ALLOW


def test_run_decision() -> None:
    d, e, a = Decision.DENY, Decision.ERROR, Decision.ALLOW
    assert run_decision([e, d, a]) is d  # one denial wins over any undecided image
    assert run_decision([a, e]) is e
    assert run_decision([a, a]) is a
    assert run_decision([]) is e  # nothing checked is never an allow
    assert run_decision([a], run_error=True) is e
    assert run_decision([d], run_error=True) is d


def _prod(ev_kwargs: dict[str, object], reference: object) -> tuple[Decision, str | None,
                                                                     set[str]]:
    rf = rules(SIGNED_PROD)
    v = evaluate(evidence(reference, **ev_kwargs), rf.effective("prod"),  # type: ignore[arg-type]
                 now=NOW)
    return v.decision, v.error, {r.rule for r in v.violations}


def test_engine_latest_with_registry_unreachable_is_denied_with_what_was_not_checked() -> None:
    decision, error, violated = _prod({"resolve": False, "errors": (ANY,)}, ref("latest"))
    assert decision is Decision.DENY
    assert error == "registry unreachable"
    assert violated == {"tags.denied", "tags.digest-pinning"}


def test_engine_bad_signature_then_attestation_timeout_is_a_denial() -> None:
    bad = signature(verified=False)
    decision, error, violated = _prod(
        {"reports": (CLEAN,), "signatures": (bad,), "errors": (SCAN,)}, ref(None, DIGEST))
    assert decision is Decision.DENY and error == "trivy crashed"
    assert violated == {"signatures"}


def test_engine_unsigned_because_the_fetch_failed_is_undecided() -> None:
    decision, _, _ = _prod({"reports": (CLEAN,), "errors": (SIGS,)}, ref(None, DIGEST))
    assert decision is Decision.ERROR


def test_engine_not_scanned_because_the_scanner_failed_is_undecided() -> None:
    decision, _, _ = _prod({"signatures": (signature(),), "errors": (SCAN,)}, ref(None, DIGEST))
    assert decision is Decision.ERROR


def test_engine_critical_found_while_the_scanner_also_failed_is_a_denial() -> None:
    decision, _, violated = _prod(
        {"reports": (CRITICAL,), "signatures": (signature(),), "errors": (SCAN,)},
        ref(None, DIGEST))
    assert decision is Decision.DENY and violated == {"severity"}


def test_engine_default_rules_error_without_violation_stays_error() -> None:
    v = evaluate(evidence(ref(None, DIGEST), resolve=False, errors=(ANY,)),
                 load_rules().effective("dev"), now=NOW)
    assert v.decision is Decision.ERROR
