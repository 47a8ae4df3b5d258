"""``imggate convert REPORT…``: read, validate and merge scanner reports, write one report.

Like ``trivy convert``: any mix of Trivy (JSON, legacy, SARIF, CycloneDX),
Grype and GitLab container-scanning reports in; GitLab's
``gl-container-scanning-report.json`` (default), imggate's normalised JSON
or SARIF out. Exit 0 when written, 2 for bad usage, 3 when a report cannot
be read.
"""


import sys
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imggate._app import app
from imggate.errors import UsageError

if TYPE_CHECKING:
    from imggate.models import FindingLocation, ScanReport


class OutputFormat(str, Enum):
    """What ``convert`` writes."""

    GITLAB = "gitlab"
    JSON = "json"
    SARIF = "sarif"


@app.command()
def convert(
    reports: Annotated[list[str], typer.Argument(
        help="Scanner reports: Trivy JSON/SARIF/CycloneDX, Grype JSON, GitLab container-scanning, "
             "imggate findings JSON ('-' reads one from standard input).",
        show_default=False, metavar="REPORT")],
    to: Annotated[OutputFormat, typer.Option(
        "--to", help="Output format.", case_sensitive=False)] = OutputFormat.GITLAB,
    output: Annotated[str | None, typer.Option(
        "-o", "--output", help="Write here instead of standard output.")] = None,
    image: Annotated[str | None, typer.Option(
        "--image", help="The image the reports are for (default: what the reports name).")] = None,
    kind: Annotated[str | None, typer.Option(
        "--kind", help="Report kind for every REPORT: trivy, grype, gitlab, trivy-sarif, "
                       "cyclonedx (default: detect each).")] = None,
    default_branch_image: Annotated[str | None, typer.Option(
        "--default-branch-image", help="GitLab location.default_branch_image.")] = None,
    prefer: Annotated[list[str] | None, typer.Option(
        "--prefer", help="Scanner whose severity wins on disagreement (repeatable, in order; "
                         "default: the most severe rating).")] = None,
) -> int:
    """Convert and merge scanner reports into one GitLab, JSON or SARIF report."""
    from imggate.scanners._doc import gc_paused
    from imggate.scanners.detect import parser_for

    if kind:
        parser_for(kind)  # an unknown kind is a usage error before any file is read
    with gc_paused():  # large reports: see gc_paused
        _convert(reports, to, output, image, kind, default_branch_image, prefer or [])
    return 0


def _convert(reports: list[str], to: OutputFormat, output: str | None, image: str | None,
             kind: str | None, default_branch_image: str | None, prefer: list[str]) -> None:
    from imggate.formats import findings_json, gitlab, sarif
    from imggate.scanners.merge import merge

    if reports.count("-") > 1:
        raise UsageError("standard input ('-') can be read only once")
    loaded = [_load(path, kind) for path in reports]
    findings = merge(loaded, prefer=tuple(prefer))
    target = image or next((r.image_name for r in loaded if r.image_name), None)
    os_name = next((r.operating_system for r in loaded if r.operating_system), None)
    scanners = [r.scanner for r in loaded]
    doc: dict[str, Any]
    if to is OutputFormat.JSON:
        doc = findings_json.render(findings, image=target, operating_system=os_name,
                                   scanners=scanners)
    else:
        if not target and findings:
            raise UsageError(f"the reports name no image; pass --image REF for --to {to.value}")
        if to is OutputFormat.SARIF:
            doc = sarif.render(findings, image=target or "", scanners=scanners)
        else:
            start, end = _times(loaded)
            doc = gitlab.render(findings, image=target or "", operating_system=os_name,
                                scanners=scanners, start=start, end=end,
                                default_branch_image=default_branch_image,
                                # GitLab in: each vulnerability keeps its own location and
                                # identifier URLs, unless --image names one image for all.
                                locations=None if image else _locations(loaded),
                                identifier_urls=_identifier_urls(loaded))
    if output:
        gitlab.write(output, doc)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(gitlab.encode(doc, newline=True))
        sys.stdout.buffer.flush()


def _load(path: str, kind: str | None) -> "ScanReport":
    from imggate.scanners._doc import MAX_REPORT_BYTES
    from imggate.scanners.detect import load_report, parse_report

    if path == "-":
        data = sys.stdin.buffer.read(MAX_REPORT_BYTES + 1)
        return parse_report(data, source="<stdin>", kind=kind)
    return load_report(path, kind)


def _locations(loaded: "list[ScanReport]") -> "dict[tuple[str, str, str], FindingLocation]":
    out: dict[tuple[str, str, str], FindingLocation] = {}
    for r in loaded:
        for key, where in r.locations.items():
            out.setdefault(key, where)
    return out


def _identifier_urls(loaded: "list[ScanReport]") -> dict[str, str]:
    out: dict[str, str] = {}
    for r in loaded:
        for vid, url in r.identifier_urls.items():
            out.setdefault(vid, url)
    return out


def _times(loaded: "list[ScanReport]") -> tuple[datetime, datetime]:
    """The scan's start and end: what the reports say, else now (UTC)."""
    stamps = [t for r in loaded for t in (r.started, r.finished) if t is not None]
    now = datetime.now(UTC)
    return (min(stamps), max(stamps)) if stamps else (now, now)
