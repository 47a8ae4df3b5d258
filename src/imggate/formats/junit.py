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
    text = "" if value is None else str(value)
    if text.isprintable():
        # Printable text has no control characters (CR included), surrogates or
        # noncharacters, so nothing to change; str.isprintable looks at each character
        # ~4x faster than the pattern's character class (a JUnit report of an audit's
        # 1,002 tags: ~14M -> ~5M instructions). tests/formats/test_junit_chars.py checks
        # that every printable character is one the pattern lets through.
        return text
    text = text.replace("\r\n", "\n").replace("\r", "\n")
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


def _leaf(tag: str, attrs: str, text: str | None = None) -> str:
    """An element without children; ``attrs`` are written already (`` name="value"``),
    ``text`` is XML text, escaped here. Without text it is written empty, as ElementTree
    writes it."""
    return f"<{tag}{attrs}>{_cdata(text)}</{tag}>" if text else f"<{tag}{attrs} />"


def _testcase(classname: str, name: str, *children: str) -> str:
    """A testcase of ``children`` (written already); ``classname`` is an escaped attribute
    value, ``name`` XML text."""
    head = f'<testcase classname="{classname}" name="{_attrib(name)}" time="0"'
    if not children:
        return head + " />"
    return f"{head}>\n      " + "\n      ".join(children) + "\n    </testcase>"


def _rule(ref: str, r: RuleResult) -> tuple[str, str]:
    """One rule's testcase (``ref`` the escaped reference), and its outcome (passed,
    failure, skipped)."""
    name = xml_text(r.rule)
    body = "\n".join([xml_text(m) for m in r.messages])
    if r.passed:
        return (_testcase(ref, name, _leaf("system-out", "", body)) if body
                else _testcase(ref, name)), "passed"
    first = _short(body) or f"rule {name} failed"
    if r.mode is Mode.ENFORCE:
        failure = _leaf("failure", f' type="violation" message="{_attrib(first)}"', body or first)
        return _testcase(ref, name, failure), "failure"
    return _testcase(ref, name,
                     _leaf("skipped", f' message="{_attrib("warning (not enforced): " + first)}"'),
                     _leaf("system-out", "", "warning (not enforced):\n" + (body or first))
                     ), "skipped"


def _provenance(run: RunInfo | None) -> list[tuple[str, str | None]]:
    if run is None:
        return []
    return [("imggate.version", run.imggate_version), ("imggate.rules", run.rules_source),
            ("imggate.rules.sha256", run.rules_sha256),
            ("imggate.rules.found_by", run.rules_found_by),
            ("imggate.env.origin", run.env_origin), ("imggate.env.reason", run.env_reason)]


def _property(name: str, value: str) -> str:
    """A ``<property>`` of the suite's ``<properties>`` (``value`` XML text), indented."""
    return f'\n      <property name="{name}" value="{_attrib(value)}" />'


def _suite(iv: ImageVerdict, timestamp: str, provenance: str) -> tuple[str, dict[str, int]]:
    """``iv``'s testsuite as written in the root, and its tally; ``provenance`` is the
    run's ``<property>`` elements, written (the same in every suite: made once per report).

    Written as text, as ``ET.indent(root, space="  ")`` then ``ET.tostring`` wrote the
    ElementTree this report used to be (tests/formats/junit_elementtree.py keeps it, to
    compare with): building the elements and walking them again was ~2/3 of this
    report's cost for the 1,002 images of an audit.
    """
    ref = _attrib(xml_text(iv.reference))
    facts: list[tuple[str, str | None]] = [("imggate.env", iv.env),
                                           ("imggate.decision", iv.decision.value)]
    if iv.image is not None:
        facts += [("imggate.pinned", iv.image.pinned), ("imggate.digest", str(iv.image.digest)),
                  ("imggate.scanned", "true" if iv.scanned else "false")]
    if iv.suppressed:
        facts.append(("imggate.suppressed", str(len(iv.suppressed))))
    properties = "".join([_property(name, xml_text(value)) for name, value in facts])

    tests = failures = errors = skipped = 0
    cases = []
    for r in iv.rules:
        case, outcome = _rule(ref, r)
        cases.append(case)
        tests += 1
        if outcome == "failure":
            failures += 1
        elif outcome == "skipped":
            skipped += 1

    if iv.suppressed:
        # Passed (a suppression is no failure), but said: what did not count, and why.
        cases.append(_testcase(ref, "suppressed findings", _leaf("system-out", "", "\n".join(
            [xml_text(line) for line in suppression_lines(iv)]))))
        tests += 1

    if iv.image is not None and not iv.scanned:
        refused = [e for e in iv.evidence if not e.used]
        why = (f"{len(refused)} report(s) given, none usable for this image" if refused
               else "no scanner report, scan or attestation was given for this image")
        message = f"{NOT_SCANNED}: {why}: its vulnerabilities are unknown"
        cases.append(_testcase(ref, "evidence", _leaf(
            "failure", f' type="not-scanned" message="{_attrib(message)}"',
            xml_text("\n".join([message, *(f"{e.location}: {p}" for e in refused
                                            for p in e.problems)])))))
        tests += 1
        failures += 1

    if iv.decision is Decision.ERROR:
        message = xml_text(iv.error or "the gate could not decide for this image")
        cases.append(_testcase(ref, "decision", _leaf(
            "error", f' type="could-not-decide" message="{_attrib(_short(message))}"', message)))
        tests += 1
        errors += 1
    elif iv.decision is Decision.DENY and not iv.violations:
        cases.append(_testcase(ref, "decision", _leaf(
            "failure", ' type="violation" message="image denied"', "the image was denied")))
        tests += 1
        failures += 1
    if iv.decision is Decision.DENY and iv.error:
        # Denied for certain, with some evidence unread: said, not counted as an error.
        message = xml_text("also not checked: " + iv.error)
        cases.append(_testcase(ref, "not checked", _leaf(
            "skipped", f' message="{_attrib(_short(message))}"', message)))
        tests += 1
        skipped += 1

    text = (f'<testsuite name="{ref}" tests="{tests}" failures="{failures}" errors="{errors}"'
            f' skipped="{skipped}" time="0" timestamp="{timestamp}">\n    <properties>'
            f'{properties}{provenance}\n    </properties>'
            + "".join(["\n    " + case for case in cases]) + "\n  </testsuite>")
    return text, {"tests": tests, "failures": failures, "errors": errors, "skipped": skipped}


def render(verdict: Verdict) -> str:
    """The JUnit XML document (UTF-8 declaration, indented, trailing newline)."""
    from imggate.formats.alike import OncePerVerdict, placeholder

    timestamp = _attrib(_timestamp(verdict.generated))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    provenance = "".join([_property(name, xml_text(value))
                          for name, value in _provenance(verdict.run)])
    # Each suite is written as text once per distinct image verdict (an audit's tags that
    # name the same image share it: 1,002 tags over 300 images, ~530M -> ~200M
    # instructions), with a placeholder where the reference goes (the suite's name and
    # each testcase's classname, both attribute values): each verdict's is put in.
    token = placeholder("reference")

    def suite_parts(iv: ImageVerdict) -> tuple[list[str], dict[str, int]]:
        # Split where the reference goes once, so that each tag's suite is a join (a
        # copy) rather than a search for the token through the whole suite.
        text, tally = _suite(replace(iv, reference=token), timestamp, provenance)
        return text.split(token), tally

    suites = OncePerVerdict(suite_parts)
    texts = []
    for iv in verdict.images:
        parts, tally = suites(iv)
        texts.append(_attrib(xml_text(iv.reference)).join(parts))
        for key, n in tally.items():
            totals[key] += n
    if not verdict.images:
        # Nothing checked is a failed gate, not an empty green report.
        texts.append(
            f'<testsuite name="imggate" tests="1" failures="0" errors="1" skipped="0" time="0"'
            f' timestamp="{timestamp}">\n    '
            + _testcase("imggate", "decision", _leaf(
                "error", ' type="could-not-decide" message="no images were checked"'))
            + "\n  </testsuite>")
        totals["tests"] += 1
        totals["errors"] += 1
    attrs = "".join(f' {k}="{v}"' for k, v in (
        ("name", _attrib(xml_text(f"imggate ({verdict.env})"))),
        *((key, str(totals[key])) for key in ("tests", "failures", "errors", "skipped")),
        ("time", "0")))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites{attrs}>\n  '
            + "\n  ".join(texts) + "\n</testsuites>\n")


# What ElementTree escapes, each looked for before replaced (most values have nothing
# to escape), written out rather than looped over a table: the loop's bytecode was
# half the escaping's cost (the report of an audit's 1,002 tags: 65.8M -> 58.8M
# instructions).
def _cdata(text: str) -> str:
    """Character data escaped as ElementTree escapes it."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _attrib(text: str) -> str:
    """An attribute value escaped as ElementTree escapes it (quotes, CR, LF and tab too)."""
    text = _cdata(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#09;")
    return text


def write(verdict: Verdict, output_dir: Path) -> Path:
    """Write ``imggate-junit.xml`` into ``output_dir`` (created if needed); return its path."""
    return write_text(Path(output_dir) / FILENAME, render(verdict))
