"""Read a scanner report from a file and pick its adapter, by name or by looking.

The entry point for everything that consumes reports::

    report = load_report("trivy.json")            # auto-detect
    report = load_report("x.json", kind="grype")  # or name the kind
"""

from __future__ import annotations

from os import PathLike
from typing import Any

from imggate._files import FileRefused, read_file
from imggate.errors import ReportError, UsageError
from imggate.models import ScanReport
from imggate.scanners import gitlab, grype, imggate_json, trivy, trivy_cyclonedx, trivy_sarif
from imggate.scanners._doc import (
    _FAST_DECODE_MIN,
    MAX_REPORT_BYTES,
    gc_paused,
    load_json,
    type_name,
)
from imggate.scanners.interface import ReportParser

#: Every adapter, in detection order (the first whose ``detect`` is true wins).
PARSERS: tuple[ReportParser, ...] = (
    trivy.PARSER,
    grype.PARSER,
    trivy_cyclonedx.PARSER,
    trivy_sarif.PARSER,
    gitlab.PARSER,
    imggate_json.PARSER,
)
_ALIASES = {"gitlab-cs": "gitlab", "sarif": "trivy-sarif", "trivy-cyclonedx": "cyclonedx"}

#: The names ``kind`` accepts.
KINDS: tuple[str, ...] = tuple(p.kind for p in PARSERS)


def parser_for(kind: str) -> ReportParser:
    """The adapter called ``kind``; :class:`UsageError` for an unknown name."""
    name = _ALIASES.get(kind.lower(), kind.lower())
    for p in PARSERS:
        if p.kind == name:
            return p
    raise UsageError(f"unknown report kind {kind[:50]!r}; expected one of: {', '.join(KINDS)}")


def detect_kind(doc: Any) -> ReportParser | None:
    """The adapter for decoded JSON ``doc``, or ``None`` when nothing recognises it."""
    for p in PARSERS:
        if p.detect(doc):
            return p
    return None


def parse_report(data: bytes, *, source: str, kind: str | None = None) -> ScanReport:
    """Parse report bytes read from ``source`` (a file name for messages)."""
    parser = parser_for(kind) if kind else None
    with gc_paused():
        return _parse(data, source, parser)


def _parse(data: bytes, source: str, parser: ReportParser | None) -> ScanReport:
    if (parser is trivy.PARSER or parser is None) and _FAST_DECODE_MIN <= len(data) \
            <= MAX_REPORT_BYTES and _looks_like_trivy(data):
        from imggate.scanners import trivy_typed

        # A large Trivy report decoded into typed values; anything that path does not
        # read exactly as the checked one would is read below as before.
        report = trivy_typed.parse(data, source)
        if report is not None:
            return report
    doc = load_json(data, source)
    if parser is None:
        parser = detect_kind(doc)
        if parser is None:
            shape = "an empty array" if doc == [] else f"a JSON {type_name(doc)}"
            raise ReportError(
                f"{source}: not a scanner report imggate recognises ({shape} that is none of: "
                "Trivy JSON, Grype JSON, GitLab container-scanning, SARIF, CycloneDX, "
                "imggate findings JSON)",
                hint="name the kind with --kind if the file is one of these",
            )
    return parser.parse(doc, source=source)


def _looks_like_trivy(data: bytes) -> bool:
    """Whether a report's first bytes name Trivy's ``SchemaVersion`` (Trivy writes it
    first): only then is the typed decode tried (a failed try costs a decode)."""
    return b'"SchemaVersion"' in data[:1024]


def load_report(path: str | PathLike[str], kind: str | None = None) -> ScanReport:
    """Read and validate the report at ``path``; ``kind`` names its format (default: detect).

    Raises :class:`~imggate.errors.ReportError` (exit 3) when the file cannot
    be read or is not a valid report, naming the file and the JSON path.
    """
    source = str(path)
    try:
        # A pipe is read (``--report <(trivy …)``); a device such as /dev/zero is refused.
        data = read_file(path, MAX_REPORT_BYTES, allow_pipes=True)
    except FileRefused as e:
        raise ReportError(f"{source}: cannot read report: {e}") from None
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ReportError(f"{source}: cannot read report: {reason}") from e
    return parse_report(data, source=source, kind=kind)
