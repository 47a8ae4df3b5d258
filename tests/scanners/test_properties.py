"""Property tests: real reports, mutated at random, give a report or a ReportError. Nothing else.

No traceback, no KeyError/TypeError, never a crash that a caller might
mistake for "no findings".
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imggate.errors import ReportError
from imggate.models import Finding, ScanReport, Severity
from imggate.scanners.detect import KINDS, parse_report
from scanners.report_fixtures import FIXTURES, load

SAMPLES = [
    FIXTURES / "trivy" / "alpine-310.json",
    FIXTURES / "trivy" / "centos-7.json",
    FIXTURES / "trivy" / "defectdojo-scheme_2_many_vulns.json",
    FIXTURES / "trivy" / "spring4shell-jre11.json",
    FIXTURES / "trivy" / "legacy" / "defectdojo-legacy_many_vulns.json",
    FIXTURES / "trivy" / "other-formats" / "alpine-310.sarif.json",
    FIXTURES / "trivy" / "other-formats" / "centos-7.cyclonedx.json",
    FIXTURES / "grype" / "grype-snapshot-TestJsonImgsPresenter.json",
    FIXTURES / "grype" / "defectdojo-fix_not_available.json",
    FIXTURES / "grype" / "defectdojo-many_vulns_with_epss_values.json",
    FIXTURES / "gitlab-cs" / "trivy-template-alpine-310.gitlab.json",
    FIXTURES / "gitlab-cs" / "defectdojo-gl-container-scanning-report-0-vuln.json",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=10,
)
hostile_values = st.sampled_from([
    "x" * 200_000, "", " ", "\x00", "CRITICAL", "sha256:", "pkg:", -1, 10**30, 1e308, True,
    [], {}, json.loads("[" * 500 + "]" * 500), {"a": {"b": {"c": {}}}}, ["x"] * 1000,
])


@cache
def _doc(path: Path) -> Any:
    return load(path)


@cache
def _paths(path: Path) -> tuple[tuple[Any, ...], ...]:
    """Every path to a value inside the fixture (capped per list to keep the set small)."""
    out: list[tuple[Any, ...]] = []

    def walk(node: Any, where: tuple[Any, ...]) -> None:
        out.append(where)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*where, k))
        elif isinstance(node, list):
            for i, v in enumerate(node[:3]):
                walk(v, (*where, i))

    walk(_doc(path), ())
    return tuple(out)


def _check(data: bytes, kind: str | None) -> None:
    error: ReportError | None = None
    try:
        report = parse_report(data, source="mutated.json", kind=kind)
    except ReportError as e:
        error = e
    if error is not None:
        assert error.message.startswith("mutated.json: ")
        assert len(error.message) < 2000
        return
    assert isinstance(report, ScanReport)
    for f in report.findings:
        assert isinstance(f, Finding) and isinstance(f.severity, Severity)
        assert isinstance(f.id, str) and f.id.strip() and isinstance(f.package, str)
        assert isinstance(f.version, str)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_structural_mutations_give_a_report_or_a_report_error(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(SAMPLES), label="fixture")
    doc = copy.deepcopy(_doc(path))
    where = data.draw(st.sampled_from(_paths(path)), label="path")
    action = data.draw(st.sampled_from(["replace", "hostile", "delete", "wrap"]), label="action")
    if not where:
        doc = data.draw(json_values if action != "hostile" else hostile_values)
    else:
        parent = doc
        for part in where[:-1]:
            parent = parent[part]
        last = where[-1]
        if action == "delete":
            del parent[last]
        elif action == "wrap":
            parent[last] = [parent[last]]
        else:
            parent[last] = data.draw(json_values if action == "replace" else hostile_values)
    kind = data.draw(st.sampled_from([None, None, None, *KINDS]), label="kind")
    _check(json.dumps(doc).encode(), kind)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_byte_mutations_give_a_report_or_a_report_error(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(SAMPLES), label="fixture")
    raw = bytearray(path.read_bytes())
    action = data.draw(st.sampled_from(["truncate", "flip", "insert"]), label="action")
    pos = data.draw(st.integers(0, len(raw) - 1), label="pos")
    if action == "truncate":
        raw = raw[:pos]
    elif action == "flip":
        raw[pos] = data.draw(st.integers(0, 255))
    else:
        raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=20))
    _check(bytes(raw), data.draw(st.sampled_from([None, *KINDS])))


def test_truncation_never_yields_an_empty_report() -> None:
    """Every proper prefix of a real report is refused: a cut file never reads as clean."""
    raw = (FIXTURES / "trivy" / "alpine-310.json").read_bytes().rstrip()
    for cut in range(1, len(raw), 97):
        try:
            parse_report(raw[:cut], source="cut.json")
        except ReportError:
            continue
        raise AssertionError(f"prefix of {cut} bytes was accepted")
