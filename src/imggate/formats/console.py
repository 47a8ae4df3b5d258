"""The console summary: what a person sees in the job log or terminal.

A table of images (decision, findings per severity, violations, warnings),
then for each image that was not allowed its top violations and warnings
(or why it could not be decided), then the overall result and where the
full reports are.

Colour only on a terminal: the rich ``Console`` is built with
``force_terminal=None`` so it detects a TTY itself, and rich honours
``NO_COLOR`` (and ``TERM=dumb``). Text from scanners and registries is shown
literally: rich markup is off, and control characters (which could move the
cursor or recolour a terminal) are printed as ``\\xNN``.

rich is imported inside the functions: the CLI must start fast.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from imggate.formats.html import clean
from imggate.formats.verdict_json import SEVERITY_ORDER, overall_decision, severity_counts
from imggate.models import (
    NOT_SCANNED,
    Decision,
    Finding,
    ImageVerdict,
    RuleResult,
    RunInfo,
    Severity,
    Verdict,
)

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

_STYLE = {"allow": "bold green", "deny": "bold red", "error": "bold yellow"}
_LABEL = {"allow": "ALLOW", "deny": "DENY", "error": "ERROR"}
_SEV_STYLE = {"Critical": "bold red", "High": "red", "Medium": "yellow", "Low": "blue",
              "Info": "dim", "Unknown": "dim"}
_SEV_SHORT = {"Critical": "Crit", "High": "High", "Medium": "Med", "Low": "Low", "Info": "Info",
              "Unknown": "Unkn"}
_MESSAGE_MAX = 240
_HEX_RUN = re.compile(r"(?<=:)[0-9a-f]{32,}")
_MORE = re.compile(r"^\.\.\. and \d+ more$")
#: Warnings listed message by message, like violations: their later messages are reasons
#: (why each report, signature or attestation was refused) a reader needs to fix it.
_REASONED_WARNINGS = frozenset({"severity", "signatures", "attestations"})
#: At most this many messages of one warning are listed; the rest are counted.
_MAX_REASONS = 20
#: Column width used when writing to something that is not a terminal and
#: ``COLUMNS`` is unset: wide enough that no line is ever wrapped. A job log
#: wraps (or scrolls) long lines itself; a reference, digest or CVE id broken
#: across two lines by us could not be searched for or copied.
PIPE_WIDTH = 100_000


def _line(text: str) -> str:
    text = clean(text).replace("\n", " ").replace("\r", " ").replace("\t", " ")
    return text if len(text) <= _MESSAGE_MAX else text[: _MESSAGE_MAX - 3] + "..."


def _short_digests(text: str) -> str:
    # The table is for scanning by eye; the full digest is on the detail line.
    return _HEX_RUN.sub(lambda m: m.group()[:12] + "...", text)


def _more(messages: Sequence[str]) -> int:
    """How many messages follow the first, counting a final "... and N more" as N."""
    if len(messages) < 2:
        return 0
    tail = messages[-1]
    if tail.startswith("... and ") and tail.endswith(" more"):
        count = tail[len("... and "):-len(" more")]
        if count.isdigit():
            return len(messages) - 2 + int(count)
    return len(messages) - 1


def _rule_lines(kind: str, style: str, results: Sequence[RuleResult], top: int, *,
                full: bool = False, listed: frozenset[str] = frozenset(),
                reasoned: frozenset[str] = frozenset()) -> list[RenderableType]:
    """One line per rule; with ``full``, every message of it on a line of its own
    (for the rules in ``reasoned``, the first :data:`_MAX_REASONS` of them).

    ``listed`` are message lines already shown as the findings table (the
    rules' own one-line-per-finding messages), left out here.
    """
    from rich.text import Text

    out: list[RenderableType] = []
    for r in results[:top]:
        first = r.messages[0] if r.messages else "failed"
        line = Text("  ")
        line.append(kind, style=style)
        line.append(f" {_line(r.rule)}: ", style="bold")
        line.append(_full(first) if full else _line(first))
        rest = [m for m in r.messages[1:]
                if not (r.findings and (m in listed or _MORE.match(m)))]
        if full or r.rule in reasoned:
            out.append(line)
            shown = rest if full else rest[:_MAX_REASONS]
            out += [Text("    " + _full(m)) for m in shown]
            if len(rest) > len(shown):
                out.append(Text(f"    ... and {len(rest) - len(shown)} more", style="dim"))
            continue
        more = _more(r.messages)
        if more:
            line.append(f" (+{more} more)", style="dim")
        out.append(line)
    if len(results) > top:
        out.append(Text(f"  ... and {len(results) - top} more {kind.lower()}s", style="dim"))
    return out


def _full(text: str) -> str:
    """A message in full (reasons must not be cut), on one line, printed literally."""
    return clean(text).replace("\n", " ").replace("\r", " ").replace("\t", " ")


def offending(iv: ImageVerdict) -> list[Finding]:
    """The findings that made a violated rule fail, worst first (severity, then CVSS)."""
    keys = {k for r in iv.violations for k in r.findings}
    bad = [f for f in iv.findings if f.key in keys]
    bad.sort(key=lambda f: (-f.severity.rank, -(f.max_cvss or 0.0), f.id, f.package))
    return bad


def _findings_table(findings: Sequence[Finding], top: int) -> list[RenderableType]:
    from rich import box
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1),
                  collapse_padding=True)
    for name in ("Vulnerability", "Package", "Installed", "Fixed", "Severity"):
        # Never wrapped: an id or version cut in two cannot be searched for.
        table.add_column(name, no_wrap=True, overflow="ignore")
    for f in findings[:top]:
        cvss = f" (CVSS {f.max_cvss:g})" if f.max_cvss is not None else ""
        table.add_row(_line(f.id), _line(f.package), _line(f.version),
                      _line(", ".join(f.fixed_versions)) or "-",
                      Text(f.severity.value + cvss, style=_SEV_STYLE[f.severity.value]))
    out: list[RenderableType] = [Padding(table, (0, 0, 0, 4), expand=False)]
    if len(findings) > top:
        out.append(Text(f"    and {len(findings) - top} more", style="dim"))
    return out


def suppression_summary(iv: ImageVerdict) -> list[tuple[str, int, str]]:
    """Per exception source (file, or rules file): how many findings it suppressed in
    this image and the worst severity among them, worst first."""
    groups: dict[str, list[Severity]] = {}
    for f, why in iv.suppressed:
        # ``why`` is "<kind> <file:line>: <reason>": the source is the file, not the line.
        label = why.split(": ", 1)[0]
        head, _, line = label.rpartition(":")
        source = head if line.isdigit() and head else label
        groups.setdefault(source, []).append(f.severity)
    out = [(src, len(sevs), max(sevs, key=lambda s: s.rank).value)
           for src, sevs in groups.items()]
    return sorted(out, key=lambda t: (-Severity(t[2]).rank, -t[1], t[0]))


def _suppression_lines(iv: ImageVerdict) -> list[RenderableType]:
    from rich.text import Text

    groups = suppression_summary(iv)
    if not groups:
        return []
    line = Text("  ", no_wrap=True)
    line.append("SUPPRESSED", style="bold magenta")
    line.append(f" {len(iv.suppressed)} finding(s): " + "; ".join(
        f"{n} by {_line(src)} (worst {worst})" for src, n, worst in groups))
    return [line]


def _image_details(iv: ImageVerdict, top: int, findings_top: int = 10
                   ) -> list[RenderableType]:
    from rich.text import Text

    head = Text()
    head.append(_LABEL[iv.decision.value], style=_STYLE[iv.decision.value])
    head.append(" " + _line(iv.reference))
    if iv.image is not None:
        head.append(f"  {iv.image.digest}", style="dim")
    out: list[RenderableType] = [head]
    if iv.error:
        # A denial with evidence unread says what else was not checked; an undecided image
        # says why it could not be decided.
        said = "also not checked" if iv.decision is Decision.DENY else "could not decide"
        out.append(Text(f"  {said}: " + _full(iv.error), style="yellow"))
    if iv.image is not None and not iv.scanned:
        line = Text("  ", no_wrap=True)
        line.append(NOT_SCANNED, style="bold red")
        refused = sum(1 for e in iv.evidence if not e.used)
        line.append(f": {refused} report(s) given, none usable for this image" if refused
                    else ": no scanner evidence was given for this image")
        line.append("; vulnerabilities unknown")
        out.append(line)
    from imggate.models import describe_finding

    # What blocks the image, in full: every message of every violated rule (each
    # failed signature's reason), and the offending findings as a table.
    out += _suppression_lines(iv)
    bad = offending(iv)
    listed = frozenset(describe_finding(f) for f in bad)
    out += _rule_lines("VIOLATION", "bold red", iv.violations, top, full=True, listed=listed)
    if bad:
        out += _findings_table(bad, findings_top)
    out += _rule_lines("WARNING", "yellow", iv.warnings, top, reasoned=_REASONED_WARNINGS)
    return out


def _table(verdict: Verdict) -> RenderableType:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1),
                  collapse_padding=True)
    table.add_column("Decision", no_wrap=True)
    table.add_column("Image", overflow="fold")
    for sev in SEVERITY_ORDER:
        table.add_column(_SEV_SHORT[sev.value], justify="right", no_wrap=True)
    table.add_column("Viol", justify="right", no_wrap=True)
    table.add_column("Warn", justify="right", no_wrap=True)
    for iv in verdict.images:
        counts = severity_counts(iv.findings)
        unscanned = iv.image is not None and not iv.scanned
        # An image nobody scanned, or that could not even be read (ERROR), has no counts:
        # a dash, never a reassuring 0.
        cells = [Text("-", style="dim") if unscanned or iv.image is None else
                 Text(str(counts[s.value]), style=_SEV_STYLE[s.value] if counts[s.value] else "dim")
                 for s in SEVERITY_ORDER]
        decision = Text(_LABEL[iv.decision.value], style=_STYLE[iv.decision.value])
        if unscanned:
            decision.append(f" {NOT_SCANNED}", style="bold red")
        table.add_row(
            decision,
            Text(_short_digests(_line(iv.reference))),
            *cells,
            Text(str(len(iv.violations)), style="bold red" if iv.violations else "dim"),
            Text(str(len(iv.warnings)), style="yellow" if iv.warnings else "dim"),
        )
    return table


def _summary(verdict: Verdict, top: int, written: Sequence[Path], max_images: int,
             exit_code: int | None = None, failure: str | None = None
             ) -> list[RenderableType]:
    from rich.text import Text

    decision = overall_decision(verdict)
    decisions = [i.decision for i in verdict.images]
    head = Text()
    head.append("imggate", style="bold")
    head.append(f"  env {_line(verdict.env)}  {len(decisions)} image"
                f"{'' if len(decisions) == 1 else 's'}: "
                f"{decisions.count(Decision.ALLOW)} allowed, "
                f"{decisions.count(Decision.DENY)} denied, "
                f"{decisions.count(Decision.ERROR)} could not be decided")
    out: list[RenderableType] = [head]
    if verdict.run is not None:
        # Whole lines, never wrapped: a job log is searched for these.
        out += [Text(line, style="dim", no_wrap=True, overflow="ignore")
                for line in _provenance(verdict.run)]
        out += [Text("note: " + _line(n), style="yellow", no_wrap=True)
                for n in verdict.run.notes]
    if verdict.error:
        out.append(Text("could not decide: " + _line(verdict.error), style="yellow"))
    if verdict.images:
        out.append(_table(verdict))
    # Undecided first, then denied, then allowed-with-warnings: what blocks
    # the pipeline is what the reader needs; the HTML report has the rest.
    order = {Decision.ERROR: 0, Decision.DENY: 1, Decision.ALLOW: 2}
    noteworthy = sorted((iv for iv in verdict.images
                         if iv.decision is not Decision.ALLOW or iv.warnings
                         or iv.suppressed or (iv.image is not None and not iv.scanned)),
                        key=lambda iv: order[iv.decision])
    for iv in noteworthy[:max_images]:
        out += _image_details(iv, top)
    if len(noteworthy) > max_images:
        out.append(Text(f"... and {len(noteworthy) - max_images} more images with violations, "
                        "warnings or errors (see the HTML report)", style="dim"))
    if not verdict.images:
        out.append(Text("no images were checked", style="yellow"))
    result = Text("Result: ")
    result.append(_LABEL[decision.value], style=_STYLE[decision.value])
    code = verdict.exit_code if exit_code is None else exit_code
    if code != verdict.exit_code:
        result.append(f", but {_line(failure or 'the run failed after the decision')}",
                      style="yellow")
    result.append(f" (exit code {code})")
    out.append(result)
    for path in written:
        out.append(Text(f"  report: {path}", style="dim"))
    return out


def _provenance(run: RunInfo) -> list[str]:
    """What the run applied: the rules (how found, sha256) and the environment (why)."""
    digest = f", sha256 {run.rules_sha256[:12]}" if run.rules_sha256 else ""
    return [f"rules: {_line(run.rules_source)} ({run.rules_found_by}{digest}), "
            f"imggate {run.imggate_version}",
            f"env: {_line(run.env)} from {_line(run.env_reason)}"]


def make_console(file: IO[str] | None = None, *, width: int | None = None) -> Console:
    """A rich Console that colours only on a terminal and prints text literally."""
    from rich.console import Console

    if width is None:
        stream = file if file is not None else sys.stdout
        isatty = getattr(stream, "isatty", None)
        # Off a terminal nothing is wrapped, whatever COLUMNS says (CI runners set it): a
        # job log is searched for whole references and digests.
        if not (callable(isatty) and isatty()):
            width = PIPE_WIDTH
    return Console(file=file, force_terminal=None, width=width, markup=False, emoji=False,
                   highlight=False)


def print_summary(verdict: Verdict, file: IO[str] | None = None, *, top: int = 5,
                  max_images: int = 20, written: Sequence[Path] = (),
                  exit_code: int | None = None, failure: str | None = None) -> None:
    """Print the summary to ``file`` (stdout by default).

    ``top`` caps the violations and warnings listed per image, ``max_images``
    the images listed in detail (errors first, then denials); ``written`` are
    report paths to point the reader at. ``exit_code`` is the code the process
    ends with when it is not the verdict's, and ``failure`` says why.
    """
    console = make_console(file)
    for part in _summary(verdict, top, written, max_images, exit_code, failure):
        # A Text marked no_wrap is a whole line that a log is searched for: never folded.
        console.print(part, soft_wrap=getattr(part, "no_wrap", None) is True)


def render(verdict: Verdict, *, width: int = PIPE_WIDTH, top: int = 5, max_images: int = 20,
           written: Sequence[Path] = ()) -> str:
    """The summary as plain text (no colour), as it appears in a job log."""
    import io

    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, no_color=True, width=width, markup=False,
                      emoji=False, highlight=False, color_system=None)
    for part in _summary(verdict, top, written, max_images):
        # A Text marked no_wrap is a whole line that a log is searched for: never folded.
        console.print(part, soft_wrap=getattr(part, "no_wrap", None) is True)
    return buf.getvalue()
