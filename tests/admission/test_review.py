"""The AdmissionReview reader and the response writer (no server needed)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from admission.serve_harness import pod, review
from fixture_paths import FIXTURES
from imggate.admission.review import (
    API_VERSIONS,
    MAX_WARNING_CHARS,
    MAX_WARNINGS_BYTES,
    Answer,
    BadReview,
    ReviewRequest,
    bad_request_body,
    bounded_warnings,
    decode_well_formed,
    parse_review,
    read_fields,
    response_body,
)

ADMISSION = FIXTURES / "admission"
EVERY_FIELD = ADMISSION / "k8s-api-admission.k8s.io.v1.AdmissionReview.json"
FIXTURE_FILES = sorted(p for p in ADMISSION.glob("*.json") if p != EVERY_FIELD)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_every_real_review_parses_with_its_uid_and_version(path: Path) -> None:
    doc = json.loads(path.read_text())
    req = parse_review(path.read_bytes())
    assert req.uid == doc["request"]["uid"]
    assert req.api_version == doc["apiVersion"]
    assert req.kind.kind == doc["request"]["kind"]["kind"]
    assert req.operation == doc["request"]["operation"]


def test_dry_run_subresource_and_quirky_old_object() -> None:
    # Kubernetes' round-trip fixture sets every field, with placeholder values: its
    # operation "operationValue" is none the API server sends, so it is refused in kind.
    doc = json.loads(EVERY_FIELD.read_text())
    e = _bad(EVERY_FIELD.read_bytes())
    assert "operationValue" in e.message and e.uid == doc["request"]["uid"]
    doc["request"]["operation"] = "UPDATE"
    every = parse_review(orjson.dumps(doc))
    assert every.dry_run is True and every.sub_resource == "subResourceValue"
    # connaisseur's CronJob capture sends "oldObject": "None" (a string): never read.
    cron = parse_review((ADMISSION / "connaisseur-04_cronjob.json").read_bytes())
    assert cron.object is not None and cron.api_version == "admission.k8s.io/v1beta1"


def _bad(body: bytes) -> BadReview:
    with pytest.raises(BadReview) as e:
        parse_review(body)
    return e.value


def test_bad_bodies_say_why() -> None:
    assert "not JSON" in _bad(b"{nope").message
    assert "not an AdmissionReview" in _bad(b"[1, 2]").message
    assert "not an AdmissionReview" in _bad(b'{"kind": "Pod", "apiVersion": "v1"}').message
    no_uid = review(pod(["a:1"]))
    del no_uid["request"]["uid"]
    e = _bad(orjson.dumps(no_uid))
    assert "uid is missing" in e.message and e.uid is None
    deep = b'{"a":' * 200_000 + b"1" + b"}" * 200_000  # crashed orjson 3.8
    assert "nests too deeply" in _bad(deep).message
    nested = json.dumps(review(pod(["a:1"])))[:-2] + ', "x": ' + "[" * 5000 + "]" * 5000 + "}}"
    assert "nests too deeply" in _bad(nested.encode()).message
    big = _bad(b" " * (9 * 1024 * 1024))
    assert big.status == 413


def test_a_problem_after_the_uid_is_a_denial_in_kind() -> None:
    doc = review(pod(["a:1"]), api_version="admission.k8s.io/v1beta1", uid="u-1")
    doc["request"]["operation"] = "EXPLODE"
    e = _bad(orjson.dumps(doc))
    status, body = bad_request_body(e)
    answer = orjson.loads(body)
    assert status == 200 and answer["apiVersion"] == "admission.k8s.io/v1beta1"
    assert answer["response"]["uid"] == "u-1" and answer["response"]["allowed"] is False
    assert "EXPLODE" in answer["response"]["status"]["message"]
    status, body = bad_request_body(BadReview("body is not JSON"))
    assert status == 400 and b"not JSON" in body


def test_response_in_kind_with_patch_warnings_and_audit() -> None:
    patch = ({"op": "replace", "path": "/spec/containers/0/image", "value": "a:1@sha256:00"},)
    body = orjson.loads(response_body("admission.k8s.io/v1beta1", "u", Answer(
        True, None, ("w" * 500,), {"images": "[]"}, patch)))
    r = body["response"]
    assert body["apiVersion"] == "admission.k8s.io/v1beta1" and body["kind"] == "AdmissionReview"
    assert r["allowed"] is True and "status" not in r
    assert len(r["warnings"][0]) == MAX_WARNING_CHARS
    assert r["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(r["patch"])) == list(patch)
    denied = orjson.loads(response_body("admission.k8s.io/v1", "u",
                                        Answer(False, "x" * 10_000, (), {}, patch)))["response"]
    assert denied["status"]["code"] == 403 and len(denied["status"]["message"]) <= 1500
    assert "patch" not in denied  # a denial never mutates


def test_warnings_stay_within_the_api_servers_limits() -> None:
    many = [f"image-{i}: severity: {'x' * 200}" for i in range(200)]
    out = bounded_warnings(many)
    assert all(len(w) <= MAX_WARNING_CHARS for w in out)
    assert sum(len(w.encode()) for w in out) <= MAX_WARNINGS_BYTES
    assert out[-1].startswith("...") and "more warnings" in out[-1]
    assert bounded_warnings(["a", "b"]) == ["a", "b"]


def _outcome(body: bytes) -> ReviewRequest | BadReview:
    # Anything but these two escaping parse_review fails the test.
    try:
        return parse_review(body)
    except BadReview as e:
        return e


def test_what_json_does_not_allow_is_not_json() -> None:
    # Python's json module reads these; JSON (RFC 8259) and the API server do not.
    doc = json.dumps(review(pod(["registry.example.com/app:1"])))
    for bad in (doc.replace('"CREATE"', "Infinity"), doc.replace('"CREATE"', "NaN"),
                doc.replace('"CREATE"', '"\\ud800"')):
        assert _bad(bad.encode()).message == "body is not JSON"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=30)


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_property_any_json_is_a_review_or_a_bad_review(value: Any) -> None:
    outcome = _outcome(json.dumps(value).encode())
    assert outcome.message if isinstance(outcome, BadReview) else outcome.uid


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["uid", "kind", "operation", "dryRun", "object", "namespace",
                        "subResource", "oldObject", "resource", "name"]),
       json_values)
def test_property_any_field_replaced_is_a_review_or_a_bad_review(field: str,
                                                                 value: Any) -> None:
    doc = review(pod(["registry.example.com/app:1"]))
    doc["request"][field] = value
    outcome = _outcome(json.dumps(doc).encode())
    if isinstance(outcome, BadReview):
        assert outcome.message
        if field != "uid":
            assert outcome.uid == doc["request"]["uid"]  # answered in kind, as a denial
    else:
        assert outcome.uid == doc["request"]["uid"]


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_property_any_bytes_never_crash_the_reader(body: bytes) -> None:
    outcome = _outcome(body)
    assert isinstance(outcome, BadReview | ReviewRequest)


# The typed decoder is a fast path: it may only accept what the field-by-field reader
# accepts, and must then read the same request.

_texts = st.one_of(st.sampled_from(["", "v1", "apps", "Pod", "prod", "a" * 253, "a" * 254,
                                    "CREATE", "UPDATE", "EXPLODE", "\u00e9\u2603"]),
                   st.text(max_size=8))
_field_values = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), _texts,
                          st.dictionaries(st.sampled_from(["group", "version", "kind",
                                                           "resource", "apiVersion"]),
                                          st.one_of(st.none(), _texts), max_size=3),
                          st.lists(st.integers(), max_size=2))


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["uid", "kind", "operation", "dryRun", "object",
                                        "namespace", "subResource", "oldObject", "resource",
                                        "name", "userInfo"]), _field_values),
       st.sampled_from([*API_VERSIONS, "v1", None]), st.booleans())
def test_property_the_fast_decoder_agrees_with_the_reader(changes: dict[str, Any],
                                                          api: str | None,
                                                          drop_uid: bool) -> None:
    doc = review(pod(["registry.example.com/app:1"]))
    doc["request"].update(changes)
    if api is None:
        del doc["apiVersion"]
    else:
        doc["apiVersion"] = api
    if drop_uid:
        doc["request"].pop("uid", None)
    body = json.dumps(doc).encode()
    fast = decode_well_formed(body)  # never raises: it defers
    try:
        slow: ReviewRequest | BadReview = read_fields(body)
    except BadReview as e:
        slow = e
    if fast is not None:
        assert fast == slow
    if isinstance(slow, ReviewRequest):
        assert parse_review(body) == slow


def test_a_well_formed_review_takes_the_fast_path() -> None:
    body = (ADMISSION / "connaisseur-04_cronjob.json").read_bytes()
    assert decode_well_formed(body) == read_fields(body)
    assert decode_well_formed(b'{"kind": "Pod"}') is None


@pytest.mark.parametrize(("text", "cut"), [
    # Cut mid-word before ("... give the d…"); now after the last whole word that fits.
    ("registry.example.com/shop/web:1.2.0: signatures: no signature verified: "
     "the image has no cosign signature; sign it in CI or give the digest of a signed build",
     "registry.example.com/shop/web:1.2.0: signatures: no signature verified: "
     "the image has no cosign signature; sign it in…"),
    # A word longer than half the limit is cut inside (a digest has no spaces to cut at).
    ("image@sha256:" + "a" * 200, "image@sha256:" + "a" * 106 + "…"),
    ("short enough", "short enough"),
    # A cut that falls just after a word keeps the whole word, without its comma.
    ("x" * 60 + " " + "y" * 58 + ", z", "x" * 60 + " " + "y" * 58 + "…"),
])
def test_warnings_are_cut_between_words_with_an_ellipsis(text: str, cut: str) -> None:
    [got] = bounded_warnings([text])
    assert got == cut and len(got) <= MAX_WARNING_CHARS
