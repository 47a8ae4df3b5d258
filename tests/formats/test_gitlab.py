"""gl-container-scanning-report.json writer: schema 15.2.1-valid for every real report."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imggate.formats import gitlab
from imggate.models import Cvss, Finding, FixState, ScannerInfo, Severity
from imggate.scanners.detect import load_report
from imggate.scanners.merge import merge
from scanners.report_fixtures import (
    ALL_REPORTS,
    FIXTURES,
    GITLAB,
    fixture_id,
    load,
    raw_keys,
    schema_errors,
)

START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
END = START + timedelta(seconds=42)
IMAGE = "registry.example.com/group/app:1.0@sha256:" + "ab" * 32


def _render(findings, **kw):
    args = {"image": IMAGE, "operating_system": "debian 10", "scanners": [ScannerInfo("trivy",
            "0.50.0", "Aqua Security")], "start": START, "end": END}
    args.update(kw)
    return gitlab.render(findings, **args)


@pytest.mark.parametrize(("path", "kind"), ALL_REPORTS, ids=[fixture_id(p) for p, _ in ALL_REPORTS])
def test_every_fixture_converts_to_a_schema_valid_report(path: Path, kind: str) -> None:
    report = load_report(path)
    findings = merge([report])
    doc = gitlab.render(findings, image=report.image_name or "unknown-image",
                        operating_system=report.operating_system, scanners=[report.scanner],
                        start=START, end=END, default_branch_image="registry.example.com/g/a:main")
    assert schema_errors(doc) == []
    assert len(doc["vulnerabilities"]) == len(raw_keys(path, kind))
    ids = [v["id"] for v in doc["vulnerabilities"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("path", GITLAB, ids=fixture_id)
def test_gitlab_in_gitlab_out_keeps_every_vulnerability(path: Path) -> None:
    report = load_report(path)
    doc = _render(merge([report]), image=report.image_name or "img")
    source = load(path)["vulnerabilities"]

    def keyed(vulns: list[dict]) -> dict[tuple[str, str, str], str]:
        out = {}
        for v in vulns:
            values = {i["value"] for i in v["identifiers"]} | ({v["cve"]} if "cve" in v else set())
            dep = v["location"]["dependency"]
            for value in values:
                out[(value, dep["package"]["name"], dep["version"])] = v.get("severity")
        return out

    before, after = keyed(source), keyed(doc["vulnerabilities"])
    assert before.keys() <= after.keys()
    assert all(after[k] == sev for k, sev in before.items())
    assert len(doc["vulnerabilities"]) == len(raw_keys(path, "gitlab"))
    assert schema_errors(doc) == []


def test_trivy_and_grype_merged_into_one_valid_report() -> None:
    t = load_report(FIXTURES / "trivy" / "legacy" / "defectdojo-legacy_many_vulns.json")
    g = load_report(FIXTURES / "grype" / "defectdojo-many_vulns3.json")
    merged = merge([t, g])
    doc = _render(merged, scanners=[t.scanner, g.scanner])
    assert schema_errors(doc) == []
    keys = [(v["identifiers"][0]["value"], v["location"]["dependency"]["package"]["name"],
             v["location"]["dependency"]["version"]) for v in doc["vulnerabilities"]]
    assert len(keys) == len(set(keys)) == len(merged)
    assert doc["scan"]["scanner"]["id"] == "trivy+grype"
    assert doc["scan"]["scanner"]["version"] == "grype 0.7.0"
    assert doc["scan"]["scanner"]["vendor"]["name"] == "Aqua Security + Anchore"


def test_scan_section() -> None:
    doc = _render([])
    assert doc["version"] == "15.2.1"
    scan = doc["scan"]
    assert scan["type"] == "container_scanning" and scan["status"] == "success"
    assert scan["start_time"] == "2026-01-02T03:04:05" and scan["end_time"] == "2026-01-02T03:04:47"
    assert scan["analyzer"]["id"] == "imggate"
    assert scan["scanner"] == {"id": "trivy", "name": "Trivy", "version": "0.50.0",
                               "vendor": {"name": "Aqua Security"}}
    assert schema_errors(doc) == []
    # aware times are written in UTC; no scanners at all still gives a valid scanner object
    other = _render([], start=datetime(2026, 1, 2, 5, 0, tzinfo=timezone(timedelta(hours=2))),
                    scanners=[])
    assert other["scan"]["start_time"] == "2026-01-02T03:00:00"
    assert schema_errors(other) == []


def test_vulnerability_fields() -> None:
    f = Finding("CVE-2021-3711", "openssl", "1.1.1k-r0", Severity.CRITICAL,
                aliases=("GHSA-aaaa-bbbb-cccc", "DSA-4963-1"), fixed_versions=("1.1.1l-r0",),
                fix_state=FixState.FIXED, title="openssl: SM2 buffer overflow",
                description="A buffer overflow.",
                cvss=(Cvss("nvd", "3.1", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
                      Cvss("nvd", "2.0", "AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5),
                      Cvss("ghsa", "4.0", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H", 9.3)),
                links=("https://example.com/a", "javascript:alert(1)", "ftp://ftp.example.com/x"))
    v = _render([f], default_branch_image="registry.example.com/group/app:main")[
        "vulnerabilities"][0]
    assert v["name"] == "openssl: SM2 buffer overflow"
    assert v["severity"] == "Critical"
    assert v["solution"] == "Upgrade openssl to 1.1.1l-r0"
    assert v["location"] == {
        "dependency": {"package": {"name": "openssl"}, "version": "1.1.1k-r0"},
        "operating_system": "debian 10", "image": IMAGE,
        "default_branch_image": "registry.example.com/group/app:main"}
    assert v["identifiers"] == [
        {"type": "cve", "name": "CVE-2021-3711", "value": "CVE-2021-3711",
         "url": "https://nvd.nist.gov/vuln/detail/CVE-2021-3711"},
        {"type": "ghsa", "name": "GHSA-aaaa-bbbb-cccc", "value": "GHSA-aaaa-bbbb-cccc",
         "url": "https://github.com/advisories/GHSA-aaaa-bbbb-cccc"},
        {"type": "dsa", "name": "DSA-4963-1", "value": "DSA-4963-1",
         "url": "https://security-tracker.debian.org/tracker/DSA-4963-1"}]
    assert v["links"] == [{"url": "https://example.com/a"}, {"url": "ftp://ftp.example.com/x"}]
    # the schema knows CVSS 2 and 3 vectors only
    assert [c["vector"][:8] for c in v["cvss_vectors"]] == ["CVSS:3.1", "AV:N/AC:"]
    assert "details" not in v  # one scanner, no EPSS: nothing to add


def test_details_name_every_scanner_and_epss() -> None:
    t = load_report(FIXTURES / "trivy" / "legacy" / "defectdojo-legacy_many_vulns.json")
    g = load_report(FIXTURES / "grype" / "defectdojo-many_vulns3.json")
    doc = _render(merge([t, g]))
    both = [v for v in doc["vulnerabilities"]
            if v.get("details", {}).get("reported_by", {}).get("value") == "trivy, grype"]
    assert len(both) >= 60
    epss = load_report(FIXTURES / "grype" / "defectdojo-many_vulns_with_epss_values.json")
    doc = _render(merge([epss]))
    assert any(v.get("details", {}).get("epss", {}).get("value") == pytest.approx(0.0719)
               for v in doc["vulnerabilities"])
    assert schema_errors(doc) == []


def test_solutions_by_fix_state() -> None:
    base = Finding("CVE-1", "bash", "5.0", Severity.LOW)
    assert gitlab.solution(base) is None
    assert "will not fix" in (gitlab.solution(Finding(
        "CVE-1", "bash", "5.0", Severity.LOW, fix_state=FixState.WONT_FIX)) or "")
    assert "No fix" in (gitlab.solution(Finding(
        "CVE-1", "bash", "5.0", Severity.LOW, fix_state=FixState.NOT_FIXED)) or "")
    assert gitlab.solution(Finding("CVE-1", "p", "1", Severity.LOW,
                                   fixed_versions=("1.1", "2.0.1"))) == "Upgrade p to 1.1, 2.0.1"


def test_ids_are_stable_per_image_and_unique() -> None:
    f = Finding("CVE-2021-3711", "openssl", "1.1.1k-r0", Severity.HIGH)
    g = Finding("CVE-2021-3711", "openssl", "1.1.1l-r0", Severity.HIGH)
    a = _render([f, g])["vulnerabilities"]
    again = _render([g, f])["vulnerabilities"]
    other = _render([f, g], image="registry.example.com/group/app@sha256:" + "ef" * 32)
    assert {v["id"] for v in a} == {v["id"] for v in again}  # a re-run: same ids
    assert a[0]["id"] != a[1]["id"]
    # another image of the same repository in the same document never collides
    assert {v["id"] for v in a}.isdisjoint(v["id"] for v in other["vulnerabilities"])
    assert uuid.UUID(a[0]["id"]).version == 5
    assert a[0]["id"] == str(uuid.uuid5(
        gitlab.ID_NAMESPACE, f"{IMAGE}\x00CVE-2021-3711\x00openssl\x001.1.1k-r0"))
    assert gitlab.vulnerability_id(IMAGE, f) == a[0]["id"]


def test_hostile_values_are_trimmed_to_what_the_schema_allows() -> None:
    f = Finding("X" * 300, "p" * 2000, "v", Severity.UNKNOWN, title="t" * 10_000,
                description="d" * 2_000_000, fixed_versions=("9" * 8000,),
                cvss=tuple(Cvss(f"s{i}", "3.1", f"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:{x}",
                                None) for i, x in enumerate("HLN" * 5)),
                links=("http://\n",))
    doc = _render([f], operating_system=None, default_branch_image="r/" + "x" * 300)
    assert schema_errors(doc) == []
    v = doc["vulnerabilities"][0]
    assert len(v["name"]) == 255 and len(v["solution"]) == 7000
    assert len(v["description"]) == 1_048_576
    assert v["location"]["operating_system"] == "Unknown"
    assert "default_branch_image" not in v["location"]
    assert len(v["cvss_vectors"]) == 3  # three distinct vectors, repeats dropped


def test_render_refuses_nonsense_arguments() -> None:
    with pytest.raises(ValueError, match="image"):
        _render([Finding("CVE-1", "p", "1", Severity.LOW)], image="")
    assert _render([], image="")["vulnerabilities"] == []  # nothing to locate: no image needed
    with pytest.raises(ValueError, match="status"):
        _render([], status="partial")


def test_lone_surrogates_from_a_report_are_written_escaped(tmp_path: Path) -> None:
    f = Finding("CVE-1", "p", "1", Severity.LOW, description="bad \udc80 text")
    out = tmp_path / "gl.json"
    gitlab.write(out, _render([f]))
    assert json.loads(out.read_bytes())["vulnerabilities"][0]["description"] == "bad \udc80 text"


def test_a_long_report_is_written_in_parts_as_encode_makes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gitlab, "_PART_ITEMS", 3)  # so that a few findings take several parts
    findings = [Finding(f"CVE-{i}", "p\u00e9", "1", Severity.LOW, description="\u2713")
                for i in range(10)]
    out = tmp_path / "gl.json"
    docs = [_render(findings), _render(findings[:3]), {}, {"a": [[1]] * 7, "b": {"c": []}},
            {"a": {"b": 1}, "c": [1] * 4}]
    for doc in docs:
        gitlab.write(out, doc)
        assert out.read_bytes() == gitlab.encode(doc, newline=True)
    # A lone surrogate in the last part: the whole report escaped, as encode writes it.
    doc = _render([*findings, Finding("CVE-99", "p", "1", Severity.LOW, description="\udc80")])
    gitlab.write(out, doc)
    assert out.read_bytes() == gitlab.encode(doc, newline=True) and out.read_bytes().isascii()
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no part-written file left


def test_a_long_report_is_redacted_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imggate.redact import MASK, SECRETS, register

    monkeypatch.setattr(gitlab, "_PART_ITEMS", 3)
    secret = "s3cret-token-value"
    register(secret)
    try:
        findings = [Finding(f"CVE-{i}", "p", "1", Severity.LOW, description=f"x {secret} y")
                    for i in range(10)]
        out = tmp_path / "gl.json"
        gitlab.write(out, _render(findings))
    finally:
        SECRETS.clear()
    text = out.read_text(encoding="utf-8")
    assert secret not in text and text.count(MASK) == 10


def test_write_is_atomic_and_valid_json(tmp_path: Path) -> None:
    report = load_report(FIXTURES / "trivy" / "alpine-310.json")
    doc = _render(merge([report]))
    out = tmp_path / "reports" / "gl-container-scanning-report.json"
    gitlab.write(out, doc)
    assert json.loads(out.read_text(encoding="utf-8")) == doc
    assert [p.name for p in out.parent.iterdir()] == [out.name]
    gitlab.write(out, _render([]))  # replaces in place
    assert json.loads(out.read_text())["vulnerabilities"] == []


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_findings = st.builds(
    Finding,
    id=st.text(min_size=1, max_size=30).filter(str.strip),
    package=_text, version=_text,
    severity=st.sampled_from(list(Severity)),
    aliases=st.lists(st.text(min_size=1, max_size=20).filter(str.strip), max_size=3).map(tuple),
    fixed_versions=st.lists(_text, max_size=3).map(tuple),
    fix_state=st.sampled_from(list(FixState)),
    cvss=st.lists(st.builds(Cvss, source=_text, version=st.none() | _text,
                            vector=st.none() | _text | st.sampled_from([
                                "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                                "AV:N/AC:M/Au:N/C:P/I:P/A:P"]),
                            score=st.none() | st.floats(0, 10)), max_size=12).map(tuple),
    title=st.none() | st.text(max_size=400), description=st.none() | _text,
    epss=st.none() | st.floats(0, 1), sources=st.lists(_text, max_size=3).map(tuple),
    links=st.lists(_text | st.sampled_from(["https://a.example/x", "ftp://f", "http://\n"]),
                   max_size=4).map(tuple),
)


@settings(max_examples=150, deadline=None)
@given(findings=st.lists(_findings, max_size=5), image=st.text(min_size=1, max_size=300),
       os_name=st.none() | _text, dbi=st.none() | st.text(max_size=300))
def test_any_findings_render_to_a_schema_valid_report(findings, image, os_name, dbi) -> None:
    doc = _render(findings, image=image, operating_system=os_name, default_branch_image=dbi)
    assert schema_errors(doc) == []
    assert len(doc["vulnerabilities"]) == len(findings)
    assert json.loads(gitlab.encode(doc)) == json.loads(json.dumps(doc))


@pytest.mark.parametrize("at_a_time", [1000, 4])  # (4: the list written in parts)
def test_vulnerabilities_made_ahead_are_written_as_the_same_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at_a_time: int) -> None:
    monkeypatch.setattr(gitlab, "_PART_ITEMS", at_a_time)
    from typing import Any

    from fixture_paths import FIXTURES
    from imggate.scanners.detect import load_report
    from imggate.scanners.merge import merge

    findings = merge([load_report(FIXTURES / "trivy" / "defectdojo-issue_9333.json")])
    when = datetime(2026, 1, 2, tzinfo=UTC)

    def doc(messages: tuple[str, ...] = ()) -> dict[str, Any]:
        return gitlab.render(findings, image="registry.example/app@sha256:" + "a" * 64,
                             operating_system="debian 12", scanners=(), start=when,
                             end=when, default_branch_image="registry.example/app:main",
                             messages=messages)

    odd = ("a lone surrogate: \ud800",)  # orjson refuses it: the stdlib writes the document
    plain = [gitlab.encode(doc(), newline=True), gitlab.encode(doc(odd), newline=True)]
    gitlab.write(tmp_path / "plain.json", doc())
    saved = dict(gitlab._WARM)
    try:
        gitlab.warm(findings)
        ahead = doc()
        assert all(type(v) is not dict for v in ahead["vulnerabilities"])  # encoded ahead
        assert [gitlab.encode(ahead, newline=True),
                gitlab.encode(doc(odd), newline=True)] == plain
        gitlab.write(tmp_path / "ahead.json", ahead)
    finally:
        gitlab._WARM.clear()
        gitlab._WARM.update(saved)
    assert (tmp_path / "ahead.json").read_bytes() == (tmp_path / "plain.json").read_bytes()


def test_vulnerabilities_made_whole_ahead_for_one_image_are_the_same_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gitlab, "_PART_ITEMS", 4)  # (the list written in parts)
    from fixture_paths import FIXTURES

    findings = merge([load_report(FIXTURES / "trivy" / "defectdojo-issue_9333.json")])
    image = "registry.example/app@sha256:" + "a" * 64
    args = {"image": image, "operating_system": "debian 12",
            "default_branch_image": "registry.example/app:main"}
    plain = gitlab.encode(_render(findings, **args), newline=True)
    monkeypatch.setattr(gitlab, "_WARM", {})
    monkeypatch.setattr(gitlab, "_WHOLE", None)
    gitlab.warm(findings)
    gitlab.warm_image(findings, **args)
    ahead = _render(findings, **args)
    assert type(ahead["vulnerabilities"]) is gitlab._Vulnerabilities  # made ahead
    gitlab.write(tmp_path / "ahead.json", ahead)
    assert (tmp_path / "ahead.json").read_bytes() == gitlab.encode(ahead, newline=True) == plain
    # Another image, system or default branch image, other findings, or a list that grew
    # since: made here, the same bytes as without anything made ahead.
    for other in ({**args, "image": image[:-1] + "b"}, {**args, "operating_system": "alpine"},
                  {**args, "default_branch_image": None}):
        doc = _render(findings, **other)
        assert type(doc["vulnerabilities"]) is list
        monkeypatch.setattr(gitlab, "_WARM", {})
        assert gitlab.encode(doc, newline=True) == gitlab.encode(_render(findings, **other),
                                                                 newline=True)
        gitlab.warm(findings)
    assert type(_render(findings[1:], **args)["vulnerabilities"]) is list
    grown = _render(findings, **args)
    grown["vulnerabilities"].extend(_render(findings[:1], **args)["vulnerabilities"])
    gitlab.write(tmp_path / "grown.json", grown)
    assert json.loads((tmp_path / "grown.json").read_bytes())["vulnerabilities"] == \
        json.loads(plain)["vulnerabilities"] + json.loads(plain)["vulnerabilities"][:1]


def _alike() -> tuple[Finding, ...]:
    """Findings of one CVE that share some values and not others (the same text in another
    string, another title, description, alias, link, rating, source or EPSS), without
    title or description, with each fix state, and one that orjson cannot encode."""
    def again(text: str) -> str:  # the same text, another string
        return "".join(list(text))

    cvss = (Cvss("nvd", "3.1", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),)
    base = Finding("CVE-2024-1", "libssl", "1.0", Severity.HIGH, title="TLS bug",
                   description="A bug in TLS.", links=("https://example.com/1",), cvss=cvss,
                   sources=("trivy",), fixed_versions=("1.1",), fix_state=FixState.FIXED)
    import msgspec

    def like(**changes: object) -> Finding:
        return msgspec.structs.replace(base, **changes)

    return (
        base, like(package="libcrypto"), like(package="a", title=again("TLS bug")),
        like(package="b", title="Another title"), like(package="c", description="Other."),
        like(package="d", aliases=("GHSA-xxxx-yyyy-zzzz",)),
        like(package="e", links=("https://example.com/2",)), like(package="f", cvss=()),
        like(package="g", sources=("trivy", "grype")), like(package="h", epss=0.25),
        like(package="i", severity=Severity.CRITICAL), like(package="j", title=None),
        like(package="k", title=None, description=None), like(package="l", title=""),
        like(package="m", fixed_versions=(), fix_state=FixState.WONT_FIX),
        like(package="n", fixed_versions=(), fix_state=FixState.END_OF_LIFE),
        like(package="o", fixed_versions=(), fix_state=FixState.NOT_FIXED),
        like(package="p", fixed_versions=(), fix_state=FixState.UNKNOWN),
        like(package="q", description="a lone surrogate: \ud800"),
        like(package="r"), like(id="CVE-2024-2", package="s"),
        # A title past the schema's 255 characters (the name is cut, the description is
        # the title's whole when there is none), and one with aliases.
        like(id="CVE-2024-3", package="x", title="T" * 300, description=None),
        like(id="CVE-2024-4", package="y", aliases=("GHSA-aaaa-bbbb-cccc", "DSA-1")),
        like(id="CVE-2024-4", package="z", aliases=("GHSA-aaaa-bbbb-cccc", "DSA-1"),
             fixed_versions=("1.1",)),
        # EPSS alike but not the same (0.0, -0.0; 1, 1.0).
        like(package="t", epss=0.0), like(package="u", epss=-0.0), like(package="v", epss=1),
        like(package="w", epss=1.0),
    )


@pytest.mark.parametrize("odd", [False, True], ids=["encoded", "one-not-encodable"])
def test_findings_of_one_vulnerability_made_ahead_are_the_same_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, odd: bool) -> None:
    # What warm() makes once for the findings of one vulnerability is used only for those
    # that say the same of it: every other value is made as without anything made ahead.
    findings = _alike() if odd else tuple(f for f in _alike() if f.package != "q")
    args = {"image": IMAGE, "operating_system": "debian 12", "default_branch_image": "app:1"}
    monkeypatch.setattr(gitlab, "_WARM", {})
    monkeypatch.setattr(gitlab, "_WHOLE", None)
    plain = _render(findings, **args)
    assert all(type(v) is dict for v in plain["vulnerabilities"])
    expected = gitlab.encode(plain, newline=True)
    gitlab.warm(findings)
    gitlab.warm_image(findings, **args)
    ahead = _render(findings, **args)
    assert (type(ahead["vulnerabilities"]) is gitlab._Vulnerabilities) is not odd
    gitlab.write(tmp_path / "ahead.json", ahead)
    assert (tmp_path / "ahead.json").read_bytes() == gitlab.encode(ahead, newline=True) \
        == expected
    other = {**args, "image": IMAGE + "x"}  # (encoded ahead, ids made here)
    assert gitlab.encode(_render(findings, **other)) == \
        gitlab.encode(json.loads(gitlab.encode(_render(findings, **other))))
    ids = [v["id"] for v in json.loads(gitlab.encode(_render(findings, **other)))[
        "vulnerabilities"]]
    assert ids == [gitlab.vulnerability_id(IMAGE + "x", f) for f in findings] == [
        str(uuid.uuid5(gitlab.ID_NAMESPACE, f"{IMAGE}x\0{f.id}\0{f.package}\0{f.version}"))
        for f in findings]
