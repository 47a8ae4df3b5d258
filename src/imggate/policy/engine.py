"""Evidence + rules -> verdict, for one image. Pure: no I/O, no clock (``now`` is given).

Order of work:

1. pick the rules for the image (most specific ``images:`` override wins);
2. bind and date every scanner report (``report-binding``, ``report-age``): a report
   about another image or repository contributes nothing;
3. merge findings across the reports used (same id, package and version = one finding);
4. apply exceptions (used / expired / stale);
5. run every configured rule; a failed rule in ``warn`` mode does not deny;
6. decide with :func:`~imggate.policy.decision.decide`: a certain violation denies
   whatever else failed; otherwise any evidence error is ``error`` (exit 3), never an
   allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from msgspec import Struct

from imggate.models import (
    Evidence,
    ExceptionUse,
    Finding,
    ImageRef,
    ImageVerdict,
    Mode,
    ReportInfo,
    RuleResult,
    ScanReport,
    Unchecked,
)
from imggate.policy import checks
from imggate.policy.decision import decide
from imggate.policy.effective import EffectiveRules, ImageRules
from imggate.policy.evidence import image_digests, judge_reports
from imggate.policy.exceptions import (
    EXPIRED,
    REFUSED,
    STALE,
    UNCHECKED,
    UNMATCHED,
    USED,
    Applied,
    ExceptionSet,
)
from imggate.policy.kev import KevCatalog
from imggate.values import replace

__all__ = ["evaluate", "evaluate_each", "exception_result", "image_digests", "merge_findings",
           "reconcile_exceptions"]


def merge_findings(reports: Sequence[ScanReport]) -> tuple[Finding, ...]:
    """One finding per (id, package, version) across reports: the scanners' merge, so the
    policy judges exactly what the GitLab report and ``imggate convert`` show."""
    if not reports:
        return ()  # (an audit's images: ~25K instructions each for the merge of nothing)
    from imggate.scanners.merge import merge

    return merge(reports)


def exception_result(uses: Sequence[ExceptionUse], unlisted: int = 0) -> RuleResult | None:
    """The ``exceptions`` rule for one image from how each in-scope exception fared.

    Always warn-only: an expired or refused exception already leaves its
    finding counting. "Matched nothing" is said only for an exception that
    matched nothing in this image (whose findings were gathered) nor, after
    :func:`reconcile_exceptions`, in any other image of the run.
    """
    if not uses:
        return None
    messages = []
    for u in uses:
        if u.status == EXPIRED:
            messages.append(f"{u.vulnerability}: exception expired on {u.expires} ({u.source})"
                            + (f"; applies again to {', '.join(u.matched[:3])}"
                               if u.matched else ""))
        elif u.status == REFUSED:
            messages.append(f"{u.vulnerability}: exception {u.reason} ({u.source})"
                            + (f"; not applied to {', '.join(u.matched[:3])}"
                               if u.matched else ""))
        elif u.status == STALE:
            messages.append(f"{u.vulnerability}: exception matched nothing, remove it? "
                            f"({u.source})")
    if messages:
        # Entries beyond the listed ones all matched nothing here: counted, not listed.
        return RuleResult("exceptions", False, Mode.WARN,
                          checks.listing(messages, len(messages) + unlisted))
    used = sum(1 for u in uses if u.status == USED)
    return RuleResult("exceptions", True, Mode.WARN, (f"{used} exception(s) used",))


def _key(u: ExceptionUse) -> tuple[str, str, str | None]:
    return (u.source, u.vulnerability, u.package)


def reconcile_exceptions(verdicts: Sequence[ImageVerdict]) -> tuple[ImageVerdict, ...]:
    """Judge "matched nothing" over the whole run: an exception used by one image is not
    stale on another it also covers (there it is ``unmatched-here``, not a warning)."""
    used = {_key(u) for iv in verdicts for u in iv.exceptions if u.status == USED}
    out = []
    for iv in verdicts:
        if not any(u.status == STALE and _key(u) in used for u in iv.exceptions):
            out.append(iv)
            continue
        uses = tuple(replace(u, status=UNMATCHED) if u.status == STALE and _key(u) in used
                     else u for u in iv.exceptions)
        result = exception_result(uses, iv.exceptions_unlisted)
        rules = tuple(r for r in (result if r.rule == "exceptions" else r for r in iv.rules)
                      if r is not None)
        out.append(replace(iv, exceptions=uses, rules=rules))
    return tuple(out)


class _ImagePart(Struct, frozen=True):
    """What :func:`evaluate` finds about the image itself, whichever tag names it: every
    rule after the reference rules, in order, and what the verdict carries besides."""

    results: tuple[RuleResult, ...]
    applied: Applied
    used: tuple[ScanReport, ...]
    infos: tuple[ReportInfo, ...]
    notes: tuple[str, ...]
    errors: tuple[Unchecked, ...]
    error: str | None


def evaluate(evidence: Evidence, rules: EffectiveRules, *,
             exceptions: ExceptionSet | None = None, now: datetime,
             kev: KevCatalog | None = None) -> ImageVerdict:
    """Apply ``rules`` to one image's ``evidence``.

    ``kev`` is the catalog loaded from ``rules.kev_paths()`` (``None`` when not
    loaded: a rule naming one then fails closed). ``now`` decides exception
    expiry and image age.
    """
    chosen = rules.for_image(evidence.ref)
    part = _image_part(evidence, evidence.ref, chosen, rules.env, exceptions, now, kev)
    return _verdict(evidence, evidence.reference, evidence.ref, chosen, rules.env, part)


def evaluate_each(evidence: Evidence, refs: Sequence[ImageRef], rules: EffectiveRules, *,
                  exceptions: ExceptionSet | None = None, now: datetime,
                  kev: KevCatalog | None = None) -> list[ImageVerdict]:
    """``evidence`` judged under each of ``refs`` (``imggate audit``: every tag of a digest
    whose evidence was gathered once): for each, the verdict :func:`evaluate` gives for
    ``evidence`` named ``str(ref)``.

    What is about the image rather than its name (reports, findings, exceptions,
    signatures, age, labels: ~70% of an evaluation) is worked out once per repository
    and digest: it reads the reference only through its repository (which ``images:``
    override, report binding, exception scopes) and digest, and through its tag only
    where an exception is scoped to a tag; then it is worked out per tag.
    """
    ex = exceptions if exceptions is not None else ExceptionSet()
    by_tag = len(refs) > 1 and ex.scoped_by_tag
    parts: dict[ImageRef, tuple[ImageRules, _ImagePart]] = {}
    out = []
    for ref in refs:
        key = ref if by_tag else replace(ref, tag=None)
        found = parts.get(key)
        if found is None:
            chosen = rules.for_image(ref)
            found = parts[key] = (chosen, _image_part(evidence, ref, chosen, rules.env,
                                                      exceptions, now, kev))
        out.append(_verdict(evidence, str(ref), ref, found[0], rules.env, found[1]))
    return out


def _image_part(evidence: Evidence, ref: ImageRef, chosen: ImageRules, env: str,
                exceptions: ExceptionSet | None, now: datetime,
                kev: KevCatalog | None) -> _ImagePart:
    """The rules about the image in ``evidence`` (named ``ref``), after the reference's."""
    r = chosen.rules
    image = evidence.image
    notes: list[str] = list(evidence.notes)
    if chosen.pattern is not None:
        notes.append(f"rules for images matching {chosen.pattern!r} apply")
    results: list[RuleResult | None] = []
    used: tuple[ScanReport, ...] = ()
    infos: tuple[ReportInfo, ...] = ()
    if image is None:
        # Rules about the image itself would only repeat "unknown": the decision is error.
        notes.append("the image was not resolved: only rules about the reference were checked")
        applied = Applied((), (), ())
    else:
        digests = image_digests(image)
        sev_mode = r.mode_of("severity")
        judged = judge_reports(evidence.reports, ref, image, severity=r.severity,
                               binding=r.report_binding, severity_mode=sev_mode,
                               binding_mode=r.mode_of("report_binding"), now=now)
        used, infos = judged.used, judged.infos
        notes += judged.notes
        applied = (exceptions if exceptions is not None else ExceptionSet()).apply(
            merge_findings(used), ref=ref, digests=digests, env=env, today=now.date())
        expired = {u.vulnerability: u.expires for u in applied.uses
                   if u.status == EXPIRED and u.expires is not None}
        results.append(checks.check_severity(applied.active, r.severity, sev_mode,
                                             bool(used), evidence.refused, expired))
        if used:
            notes += evidence.refused
        results.append(checks.check_kev(applied.active, r.severity, sev_mode, kev))
        results.append(checks.check_age(image, r.age, r.mode_of("age"), now))
        results.append(checks.check_labels(image, r.labels, r.mode_of("labels")))
        # A signature binds to a manifest (the index or the platform one), never a config.
        signed = (image.digest, image.manifest_digest)
        results.append(checks.check_signatures(evidence.signatures, r.signatures,
                                               r.mode_of("signatures"), signed))
        results.append(checks.check_attestations(evidence.signatures, r.attestations,
                                                 r.signatures, r.mode_of("attestations"),
                                                 signed))
        results.append(checks.check_provenance(evidence.signatures, r.provenance,
                                               r.signatures, r.mode_of("provenance"), signed))
        results += judged.results
        uses = applied.uses
        if not used:
            # Nothing was gathered for this image: no exception can be judged stale on it.
            uses = tuple(replace(u, status=UNCHECKED) if u.status == STALE else u
                         for u in uses)
            applied = Applied(applied.active, applied.suppressed, uses, applied.unlisted)
        results.append(exception_result(uses, applied.unlisted if used else 0))
    errors = evidence.errors
    if image is None and not errors:
        # Nothing can be checked against an image that was never pinned: fail closed.
        errors = (Unchecked("the image was not resolved to a digest"),)
    return _ImagePart(tuple(x for x in results if x is not None), applied, used, infos,
                      tuple(notes), errors,
                      "; ".join(dict.fromkeys(e.reason for e in errors)) or None)


def _verdict(evidence: Evidence, reference: str, ref: ImageRef, chosen: ImageRules, env: str,
             part: _ImagePart) -> ImageVerdict:
    """The verdict on the image named ``ref``: the rules about the reference, then ``part``."""
    r = chosen.rules
    results: list[RuleResult | None] = []
    results += checks.check_tags(ref, r.tags, r.mode_of("tags"))
    results.append(checks.check_registries(ref, r.registries, r.mode_of("registries")))
    ran = (*(x for x in results if x is not None), *part.results)
    applied = part.applied
    return ImageVerdict(
        reference=reference, env=env, decision=decide(ran, part.errors), image=evidence.image,
        rules=ran, findings=applied.active, suppressed=applied.suppressed,
        exceptions=applied.uses, exceptions_unlisted=applied.unlisted,
        signatures=evidence.signatures, reports=part.used, error=part.error, notes=part.notes,
        evidence=part.infos)
