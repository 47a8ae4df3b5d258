"""Trivy adapters: JSON (SchemaVersion 2 and legacy), SARIF and CycloneDX."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imggate.errors import ReportError
from imggate.models import Digest, FixState, Severity
from imggate.scanners.detect import load_report, parse_report
from scanners.report_fixtures import (
    FIXTURES,
    TRIVY_CDX,
    TRIVY_JSON,
    TRIVY_LEGACY,
    TRIVY_SARIF,
    fixture_id,
    load,
    raw_keys,
)

TRIVY = FIXTURES / "trivy"


def _parse(doc: object, name: str = "mut.json"):
    return parse_report(json.dumps(doc).encode(), source=name)


@pytest.mark.parametrize("path", TRIVY_JSON + TRIVY_LEGACY, ids=fixture_id)
def test_every_trivy_json_fixture_parses_to_its_unique_entries(path: Path) -> None:
    report = load_report(path)
    keys = [f.key for f in report.findings]
    assert len(keys) == len(set(keys))
    assert set(keys) == raw_keys(path, "trivy")
    assert report.scanner.name == "trivy"
    assert all(f.sources == ("trivy",) for f in report.findings)


def test_current_format_fields_are_all_read() -> None:
    report = load_report(TRIVY / "alpine-310.json")
    assert report.scanner.version == "dev"
    assert report.operating_system == "alpine 3.10.2"
    assert report.image_name == "testdata/fixtures/images/alpine-310.tar.gz"
    assert report.image_digests == (Digest.parse(
        "sha256:961769676411f082461f9ef46626dd7a2d1e2b2a38e6a44364bcbecf51e66dd4"),)
    assert report.finished is not None and report.finished.year == 2021
    f = next(f for f in report.findings if f.key == ("CVE-2019-1549", "libcrypto1.1", "1.1.1c-r0"))
    assert f.severity is Severity.MEDIUM
    assert f.fixed_versions == ("1.1.1d-r0",)
    assert f.fix_state is FixState.FIXED
    assert f.purl == "pkg:apk/alpine/libcrypto1.1@1.1.1c-r0?arch=x86_64&distro=3.10.2"
    assert f.package_type == "alpine"
    assert f.layer == "sha256:9d48c3bd43c520dc2784e868a780e976b207cbf493eaff8c6596eb871cbd9609"
    assert f.title == "openssl: information disclosure in fork()"
    assert f.description and f.description.startswith("OpenSSL 1.1.1 introduced")
    assert f.links[0] == "https://avd.aquasec.com/nvd/cve-2019-1549"
    assert len(f.links) == len(set(f.links)) == 21
    nvd3 = next(c for c in f.cvss if c.source == "nvd" and c.version == "3.1")
    assert nvd3.score == 5.3 and nvd3.vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"
    assert any(c.source == "nvd" and c.version == "2.0" and c.score == 5.0 for c in f.cvss)
    assert f.max_cvss == 5.3


def test_status_values_map_to_fix_states() -> None:
    centos = {f.key: f for f in load_report(TRIVY / "centos-7.json").findings}
    bash = centos[("CVE-2019-18276", "bash", "4.2.46-31.el7")]
    assert bash.fix_state is FixState.WONT_FIX and bash.fixed_versions == ()
    ssl = centos[("CVE-2019-1559", "openssl-libs", "1:1.0.2k-16.el7")]
    assert ssl.fix_state is FixState.FIXED and ssl.aliases == ("RHSA-2019:2304",)
    buster = load_report(TRIVY / "debian-buster.json").findings
    assert sorted(f.fix_state.value for f in buster) == ["fixed", "not-fixed"]


def test_oldest_schema2_report_without_status_or_identifiers() -> None:
    report = load_report(TRIVY / "defectdojo-scheme_2_many_vulns.json")
    assert report.image_digests == ()
    assert report.operating_system == "alpine 3.9.4"
    assert all(f.fix_state is FixState.FIXED for f in report.findings)  # all have FixedVersion
    jars = [f for f in report.findings if f.package_type == "jar"]
    assert len(jars) == 2 and all(f.path for f in jars)


def test_legacy_bare_array() -> None:
    report = load_report(TRIVY_LEGACY[0])
    assert len(report.findings) == 93
    assert report.operating_system == "debian 10.8"
    assert report.scanner.version is None
    sev = {s: sum(f.severity is s for f in report.findings) for s in Severity}
    assert (sev[Severity.LOW], sev[Severity.HIGH], sev[Severity.MEDIUM],
            sev[Severity.UNKNOWN]) == (65, 18, 9, 1)
    assert all(f.fix_state is FixState.UNKNOWN for f in report.findings)


def test_blank_repo_digests_are_ignored_and_real_ones_kept() -> None:
    report = load_report(TRIVY / "defectdojo-issue_9333.json")  # RepoDigests: [""]
    assert [str(d) for d in report.image_digests] == [
        "sha256:22ae3921bdaac434bb4cb92dbbc209e46b1f3f70e9fa0b5fbbb43ce7d452c72d"]
    doc = load(TRIVY / "alpine-310.json")
    digest = "sha256:" + "ab" * 32
    doc["Metadata"]["RepoDigests"] = [f"ghcr.io/aquasecurity/trivy-test-images@{digest}"]
    assert Digest.parse(digest) in _parse(doc).image_digests


def test_report_without_results_and_result_without_vulnerabilities() -> None:
    assert load_report(TRIVY / "sl-micro-rancher5.4.json").findings == ()
    doc = load(TRIVY / "alpine-310.json")
    del doc["Results"]
    report = _parse(doc)
    assert report.findings == () and report.operating_system == "alpine 3.10.2"


def test_custom_and_language_results() -> None:
    spring = load_report(TRIVY / "spring4shell-jre11.json")
    assert [f.package_type for f in spring.findings] == ["jar"]
    gems = load_report(TRIVY / "fluentd-gems.json")
    assert {f.package_type for f in gems.findings} == {"debian", "gemspec"}


def test_repeated_entry_in_two_results_is_one_finding() -> None:
    doc = load(TRIVY / "alpine-310.json")
    doc["Results"].append(json.loads(json.dumps(doc["Results"][0])))
    assert len(_parse(doc).findings) == 4


def test_comma_separated_fixed_versions() -> None:
    doc = load(TRIVY / "alpine-310.json")
    doc["Results"][0]["Vulnerabilities"][0]["FixedVersion"] = "1.2.3, 2.0.1"
    assert _parse(doc).findings[0].fixed_versions == ("1.2.3", "2.0.1")


@pytest.mark.parametrize(("mutate", "where"), [
    (lambda d: d.update(SchemaVersion=3), "$.SchemaVersion"),
    (lambda d: d.update(SchemaVersion="2"), "$.SchemaVersion"),
    (lambda d: d.update(Results={"a": 1}), "$.Results"),
    (lambda d: d["Results"][0].update(Vulnerabilities="none"), "$.Results[0].Vulnerabilities"),
    (lambda d: d["Results"][0]["Vulnerabilities"][1].update(Severity=7),
     "$.Results[0].Vulnerabilities[1].Severity"),
    (lambda d: d["Results"][0]["Vulnerabilities"][1].update(Severity="SEVERE"),
     "$.Results[0].Vulnerabilities[1].Severity"),
    (lambda d: d["Results"][0]["Vulnerabilities"][2].pop("PkgName"),
     "$.Results[0].Vulnerabilities[2].PkgName"),
    (lambda d: d["Results"][0]["Vulnerabilities"][0].update(VulnerabilityID="x" * 5000),
     "$.Results[0].Vulnerabilities[0].VulnerabilityID"),
    (lambda d: d["Results"][0]["Vulnerabilities"][0]["CVSS"]["nvd"].update(V3Score="9.8"),
     "$.Results[0].Vulnerabilities[0].CVSS.nvd.V3Score"),
    (lambda d: d["Results"][0]["Vulnerabilities"][0]["CVSS"]["nvd"].update(V3Score=11),
     "$.Results[0].Vulnerabilities[0].CVSS.nvd.V3Score"),
    (lambda d: d["Results"][0]["Vulnerabilities"][0].update(References=[1]),
     "$.Results[0].Vulnerabilities[0].References[0]"),
    (lambda d: d["Metadata"].update(RepoDigests="sha256:abc"), "$.Metadata.RepoDigests"),
    (lambda d: d.update(CreatedAt="yesterday"), "$.CreatedAt"),
])
def test_malformed_trivy_json_names_file_and_json_path(mutate, where: str) -> None:
    doc = load(TRIVY / "alpine-310.json")
    mutate(doc)
    with pytest.raises(ReportError) as e:
        _parse(doc, "trivy-mutated.json")
    assert e.value.message.startswith("trivy-mutated.json: invalid Trivy JSON report at ")
    assert f" at {where}: " in e.value.message
    assert len(e.value.message) < 400  # never echoes a huge value


def test_legacy_error_path_has_no_results_prefix() -> None:
    doc = load(TRIVY_LEGACY[0])
    doc[0]["Vulnerabilities"][5]["InstalledVersion"] = ["1"]
    with pytest.raises(ReportError, match=r"at \$\[0\]\.Vulnerabilities\[5\]\.InstalledVersion"):
        _parse(doc)


def test_sarif_reads_package_data_from_messages() -> None:
    report = load_report(TRIVY_SARIF[0])
    assert {f.key for f in report.findings} == {
        f.key for f in load_report(TRIVY / "alpine-310.json").findings}
    assert report.image_digests == load_report(TRIVY / "alpine-310.json").image_digests
    f = next(f for f in report.findings if f.id == "CVE-2019-1549")
    assert f.severity is Severity.MEDIUM and f.fixed_versions == ("1.1.1d-r0",)
    assert f.title == "openssl: information disclosure in fork()"
    assert any(c.version == "3.1" and c.score == 5.3 for c in f.cvss)


def test_sarif_result_without_package_is_an_error() -> None:
    doc = load(TRIVY_SARIF[0])
    doc["runs"][0]["results"][2]["message"]["text"] = "something"
    with pytest.raises(ReportError, match=r"\$\.runs\[0\]\.results\[2\]\.message: result names"):
        _parse(doc)


def test_sarif_without_results_or_runs_is_not_a_clean_report() -> None:
    doc = load(TRIVY_SARIF[0])
    del doc["runs"][0]["results"]
    with pytest.raises(ReportError, match=r"runs\[0\]\.results: run has no results array"):
        _parse(doc)
    doc["runs"] = []
    with pytest.raises(ReportError, match=r"\$\.runs: log has no runs"):
        _parse(doc)
    doc = load(TRIVY_SARIF[0])
    doc["runs"][0]["results"] = []  # a completed scan that found nothing
    assert _parse(doc).findings == ()


def test_sarif_result_with_undefined_rule_is_an_error() -> None:
    doc = load(TRIVY_SARIF[0])
    doc["runs"][0]["results"][1]["ruleId"] = "CVE-0000-0000"
    with pytest.raises(ReportError, match=r"results\[1\]\.ruleId"):
        _parse(doc)


def test_cyclonedx_matches_the_json_report_of_the_same_image() -> None:
    cdx = load_report(TRIVY_CDX[0])
    json_report = load_report(TRIVY / "centos-7.json")
    assert {f.key for f in cdx.findings} == {f.key for f in json_report.findings}
    assert {f.key for f in cdx.findings} == raw_keys(TRIVY_CDX[0], "cyclonedx")
    by_key = {f.key: f for f in cdx.findings}
    ssl = by_key[("CVE-2019-1559", "openssl-libs", "1:1.0.2k-16.el7")]
    assert ssl.fixed_versions == ("1:1.0.2k-19.el7",) and ssl.fix_state is FixState.FIXED
    assert ssl.package_type == "rpm" and ssl.purl and ssl.purl.startswith("pkg:rpm/centos/")
    # CycloneDX has only per-source ratings: the most severe one is taken (fail closed).
    assert by_key[("CVE-2019-18276", "bash", "4.2.46-31.el7")].severity is Severity.HIGH
    assert cdx.scanner.name == "trivy" and cdx.image_name


def test_cyclonedx_sbom_without_vulnerabilities_is_not_a_clean_report() -> None:
    doc = load(TRIVY_CDX[0])
    del doc["vulnerabilities"]
    with pytest.raises(ReportError, match="SBOM, not a scan report"):
        _parse(doc)


def test_cyclonedx_components_supply_package_names() -> None:
    doc = load(TRIVY_CDX[0])
    doc["components"] = [{"bom-ref": "comp-1", "type": "library", "name": "bash",
                          "version": "4.2.46-31.el7", "purl": "pkg:rpm/centos/bash@4.2.46-31.el7"}]
    doc["vulnerabilities"][0]["affects"][0]["ref"] = "comp-1"
    report = _parse(doc)
    assert ("CVE-2019-18276", "bash", "4.2.46-31.el7") in {f.key for f in report.findings}
    doc["vulnerabilities"][0]["affects"][0]["ref"] = "comp-2"
    with pytest.raises(ReportError, match=r"vulnerabilities\[0\]\.affects\[0\]\.ref"):
        _parse(doc)


def _entries() -> list[tuple[dict, str | None]]:
    out = []
    for path in TRIVY_JSON + TRIVY_LEGACY:
        doc = load(path)
        for r in doc if isinstance(doc, list) else doc.get("Results") or []:
            out += [(v, r.get("Type")) for v in r.get("Vulnerabilities") or []]
    return out


def test_fast_path_builds_the_same_finding_as_the_checked_path() -> None:
    from imggate.scanners.trivy import _checked_finding, _fast_finding

    entries = _entries()
    assert len(entries) > 100
    for v, ptype in entries:
        fast = _fast_finding(v, ptype)
        assert fast is not None, v["VulnerabilityID"]  # real entries take the fast path
        assert fast == _checked_finding(v, ptype)


_odd_values = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                        st.just(""), st.just(" "), st.just("x" * 9000), st.lists(st.text(max_size=3),
                        max_size=2),
                        # lists whose items are long, or long only together, or not all text
                        st.lists(st.sampled_from(["x" * 9000, "y" * 5000, "z" * 1000, "w"]),
                                 max_size=3),
                        st.lists(st.one_of(st.text(max_size=3), st.integers()), max_size=3), st.dictionaries(st.sampled_from(["PURL", "Digest", "DiffID",
                        "nvd", "V3Score"]), st.one_of(st.none(), st.text(max_size=3),
                        st.integers(-1, 11), st.dictionaries(st.just("V3Score"),
                        st.integers(-1, 11))), max_size=2))


@settings(max_examples=600, deadline=None)
@given(data=st.data())
def test_fast_path_never_disagrees_with_the_checked_path(data: st.DataObject) -> None:
    from imggate.scanners._doc import Invalid
    from imggate.scanners.trivy import _checked_finding, _fast_finding

    entries = _entries()
    v, ptype = entries[data.draw(st.integers(0, len(entries) - 1))]
    v = dict(v)
    key = data.draw(st.sampled_from([*sorted(v), "VendorIDs", "PkgIdentifier", "Status"]))
    v[key] = data.draw(_odd_values)
    fast = _fast_finding(v, ptype)
    try:
        checked = _checked_finding(v, ptype)
    except Invalid:
        assert fast is None
        return
    assert fast is None or fast == checked
