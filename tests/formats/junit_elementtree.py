"""The JUnit report as imggate wrote it before it wrote the XML text itself: an
ElementTree per report, written by ElementTree (``ET.indent`` then ``ET.tostring``).

Kept as the reference :func:`imggate.formats.junit.render` must match byte for byte,
hostile strings included (its escaping is ElementTree's, its invalid-character rule the
one junit had). It makes every suite anew: no sharing between images judged alike.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from imggate.formats.suppressions import suppression_lines
from imggate.models import NOT_SCANNED, Decision, ImageVerdict, Mode, RuleResult, RunInfo, Verdict

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_MESSAGE_MAX = 1000


def xml_text(value: object) -> str:
    text = ("" if value is None else str(value)).replace("\r\n", "\n").replace("\r", "\n")
    return _NOT_XML.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
        else f"\\u{ord(m.group()):04x}",
        text,
    )


def _short(text: str) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= _MESSAGE_MAX else line[: _MESSAGE_MAX - 1] + "…"


def _timestamp(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=0).isoformat()


def _testcase(suite: ET.Element, classname: str, name: str) -> ET.Element:
    return ET.SubElement(suite, "testcase",
                         {"classname": xml_text(classname), "name": xml_text(name), "time": "0"})


def _add_rule(suite: ET.Element, iv: ImageVerdict, r: RuleResult) -> str:
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
    """The report as ElementTree writes it."""
    timestamp = _timestamp(verdict.generated)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    provenance = [(name, xml_text(value)) for name, value in _provenance(verdict.run)]
    root = ET.Element("testsuites", {"name": xml_text(f"imggate ({verdict.env})")})
    for iv in verdict.images:
        suite, tally = _suite(iv, timestamp, provenance)
        root.append(suite)
        for key, n in tally.items():
            totals[key] += n
    if not verdict.images:
        suite = ET.SubElement(root, "testsuite", {
            "name": "imggate", "tests": "1", "failures": "0", "errors": "1", "skipped": "0",
            "time": "0", "timestamp": timestamp})
        case = _testcase(suite, "imggate", "decision")
        ET.SubElement(case, "error", {"type": "could-not-decide",
                                      "message": "no images were checked"})
        totals["tests"] += 1
        totals["errors"] += 1
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(totals[key]))
    root.set("time", "0")
    ET.indent(root, space="  ")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(root, encoding="unicode") + "\n")
