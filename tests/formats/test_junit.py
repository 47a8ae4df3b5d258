"""imggate-junit.xml: a testcase per rule per image, valid XML whatever the strings."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from formats.verdict_samples import (
    CONTROL,
    DENY_REASON,
    XSS_TITLE,
    allow_image,
    deny_image,
    error_image,
    real_verdict,
    sample_verdict,
    single,
)
from imggate.formats import junit
from imggate.models import Decision, Mode, RuleResult, Verdict
from imggate.policy.checks import describe_finding
from imggate.values import replace


def parse(verdict: Verdict) -> ET.Element:
    text = junit.render(verdict)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    # expat is a strict XML 1.0 parser: invalid characters or escaping fail here.
    return ET.fromstring(text.encode("utf-8"))


def cases(suite: ET.Element) -> dict[str, ET.Element]:
    return {c.get("name"): c for c in suite.findall("testcase")}


def test_one_suite_per_image_and_one_case_per_rule():
    v = sample_verdict(10)
    root = parse(v)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [i.reference for i in v.images]
    for suite, iv in zip(suites, v.images, strict=True):
        names = [c.get("name") for c in suite.findall("testcase")]
        expected = [r.rule for r in iv.rules] + (
            ["suppressed findings"] if iv.suppressed else []) + (
            ["decision"] if iv.decision is Decision.ERROR else [])
        assert names == expected
        assert all(c.get("classname") == iv.reference for c in suite.findall("testcase"))
        assert suite.get("tests") == str(len(expected))


def test_enforce_failure_warning_skip_and_pass():
    suite = parse(single(deny_image(3))).find("testsuite")
    by_name = cases(suite)

    failure = by_name["severity"].find("failure")
    assert failure is not None
    assert failure.get("message") == DENY_REASON
    assert XSS_TITLE in failure.text  # full details in the body, escaped and parsed back
    assert by_name["severity"].find("skipped") is None

    warn = by_name["tags"]
    assert warn.find("failure") is None
    assert warn.find("skipped").get("message") == (
        "warning (not enforced): tag 'latest' is denied in prod")
    assert "tag 'latest' is denied in prod" in warn.find("system-out").text

    ok = by_name["signature"]
    assert list(ok) == []  # a plain, passed testcase

    assert (suite.get("failures"), suite.get("skipped"), suite.get("errors")) == ("1", "2", "0")
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["imggate.decision"] == "deny"
    assert props["imggate.env"] == "prod"
    assert props["imggate.digest"] == str(deny_image().image.digest)


def test_error_image_is_an_error_testcase():
    suite = parse(single(error_image())).find("testsuite")
    err = cases(suite)["decision"].find("error")
    assert err is not None
    assert "connection refused <b>&amp;</b>" in err.get("message")
    assert suite.get("errors") == "1"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert "imggate.digest" not in props


def test_denied_image_never_looks_green():
    # A deny whose rules carry no enforce failure still shows a failure.
    odd = replace(deny_image(0), rules=(RuleResult("tags", False, Mode.WARN, ("latest",)),))
    suite = parse(single(odd)).find("testsuite")
    assert cases(suite)["decision"].find("failure") is not None
    assert suite.get("failures") == "1"


def test_nothing_checked_is_an_error():
    root = parse(Verdict(env="dev", images=(), generated=datetime(2026, 1, 1, tzinfo=UTC)))
    assert root.get("errors") == "1"
    assert root.find("testsuite/testcase/error").get("message") == "no images were checked"


def test_totals_add_up():
    root = parse(sample_verdict(4))
    for key in ("tests", "failures", "errors", "skipped"):
        assert int(root.get(key)) == sum(int(s.get(key)) for s in root.findall("testsuite"))
    # The allowed image's suppressed findings are one more (passed) test.
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "9", "1", "1", "2")


def test_control_characters_are_made_visible_not_dropped():
    root = parse(single(deny_image(0)))
    out = cases(root.find("testsuite"))["tags"].find("system-out").text
    assert "bell\\x07 nul\\x00 esc\\x1b[31m vt\\x0b del\\x7f" in out
    assert CONTROL not in out


def test_multiline_message_attribute_is_first_line():
    iv = replace(allow_image(), decision=Decision.DENY, rules=(
        RuleResult("age", False, Mode.ENFORCE, ("too old\nsecond line", "another")),))
    failure = parse(single(iv)).find("testsuite/testcase/failure")
    assert failure.get("message") == "too old"
    assert failure.text == "too old\nsecond line\nanother"


def test_real_scanner_reports():
    v = real_verdict()
    root = parse(v)
    assert len(root.findall("testsuite")) == len(v.images)
    assert root.get("failures") == str(sum(len(i.violations) for i in v.images))


def test_write(tmp_path):
    path = junit.write(sample_verdict(2), tmp_path / "out")
    assert path.name == "imggate-junit.xml"
    assert ET.parse(path).getroot().tag == "testsuites"


@settings(max_examples=80, deadline=None)
@given(name=st.text(max_size=30), message=st.text(max_size=120), reference=st.text(max_size=40))
@example(name="r\x00", message="a\r\nb\rc\x1b\udcff]]>", reference="<&>\"'")
def test_any_text_gives_well_formed_xml(name, message, reference):
    iv = replace(error_image(), reference=reference, decision=Decision.DENY,
                 rules=(RuleResult(name, False, Mode.ENFORCE, (message,)),
                        RuleResult(name, False, Mode.WARN, (message,))))
    root = parse(single(iv))
    suite = root.find("testsuite")
    assert suite.get("name") == junit.xml_text(reference)
    failure = suite.find("testcase/failure")
    assert failure is not None
    if message.strip():
        assert failure.text == junit.xml_text(message)


def test_not_scanned_is_a_failure_in_every_environment_and_provenance_is_recorded():
    from formats.verdict_samples import RUN, unscanned_image

    iv = unscanned_image()
    assert iv.decision is Decision.ALLOW  # dev lets it pass ...
    root = parse(Verdict(env="dev", images=(iv,), generated=datetime(2026, 1, 1, tzinfo=UTC),
                         run=RUN))
    suite = root.find("testsuite")
    assert suite is not None
    failure = cases(suite)["evidence"].find("failure")
    assert failure is not None and failure.get("type") == "not-scanned"  # ... JUnit does not
    assert failure.get("message", "").startswith("NOT SCANNED: 1 report(s) given, none usable")
    assert "redis.json: is for another image" in (failure.text or "")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["imggate.scanned"] == "false"
    assert props["imggate.rules"] == "rules/default.yaml"
    assert props["imggate.rules.sha256"] == "ab" * 32
    assert props["imggate.rules.found_by"] == "./rules/"
    assert props["imggate.env.reason"] == "CI_ENVIRONMENT_TIER=production (alias 'production')"
    assert props["imggate.version"] == "0.1.0"
    assert root.get("failures") == "1"


def test_suppressed_findings_are_a_passed_case_listing_each_with_why():
    iv = allow_image()
    assert iv.suppressed
    suite = parse(single(iv)).find("testsuite")
    case = cases(suite)["suppressed findings"]
    assert case.find("failure") is None and case.find("skipped") is None
    [(f, why)] = iv.suppressed
    assert case.findtext("system-out") == f"{describe_finding(f)}: suppressed by {why}"
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["imggate.suppressed"] == "1"
    assert "suppressed findings" not in cases(parse(single(deny_image(3))).find("testsuite"))


def _as_elementtree_writes_it(root: ET.Element) -> str:
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode")


def test_a_real_report_is_the_text_elementtree_writes() -> None:
    v = real_verdict()
    text = junit.render(v)
    root = ET.fromstring(text.encode("utf-8"))
    for elem in root.iter():  # what ET.indent put in, taken out again
        if len(elem):
            elem.text = None
        elem.tail = None
    assert text == ('<?xml version="1.0" encoding="UTF-8"?>\n'
                    + _as_elementtree_writes_it(root) + "\n")


def test_images_judged_alike_share_their_suite_and_the_report_is_the_same(monkeypatch) -> None:
    # An audit's tags that name the same image: each suite is written once and given each
    # tag's reference (escaped as an attribute value); the report is what writing each
    # gives, and the text ElementTree writes, also where verdicts of one image differ.
    from imggate.formats import alike

    images = [allow_image(), deny_image(3), error_image()]
    tags = [replace(iv, reference=f"reg.example/app:t{n}<&>\"'\r\n\t{CONTROL}")
            for n, iv in enumerate(images * 3)]
    tags.append(replace(images[0], reference="reg.example/app:noted", notes=("a note",)))
    tags.append(replace(images[1], reference="reg.example/app:allowed",
                        decision=Decision.ALLOW))
    verdict = replace(sample_verdict(5), images=tuple(tags))
    shared = junit.render(verdict)
    root = ET.fromstring(shared.encode("utf-8"))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [junit.xml_text(iv.reference) for iv in tags]
    for suite, iv in zip(suites, tags, strict=True):
        assert {c.get("classname") for c in suite.findall("testcase")} == {
            junit.xml_text(iv.reference)}
    for elem in root.iter():
        if len(elem):
            elem.text = None
        elem.tail = None
    assert shared == ('<?xml version="1.0" encoding="UTF-8"?>\n'
                      + _as_elementtree_writes_it(root) + "\n")
    monkeypatch.setattr(alike, "alike", lambda a, b: False)
    assert junit.render(verdict) == shared
