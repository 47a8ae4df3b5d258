"""``imggate check --attest``: sign what this run judged and store it beside the image.

For every image that was decided (allow or deny), two in-toto statements about
its digest are signed with the ``--attest-key`` and appended to its
``sha256-<hex>.att`` tag (see :mod:`imggate.evidence.push`):

* ``https://cosign.sigstore.dev/attestation/vuln/v1``: every finding of this
  run's scanner reports, merged, *before* exceptions (the next door applies
  its own exceptions with its own date), as an ``imggate-findings/1`` result.
  ``scanFinishedOn`` is the finish time of the *oldest* report, so
  ``max_report_age`` measures the evidence, not the moment it was signed;
  an undated report makes it Go's zero time (undated).
* ``https://imggate.dev/verdict/v1`` (:func:`verdict_predicate`): environment,
  rules source and sha256, decision, violations, warnings and the exceptions
  used with their expiries: the record of why CI let it through.

The deploy-time gate reads the first one back
(:mod:`imggate.evidence.attested`) and re-judges it with today's rules.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from imggate.errors import Error
from imggate.evidence.dsse import sign_statement, statement
from imggate.evidence.signing_keys import SigningKey
from imggate.evidence.vuln import VULN_PREDICATE, build_predicate, rfc3339
from imggate.models import Decision, Finding, ImageVerdict, ScanReport, Verdict
from imggate.registry.client import RegistryClient
from imggate.registry.deadline import Deadline
from imggate.registry.options import RegistryOptions

VERDICT_PREDICATE = "https://imggate.dev/verdict/v1"
_ZERO_TIME = datetime.fromisoformat("0001-01-01T00:00:00+00:00")


@dataclass(frozen=True, slots=True)
class RulesIdentity:
    """Which rules judged the run: where they came from and the sha256 of their bytes."""

    source: str
    sha256: str


def rules_identity(source: str, sha256: str | None, document: Any) -> RulesIdentity:
    """Which rules judged: the loader's sha256 of their bytes, else of their canonical JSON."""
    if sha256:
        return RulesIdentity(source, sha256)
    dump = document.model_dump(mode="json") if hasattr(document, "model_dump") else document
    canonical = json.dumps(dump, sort_keys=True, separators=(",", ":"), default=str)
    return RulesIdentity(source, hashlib.sha256(canonical.encode()).hexdigest())


def _all_findings(iv: ImageVerdict) -> tuple[Finding, ...]:
    merged = {f.key: f for f in (*iv.findings, *(f for f, _ in iv.suppressed))}
    return tuple(merged[k] for k in sorted(merged))


def _scan_times(reports: Sequence[ScanReport]) -> tuple[datetime, datetime]:
    finished = [r.finished for r in reports if r.finished is not None]
    if not reports or len(finished) != len(reports):
        return _ZERO_TIME, _ZERO_TIME
    started = [r.started for r in reports if r.started is not None]
    oldest = min(finished)
    return min([*started, oldest]), oldest


def vuln_predicate(iv: ImageVerdict, *, version: str, now: datetime) -> dict[str, Any]:
    """The vuln predicate for one decided image."""
    assert iv.image is not None
    started, finished = _scan_times(iv.reports)
    os_name = next((r.operating_system for r in iv.reports if r.operating_system), None)
    return build_predicate(_all_findings(iv), image=iv.image.pinned, operating_system=os_name,
                           scanners=tuple(r.scanner for r in iv.reports), started=started,
                           finished=finished, version=version)


def verdict_predicate(iv: ImageVerdict, *, rules: RulesIdentity, version: str,
                      now: datetime) -> dict[str, Any]:
    """``https://imggate.dev/verdict/v1``: the decision, its rules and the exceptions used."""
    assert iv.image is not None

    def results(items: Sequence[Any]) -> list[dict[str, Any]]:
        return [{"rule": r.rule, "mode": r.mode.value, "messages": list(r.messages)}
                for r in items]

    by_severity = Counter(f.severity.value for f in iv.findings)
    return {
        "imggate": {"version": version},
        "image": {"name": iv.image.ref.name, "digest": str(iv.image.digest),
                  "reference": iv.reference},
        "env": iv.env,
        "rules": {"source": rules.source, "sha256": rules.sha256},
        "decision": iv.decision.value,
        "evaluatedOn": rfc3339(now),
        "violations": results(iv.violations),
        "warnings": results(iv.warnings),
        "exceptions": [{"vulnerability": u.vulnerability, "package": u.package,
                        "status": u.status, "expires": u.expires.isoformat() if u.expires
                        else None, "reason": u.reason, "source": u.source,
                        "matched": list(u.matched)} for u in iv.exceptions],
        "findings": {"active": len(iv.findings), "suppressed": len(iv.suppressed),
                     "bySeverity": dict(sorted(by_severity.items()))},
    }


@dataclass(frozen=True, slots=True)
class Attested:
    """One image's attestations: where they went, or why they did not."""

    reference: str
    location: str
    manifest: str | None = None
    error: str | None = None


def attestable(verdict: Verdict) -> tuple[ImageVerdict, ...]:
    """Images with a decision to record (an undecided image has no evidence worth signing)."""
    return tuple(iv for iv in verdict.images
                 if iv.image is not None and iv.decision in (Decision.ALLOW, Decision.DENY))


def envelopes_for(iv: ImageVerdict, key: SigningKey, *, rules: RulesIdentity, version: str,
                  now: datetime) -> list[tuple[bytes, str]]:
    """The two signed envelopes (vuln, verdict) for one image, with their predicate types."""
    assert iv.image is not None
    name, digest = iv.image.ref.name, iv.image.digest
    out = []
    for ptype, predicate in (
            (VULN_PREDICATE, vuln_predicate(iv, version=version, now=now)),
            (VERDICT_PREDICATE, verdict_predicate(iv, rules=rules, version=version, now=now))):
        out.append((sign_statement(key, statement(name, digest, ptype, predicate)), ptype))
    return out


async def attest_verdict(verdict: Verdict, key: SigningKey, *, rules: RulesIdentity,
                         version: str, now: datetime, client: RegistryClient,
                         signature_repository: str | None = None) -> list[Attested]:
    """Sign and push the attestations of every decided image; never raises for one image.

    ``client`` is an open :class:`~imggate.registry.client.RegistryClient`;
    ``signature_repository`` (cosign's ``COSIGN_REPOSITORY``) is where they go
    when not beside the image. A failure is recorded on that image's result.
    """
    from imggate.evidence.push import push_attestations
    from imggate.registry.reference import parse_reference

    out = []
    for iv in attestable(verdict):
        assert iv.image is not None
        ref = iv.image.ref
        if signature_repository:
            target = parse_reference(signature_repository)
            repo = client.repository(target.registry, target.repository)
        else:
            repo = client.repository(ref.registry, ref.repository)
        where = f"{repo.name}:{iv.image.digest.tag_form}.att"
        try:
            envs = envelopes_for(iv, key, rules=rules, version=version, now=now)
            manifest = await push_attestations(repo, iv.image.digest, envs)
        except Error as e:
            out.append(Attested(iv.reference, where, error=e.message))
            continue
        out.append(Attested(iv.reference, where, manifest=str(manifest)))
    return out


def run_attest(verdict: Verdict, key: SigningKey, *, rules: RulesIdentity, version: str,
               now: datetime, options: RegistryOptions,
               signature_repository: str | None = None,
               deadline: Deadline | None = None) -> list[Attested]:
    """:func:`attest_verdict` with its own registry connection (the CLI's entry point)."""
    from imggate._aio import run

    async def go() -> list[Attested]:
        async with RegistryClient(options, deadline=deadline) as client:
            return await attest_verdict(verdict, key, rules=rules, version=version, now=now,
                                        client=client,
                                        signature_repository=signature_repository)

    return run(go())


@dataclass(frozen=True, slots=True)
class AttestPlan:
    """``--attest`` validated before any network traffic: the key is loaded and usable."""

    key: SigningKey
    signature_repository: str | None = None


def plan_attest(key_path: str | None, refs: Sequence[Any], *, have_evidence: bool,
                signature_repository: str | None = None,
                password: bytes | None = None) -> AttestPlan:
    """Check ``--attest`` flags and load ``--attest-key`` (exit 2 on any problem).

    An attestation is this run's scanner evidence signed: a run with no report
    and no ``--scan`` has none to sign; an OCI layout has no registry to push to.
    """
    from imggate.errors import UsageError
    from imggate.evidence.signing_keys import load_signing_key

    if not key_path:
        raise UsageError("--attest needs --attest-key (a cosign or PKCS#8 PEM private key)")
    if not have_evidence:
        raise UsageError("--attest signs this run's scanner evidence: give a report "
                         "(--trivy-report, --report...) or --scan trivy")
    layouts = [str(r) for r in refs if getattr(r, "source", "registry") != "registry"]
    if layouts:
        raise UsageError(f"--attest pushes to the image's registry; {layouts[0][:200]} is an "
                         "OCI layout")
    return AttestPlan(load_signing_key(key_path, password=password), signature_repository)


def attest_exit_code(verdict_code: int, results: Sequence[Attested]) -> int:
    """The run's exit code once attestations were pushed.

    A push that failed is exit 3 (the evidence did not travel: retry), unless
    an image was denied (1): a retry cannot fix a denial.
    """
    if verdict_code == 1 or not any(r.error for r in results):
        return verdict_code
    return 3


def describe(results: Sequence[Attested]) -> list[tuple[bool, str]]:
    """One line per image for the job log: (ok, text)."""
    out = []
    for r in results:
        if r.error:
            out.append((False, f"could not push the attestations of {r.reference} to "
                               f"{r.location}: {r.error}"))
        else:
            out.append((True, f"attested {r.reference}: vuln + verdict predicates in "
                              f"{r.location} ({r.manifest})"))
    return out
