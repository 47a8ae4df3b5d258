"""``imggate convert``: exit codes, outputs and merging, through the real CLI entry point."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from imggate._cli import main
from scanners.report_fixtures import FIXTURES, load, raw_keys, schema_errors

TRIVY = FIXTURES / "trivy" / "alpine-310.json"
TRIVY_DEBIAN = FIXTURES / "trivy" / "legacy" / "defectdojo-legacy_many_vulns.json"
GRYPE_DEBIAN = FIXTURES / "grype" / "defectdojo-many_vulns3.json"


def run(*args: str) -> int:
    with pytest.raises(SystemExit) as e:
        main(["convert", *args])
    code = e.value.code
    assert isinstance(code, int)
    return code


def test_default_is_a_schema_valid_gitlab_report_on_stdout(capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    assert run(str(TRIVY)) == 0
    doc = json.loads(capsys.readouterr().out)
    assert schema_errors(doc) == []
    assert len(doc["vulnerabilities"]) == 4
    assert doc["vulnerabilities"][0]["location"]["image"] == \
        "testdata/fixtures/images/alpine-310.tar.gz"
    # the report's own time, so the same input gives the same output
    assert doc["scan"]["end_time"] == "2021-08-25T12:20:30"


def test_merges_trivy_and_grype_into_one_file(tmp_path: Path) -> None:
    out = tmp_path / "gl-container-scanning-report.json"
    image = "registry.example.com/team/app@sha256:" + "12" * 32
    code = run(str(TRIVY_DEBIAN), str(GRYPE_DEBIAN), "--image", image, "-o", str(out),
               "--default-branch-image", "registry.example.com/team/app:main")
    assert code == 0
    doc = json.loads(out.read_text())
    assert schema_errors(doc) == []
    expected = raw_keys(TRIVY_DEBIAN, "trivy") | raw_keys(GRYPE_DEBIAN, "grype")
    assert len(doc["vulnerabilities"]) == len(expected)
    assert {v["location"]["image"] for v in doc["vulnerabilities"]} == {image}
    assert doc["scan"]["scanner"]["id"] == "trivy+grype"


def test_gitlab_in_gitlab_out(tmp_path: Path) -> None:
    src = FIXTURES / "gitlab-cs" / "gcs-schema15-trivy-alpine.json"
    out = tmp_path / "out.json"
    assert run(str(src), "-o", str(out)) == 0
    doc = json.loads(out.read_text())
    assert len(doc["vulnerabilities"]) == len(load(src)["vulnerabilities"]) == 76
    assert schema_errors(doc) == []


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    legacy = FIXTURES / "trivy" / "legacy" / "defectdojo-legacy_many_vulns.json"
    assert run(str(legacy), "--to", "json") == 0  # JSON needs no image
    doc = json.loads(capsys.readouterr().out)
    # A legacy report names its image only in the OS target "debian (debian 10.8)".
    assert doc["format"] == "imggate-findings/1" and doc["image"] == "debian"
    assert len(doc["findings"]) == 93
    assert set(doc["findings"][0]) >= {"id", "package", "version", "severity", "fix_state",
                                       "cvss", "sources", "aliases", "links"}


def test_json_output_converts_again(tmp_path: Path) -> None:
    merged, out = tmp_path / "findings.json", tmp_path / "gl.json"
    assert run(str(TRIVY_DEBIAN), str(GRYPE_DEBIAN), "--to", "json", "-o", str(merged)) == 0
    assert run(str(merged), "--image", "registry.example.com/a/b:1", "-o", str(out)) == 0
    doc = json.loads(out.read_text())
    assert schema_errors(doc) == []
    assert len(doc["vulnerabilities"]) == len(json.loads(merged.read_text())["findings"])


def test_sarif_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(str(TRIVY), "--to", "SARIF") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == "2.1.0" and len(doc["runs"][0]["results"]) == 4


def test_report_from_standard_input(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(TRIVY.read_bytes())))
    assert run("-", "--to", "json") == 0
    assert len(json.loads(capsys.readouterr().out)["findings"]) == 4
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"{")))
    assert run("-") == 2
    assert "<stdin>: not valid JSON" in capsys.readouterr().err
    assert run("-", "-") == 2


def test_kind_can_be_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(str(GRYPE_DEBIAN), "--kind", "grype", "--to", "json") == 0
    assert len(json.loads(capsys.readouterr().out)["findings"]) == 327


@pytest.mark.parametrize("args", [
    (),                                  # no report
    ("--to", "xml", str(TRIVY)),         # unknown format
    ("--kind", "nessus", str(TRIVY)),    # unknown kind
])
def test_usage_errors_are_exit_2(args: tuple[str, ...], capsys: pytest.CaptureFixture[str]
                                 ) -> None:
    assert run(*args) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_unreadable_reports_are_exit_2_and_write_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(TRIVY.read_bytes()[:3000])
    out = tmp_path / "out.json"
    assert run(str(TRIVY), str(bad), "-o", str(out)) == 2
    err = capsys.readouterr().err
    assert f"{bad}: not valid JSON" in err and "Traceback" not in err
    assert not out.exists()
    assert run(str(tmp_path / "missing.json")) == 2
    assert "cannot read report" in capsys.readouterr().err
    assert run(str(FIXTURES / "schema" / "container-scanning-report-format.json")) == 2
    assert "not a scanner report imggate recognises" in capsys.readouterr().err


def test_wrong_type_inside_a_report_is_exit_2_naming_the_place(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = load(GRYPE_DEBIAN)
    doc["matches"][7]["artifact"]["name"] = {"evil": True}
    p = tmp_path / "g.json"
    p.write_text(json.dumps(doc))
    assert run(str(p)) == 2
    assert "$.matches[7].artifact.name: expected a string, got object" in capsys.readouterr().err


def test_help_does_not_import_the_scanners() -> None:
    code = ("import sys; from imggate._cli import register; register(); "
            "print([m for m in ('imggate.scanners.detect', 'imggate.formats.gitlab', "
            "'jsonschema') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def _convert_doc(tmp_path: Path, doc: dict, *args: str) -> dict:
    src = tmp_path / "in.json"
    src.write_text(json.dumps(doc))
    out = tmp_path / "out.json"
    assert run(str(src), "-o", str(out), *args) == 0
    result = json.loads(out.read_text())
    if "sarif" not in args:
        assert schema_errors(result) == []
    return result


def test_empty_artifact_name_takes_the_image_from_the_os_target(tmp_path: Path) -> None:
    doc = json.loads(TRIVY.read_text())
    doc["ArtifactName"] = ""
    doc["Results"][0]["Target"] = "registry.example.com/team/app:1.0 (alpine 3.10.2)"
    out = _convert_doc(tmp_path, doc)
    assert {v["location"]["image"] for v in out["vulnerabilities"]} == \
        {"registry.example.com/team/app:1.0"}
    assert {v["location"]["operating_system"] for v in out["vulnerabilities"]} == \
        {"alpine 3.10.2"}


def test_a_report_without_findings_needs_no_image(tmp_path: Path) -> None:
    doc = json.loads(TRIVY.read_text())
    doc["ArtifactName"] = ""
    doc["Results"] = []
    out = _convert_doc(tmp_path, doc)
    assert out["vulnerabilities"] == []
    out = _convert_doc(tmp_path, doc, "--to", "sarif")
    assert out["runs"][0]["results"] == []


def test_gitlab_to_gitlab_keeps_each_vulnerability_location_and_identifier_urls(
        tmp_path: Path) -> None:
    doc = json.loads((FIXTURES / "gitlab-cs" / "gcs-schema15-trivy-alpine.json").read_text())
    first, second = doc["vulnerabilities"][0], doc["vulnerabilities"][1]
    second["location"]["image"] = "registry.example.com/other/service:2.0"
    second["location"]["operating_system"] = "alpine 3.8.0"
    second["location"]["default_branch_image"] = "registry.example.com/other/service:main"
    vid = first["identifiers"][0]["value"]
    first["identifiers"][0]["url"] = f"https://security.alpinelinux.org/vuln/{vid}"
    out = _convert_doc(tmp_path, doc)
    by_key = {(v["location"]["dependency"]["package"]["name"],
               v["location"]["dependency"]["version"], v["identifiers"][0]["value"]): v
              for v in out["vulnerabilities"]}
    for original in doc["vulnerabilities"]:
        loc = original["location"]
        got = by_key[(loc["dependency"]["package"]["name"], loc["dependency"]["version"],
                      original["identifiers"][0]["value"])]["location"]
        assert got["image"] == loc["image"]
        assert got["operating_system"] == loc["operating_system"]
        assert got.get("default_branch_image") == loc.get("default_branch_image")
    urls = {i["value"]: i.get("url") for v in out["vulnerabilities"] for i in v["identifiers"]}
    assert urls[vid] == f"https://security.alpinelinux.org/vuln/{vid}"
    ids = [v["id"] for v in out["vulnerabilities"]]
    assert len(ids) == len(set(ids))


def test_findings_without_any_image_name_need_image(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(TRIVY.read_text())
    doc["ArtifactName"] = ""
    doc["Results"][0]["Target"] = "app.jar"  # not an OS target: no image to take
    doc["Results"][0]["Class"] = "lang-pkgs"
    src = tmp_path / "in.json"
    src.write_text(json.dumps(doc))
    assert run(str(src)) == 2
    assert "pass --image REF" in capsys.readouterr().err
