"""No silent bypass: allowlists read only on opt-in, held to the environment's exception
policy, and "matched nothing" judged over the images an exception covers."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from imggate.models import Decision, Severity
from imggate.policy.engine import evaluate, reconcile_exceptions
from imggate.policy.exceptions import REFUSED, STALE, UNCHECKED, UNMATCHED, USED
from imggate.policy.loader import load_policy
from policy.policy_builders import DIGEST, NOW, OTHER_DIGEST, evidence, finding, image, ref, report

TODAY = NOW.date()
RULES = """\
environments:
  dev:
    severity: {fail_on: Critical}
  prod:
    severity: {fail_on: Critical}
    exception_policy: {require_expiry: true, max_days: 90}
  review:
    extends: dev
    exception_policy: {discover: true}
"""


def _work(tmp_path: Path) -> Path:
    (tmp_path / "rules.yaml").write_text(RULES)
    work = tmp_path / "work"
    work.mkdir()
    (work / ".trivyignore").write_text("# accepted\nCVE-2024-0001\n")
    return work


def test_working_directory_allowlists_need_the_opt_in(tmp_path: Path) -> None:
    work = _work(tmp_path)
    off = load_policy(tmp_path / "rules.yaml", "dev", discover=work, environ={}, today=TODAY)
    assert len(off.exceptions) == 0
    assert off.notes == ("ignored .trivyignore in the working directory: exception_policy."
                         "discover is off in dev (name a file with --allowlist to use it)",)
    on = load_policy(tmp_path / "rules.yaml", "review", discover=work, environ={}, today=TODAY)
    assert [e.vulnerability for e in on.exceptions.entries] == ["CVE-2024-0001"]
    assert on.notes == ("read .trivyignore from the working directory "
                        "(exception_policy.discover in review)",)
    named = load_policy(tmp_path / "rules.yaml", "dev", discover=work, environ={},
                        allowlists=[work / ".trivyignore"], today=TODAY)
    assert len(named.exceptions) == 1 and named.notes == ()


def test_the_exception_policy_refuses_entries_and_reports_them(tmp_path: Path) -> None:
    work = _work(tmp_path)
    far = TODAY + timedelta(days=200)
    near = TODAY + timedelta(days=30)
    (work / "more.trivyignore").write_text(
        f"CVE-2024-0002 exp:{far.isoformat()}\nCVE-2024-0003 exp:{near.isoformat()}\n")
    policy = load_policy(tmp_path / "rules.yaml", "prod", environ={}, today=TODAY,
                         allowlists=[work / ".trivyignore", work / "more.trivyignore"])
    assert [e.vulnerability for e in policy.exceptions.entries] == ["CVE-2024-0003"]
    refused = {e.vulnerability: why for e, why in policy.exceptions.refused}
    assert refused == {
        "CVE-2024-0001": "it has no expiry date (exception_policy.require_expiry)",
        "CVE-2024-0002": f"it expires on {far}, more than 90 days from today "
                         "(exception_policy.max_days)"}
    assert "2 exception(s) refused by the exception policy of prod" in policy.notes[0]
    r = ref(None, DIGEST)
    v = evaluate(evidence(r, reports=(report(finding("CVE-2024-0001"),
                                             finding("CVE-2024-0003")),)),
                 policy.rules, exceptions=policy.exceptions, now=NOW)
    # Refused: not applied (the Critical still denies), and said on the image.
    assert v.decision is Decision.DENY
    assert [f.id for f in v.findings] == ["CVE-2024-0001"]
    assert [f.id for f, _ in v.suppressed] == ["CVE-2024-0003"]
    statuses = {u.vulnerability: u.status for u in v.exceptions}
    # CVE-2024-0002 would match nothing here: only the run's notes count it.
    assert statuses == {"CVE-2024-0003": USED, "CVE-2024-0001": REFUSED}
    (warning,) = [w for w in v.warnings if w.rule == "exceptions"]
    assert any(m.startswith("CVE-2024-0001: exception refused: it has no expiry date")
               and m.endswith("not applied to CVE-2024-0001 in openssl 3.0.1")
               for m in warning.messages)
    # dev has no such policy: the same entries apply there.
    dev = load_policy(tmp_path / "rules.yaml", "dev", environ={}, today=TODAY,
                      allowlists=[work / ".trivyignore", work / "more.trivyignore"])
    assert dev.exceptions.refused == ()


def test_builtin_prod_requires_expiry_within_90_days() -> None:
    ep = load_policy(None, "prod", environ={}).rules.exception_policy
    assert (ep.discover, ep.require_expiry, ep.max_days) == (False, True, 90)
    dev = load_policy(None, "dev", environ={}).rules.exception_policy
    assert (dev.discover, dev.require_expiry, dev.max_days) == (False, False, None)


def test_matched_nothing_is_judged_per_covered_image_over_the_run(tmp_path: Path) -> None:
    work = _work(tmp_path)
    (work / "x.trivyignore").write_text(f"CVE-1999-0001 exp:{TODAY + timedelta(days=9)}\n")
    policy = load_policy(tmp_path / "rules.yaml", "dev", environ={}, today=TODAY,
                         allowlists=[work / ".trivyignore", work / "x.trivyignore"])
    app, other, unscanned = (ref(None, DIGEST), ref(None, OTHER_DIGEST, repository="team/b"),
                             ref(None, OTHER_DIGEST, repository="team/c"))
    evs = [
        evidence(app, reports=(report(finding("CVE-2024-0001", Severity.HIGH)),)),
        evidence(other, resolved=image(other, digest=OTHER_DIGEST),
                 reports=(report(finding("CVE-2024-0100", Severity.LOW),
                                 digests=(OTHER_DIGEST,), name=None),)),
        evidence(unscanned, resolved=image(unscanned, digest=OTHER_DIGEST)),
    ]
    alone = [evaluate(ev, policy.rules, exceptions=policy.exceptions, now=NOW) for ev in evs]
    run = reconcile_exceptions(alone)
    status = [{u.vulnerability: u.status for u in iv.exceptions} for iv in run]
    # Used by the app: not "matched nothing" on the other image, and not judged at all
    # on the image nobody scanned. CVE-1999-0001 matched nothing anywhere: stale.
    assert status == [{"CVE-2024-0001": USED, "CVE-1999-0001": STALE},
                      {"CVE-2024-0001": UNMATCHED, "CVE-1999-0001": STALE},
                      {"CVE-2024-0001": UNCHECKED, "CVE-1999-0001": UNCHECKED}]
    warnings = [[m for w in iv.warnings if w.rule == "exceptions" for m in w.messages]
                for iv in run]
    assert not any("CVE-2024-0001" in m for ms in warnings for m in ms)
    assert warnings[1] == [f"CVE-1999-0001: exception matched nothing, remove it? "
                           f"({work / 'x.trivyignore'}:1)"]
    assert warnings[2] == []
    # Before reconciling, the second image would have called the used one stale.
    assert {u.vulnerability: u.status for u in alone[1].exceptions}["CVE-2024-0001"] == STALE
    assert run[0] is alone[0]


def test_a_date_in_the_past_is_only_expired_not_refused() -> None:
    from imggate.policy.exceptions import AllowEntry, policy_problem

    old = AllowEntry(ids=("CVE-1",), reason="r", source="s", kind="trivyignore",
                     expires=date(2020, 1, 1))
    assert policy_problem(old, require_expiry=True, max_days=90, today=TODAY) is None
    vex = AllowEntry(ids=("CVE-1",), reason="r", source="s", kind="openvex")
    assert policy_problem(vex, require_expiry=True, max_days=90, today=TODAY) is None
