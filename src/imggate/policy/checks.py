"""One function per rule kind: evidence and a rule section in, a :class:`RuleResult` out.

A check returns ``None`` when its section configures nothing (the rule is
not run, so it is not reported). Checks never raise on missing evidence: a
fact that cannot be established is a violation (fail closed), with a message
saying which fact was missing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime

from imggate.models import (
    NOT_SCANNED,
    Digest,
    Finding,
    FixState,
    ImageRef,
    Mode,
    ResolvedImage,
    RuleResult,
    Severity,
    SignatureCheck,
    SignatureKind,
    describe_finding,
)
from imggate.policy.kev import KevCatalog
from imggate.policy.patterns import compile_regex, prefix_matches, tag_matches
from imggate.policy.rules import (
    ANY_PREDICATE,
    AgeRules,
    AttestationRules,
    LabelRules,
    ProvenanceRules,
    RegistryRules,
    RuleSet,
    SeverityRules,
    SignatureRules,
    TagRules,
)

#: How many offending items a message lists before summarising the rest.
SHOW = 10
_SIGNER_RE = re.compile(r"(?P<identity>.*) \((?P<issuer>[^()]*)\)")  # fullmatch


def listing(items: Sequence[str], total: int | None = None) -> tuple[str, ...]:
    """The first items, then how many more there are."""
    total = len(items) if total is None else total
    shown = tuple(items[:SHOW])
    return shown + ((f"... and {total - len(shown)} more",) if total > len(shown) else ())


def is_unfixed(f: Finding) -> bool:
    """No fixed version is known (Trivy's ``--ignore-unfixed`` meaning)."""
    return f.fix_state is not FixState.FIXED and not f.fixed_versions


def check_severity(findings: Sequence[Finding], rules: SeverityRules, mode: Mode,
                   have_report: bool, refused: Sequence[str] = (),
                   expired: Mapping[str, date] | None = None) -> RuleResult | None:
    """Threshold, per-severity maximum counts, and CVSS threshold over active findings.

    ``refused`` says what evidence was found but could not count (shown with NOT SCANNED).
    ``expired`` maps vulnerability ids to the expiry of an exception that no longer
    applies: a finding over the limit because of one says so in the first message
    (the one a webhook denial shows), since that is what changed since CI.
    """
    if not (rules.fail_on or rules.max or rules.cvss is not None or rules.require_report):
        return None
    messages: list[str] = []
    passed = True
    if not have_report:
        text = (f"{NOT_SCANNED}: no scanner evidence for this image was used (none given, "
                "or every report was refused): its vulnerabilities are unknown")
        why = tuple(refused)
        if rules.require_report:
            return RuleResult("severity", False, mode, (text, *why))
        # Not required here, so it does not deny; but never a silent pass.
        return RuleResult("severity", False, Mode.WARN,
                          (text + " (require_report is off)", *why))
    # Each loop over the findings (10,000s) written for the rules at hand: one that would
    # keep every finding, or test a limit that is not set, is not run (~15M -> ~9M
    # instructions at 10,000 findings).
    counted = ([f for f in findings if not is_unfixed(f)] if rules.ignore_unfixed
               else findings)
    ignored = len(findings) - len(counted)
    floor = rules.fail_on.rank if rules.fail_on is not None else None
    cvss = rules.cvss
    # Severities compared and counted by value: a Severity's rank is a property, and its
    # hash a Python call, asked here per finding (10,000s: ~15M instructions a check).
    failing = frozenset(s._value_ for s in Severity if floor is not None and s.rank >= floor)
    if cvss is None:
        bad = [f for f in counted if f.severity._value_ in failing] if failing else []
    else:
        bad = [f for f in counted
               if f.severity._value_ in failing or (f.max_cvss or 0.0) >= cvss]
    if bad:
        passed = False
        by = Counter(f.severity._value_ for f in bad)
        summary = ", ".join(f"{by[s._value_]} {s.value}" for s in Severity if by[s._value_])
        limit = []
        if rules.fail_on is not None:
            limit.append(f"{rules.fail_on.value} or above")
        if rules.cvss is not None:
            limit.append(f"CVSS {rules.cvss:g} or above")
        gone = expired or {}
        lapsed = sorted({f"{i} (exception expired on {gone[i].isoformat()})"
                         for f in bad for i in f.all_ids if i in gone})
        again = f"; counted again: {', '.join(lapsed[:3])}" if lapsed else ""
        messages.append(f"{len(bad)} findings {' or '.join(limit)} ({summary}){again}")
        bad.sort(key=lambda f: (-f.severity.rank, -(f.max_cvss or 0.0), f.id))
        messages += listing([describe_finding(f) for f in bad[:SHOW]], len(bad))
    counts = Counter(f.severity._value_ for f in counted) if rules.max else Counter()
    for sev, most in sorted(rules.max.items(), key=lambda kv: -kv[0].rank):
        if counts[sev._value_] > most:
            passed = False
            messages.append(f"{counts[sev._value_]} {sev.value} findings, at most {most} "
                            "allowed")
    if passed:
        messages.append(f"{len(counted)} findings counted, none over the limits")
    if ignored:
        messages.append(f"{ignored} findings without a fix ignored (ignore_unfixed)")
    return RuleResult("severity", passed, mode, tuple(messages),
                      tuple(f.key for f in bad) if not passed else ())


def check_kev(findings: Sequence[Finding], rules: SeverityRules, mode: Mode,
              kev: KevCatalog | None) -> RuleResult | None:
    """Every finding in the known-exploited catalog fails, whatever its severity or fix state."""
    if rules.kev is None:
        return None
    if kev is None:
        return RuleResult("severity.kev", False, mode,
                          (f"KEV catalog {rules.kev} is configured but was not loaded",))
    hits = [f for f in findings if any(i in kev for i in f.all_ids)]
    if not hits:
        return RuleResult("severity.kev", True, mode,
                          (f"no finding is in the known-exploited catalog ({len(kev.ids)} CVEs)",))
    return RuleResult("severity.kev", False, mode, (
        f"{len(hits)} findings are known to be exploited (CISA KEV)",
        *listing([describe_finding(f) for f in hits])), tuple(f.key for f in hits))


def effective_tag(ref: ImageRef) -> str | None:
    """The tag a reference names; docker's implicit ``latest`` when it names no tag or digest."""
    if ref.tag:
        return ref.tag
    return None if ref.digest is not None or ref.source != "registry" else "latest"


def check_tags(ref: ImageRef, rules: TagRules, mode: Mode) -> list[RuleResult]:
    """Denied tags, allowed tags, and digest pinning."""
    results = []
    tag = effective_tag(ref)
    if rules.deny:
        hit = next((p for p in rules.deny if tag is not None and tag_matches(p, tag)), None)
        if hit is not None:
            results.append(RuleResult("tags.denied", False, mode,
                                      (f"tag {tag!r} is denied (pattern {hit!r})",)))
        else:
            shown = f"tag {tag!r}" if tag else "no tag"
            results.append(RuleResult("tags.denied", True, mode, (f"{shown}: not denied",)))
    if rules.allow:
        if tag is None:
            results.append(RuleResult("tags.allowed", True, mode, ("referenced by digest",)))
        elif any(tag_matches(p, tag) for p in rules.allow):
            results.append(RuleResult("tags.allowed", True, mode, (f"tag {tag!r} is allowed",)))
        else:
            results.append(RuleResult("tags.allowed", False, mode, (
                f"tag {tag!r} matches no allowed pattern ({', '.join(rules.allow)})",)))
    if rules.require_digest:
        if ref.pinned_by_digest:
            results.append(RuleResult("tags.digest-pinning", True, mode,
                                      (f"pinned by digest {ref.digest}",)))
        else:
            results.append(RuleResult("tags.digest-pinning", False, mode, (
                f"{ref} is referenced by tag only: give the digest (name@sha256:...)",)))
    return results


def check_registries(ref: ImageRef, rules: RegistryRules, mode: Mode) -> RuleResult | None:
    """The image comes from an allowed registry / repository prefix."""
    if not rules.allowed:
        return None
    hit = next((p for p in rules.allowed if prefix_matches(p, ref)), None)
    if hit is not None:
        return RuleResult("registries", True, mode, (f"{ref.name} is under {hit}",))
    return RuleResult("registries", False, mode, (
        f"{ref.name} is not under an allowed prefix ({', '.join(rules.allowed)})",))


def reference_results(ref: ImageRef, rules: RuleSet, *, pinning: bool = False
                      ) -> list[RuleResult]:
    """The rules about the reference alone (tags, registries): decidable before any
    registry call. With ``pinning`` (``imggate serve``'s ``/mutate`` will pin this tag to
    the digest it checks), the digest-pinning rule is satisfied by the patch."""
    tags = rules.tags
    if pinning and tags.require_digest:
        tags = tags.model_copy(update={"require_digest": False})
    found = check_tags(ref, tags, rules.mode_of("tags"))
    reg = check_registries(ref, rules.registries, rules.mode_of("registries"))
    return [*found, *([reg] if reg is not None else [])]


def check_age(image: ResolvedImage | None, rules: AgeRules, mode: Mode,
              now: datetime) -> RuleResult | None:
    """The config's ``created`` is at most ``max_days`` old."""
    if rules.max_days is None:
        return None
    created = image.config.created if image is not None and image.config is not None else None
    if created is None:
        return RuleResult("age", False, mode,
                          ("the image config has no 'created' date: age cannot be checked",))
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    days = (now - created).total_seconds() / 86400
    text = f"created {created.date().isoformat()} ({int(days)} days ago, at most {rules.max_days})"
    return RuleResult("age", days <= rules.max_days, mode, (text,))


def check_labels(image: ResolvedImage | None, rules: LabelRules, mode: Mode) -> RuleResult | None:
    """Required labels are present (and match their regex when one is given)."""
    if not (rules.required or rules.values):
        return None
    labels = image.config.labels if image is not None and image.config is not None else {}
    problems = [f"label {name!r} is missing" for name in rules.required if not labels.get(name)]
    for name, pattern in rules.values.items():
        value = labels.get(name)
        if value is None:
            if name not in rules.required:
                problems.append(f"label {name!r} is missing")
        elif not compile_regex(pattern).search(value):
            problems.append(f"label {name!r} = {value[:100]!r} does not match /{pattern}/")
    if problems:
        return RuleResult("labels", False, mode, tuple(problems))
    return RuleResult("labels", True, mode, ("required labels present",))


def parse_signer(signer: str) -> tuple[str, str | None]:
    """``identity (issuer)`` -> (identity, issuer); anything else -> (signer, None)."""
    m = _SIGNER_RE.fullmatch(signer)
    return (m.group("identity"), m.group("issuer")) if m else (signer, None)


def signer_trusted(signer: str | None, rules: SignatureRules) -> bool:
    """Whether ``signer`` is one of the rules' keys (by path or file name) or identities."""
    if signer is None:
        return False
    if not rules.anchors:
        return True
    for key in (*rules.keys, *rules.certificate_chains):
        for label in (str(key), key.name):
            if signer == label or signer.startswith(label + " "):
                return True
    identity, issuer = parse_signer(signer)
    return any(i.matches(identity, issuer) for i in rules.identities)


def _bound(c: SignatureCheck, digests: Sequence[Digest]) -> bool:
    return c.signed_digest is None or c.signed_digest in digests


def _usable(c: SignatureCheck, kind: SignatureKind, rules: SignatureRules,
            digests: Sequence[Digest]) -> bool:
    return (c.kind is kind and c.verified and _bound(c, digests)
            and (c.tlog or not rules.require_tlog) and signer_trusted(c.signer, rules))


def check_signatures(checks: Sequence[SignatureCheck], rules: SignatureRules, mode: Mode,
                     digests: Sequence[Digest]) -> RuleResult | None:
    """At least ``threshold`` distinct trusted signers verified a signature of this image."""
    if not rules.is_required:
        return None
    good = [c for c in checks if _usable(c, SignatureKind.SIGNATURE, rules, digests)]
    signers = sorted({c.signer or c.location for c in good})
    need = rules.threshold
    of = f" of {rules.anchors}" if rules.anchors else ""
    if len(signers) >= need:
        return RuleResult("signatures", True, mode, (
            f"verified by {len(signers)} signer(s) ({need}{of} required): {', '.join(signers)}",))
    sigs = [c for c in checks if c.kind is SignatureKind.SIGNATURE]
    messages = [f"{len(signers)} trusted signer(s) verified, {need}{of} required"
                if sigs else "unsigned: no signature found for this image"]
    for c in sigs:
        if c in good:
            continue
        if not c.verified:
            why = c.reason
        elif not _bound(c, digests):
            why = f"signs another digest ({c.signed_digest})"
        elif rules.require_tlog and not c.tlog:
            why = "not in a transparency log (require_tlog)"
        else:
            why = f"signer {c.signer!r} is not trusted by the rules"
        messages.append(f"{c.location}: {why}")
    return RuleResult("signatures", False, mode, listing(messages))


def check_attestations(checks: Sequence[SignatureCheck], rules: AttestationRules,
                       trust: SignatureRules, mode: Mode,
                       digests: Sequence[Digest]) -> RuleResult | None:
    """Each required predicate type has a verified attestation meeting its conditions."""
    if not rules.required:
        return None
    messages = []
    passed = True
    for req in rules.required:
        candidates = [c for c in checks
                      if req.predicate_type in (c.predicate_type, ANY_PREDICATE)
                      and _usable(c, SignatureKind.ATTESTATION, trust, digests)]
        if not candidates:
            passed = False
            messages.append(f"{req.predicate_type}: no verified attestation")
            continue
        found = None
        last: list[str] = []
        for c in candidates:
            outcomes = [cond.holds(c.predicate or {}) for cond in req.conditions]
            if all(ok for ok, _ in outcomes):
                found = c
                break
            last = [f"{cond} failed: {seen}" for cond, (ok, seen)
                    in zip(req.conditions, outcomes, strict=True) if not ok]
        if found is None:
            passed = False
            messages.append(f"{req.predicate_type}: conditions not met ({'; '.join(last)})")
        else:
            messages.append(f"{req.predicate_type}: verified by {found.signer or found.location}")
    return RuleResult("attestations", passed, mode, tuple(messages))


def check_provenance(checks: Sequence[SignatureCheck], rules: ProvenanceRules,
                     trust: SignatureRules, mode: Mode,
                     digests: Sequence[Digest]) -> RuleResult | None:
    """A verified SLSA provenance of this image whose builder, source and workflow match.

    Only attestations verified by a trusted signer for one of the image's digests count.
    One provenance meeting every pattern passes; otherwise each one found says what broke.
    """
    if not rules.active:
        return None
    from imggate.policy import provenance as prov

    found = [c for c in checks if c.predicate_type in prov.PROVENANCE_TYPES
             and _usable(c, SignatureKind.ATTESTATION, trust, digests)]
    if not found:
        unverified = [c for c in checks if c.kind is SignatureKind.ATTESTATION
                      and c.predicate_type in prov.PROVENANCE_TYPES and not c.verified]
        why = [f"{c.location}: {c.reason}" for c in unverified]
        if not rules.is_required:
            return RuleResult("provenance", True, mode, (
                "no verified SLSA provenance (not required)", *listing(why)))
        return RuleResult("provenance", False, mode, (
            "no verified SLSA provenance (https://slsa.dev/provenance/v1 or v0.2) for this "
            "image", *listing(why)))
    messages: list[str] = []
    for c in found:
        facts = prov.read_facts(c.predicate_type or "", c.predicate or {}, c.claims)
        broken = prov.violations(facts, builders=rules.builders,
                                 source_repositories=rules.source_repositories,
                                 source_refs=rules.source_refs, workflows=rules.workflows)
        if not broken:
            return RuleResult("provenance", True, mode, (
                f"{c.predicate_type} verified by {c.signer or c.location}: "
                f"{prov.summary(facts)}",))
        messages += [f"{c.location}: {b}" for b in broken]
    return RuleResult("provenance", False, mode, listing(messages))
