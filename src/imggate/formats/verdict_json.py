"""``imggate-verdict.json``: the stable, machine-readable verdict.

The document is described in ``docs/verdict-schema.md`` and by the JSON
schema ``imggate/data/verdict.schema.json``. Its shape only changes with
``schema_version``: fields are added in a minor version, never renamed or
removed without a major one.

Output is deterministic: keys are emitted in a fixed order (the order the
schema documents), lists are in the verdict's order except where that order
is arbitrary (findings, labels), which are sorted. The same verdict always
gives the same bytes.

The helpers :func:`overall_decision` and :func:`severity_counts` are shared
with the other human-facing formats so they all report the same numbers.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import msgspec

from imggate import __version__
from imggate.formats.files import write_text, write_text_parts
from imggate.models import (
    ConfigSummary,
    Cvss,
    Decision,
    ExceptionUse,
    Finding,
    ImageVerdict,
    ReportInfo,
    ResolvedImage,
    RuleResult,
    RunInfo,
    ScanReport,
    Severity,
    SignatureCheck,
    Verdict,
)
from imggate.values import same_objects

__all__ = ["FILENAME", "document", "image_document", "overall_decision", "render",
           "severity_counts", "worst_first", "write", "write_text"]

FILENAME = "imggate-verdict.json"
SCHEMA_ID = "urn:imggate:schema:verdict:1"
SCHEMA_VERSION = "1.1"

#: Severities from worst to least, the order counts are reported in.
SEVERITY_ORDER: tuple[Severity, ...] = tuple(
    sorted(Severity, key=lambda s: s.rank, reverse=True)
)

_RANK = {s.value: s.rank for s in Severity}

def overall_decision(verdict: Verdict) -> Decision:
    """The run's decision, consistent with :attr:`Verdict.exit_code`.

    An empty run is ``error``: having checked nothing is never an allow.
    """
    return verdict.decision


def severity_counts(findings: Iterable[Finding]) -> dict[str, int]:
    """Count findings per severity name, every severity present (worst first)."""
    global _counted
    last = _counted
    if last is not None and type(findings) is tuple and same_objects(last[0], findings):
        return dict(last[1])
    counts = {s.value: 0 for s in SEVERITY_ORDER}
    for f in findings:
        # ``_value_``: Enum's ``value`` is a descriptor, slow over 10,000s of findings.
        counts[f.severity._value_] += 1
    if type(findings) is tuple:
        _counted = (findings, dict(counts))
    return counts


#: The last findings :func:`severity_counts` counted, and their counts: every report of a
#: run counts the same findings, two to four times (~4 ms each at 10,000 findings).
_counted: tuple[tuple[Finding, ...], dict[str, int]] | None = None


def finding_sort_key(f: Finding) -> tuple[int, float, str, str, str]:
    """Worst first: severity, then CVSS, then id/package/version for a stable order."""
    score = f.max_cvss
    return (-_RANK[f.severity._value_], -(score if score is not None else -1.0), f.id,
            f.package, f.version)


class _WorstFirst:
    """:func:`worst_first`: the last findings sorted, held with their order.

    Each report of a run sorts the same findings: at 10,000 findings sorting once
    instead of per report saves ~10 ms each. The same findings are the same objects
    (immutable) in the same order, whatever tuple holds them: a decision that
    suppresses nothing holds a merge's findings in a tuple of its own.
    """

    def __init__(self) -> None:
        self._last: tuple[tuple[Finding, ...], tuple[Finding, ...]] | None = None

    def __call__(self, findings: tuple[Finding, ...]) -> tuple[Finding, ...]:
        last = self._last
        if last is not None and same_objects(last[0], findings):
            return last[1]
        ordered = _sorted_worst_first(findings)
        self._last = (findings, ordered)
        return ordered

    def of_merge(self, merged: tuple[Finding, ...]) -> tuple[Finding, ...]:
        """:meth:`__call__` of findings in the order :func:`imggate.scanners.merge.merge`
        gives them (most severe first, then by id, package and version): sorted by their
        severity and score alone, the sort keeping that order among findings alike in
        both, which is the order of the rest of :func:`finding_sort_key`. 10,000 findings
        each a vulnerability of its own: 76M -> 63M instructions, the repeated report 32M
        -> 17M (callgrind, in process)."""
        ordered = _sorted_worst_first(merged, merge_order=True)
        self._last = (merged, ordered)
        return ordered

    def remember(self, findings: tuple[Finding, ...], ordered: tuple[Finding, ...]) -> None:
        """Take ``ordered`` as ``findings`` sorted worst first: a check's reading child
        sorts its merge before handing it over (:mod:`imggate.scanners.read_ahead`),
        on the other CPU, not in the reports written after the verdict."""
        self._last = (findings, ordered)


#: ``findings`` sorted by :func:`finding_sort_key`, worst first.
worst_first = _WorstFirst()

#: The head of a finding's sort key in :func:`_sorted_worst_first`: a digit per severity,
#: the most severe first.
_RANK_TEXT = {s.value: str(9 - s.rank) for s in Severity}
_BITS = struct.Struct(">Q")
_DOUBLE = struct.Struct(">d")


def _score_text(score: float | None) -> str | None:
    """``score`` as text that sorts the highest first (16 hex digits: the complement of
    the bits of a double at least 0, which order as their values do), after it any
    missing score ("g"); ``None`` for a score that has no such text (NaN, negative)."""
    if score is None:
        return "g"
    if type(score) not in (float, int) or not 0 <= score <= 2.0**53:
        return None
    # (+ 0.0: -0.0 is 0.0, as the tuple key has it)
    return f"{0xFFFF_FFFF_FFFF_FFFF - _BITS.unpack(_DOUBLE.pack(score + 0.0))[0]:016x}"


def _sorted_worst_first(findings: tuple[Finding, ...], *,
                        merge_order: bool = False) -> tuple[Finding, ...]:
    """``findings`` sorted by :func:`finding_sort_key`.

    Each finding's key is one str (severity, score, then id, package and version with
    "\0" between), not a tuple: comparing two is one memcmp, not up to five objects' (and
    no Python call per finding for the key). The severity and score are a vulnerability's,
    made once per id and values. "\0" sorts below every other character, so the order is
    the tuple's while no id, package or version holds one; when one does, or a score has
    no text (NaN), the tuples are sorted. 10,000 findings: ~45M -> ~20M instructions.
    """
    shared: dict[str, tuple[Severity, tuple[Cvss, ...], str | None]] = {}
    # (And the text of each score, for vulnerabilities of their own: a report of distinct
    # CVEs has few distinct scores.)
    texts: dict[float | None, str | None] = {}
    keys = []
    for f in findings:
        known = shared.get(f.id)
        if known is None or known[0] is not f.severity or known[1] is not f.cvss:
            score = f.max_cvss
            text = texts.get(score, "") if score == score else None  # (NaN: no text)
            if text == "":
                text = texts[score] = _score_text(score)
            known = shared[f.id] = (f.severity, f.cvss,
                                    None if text is None else
                                    _RANK_TEXT[f.severity._value_] + text)
        head = known[2]
        if head is None:
            return tuple(sorted(findings, key=finding_sort_key))
        keys.append(head if merge_order else f"{head}{f.id}\0{f.package}\0{f.version}")
    if not merge_order and "".join(keys).count("\0") != 2 * len(keys):
        return tuple(sorted(findings, key=finding_sort_key))
    return tuple([findings[i] for i in sorted(range(len(keys)), key=keys.__getitem__)])


def _ts(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with ``Z``; a naive datetime is taken to be UTC already."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _finite(value: float | None) -> float | None:
    # JSON has no NaN/Infinity; a nonsensical score is reported as unknown.
    return value if value is not None and math.isfinite(value) else None


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _rule(r: RuleResult) -> dict[str, Any]:
    return {"rule": r.rule, "mode": r.mode.value, "passed": r.passed, "messages": list(r.messages)}


def _finding(f: Finding) -> dict[str, Any]:
    return {
        "id": f.id,
        "aliases": list(f.aliases),
        "package": f.package,
        "version": f.version,
        "package_type": f.package_type,
        "severity": f.severity.value,
        "fix_state": f.fix_state.value,
        "fixed_versions": list(f.fixed_versions),
        "cvss": _finite(f.max_cvss),
        "title": f.title,
        "sources": list(f.sources),
    }


def _exception(e: ExceptionUse) -> dict[str, Any]:
    return {
        "vulnerability": e.vulnerability,
        "status": e.status,
        "package": e.package,
        "expires": _day(e.expires),
        "reason": e.reason,
        "source": e.source,
        "matched": list(e.matched),
    }


def _signature(s: SignatureCheck) -> dict[str, Any]:
    # The predicate body is deliberately left out: it can be large and is
    # attacker-supplied; its type is what rules and readers key on.
    return {
        "kind": s.kind.value,
        "verified": s.verified,
        "signer": s.signer,
        "location": s.location,
        "reason": s.reason,
        "predicate_type": s.predicate_type,
        "tlog": s.tlog,
        "signed_digest": str(s.signed_digest) if s.signed_digest else None,
    }


def _report(r: ScanReport) -> dict[str, Any]:
    return {
        "scanner": r.scanner.name,
        "scanner_version": r.scanner.version,
        "source": r.source,
        "image_name": r.image_name,
        "image_digests": [str(d) for d in r.image_digests],
        "findings": len(r.findings),
        "finished": _ts(r.finished),
    }


def evidence_document(e: ReportInfo) -> dict[str, Any]:
    """One piece of scanner evidence as judged for an image (shared with the HTML)."""
    return {
        "kind": e.kind.value,
        "location": e.location,
        "scanner": e.scanner,
        "scanner_version": e.scanner_version,
        "created": _ts(e.created),
        "age_seconds": int(e.age.total_seconds()) if e.age is not None else None,
        "subject": e.subject,
        "binding": e.binding.value,
        "bound_to": str(e.bound_to) if e.bound_to is not None else None,
        "used": e.used,
        "findings": e.findings,
        "problems": list(e.problems),
    }


def _policy(run: RunInfo | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "rules_source": run.rules_source,
        "rules_sha256": run.rules_sha256,
        "rules_found_by": run.rules_found_by,
        "env": run.env,
        "env_origin": run.env_origin,
        "env_reason": run.env_reason,
        "notes": list(run.notes),
    }


def _config(c: ConfigSummary | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "digest": str(c.digest),
        "created": _ts(c.created),
        "os": c.os,
        "architecture": c.architecture,
        "variant": c.variant,
        "user": c.user,
        "labels": {k: c.labels[k] for k in sorted(c.labels)},
        "layers": c.layer_count,
    }


def _image(img: ResolvedImage | None) -> dict[str, Any] | None:
    if img is None:
        return None
    return {
        "registry": img.ref.registry,
        "repository": img.ref.repository,
        "tag": img.ref.tag,
        "source": img.ref.source,
        "digest": str(img.digest),
        "media_type": img.media_type,
        "manifest_digest": str(img.manifest_digest),
        "platforms": [
            {
                "platform": str(p.platform) if p.platform else None,
                "digest": str(p.digest),
                "media_type": p.media_type,
                "size": p.size,
            }
            for p in img.platforms
        ],
        "config": _config(img.config),
    }


def image_document(iv: ImageVerdict) -> dict[str, Any]:
    """The JSON object for one image (see ``docs/verdict-schema.md``)."""
    return _image_document(iv, with_findings=True)


def _image_document(iv: ImageVerdict, *, with_findings: bool) -> dict[str, Any]:
    # Without findings, "findings"/"suppressed" are left empty for render() to fill.
    img = iv.image
    return {
        "reference": iv.reference,
        "pinned": img.pinned if img else None,
        "digest": str(img.digest) if img else None,
        "env": iv.env,
        "decision": iv.decision.value,
        "error": iv.error,
        "violations": [_rule(r) for r in iv.violations],
        "warnings": [_rule(r) for r in iv.warnings],
        "rules": [_rule(r) for r in iv.rules],
        "counts": severity_counts(iv.findings),
        "findings_total": len(iv.findings),
        "suppressed_total": len(iv.suppressed),
        "findings": [_finding(f) for f in worst_first(iv.findings)]
        if with_findings else [],
        "suppressed": [
            {**_finding(f), "suppressed_by": why}
            for f, why in sorted(iv.suppressed, key=lambda p: finding_sort_key(p[0]))
        ] if with_findings else [],
        "exceptions": [_exception(e) for e in iv.exceptions],
        "exceptions_unlisted": iv.exceptions_unlisted,
        "signatures": [_signature(s) for s in iv.signatures],
        "reports": [_report(r) for r in iv.reports],
        "image": _image(img),
        "notes": list(iv.notes),
        "scanned": iv.scanned,
        "evidence": [evidence_document(e) for e in iv.evidence],
    }


def document(verdict: Verdict, *, tool_version: str | None = None) -> dict[str, Any]:
    """The whole verdict as a JSON-ready dict, keys in the documented order."""
    return _document(verdict, tool_version, with_findings=True)


def _document(verdict: Verdict, tool_version: str | None, *,
              with_findings: bool) -> dict[str, Any]:
    decisions = [i.decision for i in verdict.images]
    return {
        "$schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "imggate", "version": tool_version or __version__},
        "generated": _ts(verdict.generated),
        "env": verdict.env,
        "policy": _policy(verdict.run),
        "decision": overall_decision(verdict).value,
        "exit_code": verdict.exit_code,
        "error": verdict.error,
        "summary": {
            "images": len(verdict.images),
            "allow": decisions.count(Decision.ALLOW),
            "deny": decisions.count(Decision.DENY),
            "error": decisions.count(Decision.ERROR),
            "not_scanned": sum(1 for i in verdict.images
                               if i.image is not None and not i.scanned),
            "violations": sum(len(i.violations) for i in verdict.images),
            "warnings": sum(len(i.warnings) for i in verdict.images),
            "counts": _sum_counts(severity_counts(i.findings) for i in verdict.images),
        },
        "images": [_image_document(i, with_findings=True) for i in verdict.images]
        if with_findings else _image_documents(verdict.images),
    }


def _image_documents(images: Sequence[ImageVerdict]) -> list[dict[str, Any]]:
    """Each image's object without findings, made once per distinct image verdict and
    given each one's reference (an audit's tags that name the same image: 1,002 tags over
    300 images). Only :func:`render` takes these: the objects share their values."""
    from imggate.formats.alike import OncePerVerdict

    made = OncePerVerdict(lambda iv: _image_document(iv, with_findings=False))
    return [{**made(iv), "reference": iv.reference} for iv in images]


def _sum_counts(parts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total = {s.value: 0 for s in SEVERITY_ORDER}
    for part in parts:
        for k, n in part.items():
            total[k] += n
    return total


#: Text, or ASCII bytes of a findings block made ahead (:func:`remember_block`).
Part = str | bytes | memoryview


def render(verdict: Verdict, *, tool_version: str | None = None) -> str:
    """The verdict as JSON text: two-space indent, one finding per line, trailing newline.

    ``ensure_ascii`` keeps the file pure ASCII, so lone surrogates or odd code
    points in scanner strings can never make it unencodable.
    """
    return "".join(_text(p) for p in _parts(verdict, tool_version))


def _text(part: Part) -> str:
    return part if isinstance(part, str) else str(part, "ascii")


def _parts(verdict: Verdict, tool_version: str | None) -> list[Part]:
    """:func:`render`'s text in parts, each findings block one part (as it was made
    ahead: a check's block is written from where its child left it, never copied)."""
    # Indented encoding runs in pure Python and costs ~5x the compact C
    # encoder; findings (up to tens of thousands) are written one compact
    # object per line instead (by _FindingLines, exactly as json.dumps would
    # write _finding()), which also keeps the file grep-friendly. The
    # placeholder carries a fresh nonce so no string from a report can be
    # mistaken for it; the output itself does not depend on the nonce.
    doc = _document(verdict, tool_version, with_findings=False)
    nonce = secrets.token_hex(16)
    blocks: dict[str, Part] = {}
    lines = _FindingLines()

    def block_of(findings: tuple[Finding, ...]) -> Part:
        if _block is not None and same_objects(_block[0], worst_first(findings)):
            return _block[1]
        return findings_block(findings)

    for i, (image, iv) in enumerate(zip(doc["images"], verdict.images, strict=True)):
        for key, block in (
            ("findings", block_of(iv.findings) if iv.findings else ""),
            ("suppressed", _lines([lines(f, why) for f, why in
                                   sorted(iv.suppressed, key=lambda p: finding_sort_key(p[0]))],
                                  indent=8) if iv.suppressed else ""),
        ):
            if not block:
                continue  # left as the empty list, which is encoded as "[]" too
            token = f"imggate-{nonce}-{i}-{key}"
            blocks[json.dumps(token)] = block
            image[key] = token
    # The newline goes on before the findings go in: after, it would copy megabytes.
    text = indented_json(doc) + "\n"
    if not blocks:
        return [text]
    pieces = re.split(r'("imggate-[0-9a-f]{32}-\d+-(?:findings|suppressed)")', text)
    parts: list[Part] = list(pieces)
    parts[1::2] = [blocks.get(t, t) for t in pieces[1::2]]
    return parts


def indented_json(doc: dict[str, Any]) -> str:
    """``json.dumps(doc, indent=2, ensure_ascii=True, allow_nan=False)``, the same text,
    for a document of str, int, bool, None, lists and dicts (no float).

    json's indented encoder runs in pure Python: ~450M instructions for the 1,002 images
    of an audit, most of this report's cost. msgspec encodes and indents in C (6x faster)
    and writes the same text for such a document (this report has no float outside the
    findings lines: scores are in the findings, encoded apart). Where it would differ,
    json writes it: text that is not ASCII (json escapes it, msgspec writes UTF-8), DEL
    (json escapes it too, as it escapes everything outside printable ASCII; msgspec writes
    it as it is) and values msgspec refuses (a lone surrogate).
    """
    try:
        data = msgspec.json.format(msgspec.json.encode(doc), indent=2)
    except (msgspec.EncodeError, TypeError, ValueError, OverflowError):
        data = b"\x80"  # not ASCII: json's turn
    if not data.isascii() or b"\x7f" in data:
        return json.dumps(doc, indent=2, ensure_ascii=True, allow_nan=False)
    return data.decode("ascii")


_ENCODER = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(", ", ": "))
_NO_REASON = object()
#: What _ENCODER.encode makes of a str (its own first step), called directly.
_json_str: Callable[[str], str] = json.encoder.encode_basestring_ascii


class _FindingLines(dict[object, str]):
    """One finding as one line of JSON, byte for byte ``json.dumps(_finding(f), ...)``.

    Encoded values are memoised (ids, packages, versions and titles repeat
    across findings): about 5x faster than encoding each finding's dict.
    """

    def __init__(self) -> None:
        super().__init__()
        #: Scores (floats but zero) as written: vulnerabilities of their own have few.
        self.scores: dict[float, str] = {}

    def __missing__(self, value: object) -> str:
        text = self[value] = _json_str(value) if type(value) is str else _ENCODER.encode(value)
        return text

    def __call__(self, f: Finding, suppressed_by: object = _NO_REASON) -> str:
        line = self.many((f,))[0]
        if suppressed_by is _NO_REASON:
            return line
        return f'{line[:-1]}, "suppressed_by": {self[suppressed_by]}}}'

    def many(self, findings: Iterable[Finding]) -> list[str]:
        """The line of each of ``findings``.

        What the findings of one vulnerability share (all but the package, its version
        and type, and the fix) is encoded once per id and values: a CVE recurs for every
        package it hits, and the readers' findings of one hold the very same values, so
        telling them alike is one tuple's identity checks (10,000 findings: ~150M ->
        ~50M instructions, against each finding's values looked up and its score written).
        """
        shared: dict[str, tuple[tuple[object, ...], str, dict[str | None, str], str]] = {}
        packages: dict[str, str] = {}
        middles: dict[tuple[str | None, str], str] = {}
        out = []
        for f in findings:
            said = (f.aliases, f.severity, f.cvss, f.title, f.sources)
            known = shared.get(f.id)
            # (The ratings the very same: equal scores may be written apart, 0.0 and -0.0.)
            if known is None or known[0] != said or known[0][2] is not f.cvss:
                known = shared[f.id] = (said, *self._shared(f))
            _, head, typed, tail = known
            package = packages.get(f.package)
            if package is None:
                package = packages[f.package] = f'{self[f.package]}, "version": '
            # The package type and the severity: per type, with the vulnerability (and
            # made once per type and severity: vulnerabilities of their own share them).
            middle = typed.get(f.package_type)
            if middle is None:
                kind = (f.package_type, f.severity._value_)
                middle = middles.get(kind)
                if middle is None:
                    middle = middles[kind] = (f', "package_type": {self[kind[0]]}, '
                                              f'"severity": {self[kind[1]]}, "fix_state": ')
                typed[f.package_type] = middle
            # Tuples are encoded as JSON arrays; None as null (both memoised too).
            # (A version is most often the finding's own: encoded, not remembered.)
            out.append(f'{head}{package}{_json_str(f.version)}{middle}'
                       f'{self[f.fix_state._value_]}, "fixed_versions": '
                       f'{self[f.fixed_versions]}{tail}')
        return out

    def _shared(self, f: Finding) -> tuple[str, dict[str | None, str], str]:
        """What the line of ``f`` says of its vulnerability: before the package, (to be
        filled) its part from the package type to the fix state, by the type, and after
        the fixed versions."""
        score = _finite(f.max_cvss)
        if type(score) is float and score:  # (not zero: -0.0 == 0.0, written apart)
            cvss = self.scores.get(score) or self.scores.setdefault(score, repr(score))
        else:
            cvss = "null" if score is None else (
                float.__repr__(score) if type(score) is float else _ENCODER.encode(score))
        # The id and title encoded, not remembered: made once per vulnerability here, and
        # a vulnerability of its own does not share them (remembered, each was a call of
        # __missing__ too: 10,000 of them, ~20M instructions).
        title = f.title
        return (f'{{"id": {_json_str(f.id)}, "aliases": {self[f.aliases]}, "package": ', {},
                f', "cvss": {cvss}, "title": '
                f'{_json_str(title) if type(title) is str else self[title]}, '
                f'"sources": {self[f.sources]}}}')


#: A findings block made ahead (:func:`findings_block`, :func:`remember_block`): the
#: findings worst first, and their lines as the document holds them.
_block: tuple[tuple[Finding, ...], Part] | None = None


def findings_block(findings: tuple[Finding, ...]) -> str:
    """The document's block of ``findings``: their lines, worst first, joined as the
    document holds them. A check's reading child makes it before it hands
    its reports over (:mod:`imggate.scanners.read_ahead`), on the other CPU, not after
    the verdict here (see :func:`remember_block`)."""
    items, separator = findings_block_parts(findings)
    return separator.join(items)


def findings_block_parts(findings: tuple[Finding, ...]) -> tuple[list[str], str]:
    """:func:`findings_block` not joined: the texts and what goes between each two (a
    check's reading child writes them as they are, never the block whole)."""
    return _line_parts(_FindingLines().many(worst_first(findings)), indent=8)


def remember_block(ordered: tuple[Finding, ...], block: Part) -> None:
    """Take ``block`` as the :func:`findings_block` of ``ordered`` (findings worst first;
    as bytes, ASCII): a verdict whose image holds these findings is written with it."""
    global _block
    _block = (ordered, block)


def _lines(items: list[str], *, indent: int) -> str:
    lines, separator = _line_parts(items, indent=indent)
    return separator.join(lines)


def _line_parts(items: list[str], *, indent: int) -> tuple[list[str], str]:
    if not items:
        return ["[]"], ""
    pad = " " * indent
    # The brackets go on the first and last line, so the lines are joined once: a
    # concatenation after the join would copy them all again (megabytes).
    lines = list(items)
    lines[0] = f"[\n{pad}{lines[0]}"
    lines[-1] = f"{lines[-1]}\n{' ' * (indent - 2)}]"
    return lines, f",\n{pad}"


def write(verdict: Verdict, output_dir: Path, *, tool_version: str | None = None) -> Path:
    """Write ``imggate-verdict.json`` into ``output_dir`` (created if needed); return its path."""
    # Part by part: joined, the findings (3 MB at 10,000) were copied twice more (the
    # text, its encoding), ~1,500 page faults of fresh memory.
    return write_text_parts(Path(output_dir) / FILENAME, _parts(verdict, tool_version))
