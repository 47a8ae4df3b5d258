"""cosign's vulnerability predicate (``https://cosign.sigstore.dev/attestation/vuln/v1``).

The predicate (cosign's ``specs/COSIGN_VULN_ATTESTATION_SPEC.md``)::

    {"invocation": {"parameters": …, "uri": …, "event_id": …, "builder.id": …},
     "scanner": {"uri": …, "version": …, "db": {"uri": …, "version": …}, "result": …},
     "metadata": {"scanStartedOn": RFC 3339, "scanFinishedOn": RFC 3339}}

``scanner.result`` is free-form in the spec. imggate accepts two kinds, and
nothing else, because findings are only as good as the parser that read them:

* a Trivy JSON report: what ``trivy image --format cosign-vuln`` writes;
* imggate's own findings document (``imggate-findings/1``): what
  ``imggate check --attest`` writes (the merged findings of every scanner).

:func:`read_predicate` turns a predicate into a :class:`~imggate.models.ScanReport`
dated by ``scanFinishedOn`` (so ``severity.max_report_age`` applies to it) and
bound to the attestation's subject digest; :func:`build_predicate` writes one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from imggate.errors import ReportError
from imggate.models import Digest, EvidenceKind, Finding, ScannerInfo, ScanReport

VULN_PREDICATE = "https://cosign.sigstore.dev/attestation/vuln/v1"
#: What cosign < 2.0 wrote (no scheme); read, never written.
LEGACY_VULN_PREDICATE = "cosign.sigstore.dev/attestation/vuln/v1"
VULN_PREDICATES = (VULN_PREDICATE, LEGACY_VULN_PREDICATE)
#: ``scanner.uri`` imggate writes (a purl, as Trivy's ``pkg:github/aquasecurity/trivy@…``).
IMGGATE_SCANNER_URI = "pkg:pypi/imggate"
#: A scan that claims to have finished later than this after "now" is refused:
#: clocks drift a little, evidence from the future does not exist.
CLOCK_SKEW = timedelta(minutes=5)


class PredicateError(ValueError):
    """A vuln predicate imggate cannot use as evidence; the message says why."""


def _time(meta: Mapping[str, Any], key: str) -> datetime | None:
    value = meta.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise PredicateError(f"metadata.{key} is not an RFC 3339 time")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PredicateError(f"metadata.{key} {value[:40]!r} is not an RFC 3339 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    # Go's zero time: what an empty scan record (and cosign's own test data) carries.
    return None if when.year <= 1 else when


def _result_report(result: Any, source: str) -> ScanReport:
    """Parse ``scanner.result``: a Trivy report or imggate's findings, nothing else."""
    from imggate.scanners import imggate_json, trivy

    for parser in (trivy.PARSER, imggate_json.PARSER):
        if parser.detect(result):
            try:
                return parser.parse(result, source=source)
            except ReportError as e:
                raise PredicateError(f"scanner.result: {e.message}") from None
    shape = "null" if result is None else type(result).__name__
    raise PredicateError(f"scanner.result is not a Trivy JSON report (found {shape[:20]}); "
                         "produce it with `trivy image --format cosign-vuln`")


def read_predicate(predicate: Mapping[str, Any], *, subject: Digest, source: str,
                   now: datetime) -> ScanReport:
    """The findings of a verified vuln predicate about ``subject``, as a scanner report.

    ``source`` names the attestation in messages. Raises :class:`PredicateError`
    when the predicate is malformed, its result is not a report imggate reads,
    or its scan is dated in the future.
    """
    scanner = predicate.get("scanner")
    if not isinstance(scanner, dict):
        raise PredicateError("predicate has no scanner object")
    meta = predicate.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    started, finished = _time(meta, "scanStartedOn"), _time(meta, "scanFinishedOn")
    if started is not None and finished is not None and started > finished:
        raise PredicateError(f"scanStartedOn {started.isoformat()} is after scanFinishedOn "
                             f"{finished.isoformat()}")
    for label, when in (("scanStartedOn", started), ("scanFinishedOn", finished)):
        if when is not None and when > now + CLOCK_SKEW:
            raise PredicateError(f"{label} {when.isoformat()} is in the future")
    report = _result_report(scanner.get("result"), source)
    uri, version = scanner.get("uri"), scanner.get("version")
    uri = uri if isinstance(uri, str) else ""
    version = version if isinstance(version, str) else ""
    info = report.scanner
    if not uri.startswith(IMGGATE_SCANNER_URI) and version and info.version in (None, "", "dev"):
        info = ScannerInfo(info.name, version[:100], info.vendor)
    # The signed subject, not whatever the embedded report says, binds it to the image.
    return ScanReport(scanner=info, findings=report.findings, source=source,
                      image_name=report.image_name, image_digests=(subject,),
                      operating_system=report.operating_system,
                      started=started or report.started, finished=finished or report.finished,
                      kind=EvidenceKind.ATTESTATION)


def build_predicate(findings: Sequence[Finding], *, image: str,
                    operating_system: str | None, scanners: Sequence[ScannerInfo],
                    started: datetime, finished: datetime, version: str,
                    invocation_uri: str | None = None) -> dict[str, Any]:
    """imggate's vuln predicate: the merged findings as an ``imggate-findings/1`` result.

    ``scanner.db`` names the scanners that produced the findings (their own
    databases are theirs to name); times are RFC 3339 UTC with seconds.
    """
    from imggate.formats import findings_json

    result = findings_json.render(findings, image=image, operating_system=operating_system,
                                  scanners=scanners)
    db = "+".join(f"{s.name}@{s.version}" if s.version else s.name
                  for s in dict.fromkeys(scanners))
    return {
        "invocation": {"parameters": None, "uri": invocation_uri or "", "event_id": "",
                       "builder.id": ""},
        "scanner": {"uri": f"{IMGGATE_SCANNER_URI}@{version}", "version": version,
                    "db": {"uri": db, "version": ""}, "result": result},
        "metadata": {"scanStartedOn": rfc3339(started), "scanFinishedOn": rfc3339(finished)},
    }


def rfc3339(when: datetime) -> str:
    """``2026-01-02T03:04:05Z`` (UTC, whole seconds), as cosign and Trivy write times."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    u = when.astimezone(UTC)
    # Not strftime: glibc writes year 1 (Go's zero time) as "1", not "0001".
    return (f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:"
            f"{u.second:02d}Z")
