"""``imggate-junit.xml``: each rule for each image as a JUnit testcase.

GitLab's merge-request widget reads this (``artifacts:reports:junit``), so
what failed shows up next to the pipeline. The mapping:

* one ``<testsuite>`` per image, named by the reference the user gave, with
  the environment, decision and pinned digest as ``<property>`` elements, and
  the run's provenance (rules file, its sha256 and how it was found, how the
  environment was chosen, imggate's version);
* one ``<testcase>`` per :class:`~imggate.models.RuleResult`, ``classname``
  the image reference (so the same rule for two images never collides when
  GitLab compares runs) and ``name`` the rule;
* a failed ``enforce`` rule is a ``<failure>``; a failed ``warn`` rule is
  ``<skipped>`` with the warning as its message and the details in
  ``<system-out>`` (visible, but not red); a passed rule is a plain testcase;
* findings suppressed by an exception (allowlist, VEX file, signed OpenVEX
  attestation) are listed with why in the ``<system-out>`` of a passed testcase
  named ``suppressed findings``, counted in the ``imggate.suppressed`` property;
* a resolved image without scanner evidence gets a ``<failure>`` testcase
  named ``evidence`` ("NOT SCANNED") in every environment, even where the
  rules let it pass: zero findings never look like a clean scan;
* an image that could not be decided gets an ``<error>`` testcase named
  ``decision``, and a denied image with no enforce failure (which should not
  happen) gets a ``<failure>`` one: the report never looks greener than the
  verdict.

Strings are made valid XML 1.0: characters XML cannot carry (most control
characters, lone surrogates) are written as visible ``\\xNN`` escapes.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from imggate.formats.suppressions import suppression_lines
from imggate.formats.verdict_json import write_text
from imggate.models import NOT_SCANNED, Decision, ImageVerdict, Mode, RuleResult, RunInfo, Verdict
from imggate.values import replace

FILENAME = "imggate-junit.xml"

# Everything outside XML 1.0's Char production, plus DEL and the C1 controls
# that XML allows but discourages (they are invisible or garble terminals):
# the complement of [\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff],
# written as the short list it is (that negated class takes ~4 ms to compile).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_MESSAGE_MAX = 1000


def xml_text(value: object) -> str:
    """``value`` as text XML 1.0 can hold; invalid characters become ``\\xNN``/``\\uNNNN``."""
    # XML parsers turn CR and CRLF into LF; do it here so what we write is
    # what a reader gets back.
    text = ("" if value is None else str(value)).replace("\r\n", "\n").replace("\r", "\n")
    return _NOT_XML.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
        else f"\\u{ord(m.group()):04x}",
        text,
    )


def _short(text: str) -> str:
    # A message attribute is a one-liner in most UIs; the body has the rest.
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= _MESSAGE_MAX else line[: _MESSAGE_MAX - 1] + "…"


def _timestamp(value: datetime) -> str:
    # JUnit's schema wants a local ISO time without zone; ours is UTC.
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=0).isoformat()


def _testcase(suite: ET.Element, classname: str, name: str) -> ET.Element:
    return ET.SubElement(suite, "testcase",
                         {"classname": xml_text(classname), "name": xml_text(name), "time": "0"})


def _add_rule(suite: ET.Element, iv: ImageVerdict, r: RuleResult) -> str:
    """Add one rule's testcase; return its outcome (passed, failure, skipped)."""
    case = _testcase(suite, iv.reference, r.rule)
    body = "\n".join(xml_text(m) for m in r.messages)
    if r.passed:
        if body:
            ET.SubElement(case, "system-out").text = body
        return "passed"
    first = _short(body) or f"rule {xml_text(r.rule)} failed"
    if r.mode is Mode.ENFORCE:
        failure = ET.SubElement(case, "failure", {"type": "violation", "message": first})
        failure.text = body or first
        return "failure"
    ET.SubElement(case, "skipped", {"message": "warning (not enforced): " + first})
    ET.SubElement(case, "system-out").text = "warning (not enforced):\n" + (body or first)
    return "skipped"


def _provenance(run: RunInfo | None) -> list[tuple[str, str | None]]:
    if run is None:
        return []
    return [("imggate.version", run.imggate_version), ("imggate.rules", run.rules_source),
            ("imggate.rules.sha256", run.rules_sha256),
            ("imggate.rules.found_by", run.rules_found_by),
            ("imggate.env.origin", run.env_origin), ("imggate.env.reason", run.env_reason)]


def _suite(iv: ImageVerdict, timestamp: str,
           provenance: list[tuple[str, str]]) -> tuple[ET.Element, dict[str, int]]:
    """``iv``'s testsuite and its tally; ``provenance`` is the run's properties, already
    XML text (the same in every suite: made once per report)."""
    suite = ET.Element("testsuite", {"name": xml_text(iv.reference)})
    props = ET.SubElement(suite, "properties")
    facts: list[tuple[str, str | None]] = [("imggate.env", iv.env),
                                           ("imggate.decision", iv.decision.value)]
    if iv.image is not None:
        facts += [("imggate.pinned", iv.image.pinned), ("imggate.digest", str(iv.image.digest)),
                  ("imggate.scanned", "true" if iv.scanned else "false")]
    if iv.suppressed:
        facts.append(("imggate.suppressed", str(len(iv.suppressed))))
    for name, value in facts:
        ET.SubElement(props, "property", {"name": name, "value": xml_text(value)})
    for name, text in provenance:
        ET.SubElement(props, "property", {"name": name, "value": text})

    tally = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for r in iv.rules:
        outcome = _add_rule(suite, iv, r)
        tally["tests"] += 1
        if outcome == "failure":
            tally["failures"] += 1
        elif outcome == "skipped":
            tally["skipped"] += 1

    if iv.suppressed:
        # Passed (a suppression is no failure), but said: what did not count, and why.
        case = _testcase(suite, iv.reference, "suppressed findings")
        ET.SubElement(case, "system-out").text = "\n".join(
            xml_text(line) for line in suppression_lines(iv))
        tally["tests"] += 1

    if iv.image is not None and not iv.scanned:
        refused = [e for e in iv.evidence if not e.used]
        why = (f"{len(refused)} report(s) given, none usable for this image" if refused
               else "no scanner report, scan or attestation was given for this image")
        case = _testcase(suite, iv.reference, "evidence")
        message = f"{NOT_SCANNED}: {why}: its vulnerabilities are unknown"
        ET.SubElement(case, "failure", {"type": "not-scanned", "message": message}).text = \
            xml_text("\n".join([message, *(f"{e.location}: {p}" for e in refused
                                            for p in e.problems)]))
        tally["tests"] += 1
        tally["failures"] += 1

    if iv.decision is Decision.ERROR:
        message = xml_text(iv.error or "the gate could not decide for this image")
        case = _testcase(suite, iv.reference, "decision")
        ET.SubElement(case, "error", {"type": "could-not-decide", "message": _short(message)}
                      ).text = message
        tally["tests"] += 1
        tally["errors"] += 1
    elif iv.decision is Decision.DENY and not iv.violations:
        case = _testcase(suite, iv.reference, "decision")
        ET.SubElement(case, "failure", {"type": "violation", "message": "image denied"}
                      ).text = "the image was denied"
        tally["tests"] += 1
        tally["failures"] += 1
    if iv.decision is Decision.DENY and iv.error:
        # Denied for certain, with some evidence unread: said, not counted as an error.
        message = xml_text("also not checked: " + iv.error)
        case = _testcase(suite, iv.reference, "not checked")
        ET.SubElement(case, "skipped", {"message": _short(message)}).text = message
        tally["tests"] += 1
        tally["skipped"] += 1

    for key in ("tests", "failures", "errors", "skipped"):
        suite.set(key, str(tally[key]))
    suite.set("time", "0")
    suite.set("timestamp", timestamp)
    return suite, tally


def render(verdict: Verdict) -> str:
    """The JUnit XML document (UTF-8 declaration, indented, trailing newline)."""
    from imggate.formats.alike import OncePerVerdict, placeholder

    timestamp = _timestamp(verdict.generated)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    provenance = [(name, xml_text(value)) for name, value in _provenance(verdict.run)]
    # Each suite is written as text once per distinct image verdict (an audit's tags that
    # name the same image share it: 1,002 tags over 300 images, ~530M -> ~200M
    # instructions), with a placeholder where the reference goes (the suite's name and
    # each testcase's classname, both attribute values): each verdict's is put in.
    token = placeholder("reference")

    def suite_text(iv: ImageVerdict) -> tuple[str, dict[str, int]]:
        suite, tally = _suite(replace(iv, reference=token), timestamp, provenance)
        return _suite_text(suite), tally

    suites = OncePerVerdict(suite_text)
    texts = []
    for iv in verdict.images:
        text, tally = suites(iv)
        texts.append(text.replace(token, _attrib(xml_text(iv.reference))))
        for key, n in tally.items():
            totals[key] += n
    if not verdict.images:
        # Nothing checked is a failed gate, not an empty green report.
        suite = ET.Element("testsuite", {"name": "imggate", "tests": "1", "failures": "0",
                                         "errors": "1", "skipped": "0", "time": "0",
                                         "timestamp": timestamp})
        case = _testcase(suite, "imggate", "decision")
        ET.SubElement(case, "error", {"type": "could-not-decide",
                                      "message": "no images were checked"})
        texts.append(_suite_text(suite))
        totals["tests"] += 1
        totals["errors"] += 1
    # The root as _serialize writes an element with children (the suites, indented).
    attrs = "".join(f' {k}="{v}"' for k, v in (
        ("name", _attrib(xml_text(f"imggate ({verdict.env})"))),
        *((key, str(totals[key])) for key in ("tests", "failures", "errors", "skipped")),
        ("time", "0")))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites{attrs}>\n  '
            + "\n  ".join(texts) + "\n</testsuites>\n")


def _suite_text(suite: ET.Element) -> str:
    """A testsuite as :func:`_serialize` writes it in the root."""
    out: list[str] = []
    _serialize(suite, out, "\n  ")
    return "".join(out)


def _serialize(elem: ET.Element, out: list[str], indent: str) -> None:
    """Append ``elem`` as ``ET.indent(root, space="  ")`` then ``ET.tostring(root,
    encoding="unicode")`` write it, the same text.

    ElementTree's writer is pure Python and general (namespaces, qualified names,
    comments): ~60% of this report's cost for the 1,002 images of an audit. imggate's
    elements have plain names and no namespace, and only leaves carry text, so this
    writes them directly, ~3x faster. ``indent`` is the newline and indentation before
    ``elem``.
    """
    tag = elem.tag
    attrs = "".join([f' {k}="{_attrib(v)}"' for k, v in elem.items()])
    text = elem.text
    if not len(elem):
        out.append(f"<{tag}{attrs}>{_cdata(text)}</{tag}>" if text else f"<{tag}{attrs} />")
    else:
        inner = indent + "  "
        # As ET.indent: text and tails that are only whitespace become the indentation.
        out.append(f"<{tag}{attrs}>{_cdata(text) if text and text.strip() else inner}")
        last = len(elem) - 1
        for i, child in enumerate(elem):
            _serialize(child, out, inner)
            tail = child.tail
            out.append(_cdata(tail) if tail and tail.strip() else inner if i < last else indent)
        out.append(f"</{tag}>")


#: What ElementTree escapes in character data, and in attribute values besides.
_CDATA = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))
_ATTRIB = (*_CDATA, ('"', "&quot;"), ("\r", "&#13;"), ("\n", "&#10;"), ("\t", "&#09;"))


def _escaped(text: str, table: tuple[tuple[str, str], ...]) -> str:
    # Looked for before replaced: most values have nothing to escape.
    for char, entity in table:
        if char in text:
            text = text.replace(char, entity)
    return text


def _cdata(text: str) -> str:
    """Character data escaped as ElementTree escapes it."""
    return _escaped(text, _CDATA)


def _attrib(text: str) -> str:
    """An attribute value escaped as ElementTree escapes it (quotes, CR, LF and tab too)."""
    return _escaped(text, _ATTRIB)


def write(verdict: Verdict, output_dir: Path) -> Path:
    """Write ``imggate-junit.xml`` into ``output_dir`` (created if needed); return its path."""
    return write_text(Path(output_dir) / FILENAME, render(verdict))
