"""Judge scanner evidence for one image: is each report about this image, and fresh?

Every report (a file, a scan imggate ran, a signed attestation) becomes a
:class:`~imggate.models.ReportInfo` saying what it is, when it was made,
how old it is and whether it is bound to this image. Then:

- A report naming a digest of another image, or (naming no digest) another
  repository, is a ``report-binding`` violation and none of its findings are
  used for this image: they reach no output under it.
- A report naming no image digest is used only with ``allow_unbound`` (then
  as a warning); otherwise it is a violation and unused.
- With ``severity.max_report_age``, a report older than that, or with no
  creation time unless ``allow_undated``, is a ``report-age`` violation. Its
  findings still count (old vulnerabilities do not go away); it is not fresh
  evidence.

Pure: ``now`` is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from msgspec import Struct

from imggate.ages import format_age
from imggate.errors import InvalidReference
from imggate.models import (
    Binding,
    Digest,
    ImageRef,
    Mode,
    ReportInfo,
    ResolvedImage,
    RuleResult,
    ScanReport,
)
from imggate.policy.rules import BindingRules, SeverityRules, format_duration

#: Clock skew tolerated before a report "from the future" is suspect.
SKEW = timedelta(minutes=5)


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class Judged(Struct, frozen=True):
    """Reports judged for one image: those whose findings count, the facts, the rule results."""

    used: tuple[ScanReport, ...]
    infos: tuple[ReportInfo, ...]
    results: tuple[RuleResult, ...]
    notes: tuple[str, ...]


def report_name(report: ScanReport, index: int) -> str:
    """How a report is named in messages: its file, else scanner and position."""
    return report.source or f"{report.scanner.name} report #{index + 1}"


def image_digests(image: ResolvedImage | None) -> tuple[Digest, ...]:
    """Every digest that names this image: top-level, platform manifest, children, config."""
    if image is None:
        return ()
    found = [image.digest, image.manifest_digest, *(c.digest for c in image.platforms)]
    if image.config is not None:
        found.append(image.config.digest)
    return tuple(dict.fromkeys(found))


def _repository_of(name: str) -> ImageRef | None:
    """The reference a report names (``repo:tag``, or Trivy's ``repo:tag (os 1.2)``)."""
    from imggate.registry.reference import parse_reference

    text = name.split(" (", 1)[0].strip()
    if text.endswith((".tar", ".tar.gz", ".tgz")):
        return None  # an archive scanned from disk: no repository to compare
    try:
        return parse_reference(text)
    except InvalidReference:
        return None


def same_repository(named: str, ref: ImageRef) -> bool | None:
    """Whether a report's image name is ``ref``'s repository; ``None`` when it names none
    that can be read (a file name, an archive).

    A name written without a registry (``app:1.0``) is read as docker would
    (``docker.io/library/app``), but also matches a repository ending in the
    same path segments (``registry.example.com/team/app``): scanners print
    what the user typed.
    """
    theirs = _repository_of(named)
    if theirs is None or theirs.source != "registry" or ref.source != "registry":
        return None
    if (theirs.registry, theirs.repository) == (ref.registry, ref.repository):
        return True
    first, slash, _ = named.split(" (", 1)[0].partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return False  # it named a registry (docker's rule), and not ours
    path = theirs.repository.removeprefix("library/")
    return ref.repository == path or ref.repository.endswith("/" + path)


def _binding(report: ScanReport, ref: ImageRef, ours: frozenset[Digest]
             ) -> tuple[Binding, Digest | None]:
    if report.image_digests:
        mine = next((d for d in report.image_digests if d in ours), None)
        return (Binding.BOUND, mine) if mine is not None else (Binding.OTHER_IMAGE, None)
    if report.image_name and same_repository(report.image_name, ref) is False:
        return Binding.OTHER_REPOSITORY, None
    return Binding.UNBOUND, None


def _age_problem(report: ScanReport, age: timedelta | None, rules: SeverityRules) -> str | None:
    limit = rules.max_report_age
    if limit is None:
        return None
    if age is None:
        if rules.allow_undated:
            return None
        return "has no creation time, so its age is unknown (allow_undated is not set)"
    if age < -SKEW:
        return f"was created in the future ({report.created:%Y-%m-%d %H:%M} UTC)"
    if age > limit:
        return (f"is {format_age(age)} old (created {report.created:%Y-%m-%d %H:%M} UTC), "
                f"older than max_report_age {format_duration(limit)}")
    return None


def _aware(when: datetime | None) -> datetime | None:
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)  # scanners write UTC; a naive time is read as UTC


def judge_reports(reports: Sequence[ScanReport], ref: ImageRef, image: ResolvedImage, *,
                  severity: SeverityRules, binding: BindingRules, severity_mode: Mode,
                  binding_mode: Mode, now: datetime) -> Judged:
    """Bind, date and accept or refuse each report for one resolved image."""
    ours = frozenset(image_digests(image))
    now = _aware(now) or now
    used: list[ScanReport] = []
    infos: list[ReportInfo] = []
    bind_bad: list[str] = []
    bind_warn: list[str] = []
    stale: list[str] = []
    bound = 0
    for i, report in enumerate(reports):
        name = report_name(report, i)
        kind, mine = _binding(report, ref, ours)
        created = _aware(report.created)
        age = now - created if created is not None else None
        problems: list[str] = []
        ok = True
        if kind is Binding.OTHER_IMAGE:
            scanned = report.image_name or ", ".join(str(d) for d in report.image_digests[:2])
            problems.append(f"is for another image ({scanned}), not {image.digest}: "
                            "its findings are not used")
            ok = False
        elif kind is Binding.OTHER_REPOSITORY:
            problems.append(f"is for another repository ({report.image_name}), not "
                            f"{ref.name}: its findings are not used")
            ok = False
        elif kind is Binding.UNBOUND:
            what = "names no image digest: cannot tell which image it scanned"
            if binding.allow_unbound:
                bind_warn.append(f"{name} {what}; used anyway (allow_unbound)")
                problems.append(what + "; used anyway (allow_unbound)")
            else:
                problems.append(what + "; not used (allow_unbound is false)")
                ok = False
        else:
            bound += 1
        if not ok:
            bind_bad.append(f"{name} {problems[-1]}")
        age_problem = _age_problem(report, age, severity)
        if age_problem is not None:
            problems.append(age_problem)
            if ok:
                stale.append(f"{name} {age_problem}")
        if ok:
            used.append(report)
        infos.append(ReportInfo(
            kind=report.kind, location=name, scanner=report.scanner.name,
            scanner_version=report.scanner.version, created=created, age=age,
            subject=report.image_name, binding=kind, bound_to=mine, used=ok,
            findings=len(report.findings), problems=tuple(problems)))
    results: list[RuleResult] = []
    notes: list[str] = []
    if reports:
        if bind_bad:
            results.append(RuleResult("report-binding", False, binding_mode,
                                      tuple(bind_bad + bind_warn)))
        elif bind_warn:
            # Used, but nobody can prove it is about this image: a warning, never silent.
            results.append(RuleResult("report-binding", False, Mode.WARN, tuple(bind_warn)))
            notes += bind_warn
        else:
            results.append(RuleResult("report-binding", True, binding_mode,
                                      (f"{bound} report(s) bound to {image.digest}",)))
    if severity.max_report_age is not None and used:
        limit = format_duration(severity.max_report_age)
        if stale:
            results.append(RuleResult("report-age", False, severity_mode, tuple(stale)))
        else:
            results.append(RuleResult("report-age", True, severity_mode,
                                      (f"{len(used)} report(s) at most {limit} old",)))
    return Judged(tuple(used), tuple(infos), tuple(results), tuple(notes))
