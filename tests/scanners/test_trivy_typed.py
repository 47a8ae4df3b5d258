"""The typed decode of large Trivy reports: the checked reading's result, or no answer.

Every document is read both ways: the typed path (:mod:`imggate.scanners.trivy_typed`)
must give exactly what the checked adapter gives, or decline (``None``) so the checked
adapter decides, errors worded as before included.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from imggate.errors import ReportError
from imggate.models import ScanReport
from imggate.scanners import trivy, trivy_typed
from imggate.scanners._doc import _FAST_DECODE_MIN
from imggate.scanners.detect import load_report
from scanners.report_fixtures import TRIVY_JSON, TRIVY_LEGACY, fixture_id, load


def checked(doc: Any, source: str = "r.json") -> ScanReport:
    """The checked adapter's reading of ``doc``."""
    return trivy.PARSER.parse(doc, source=source)


@pytest.mark.parametrize("path", TRIVY_JSON, ids=fixture_id)
def test_every_real_report_reads_the_same_both_ways(path: Path) -> None:
    typed = trivy_typed.parse(path.read_bytes(), str(path))
    assert typed is not None
    assert typed == checked(load(path), str(path))


@pytest.mark.parametrize("path", TRIVY_LEGACY, ids=fixture_id)
def test_the_legacy_array_is_left_to_the_checked_reading(path: Path) -> None:
    assert trivy_typed.parse(path.read_bytes(), str(path)) is None


def _base() -> dict[str, Any]:
    return load(next(p for p in TRIVY_JSON if p.name == "debian-buster.json"))


def _first(doc: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in doc["Results"] if r.get("Vulnerabilities"))["Vulnerabilities"][0]


def _last(doc: dict[str, Any]) -> dict[str, Any]:
    return [r for r in doc["Results"] if r.get("Vulnerabilities")][-1]["Vulnerabilities"][-1]


def _set(field: str, value: Any) -> Any:
    def change(doc: dict[str, Any]) -> None:
        _first(doc)[field] = value
    return change


#: Documents the typed path must decline: the checked reading refuses them (with its
#: wording) or reads them in a way the Structs do not state (cut, re-spelled, legacy).
DECLINED = {
    "severity not a string": _set("Severity", 5),
    "severity spelled lower-case": _set("Severity", "critical"),
    "blank id": _set("VulnerabilityID", "   "),
    "empty package": _set("PkgName", ""),
    "installed version null": _set("InstalledVersion", None),
    "id too long": _set("VulnerabilityID", "C" * 1025),
    "description to cut": _set("Description", "d" * ((1 << 20) + 1)),
    "reference not a string": _set("References", ["https://a", 7]),
    "reference too long": _set("References", ["https://a/" + "x" * 8192]),
    "references not an array": _set("References", "https://a"),
    "ratings not an object": _set("CVSS", ["nvd"]),
    # References and ratings are checked once per distinct text: a later one counts too.
    "reference too long, last finding": lambda d: _last(d).update(
        References=[*_first(d).get("References", ()), "https://a/" + "x" * 8192]),
    "score out of range, last finding": lambda d: _last(d).update(
        CVSS={"nvd": {"V3Score": 11}}),
    "score out of range": _set("CVSS", {"nvd": {"V3Score": 10.5}}),
    "rating not an object": _set("CVSS", {"nvd": None}),
    "layer not an object": _set("Layer", "sha256:x"),
    "schema version 1": lambda d: d.update(SchemaVersion=1),
    "schema version true": lambda d: d.update(SchemaVersion=True),
    "neither results nor name": lambda d: [d.pop("Results"), d.pop("ArtifactName")],
    "created at not a time": lambda d: d.update(CreatedAt="yesterday"),
    "results not an array": lambda d: d.update(Results={}),
}


@pytest.mark.parametrize("change", DECLINED.values(), ids=DECLINED.keys())
def test_what_it_does_not_read_as_the_checked_path_it_declines(change: Any) -> None:
    doc = _base()
    change(doc)
    assert trivy_typed.parse(json.dumps(doc).encode(), "r.json") is None


#: Unusual but valid: both ways must agree.
AGREED = {
    "no results": lambda d: d.pop("Results"),
    "null results": lambda d: d.update(Results=None),
    "empty artifact name": lambda d: d.update(ArtifactName=""),
    "zero time": lambda d: d.update(CreatedAt="0001-01-01T00:00:00Z"),
    "unknown fields": lambda d: d.update(Extra={"deep": [[[1]]]}),
    "integer score": _set("CVSS", {"nvd": {"V3Score": 7, "V3Vector": "CVSS:3.1/AV:N"},
                                   "ghsa": {"V2Vector": ""}}),
    "empty optionals": _set("FixedVersion", ""),
    "unknown status": _set("Status", "someday"),
    "null references": _set("References", None),
    "null ratings": _set("CVSS", None),
    "empty ratings": _set("CVSS", {}),
}


@pytest.mark.parametrize("change", AGREED.values(), ids=AGREED.keys())
def test_unusual_but_valid_documents_read_the_same_both_ways(change: Any) -> None:
    doc = _base()
    change(doc)
    typed = trivy_typed.parse(json.dumps(doc).encode(), "r.json")
    assert typed is not None and typed == checked(copy.deepcopy(doc))


def test_one_cve_with_other_references_or_ratings_keeps_each_its_own() -> None:
    # Links and ratings are remembered by vulnerability id with the text they came from:
    # the same id with other text (another package, another data source) is read anew.
    doc = _base()
    vulns = next(r for r in doc["Results"] if r.get("Vulnerabilities"))["Vulnerabilities"]
    first = vulns[0]
    twins = [dict(first, PkgName=f"twin-{i}") for i in range(3)]
    twins[1]["References"] = ["https://example.test/other"]
    twins[2]["CVSS"] = {"nvd": {"V3Score": 1.5, "V3Vector": "CVSS:3.1/AV:L"}}
    vulns.extend(twins)
    for _ in range(2):  # the second time through, what the first remembered is in place
        typed = trivy_typed.parse(json.dumps(doc).encode(), "r.json")
        assert typed is not None and typed == checked(copy.deepcopy(doc))
        by_pkg = {f.package: f for f in typed.findings if f.id == first["VulnerabilityID"]}
        assert by_pkg["twin-1"].links != by_pkg["twin-0"].links
        assert by_pkg["twin-2"].cvss != by_pkg["twin-0"].cvss
        assert by_pkg["twin-0"].links == by_pkg[first["PkgName"]].links


def _large(doc: dict[str, Any]) -> bytes:
    """``doc`` padded past the size from which the typed path is tried."""
    return json.dumps(doc).encode() + b" " * _FAST_DECODE_MIN


def test_a_large_report_takes_the_typed_path(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _base()
    taken = []
    real = trivy_typed.parse
    monkeypatch.setattr(trivy_typed, "parse", lambda *a: taken.append(1) or real(*a))
    path = tmp_path / "big.json"
    path.write_bytes(_large(doc))
    assert load_report(path) == checked(doc, str(path))
    assert taken == [1]


def test_an_error_in_a_large_report_is_worded_as_ever(tmp_path: Path) -> None:
    doc = _base()
    _first(doc)["Severity"] = 5
    path = tmp_path / "big.json"
    path.write_bytes(_large(doc))
    with pytest.raises(ReportError) as e:
        load_report(path, "trivy")
    assert e.value.message.startswith(f"{path}: invalid Trivy JSON report at $.Results[")
    assert e.value.message.endswith(".Vulnerabilities[0].Severity: expected a string, "
                                    "got number")


def test_deep_nesting_even_in_a_field_not_read_is_refused_as_ever(tmp_path: Path) -> None:
    depth = 100_000
    data = (b'{"SchemaVersion": 2, "Results": [], "Unread": ' + b"[" * depth + b"]" * depth
            + b"}" + b" " * _FAST_DECODE_MIN)
    assert trivy_typed.parse(data, "r.json") is None
    path = tmp_path / "deep.json"
    path.write_bytes(data)
    with pytest.raises(ReportError, match="nested too deeply"):
        load_report(path)
