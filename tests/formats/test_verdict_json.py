"""imggate-verdict.json: schema-valid, deterministic, consistent with the verdict."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from formats.verdict_samples import (
    CONTROL,
    SURROGATE,
    XSS_TITLE,
    allow_image,
    deny_image,
    error_image,
    finding,
    real_verdict,
    sample_verdict,
    single,
)
from imggate.errors import Error
from imggate.formats import verdict_json
from imggate.models import Cvss, Decision, Finding, Mode, RuleResult, Severity, Verdict
from imggate.values import replace

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "src/imggate/data/verdict.schema.json").read_text())
DOC = (REPO / "docs/verdict-schema.md").read_text()


def validate(doc: dict) -> None:
    validator = jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    validator.validate(doc)


def test_document_is_valid_against_the_published_schema():
    doc = json.loads(verdict_json.render(sample_verdict()))
    validate(doc)
    assert doc["schema_version"] == verdict_json.SCHEMA_VERSION
    assert doc["$schema"] == SCHEMA["$id"]


def test_real_scanner_reports_give_a_valid_document():
    v = real_verdict()
    doc = json.loads(verdict_json.render(v))
    validate(doc)
    for image, iv in zip(doc["images"], v.images, strict=True):
        assert image["findings_total"] == len(iv.findings) == sum(image["counts"].values())
        assert image["reports"][0]["findings"] == len(iv.reports[0].findings)


def test_overall_decision_and_exit_code_of_a_mixed_run():
    # 1 if any image is denied (a retry cannot fix that), else 3 if any is undecided, else 0.
    cases = [
        ((allow_image(),), "allow", 0),
        ((allow_image(), deny_image(3)), "deny", 1),
        ((allow_image(), deny_image(3), error_image()), "deny", 1),
        ((deny_image(3), error_image(), error_image()), "deny", 1),
        ((allow_image(), error_image()), "error", 3),
        ((), "error", 3),  # nothing checked is never an allow
    ]
    for images, decision, code in cases:
        v = Verdict(env="prod", images=images, generated=datetime(2026, 1, 1, tzinfo=UTC))
        doc = json.loads(verdict_json.render(v))
        assert (doc["decision"], doc["exit_code"]) == (decision, code)
        assert doc["summary"]["images"] == len(images)
        validate(doc)


def test_per_image_fields():
    doc = json.loads(verdict_json.render(sample_verdict(60)))
    allow, deny, err = doc["images"]

    assert allow["decision"] == "allow"
    assert allow["pinned"] == f"registry.example.com/team/app@{allow_image().image.digest}"
    assert allow["digest"] == str(allow_image().image.digest)
    assert allow["violations"] == [] and allow["warnings"] == []
    assert [e["status"] for e in allow["exceptions"]] == ["used", "stale"]
    assert allow["exceptions"][0]["expires"] == "2027-01-01"
    assert [s["verified"] for s in allow["signatures"]] == [True, True]
    assert allow["signatures"][1]["predicate_type"] == "https://slsa.dev/provenance/v1"
    assert allow["image"]["config"]["created"] == "2026-11-01T12:00:00Z"
    assert allow["image"]["config"]["user"] == "10001"
    assert [p["platform"] for p in allow["image"]["platforms"]] == ["linux/amd64", "linux/arm64/v8"]
    assert allow["suppressed"][0]["suppressed_by"] == "exception: patched in our fork"

    assert deny["decision"] == "deny"
    assert [v["rule"] for v in deny["violations"]] == ["severity"]
    assert deny["violations"][0]["mode"] == "enforce"
    assert deny["violations"][0]["messages"][1] == XSS_TITLE
    assert [w["rule"] for w in deny["warnings"]] == ["tags", "labels"]
    assert len(deny["rules"]) == 4
    assert deny["findings_total"] == 63

    assert err["decision"] == "error"
    assert err["pinned"] is None and err["digest"] is None and err["image"] is None
    assert "connection refused" in err["error"]


def test_counts_per_severity_are_exact_and_complete():
    v = sample_verdict(600)
    doc = json.loads(verdict_json.render(v))
    deny = doc["images"][1]
    expected = {s.value: 0 for s in Severity}
    for f in v.images[1].findings:
        expected[f.severity.value] += 1
    assert deny["counts"] == expected
    assert list(deny["counts"]) == ["Critical", "High", "Medium", "Low", "Info", "Unknown"]
    assert sum(deny["counts"].values()) == deny["findings_total"] == 603
    assert doc["summary"]["counts"]["Low"] == expected["Low"] + 1  # + the allowed image's one


def test_findings_are_worst_first_and_carry_fixed_versions():
    doc = json.loads(verdict_json.render(sample_verdict(100)))
    rows = doc["images"][1]["findings"]
    ranks = [Severity(r["severity"]).rank for r in rows]
    assert ranks == sorted(ranks, reverse=True)
    openssl = next(r for r in rows if r["package"] == "openssl")
    assert openssl["fixed_versions"] == ["3.0.2"] and openssl["fix_state"] == "fixed"


def test_output_is_deterministic_whatever_the_input_order():
    v = sample_verdict(50)
    first = verdict_json.render(v, tool_version="1.0")
    assert first == verdict_json.render(v, tool_version="1.0")

    # Same facts, findings and labels in another order: same bytes.
    deny = v.images[1]
    shuffled_findings = replace(deny, findings=tuple(reversed(deny.findings)))
    allow = v.images[0]
    cfg = allow.image.config
    shuffled_labels = replace(allow, image=replace(
        allow.image, config=replace(cfg, labels=dict(reversed(list(cfg.labels.items()))))))
    v2 = replace(v, images=(shuffled_labels, shuffled_findings, v.images[2]))
    assert verdict_json.render(v2, tool_version="1.0") == first


def test_key_order_is_the_documented_order():
    doc = verdict_json.document(sample_verdict(1))
    assert list(doc) == list(SCHEMA["properties"])
    image_keys = list(SCHEMA["$defs"]["image_verdict"]["properties"])
    for image in doc["images"]:
        assert list(image) == image_keys


def test_every_field_is_documented():
    # The Markdown reference and the JSON schema must not drift apart.
    documented = set(re.findall(r"`([A-Za-z_$]+)`", DOC))
    for key in SCHEMA["properties"]:
        assert key in documented, key
    for name, definition in SCHEMA["$defs"].items():
        for key in definition.get("properties", {}):
            assert key in documented, f"{name}.{key}"


def test_hostile_strings_round_trip_and_file_is_ascii():
    text = verdict_json.render(sample_verdict(5))
    assert text.isascii()
    doc = json.loads(text)
    deny = doc["images"][1]
    assert deny["warnings"][0]["messages"][1] == CONTROL
    assert SURROGATE in deny["notes"]
    assert deny["image"]["config"]["labels"] == {"evil": XSS_TITLE}


def test_one_finding_per_line_and_placeholder_lookalikes_survive():
    lookalike = "imggate-" + "0" * 32 + "-0-findings"
    v = single(replace(deny_image(20), reference=lookalike, notes=(lookalike,)))
    text = verdict_json.render(v)
    doc = json.loads(text)
    assert doc["images"][0]["reference"] == lookalike
    assert doc["images"][0]["notes"] == [lookalike]
    finding_lines = [line for line in text.splitlines() if line.startswith('        {"id": ')]
    assert len(finding_lines) == 23
    assert [json.loads(line.rstrip(",")) for line in finding_lines] == doc["images"][0]["findings"]


def test_non_finite_cvss_is_null_not_invalid_json():
    f = finding(1, Severity.HIGH, cvss=(Cvss("nvd", "3.1", None, float("nan")),))
    v = single(replace(deny_image(0), findings=(f,)))
    doc = json.loads(verdict_json.render(v))
    assert doc["images"][0]["findings"][0]["cvss"] is None


def test_write_creates_the_directory_and_returns_the_path(tmp_path):
    out = tmp_path / "reports" / "nested"
    path = verdict_json.write(sample_verdict(3), out)
    assert path == out / "imggate-verdict.json"
    assert json.loads(path.read_text())["exit_code"] == 1
    assert [p.name for p in out.iterdir()] == ["imggate-verdict.json"]  # no temp file left


def test_write_failure_is_an_imggate_error_naming_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(Error, match=r"cannot write report .*file"):
        verdict_json.write(sample_verdict(1), blocker)


@settings(max_examples=60, deadline=None)
@given(reference=st.text(max_size=40), message=st.text(max_size=80), env=st.text(max_size=10))
def test_any_text_gives_valid_json(reference, message, env):
    iv = replace(error_image(), reference=reference, env=env, decision=Decision.DENY, rules=(
        RuleResult(message or "r", False, Mode.ENFORCE, (message,)),))
    v = Verdict(env=env, images=(iv,), generated=datetime(2026, 1, 1, tzinfo=UTC))
    doc = json.loads(verdict_json.render(v))
    validate(doc)
    assert doc["images"][0]["reference"] == reference
    assert doc["images"][0]["violations"][0]["messages"] == [message]


@pytest.mark.parametrize("make", [lambda: sample_verdict(5), real_verdict],
                         ids=["sample", "real"])
def test_the_document_is_the_text_json_writes(make):
    # The document outside the findings lines is encoded by msgspec (in C) where that
    # writes what json.dumps(indent=2, ensure_ascii=True) writes, and by json elsewhere:
    # either way, the same text.
    v = make()
    doc = verdict_json._document(v, None, with_findings=False)
    assert verdict_json.indented_json(doc) == json.dumps(doc, indent=2, ensure_ascii=True,
                                                     allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(reference=st.text(max_size=40), message=st.text(max_size=80), env=st.text(max_size=10),
       count=st.integers(-(2**70), 2**70))
# DEL is ASCII that json escapes and msgspec does not (found by this test): json's turn.
@example(reference="", message="", env="\x7f", count=0)
@example(reference="a\x7fb", message="\x7f", env="", count=0)
def test_any_document_is_the_text_json_writes(reference, message, env, count):
    iv = replace(error_image(), reference=reference, env=env, decision=Decision.DENY, rules=(
        RuleResult(message or "r", False, Mode.ENFORCE, (message,)),),
        exceptions_unlisted=count)
    v = Verdict(env=env, images=(iv,), generated=datetime(2026, 1, 1, tzinfo=UTC))
    doc = verdict_json._document(v, None, with_findings=False)
    assert verdict_json.indented_json(doc) == json.dumps(doc, indent=2, ensure_ascii=True,
                                                     allow_nan=False)


_strs = st.text(max_size=30) | st.sampled_from([XSS_TITLE, CONTROL, SURROGATE, "\u202e", ""])


@settings(max_examples=150, deadline=None)
@given(f=st.builds(
    finding, i=st.integers(0, 5), severity=st.sampled_from(list(Severity)),
    aliases=st.lists(_strs, max_size=3).map(tuple), package_type=st.none() | _strs,
    title=st.none() | _strs, fixed_versions=st.lists(_strs, max_size=3).map(tuple),
    sources=st.lists(_strs, max_size=2).map(tuple),
    cvss=st.lists(st.builds(Cvss, source=st.just("nvd"), version=st.none(), vector=st.none(),
                            score=st.none() | st.floats() | st.integers(0, 10)),
                  max_size=3).map(tuple)),
    why=st.none() | _strs)
def test_finding_lines_are_exactly_the_json_of_the_finding(f, why):
    enc = verdict_json._FindingLines()
    opts = {"ensure_ascii": True, "allow_nan": False, "separators": (", ", ": ")}
    assert enc(f) == json.dumps(verdict_json._finding(f), **opts)
    assert enc(f, why) == json.dumps({**verdict_json._finding(f), "suppressed_by": why}, **opts)


_findings = st.builds(
    finding, i=st.integers(0, 4), severity=st.sampled_from([Severity.HIGH, Severity.LOW]),
    package=st.sampled_from(["a", "b"]),
    aliases=st.sampled_from([(), ("GHSA-1",)]), package_type=st.none() | st.just("deb"),
    title=st.sampled_from([None, "t", "".join(["t"]), "other"]),
    fixed_versions=st.sampled_from([(), ("1.1",)]), sources=st.sampled_from([("a",), ("b",)]),
    cvss=st.sampled_from([(), *((Cvss("nvd", None, None, score),)
                                 for score in (7.5, 5, 5.0, 0.0, -0.0, 0, float("nan")))]))


@settings(max_examples=150, deadline=None)
@given(fs=st.lists(_findings, max_size=12))
def test_findings_of_one_vulnerability_each_get_their_own_line(fs):
    # Lines made together encode what the findings of one id share once: only findings
    # that say the same of it (the same title in another string too) get the same text.
    opts = {"ensure_ascii": True, "allow_nan": False, "separators": (", ", ": ")}
    assert verdict_json._FindingLines().many(fs) == [
        json.dumps(verdict_json._finding(f), **opts) for f in fs]


def _mostly(usual: list[object], odd: list[object]) -> st.SearchStrategy[object]:
    return st.sampled_from(usual * 8 + odd)


_scores = st.none() | st.sampled_from([0.0, -0.0, 5, 7.5, 9.8, 10.0]) | st.floats(0, 10) | \
    _mostly([1.0], [float("nan"), -1.0, float("inf"), 2**60])


#: Findings whose ids, packages and versions may hold a NUL, and whose scores may be NaN,
#: negative, infinite or huge: where one string key per finding could sort otherwise.
_odd_findings = st.lists(st.builds(
    Finding, id=_mostly(["CVE-1", "CVE-2", "GHSA-1"], ["CVE-1\0x"]),
    package=_mostly(["a", "b", ""], ["a\0"]), version=_mostly(["1", "2"], ["1\0"]),
    severity=st.sampled_from(list(Severity)),
    cvss=st.lists(st.builds(Cvss, source=st.just("nvd"), version=st.none(), vector=st.none(),
                            score=_scores), max_size=2).map(tuple)), max_size=15)


@settings(max_examples=300, deadline=None)
@given(fs=_odd_findings)
def test_worst_first_is_the_order_of_the_sort_key(fs):
    # The order of one string key per finding, or of the tuples where that could differ
    # (a NUL in an id, package or version; a score with no such text: NaN, negative).
    assert list(verdict_json._sorted_worst_first(tuple(fs))) == \
        sorted(fs, key=verdict_json.finding_sort_key)


@settings(max_examples=300, deadline=None)
@given(fs=_odd_findings)
def test_worst_first_of_a_merge_is_the_order_of_the_sort_key(fs):
    # A merge's findings (most severe first, then id, package, version) sorted by their
    # severity and score alone: the sort keeps the merge's order among those alike.
    from imggate.scanners.merge import merge_findings

    merged = merge_findings(fs)
    ordered = verdict_json.worst_first.of_merge(merged)
    assert list(ordered) == sorted(merged, key=verdict_json.finding_sort_key)
    assert verdict_json.worst_first(merged) is ordered  # (remembered for the reports)


def test_worst_first_sorts_and_reuses_only_the_same_tuple():
    findings = sample_verdict(40).images[1].findings
    first = verdict_json.worst_first(findings)
    assert list(first) == sorted(findings, key=verdict_json.finding_sort_key)
    assert verdict_json.worst_first(findings) is first
    other = tuple(reversed(findings))
    assert verdict_json.worst_first(other) == first and verdict_json.worst_first(other) is not first
    assert verdict_json.worst_first(findings[:3]) == tuple(
        sorted(findings[:3], key=verdict_json.finding_sort_key))


def test_worst_first_reuses_the_same_findings_in_another_tuple_and_a_remembered_order():
    findings = sample_verdict(40).images[1].findings
    first = verdict_json.worst_first(findings)
    assert verdict_json.worst_first(tuple(list(findings))) is first  # same objects, in order
    assert verdict_json.worst_first(findings[:-1]) is not first
    given = tuple(sorted(findings, key=verdict_json.finding_sort_key))
    verdict_json.worst_first.remember(findings, given)  # (as a check's reading child sends)
    assert verdict_json.worst_first(tuple(list(findings))) is given


def test_not_scanned_evidence_and_provenance():
    from formats.verdict_samples import RUN, unscanned_image

    v = Verdict(env="dev", images=(allow_image(), unscanned_image()),
                generated=datetime(2026, 11, 22, 7, 0, tzinfo=UTC), run=RUN)
    doc = json.loads(verdict_json.render(v))
    validate(doc)
    assert doc["policy"] == {
        "rules_source": "rules/default.yaml", "rules_sha256": "ab" * 32,
        "rules_found_by": "./rules/", "env": "prod", "env_origin": "CI_ENVIRONMENT_TIER",
        "env_reason": "CI_ENVIRONMENT_TIER=production (alias 'production')", "notes": []}
    assert doc["summary"]["not_scanned"] == 1 and doc["error"] is None
    scanned, unscanned = doc["images"]
    assert scanned["scanned"] is True and unscanned["scanned"] is False
    (ev,) = scanned["evidence"]
    assert ev["scanner"] == "trivy" and ev["scanner_version"] == "0.57.0"
    assert (ev["created"], ev["age_seconds"]) == ("2026-11-22T04:00:00Z", 3 * 3600)
    assert (ev["binding"], ev["used"], ev["kind"]) == ("bound", True, "report")
    (refused,) = unscanned["evidence"]
    assert (refused["binding"], refused["used"], refused["findings"]) == (
        "other-image", False, 1)
    assert unscanned["findings"] == [] and unscanned["reports"] == []


def test_images_judged_alike_share_their_object_and_the_text_is_json_of_the_document() -> None:
    # An audit's tags that name the same image: each image's object (without findings) is
    # made once and given each tag's reference; the file reads as document(), also where
    # verdicts of one image differ, or have findings and suppressions.
    images = [allow_image(), deny_image(3), error_image()]
    tags = [replace(iv, reference=f"reg.example/app:t{n}<&>\"'{CONTROL}")
            for n, iv in enumerate(images * 3)]
    tags.append(replace(images[0], reference="reg.example/app:noted", notes=("a note",)))
    tags.append(replace(images[1], reference="reg.example/app:allowed",
                        decision=Decision.ALLOW,
                        suppressed=((images[1].findings[0], "vex: not affected"),)))
    v = replace(sample_verdict(5), images=tuple(tags))
    text = verdict_json.render(v)
    assert json.loads(text) == verdict_json.document(v)
    assert [i["reference"] for i in json.loads(text)["images"]] == [
        iv.reference for iv in tags]


def test_a_findings_block_made_ahead_is_written_as_the_block_made_here(monkeypatch):
    v = sample_verdict(300)
    deny = v.images[1]
    one = replace(v, images=(deny,))
    fewer = replace(v, images=(replace(deny, findings=deny.findings[1:]),))
    plain, plain_fewer = verdict_json.render(one), verdict_json.render(fewer)
    monkeypatch.setattr(verdict_json, "_block", None)
    # Made for these findings, in a tuple of their own (as a check's reading child sends
    # them): used, and the same bytes; other findings' block is made as ever.
    findings = tuple(list(deny.findings))
    verdict_json.remember_block(verdict_json.worst_first(findings),
                                verdict_json.findings_block(findings))
    made = verdict_json.findings_block
    monkeypatch.setattr(verdict_json, "findings_block",
                        lambda f: pytest.fail("made after the verdict"))
    assert verdict_json.render(one) == plain
    with pytest.raises(pytest.fail.Exception):
        verdict_json.render(fewer)
    monkeypatch.setattr(verdict_json, "findings_block", made)
    assert verdict_json.render(fewer) == plain_fewer


def test_a_block_made_ahead_as_bytes_is_written_as_it_came(tmp_path, monkeypatch):
    # A check's reading child leaves the block as ASCII bytes in a file this process maps:
    # written from there, the file is the text render() gives, byte for byte.
    lookalike = "imggate-" + "0" * 32 + "-0-findings"
    deny = replace(deny_image(300), reference=lookalike, notes=(lookalike,))
    v = single(deny)
    plain = verdict_json.render(v)
    findings = tuple(list(deny.findings))
    block = verdict_json.findings_block(findings).encode("ascii")
    monkeypatch.setattr(verdict_json, "_block", None)
    verdict_json.remember_block(verdict_json.worst_first(findings), memoryview(block))
    monkeypatch.setattr(verdict_json, "findings_block",
                        lambda f: pytest.fail("made after the verdict"))
    assert verdict_json.render(v) == plain
    path = verdict_json.write(v, tmp_path)
    assert path.read_bytes() == plain.encode("ascii")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_block_made_ahead_is_redacted_with_the_rest(tmp_path, monkeypatch):
    from imggate.redact import MASK, SECRETS, register

    secret = "s3cret-token-value"
    deny = deny_image(30)
    findings = tuple(replace(f, title=f"x {secret} y") for f in deny.findings)
    v = single(replace(deny, findings=findings, reference=f"registry/{secret}"))
    block = verdict_json.findings_block(findings).encode("ascii")
    monkeypatch.setattr(verdict_json, "_block", None)
    verdict_json.remember_block(verdict_json.worst_first(findings), memoryview(block))
    register(secret)
    try:
        text = verdict_json.write(v, tmp_path).read_text(encoding="ascii")
    finally:
        SECRETS.clear()
    assert secret not in text and text.count(MASK) == len(findings) + 1
    assert json.loads(text)["images"][0]["findings"][0]["title"] == f"x {MASK} y"


def test_counts_are_counted_again_for_other_findings():
    first, second = sample_verdict(40).images[1].findings, sample_verdict(7).images[1].findings
    for findings in (first, second, tuple(list(first)), first[:-1], list(second)):
        expected = {s.value: 0 for s in verdict_json.SEVERITY_ORDER}
        for f in findings:
            expected[f.severity.value] += 1
        counted = verdict_json.severity_counts(findings)
        assert counted == expected and list(counted) == list(expected)
        counted["Critical"] += 1  # the caller's own dict
        assert verdict_json.severity_counts(findings) == expected
