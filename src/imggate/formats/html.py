"""``imggate-report.html``: one self-contained page a person reads to see why.

The page needs nothing from the network: CSS and JavaScript are inlined
(``templates/report.css`` and ``templates/report.js``), there are no fonts,
images or external links that load anything. A Content-Security-Policy
meta tag pins the inline style and script by hash and forbids every other
source, so even a string that slipped past escaping could not run script or
fetch anything.

Everything a scanner, registry or user wrote is untrusted: the page is the
Jinja2 template ``templates/report.html.j2`` (each image's row and section from
``templates/report_section.html.j2``), rendered with autoescape on
(compiled once, ahead of time: :mod:`._jinja`), control characters are made
visible, and only ``http``/``https`` links are ever turned into anchors (no
``javascript:``).

The page is fully readable without JavaScript; the script only adds sorting
and severity/text filtering to findings tables (also driven by the URL
fragment, e.g. ``#sev=Critical,High&sort=cvss:desc``).

Rendering builds plain view dicts here so the template stays simple; the
findings rows, the one part that grows with the report, are built (and
escaped) in Python: 10,000 rows through the template would cost ~0.3 s; and
they are put in the rendered page after, not passed through it (:class:`_Spliced`).
A team's own template gets the verdict model instead (:mod:`.html_template`).
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from itertools import repeat
from operator import attrgetter
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from imggate import __version__
from imggate.formats import plain
from imggate.formats.files import write_text_parts
from imggate.formats.verdict_json import (
    SEVERITY_ORDER,
    finding_sort_key,
    overall_decision,
    severity_counts,
    worst_first,
)
from imggate.models import (
    ExceptionUse,
    Finding,
    FixState,
    ImageVerdict,
    Mode,
    ReportInfo,
    ResolvedImage,
    RuleResult,
    RunInfo,
    Severity,
    SignatureCheck,
    Verdict,
)
from imggate.values import same_objects

if TYPE_CHECKING:
    from markupsafe import Markup

FILENAME = "imggate-report.html"

# C0/C1 controls (bar tab/newline), DEL, bidi overrides (which can make text
# read differently from what it is), lone surrogates and non-characters: shown
# as escapes rather than passed to the browser or the encoder.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff\ufffe\uffff]"
)
# Anything clean() or escape() would change: text without it is written as is.
_SPECIAL = re.compile(_UNSAFE.pattern[:-1] + "&<>\"']")
_SAFE_URL = re.compile(r"https?://[^\s\"'<>`]+", re.IGNORECASE)  # fullmatch

# A findings row up to the vulnerability cell, per severity (sortable by rank).
_ROW_HEAD = {
    s.value: f'<tr data-sev="{s.value}"><td data-sort="{s.rank}">'
             f'<span class="sev sev-{s.value.lower()}">{s.value}</span></td>'
    for s in Severity
}

_DECISION_TEXT = {"allow": "Allowed", "deny": "Denied", "error": "Could not decide"}


def clean(value: object) -> str:
    """``value`` as text a browser shows literally: controls become ``\\xNN``.

    Escaping of ``<``, ``&`` and quotes is the template's job (autoescape).
    """
    text = "" if value is None else str(value)
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                       else f"\\u{ord(m.group()):04x}", text)


def safe_url(url: str) -> str | None:
    """``url`` when it is a plain http(s) URL, else ``None`` (never ``javascript:``)."""
    url = url.strip()
    return url if _SAFE_URL.fullmatch(url) and not _UNSAFE.search(url) else None


def _ts(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class _View(SimpleNamespace):
    """What the template reads of one image or rule, as attributes (``img.decision``).

    Jinja2 reads ``x.name`` as ``getattr(x, "name")`` first, then ``x["name"]``: on a dict
    every read raised and caught an AttributeError (~170 reads per image of an audit)."""


def _rule(r: RuleResult) -> _View:
    state = "pass" if r.passed else ("fail" if r.mode is Mode.ENFORCE else "warn")
    return _View(rule=clean(r.rule), mode=r.mode.value, state=state,
                 messages=[clean(m) for m in r.messages])


def _e(value: object) -> str:
    """``value`` cleaned and HTML-escaped (quotes too: safe in attributes)."""
    text = "" if value is None else str(value)
    if _SPECIAL.search(text) is None:  # the common case: nothing to clean or escape
        return text
    return _escape(clean(text))


def _escape(text: str) -> str:
    """``html.escape(text, quote=True)``, as the standard library writes it: importing
    ``html`` builds its table of 2,231 named entities (~7.5M instructions), in the
    reading child of a check before it hands its reports over."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#x27;"))


class _Escaper(dict[str, str]):
    """:func:`_e` for one findings table: package names, versions, titles repeat."""

    def __init__(self) -> None:
        super().__init__()
        #: :func:`safe_url` of links found plain by :meth:`take_links`.
        self.links: dict[str, str | None] = {}

    def __missing__(self, key: str) -> str:
        value = self[key] = _e(key)
        return value

    def take_plain(self, texts: list[str]) -> None:
        """Take each of ``texts`` that :func:`_e` leaves as it is as its own escaping,
        all looked at together (:func:`imggate.formats.plain.marked`: rows of 10,000
        vulnerabilities of their own, ~250 characters a row, 477M -> 267M instructions)."""
        texts = list(dict.fromkeys(texts))  # (a CVE recurs for every package it hits)
        escaped = plain.marked(texts, _SPECIAL_MARKS)
        self.update(zip(texts, texts, strict=True))
        for n in escaped:
            self.pop(texts[n], None)

    def take_links(self, links: list[str]) -> None:
        """:meth:`take_plain` for links, with their :func:`safe_url` as well: a link of
        ASCII text without white space, quotes, angle brackets, backquotes or a character
        :func:`_e` changes is safe when it starts with ``http://`` or ``https://`` and
        goes on after it (the others are told by :func:`safe_url` itself)."""
        links = list(dict.fromkeys(links))
        escaped = plain.marked(links, _LINK_MARKS)
        links = [u for n, u in enumerate(links) if n not in escaped] if escaped else links
        self.update(zip(links, links, strict=True))
        self.links.update((u, u) for u in links if u.startswith(_SCHEMES) and len(u) > 8)


#: The schemes :meth:`_Escaper.take_links` tells links of (in other cases, safe_url()).
_SCHEMES = ("http://", "https://")


#: The ASCII characters :data:`_SPECIAL` finds (all it finds in ASCII text).
_SPECIAL_MARKS = plain.marks(bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
                             + b"&<>\"'")
#: Those, and the ASCII characters :data:`_SAFE_URL` does not take after its scheme
#: (white space, quotes, angle brackets, backquote) or :func:`safe_url` strips.
_LINK_MARKS = plain.marks(bytes([*range(0x21), 0x7F]) + b"&<>\"'`")


def _first_link(links: tuple[str, ...], known: dict[str, str | None]) -> str | None:
    """The first of ``links`` that is a safe URL (``known``: some already told)."""
    for x in links:
        url = known[x] if x in known else safe_url(x)
        if url:
            return url
    return None


def _finding_rows(items: Iterable[tuple[Finding, str | None]]) -> str:
    """The ``<tr>`` elements of a findings table, every value escaped here (see
    :func:`_row_list`); ``str | None`` is the suppression reason, shown instead of the
    scanners."""
    pairs = list(items)
    return "".join(_row_list([f for f, _ in pairs], [why for _, why in pairs]))


def row_list(ordered: tuple[Finding, ...]) -> list[str]:
    """:func:`active_rows` of ``ordered`` made here, one row per finding, not joined: a
    check's reading child writes them as they are (:mod:`imggate.scanners.read_ahead`)."""
    return _row_list(ordered, repeat(None))


def _row_list(findings: Sequence[Finding], reasons: Iterable[str | None]) -> list[str]:
    """The ``<tr>`` elements of a findings table, every value escaped here: one per
    finding, with the reason it is suppressed for (``None``: it is not).

    This is the one part of the page that scales with the report.
    Escaped values are memoised per table (they repeat across findings).
    """
    esc = _Escaper()
    # What a vulnerability of its own (a CVE not repeated in the table) makes each of its
    # rows look at anew, looked at for all of them together first.
    # (One finding of each id for what a row says of its vulnerability.)
    vulnerabilities = dict(zip(map(_ID, findings), findings, strict=True)).values()
    esc.take_plain([*map(_ID, vulnerabilities), *filter(None, map(_TITLE, vulnerabilities)),
                    *map(_VERSION, findings)])
    esc.take_links([links[0] for links in map(_LINKS, vulnerabilities) if links])
    # What a row says of its vulnerability (the severity, its cell, the score, the
    # scanners) is made once per id and values: a CVE recurs for every package it hits,
    # and the readers' findings of one hold the very same values, so telling them alike
    # is one tuple's identity checks (10,000 rows: ~130M -> ~60M instructions, against
    # keys hashed and the score computed per finding). Its package's cell likewise, once
    # per package and type.
    shared: dict[str, tuple[tuple[object, ...], str, str, str]] = {}
    packages: dict[str, tuple[str | None, str]] = {}
    scores: dict[float, str] = {}  # (vulnerabilities of their own have few scores)
    out: list[str] = []
    append = out.append
    for f, suppressed_by in zip(findings, reasons, strict=False):  # (reasons: may repeat)
        said = (f.links, f.aliases, f.title, f.severity, f.cvss, f.sources)
        known = shared.get(f.id)
        # (The ratings the very same: equal scores may be written apart, 0.0 and -0.0.)
        if known is None or known[0] != said or known[0][4] is not f.cvss:
            known = shared[f.id] = (said, *_vulnerability_cells(f, esc, scores))
        package = packages.get(f.package)
        if package is None or package[0] is not f.package_type:
            package = packages[f.package] = (f.package_type, _package_cell(f, esc))
        fixed = (esc[", ".join(f.fixed_versions)] if f.fixed_versions
                 else _NO_FIX[f.fix_state._value_])
        end = known[2] if suppressed_by is None else \
            f'{known[3]}<td class="src">{esc[suppressed_by]}</td></tr>\n'
        append(f'{known[1]}{package[1]}{esc[f.version]}</td><td class="ver fixed">{fixed}{end}')
    return out


_ID, _TITLE, _VERSION, _LINKS = (attrgetter(name) for name in ("id", "title", "version",
                                                                 "links"))

#: The fixed versions' cell of a finding without any, by its fix state.
_NO_FIX = {s.value: f'<span class="nofix">{s.value}</span>' for s in FixState}


def _package_cell(f: Finding, esc: _Escaper) -> str:
    """The row of ``f`` from its package's cell to its version."""
    pkg = esc[f.package]
    if f.package_type:
        pkg += f' <span class="ptype">{esc[f.package_type]}</span>'
    return f'<td class="pkg">{pkg}</td><td class="ver">'


def _vulnerability_cells(f: Finding, esc: _Escaper, scores: dict[float, str]
                         ) -> tuple[str, str, str]:
    """What the row of ``f`` says of its vulnerability: the row up to the package (its
    severity and vulnerability cells), the row after the fixed versions, and the same up
    to the scanners' cell (a suppressed finding's says why). ``scores``: the score's cell
    by score, made here."""
    score = f.max_cvss
    # (not keyed by None or zero: -0.0 == 0.0 but is written "-0.0")
    num = scores.get(score) if score else None
    if num is None:
        cvss = f"{score:.1f}" if score is not None and math.isfinite(score) else ""
        num = f'</td><td class="num" data-sort="{cvss or -1}">{cvss}</td>'
        if score:
            scores[score] = num
    # The vulnerability cell: the id (linked to its first http(s) link), aliases, title.
    ident = esc[f.id]
    link = _first_link(f.links, esc.links)
    if link:
        ident = f'<a href="{esc[link]}" rel="noreferrer noopener" target="_blank">{ident}</a>'
    extra = ""
    if f.aliases:
        extra = f'<span class="aliases">{esc[", ".join(f.aliases)]}</span>'
    if f.title:
        extra += f'<span class="title">{esc[f.title]}</span>'
    return (f'{_ROW_HEAD[f.severity._value_]}<td class="vuln"><span class="id">{ident}</span>'
            f'{extra}</td>',
            f'{num}<td class="src">{esc[", ".join(f.sources)]}</td></tr>\n', num)


#: Rows made ahead (:func:`remember_rows`): the findings, worst first, their rows, and
#: how many findings those rows are of (the first; the others' made by :func:`active_rows`).
_ahead: tuple[tuple[Finding, ...], bytes | memoryview, int] | None = None


def active_rows(ordered: tuple[Finding, ...]) -> str | bytes | memoryview:
    """The rows of ``ordered``, findings not suppressed, worst first (:func:`worst_first`):
    UTF-8 when they were made ahead (:func:`remember_rows`)."""
    global _ahead
    if _ahead is not None and same_objects(_ahead[0], ordered):
        rows, made = _ahead[1], _ahead[2]
        if made < len(ordered):
            # Made in part: the rest made now (a row is one finding's alone), as the page
            # is written (once the verdict is decided and sent to the child writing the
            # GitLab report: made before, they held that verdict up), and joined to those
            # made ahead in memory of this process (~5 ms at most: 5.6 MB).
            rows = b"".join([rows, "".join(row_list(ordered[made:])).encode()])
            _ahead = (ordered, rows, len(ordered))
        return rows
    return _finding_rows((f, None) for f in ordered)


def remember_rows(ordered: tuple[Finding, ...], rows: bytes | memoryview,
                  made: int | None = None) -> None:
    """Take ``rows`` (UTF-8) as :func:`active_rows` of ``ordered``, or of its first ``made``
    findings (the others' made when asked): a check's reading child makes them before it
    hands its reports over (:mod:`imggate.scanners.read_ahead`), on the other CPU while
    this process starts up, not after the verdict here; a child waited for hands over
    those it made by then. As bytes, they are written as they came, never decoded here
    (5.6 MB at 10,000 findings)."""
    global _ahead
    _ahead = (ordered, rows, len(ordered) if made is None else made)


class _Spliced:
    """The findings rows, kept out of the template and put in the rendered page after.

    At 10,000 findings the rows are megabytes, and each template step they would pass
    through copies them (autoescape of markup, the macro's output, the page's join):
    ~25 ms of a check. The template gets a token in their place; each token holds a
    fresh nonce, so no text from a report or registry can be mistaken for one.
    """

    def __init__(self) -> None:
        self._prefix = f"imggate-rows-{secrets.token_hex(16)}-"
        self._rows: dict[str, str | bytes | memoryview] = {}

    def token(self, rows: str | bytes | memoryview) -> Markup:
        """A stand-in for ``rows`` (already escaped by :func:`_finding_rows`)."""
        from markupsafe import Markup

        if not rows:
            # Nothing to put in after (an image without findings: an audit's every tag),
            # and a page without a token is not searched for one (3.8 MB for an audit).
            return Markup()
        key = f"{self._prefix}{len(self._rows)}"
        self._rows[key] = rows
        return Markup(key)  # noqa: S704 - letters, digits and dashes only

    def into(self, page: str) -> list[str | bytes | memoryview]:
        """``page`` in parts, each token replaced by its rows (UTF-8 where made ahead): the
        page is their join."""
        if not self._rows:
            return [page]
        pieces = re.split(f"({re.escape(self._prefix)}\\d+)", page)
        parts: list[str | bytes | memoryview] = list(pieces)
        parts[1::2] = [self._rows[t] for t in pieces[1::2]]
        return parts


def _signature(s: SignatureCheck) -> dict[str, Any]:
    return {
        "kind": s.kind.value,
        "verified": s.verified,
        "signer": clean(s.signer or ""),
        "location": clean(s.location),
        "reason": clean(s.reason),
        "predicate_type": clean(s.predicate_type or ""),
        "tlog": s.tlog,
        # Verified without a transparency log entry (--insecure-ignore-tlog, or
        # require_tlog: false): accepted, but on the key alone.
        "unsafe": s.verified and not s.tlog,
        "signed_digest": clean(s.signed_digest or ""),
    }


def _exception(e: ExceptionUse) -> dict[str, Any]:
    status = clean(e.status)
    known = status.lower() in ("used", "expired", "stale", "refused")
    return {
        "vulnerability": clean(e.vulnerability),
        "status": status,
        "status_class": status.lower() if known else "other",
        "package": clean(e.package or ""),
        "expires": e.expires.isoformat() if e.expires else "",
        "reason": clean(e.reason),
        "source": clean(e.source),
        "matched": [clean(m) for m in e.matched],
    }


def _facts(img: ResolvedImage | None) -> list[tuple[str, Any]]:
    """Image facts as (label, value) rows; a list value renders as a list."""
    if img is None:
        return []
    rows: list[tuple[str, Any]] = [
        ("Repository", clean(img.ref.name)),
        ("Tag", clean(img.ref.tag or "(none)")),
        ("Digest", clean(img.digest)),
        ("Media type", clean(img.media_type)),
    ]
    if img.platforms:
        rows.append(("Platforms", [
            f"{clean(p.platform or 'unknown')}  {clean(p.digest)}" for p in img.platforms
        ]))
    if img.manifest_digest != img.digest:
        rows.append(("Platform manifest", clean(img.manifest_digest)))
    c = img.config
    if c is not None:
        arch = "/".join(clean(x) for x in (c.os, c.architecture, c.variant) if x)
        rows += [
            ("Created", _ts(c.created) or "(not recorded)"),
            ("OS/architecture", arch or "(not recorded)"),
            ("User", clean(c.user) if c.user else "(not set: runs as root)"),
            ("Layers", str(c.layer_count)),
            ("Config", clean(c.digest)),
        ]
        rows.append(("Labels", [f"{clean(k)}={clean(c.labels[k])}" for k in sorted(c.labels)]
                     or "(none)"))
    return rows


_BINDING_TEXT = {
    "bound": "names this image's digest",
    "unbound": "names no image digest",
    "other-image": "for another image",
    "other-repository": "for another repository",
}


def _evidence(e: ReportInfo) -> dict[str, Any]:
    """One report as judged for this image: what, when, how old, about whom, used or not."""
    from imggate.ages import format_age

    return {
        "kind": e.kind.value,
        "scanner": clean(e.scanner), "version": clean(e.scanner_version or ""),
        "source": clean(e.location), "image_name": clean(e.subject or ""),
        "created": _ts(e.created) or "not recorded",
        "age": format_age(e.age) if e.age is not None else "unknown",
        "binding": e.binding.value, "binding_text": _BINDING_TEXT[e.binding.value],
        "bound_to": clean(e.bound_to or ""),
        "used": e.used, "findings": e.findings,
        "problems": [clean(p) for p in e.problems],
    }


def _run_view(run: RunInfo | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {"rules": clean(run.rules_source), "found_by": clean(run.rules_found_by),
            "sha256": clean(run.rules_sha256 or ""), "env": clean(run.env),
            "env_reason": clean(run.env_reason), "notes": [clean(n) for n in run.notes]}


def _image_view(anchor: str, reference: str, iv: ImageVerdict, rows: _Spliced) -> _View:
    counts = severity_counts(iv.findings)
    return _View(**{
        "anchor": anchor,
        "reference": reference,
        "pinned": clean(iv.image.pinned) if iv.image else "",
        "env": clean(iv.env),
        "decision": iv.decision.value,
        "decision_text": _DECISION_TEXT[iv.decision.value]
        + (" with warnings" if iv.decision.value == "allow" and iv.warnings else ""),
        "error": clean(iv.error) if iv.error else None,
        "violations": [_rule(r) for r in iv.violations],
        "warnings": [_rule(r) for r in iv.warnings],
        "rules": [_rule(r) for r in iv.rules],
        "counts": [(k, n) for k, n in counts.items()],
        "total": len(iv.findings),
        "findings": rows.token(active_rows(worst_first(iv.findings)) if iv.findings else ""),
        "suppressed": rows.token(_finding_rows(
            sorted(iv.suppressed, key=lambda p: finding_sort_key(p[0])))
            if iv.suppressed else ""),
        "suppressed_count": len(iv.suppressed),
        "exceptions": [_exception(e) for e in iv.exceptions],
        "exceptions_unlisted": iv.exceptions_unlisted,
        "signatures": [_signature(s) for s in iv.signatures],
        "not_scanned": iv.image is not None and not iv.scanned,
        # Nothing read at all (could not decide before any evidence): no counts either.
        "unread": iv.image is None,
        "reports": [_evidence(e) for e in iv.evidence],
        "facts": _facts(iv.image),
        # An undecided or denied image with nothing gathered (never read: its registry
        # failed, or its reference alone denied it) gets one line instead of empty
        # sections that would read like "checked, nothing found".
        "evidence": bool(iv.decision.value == "allow" or iv.image or iv.findings
                         or iv.suppressed or iv.signatures or iv.exceptions),
        "notes": [clean(n) for n in iv.notes],
    })


class _Sections:
    """Each image's row of the summary table and ``<section>``, rendered once per distinct
    image verdict (:mod:`.alike`: an audit's tags that name the same image).

    They are rendered with a placeholder for the anchor and for the reference; each
    verdict gets that text with its own anchor and escaped reference put in, the same
    bytes as rendering it (escaping is character by character). The page of an audit of
    1,002 tags over 300 images: ~850M instructions rendered per tag, ~490M so (imports
    included).
    """

    def __init__(self, rows: _Spliced) -> None:
        from imggate.formats.alike import OncePerVerdict, placeholder

        self._anchor = placeholder("anchor")
        self._reference = placeholder("reference")
        self._rows = rows
        self._parts = OncePerVerdict(self._render)

    def _render(self, iv: ImageVerdict) -> tuple[str, str]:
        from imggate.formats import _jinja

        view = _image_view(self._anchor, self._reference, iv, self._rows)
        parts: Any = _jinja.section_template().module  # the template's macros
        return str(parts.summary_row(view)), str(parts.section(view))

    def __call__(self, index: int, iv: ImageVerdict) -> tuple[str, str]:
        """``iv``'s row of the summary table and its section (the ``index``-th image)."""
        from markupsafe import escape

        row, section = self._parts(iv)
        anchor, reference = f"image-{index}", str(escape(clean(iv.reference)))
        return (row.replace(self._anchor, anchor).replace(self._reference, reference),
                section.replace(self._anchor, anchor).replace(self._reference, reference))


def _asset(name: str) -> str:
    return resources.files("imggate.formats").joinpath("templates", name).read_text("utf-8")


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


@lru_cache(maxsize=1)
def _assets() -> tuple[str, str]:
    css, js = _asset("report.css"), _asset("report.js")
    if "</" in css or "</" in js:
        raise RuntimeError("imggate's report assets must not contain '</'")
    return css, js


def _counts_total(images: Iterable[ImageVerdict]) -> list[tuple[str, int]]:
    total = {s.value: 0 for s in SEVERITY_ORDER}
    for iv in images:
        for k, n in severity_counts(iv.findings).items():
            total[k] += n
    return list(total.items())


def prepare() -> None:
    """Load now what every page is made with (the compiled templates, jinja2 and the
    page's assets), for a caller with nothing else to do meanwhile (see
    :func:`imggate.formats.outputs.prepare`)."""
    from imggate.formats import _jinja

    _assets()
    _jinja.report_template()
    _jinja.section_template()


def render(verdict: Verdict, *, tool_version: str | None = None) -> str:
    """The whole report as one HTML document (a ``str``; see :func:`write`)."""
    return "".join(map(_text, _parts(verdict, tool_version)))


def _text(part: str | bytes | memoryview) -> str:
    return part if isinstance(part, str) else str(part, "utf-8")


def _parts(verdict: Verdict, tool_version: str | None) -> list[str | bytes | memoryview]:
    """The report in parts (the template's, and each findings table's rows)."""
    from markupsafe import Markup

    from imggate.formats import _jinja

    css, js = _assets()
    decision = overall_decision(verdict).value
    rows = _Spliced()
    each = _Sections(rows)
    summary_rows, sections = [], []
    for i, iv in enumerate(verdict.images, start=1):
        row, section = each(i, iv)
        # Rendered by the section template with autoescape on: markup, as the page's own.
        summary_rows.append(Markup(row))  # noqa: S704
        sections.append(Markup(section))  # noqa: S704
    csp = (f"default-src 'none'; style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; "
           "base-uri 'none'; form-action 'none'")
    return rows.into(_jinja.report_template().render(
        # The assets are our own static files, checked in _assets() to hold
        # no "</" that could close their element, so they go in verbatim.
        css=Markup(css),  # noqa: S704
        js=Markup(js),  # noqa: S704
        csp=csp,
        env=clean(verdict.env),
        generated=_ts(verdict.generated),
        decision=decision,
        decision_text=_DECISION_TEXT[decision],
        exit_code=verdict.exit_code,
        summary_rows=summary_rows,
        sections=sections,
        run=_run_view(verdict.run),
        run_error=clean(verdict.error) if verdict.error else None,
        totals=_counts_total(verdict.images),
        tool_version=clean(tool_version or __version__),
    ))


def write(verdict: Verdict, output_dir: Path, *, tool_version: str | None = None) -> Path:
    """Write ``imggate-report.html`` into ``output_dir`` (created if needed); return its path."""
    # Encoded part by part, the same bytes: one non-ASCII character of the template's
    # ("·") makes the whole page a non-ASCII str, which UTF-8 encodes character by
    # character (~15 ms at 10,000 findings), while the rows alone are usually ASCII,
    # which encodes as a copy. Rows made ahead are UTF-8 already.
    return write_text_parts(Path(output_dir) / FILENAME, _parts(verdict, tool_version))
