"""``imggate check`` end to end: the scenario matrix over a real Distribution registry.

Images are pushed to a real registry; their signatures are written in cosign's
format by the test signer (a stand-in for the cosign binary, which cannot run
here); the scanner reports are real Trivy reports from tests/fixtures
whose image metadata is pointed at the pushed images.
"""

from __future__ import annotations

import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from fixture_paths import FIXTURES as _FIXTURES
from harness_images import PushedImage
from imggate.models import Digest
from registry_harness import CliResult, Registry, free_port, run_imggate
from signatures.cosign_format_signer import CosignFormatSigner, make_image, push_repository
from signatures.inmemory import InMemoryRepository

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]

SHARED = _FIXTURES
SCHEMA = json.loads((SHARED / "schema" / "container-scanning-report-format.json").read_text())
CRITICAL_CVE = "CVE-2019-18224"  # debian-buster.json: libidn2-0, Critical


class Scene:
    """Pushed images, their key and bound reports."""

    def __init__(self, registry: Registry, tmp: Path) -> None:
        self.registry = registry
        self.tmp = tmp
        signer = CosignFormatSigner()
        repo = InMemoryRepository(f"{registry.host}/gate/app")
        self.digest: Digest = make_image(repo, "latest", b"gate app layer")
        repo.tag_map["1.0.0"] = self.digest
        signer.sign_image(repo, self.digest)
        push_repository(repo, registry.url, "gate/app")
        unsigned = InMemoryRepository(f"{registry.host}/gate/unsigned")
        self.unsigned: Digest = make_image(unsigned, "1.0.0", b"unsigned layer")
        push_repository(unsigned, registry.url, "gate/unsigned")
        self.key = tmp / "cosign.pub"
        self.key.write_bytes(signer.public_pem)
        self.other_key = tmp / "other.pub"
        self.other_key.write_bytes(CosignFormatSigner().public_pem)
        self.medium = self.bound_report("alpine-310.json", self.digest)
        self.critical = self.bound_report("debian-buster.json", self.digest)
        self.foreign = self.bound_report("debian-buster.json",
                                         Digest.parse("sha256:" + "e" * 64), "foreign")

    def ref(self, repository: str = "gate/app", tag: str | None = None,
            digest: Digest | None = None) -> str:
        return self.registry.ref(repository, tag, str(digest) if digest else None)

    def bound_report(self, name: str, digest: Digest, suffix: str = "") -> Path:
        """A real Trivy report whose metadata names ``digest`` (as Trivy writes RepoDigests)."""
        doc = json.loads((SHARED / "trivy" / name).read_text())
        repo = f"{self.registry.host}/gate/app"
        doc["ArtifactName"] = f"{repo}@{digest}"
        doc.setdefault("Metadata", {})["RepoDigests"] = [f"{repo}@{digest}"]
        doc["Metadata"].pop("ImageID", None)
        out = self.tmp / f"{suffix}{name}"
        out.write_text(json.dumps(doc))
        return out


@pytest.fixture(scope="module")
def scene(anon_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Scene:
    return Scene(anon_registry, tmp_path_factory.mktemp("gate"))


def check(scene: Scene, tmp_path: Path, *args: str) -> tuple[CliResult, dict[str, Any]]:
    out = tmp_path / "out"
    result = run_imggate(["check", "--output-dir", str(out), "-q", *args])
    verdict_path = out / "imggate-verdict.json"
    verdict = json.loads(verdict_path.read_text()) if verdict_path.exists() else {}
    return result, verdict


def failed_rules(verdict: dict[str, Any], image: int = 0) -> set[str]:
    return {v["rule"] for v in verdict["images"][image]["violations"]}


def test_latest_denied_in_prod_allowed_in_dev(scene: Scene, tmp_path: Path) -> None:
    res, verdict = check(scene, tmp_path, scene.ref(tag="latest"), "--env", "prod",
                         "--trivy-report", str(scene.medium))
    assert res.code == 1, res.output
    assert {"tags.denied", "tags.digest-pinning"} <= failed_rules(verdict)
    res, verdict = check(scene, tmp_path, scene.ref(tag="latest"), "--env", "dev",
                         "--trivy-report", str(scene.medium))
    assert res.code == 0, res.output
    assert verdict["images"][0]["digest"] == str(scene.digest)


def test_tag_only_denied_in_prod_same_image_by_digest_allowed(scene: Scene,
                                                               tmp_path: Path) -> None:
    res, verdict = check(scene, tmp_path, scene.ref(tag="1.0.0"), "--env", "prod",
                         "--trivy-report", str(scene.medium))
    assert res.code == 1
    assert failed_rules(verdict) == {"tags.digest-pinning"}
    res, verdict = check(scene, tmp_path, scene.ref(digest=scene.digest), "--env", "prod",
                         "--trivy-report", str(scene.medium))
    assert res.code == 0, res.output


def test_critical_finding_denied_and_an_exception_allows_it(scene: Scene,
                                                            tmp_path: Path) -> None:
    res, verdict = check(scene, tmp_path, scene.ref(tag="1.0.0"),
                         "--trivy-report", str(scene.critical))
    assert res.code == 1
    assert failed_rules(verdict) == {"severity"}
    assert CRITICAL_CVE in json.dumps(verdict["images"][0]["violations"])

    future = (date.today() + timedelta(days=30)).isoformat()
    rules = tmp_path / "rules.yaml"
    original = (
        "version: 1\ndefault_env: dev\nenvironments:\n  dev:\n    severity:\n"
        "      fail_on: Critical\nexceptions:\n"
        f"  - id: {CRITICAL_CVE}\n    package: libidn2-0\n    expires: {future}\n"
        "    reason: libidn2 is not reachable from the app\n"
        f"  - id: CVE-1999-0001\n    expires: {future}\n    reason: matches nothing here\n"
    )
    rules.write_text(original)
    res, verdict = check(scene, tmp_path, scene.ref(tag="1.0.0"), "--rules", str(rules),
                         "--trivy-report", str(scene.critical))
    assert res.code == 0, res.output
    statuses = {e["vulnerability"]: e["status"] for e in verdict["images"][0]["exceptions"]}
    assert statuses == {CRITICAL_CVE: "used", "CVE-1999-0001": "stale"}
    assert rules.read_text() == original  # never rewritten


def test_expired_exception_stops_applying_and_is_reported(scene: Scene,
                                                          tmp_path: Path) -> None:
    past = (date.today() - timedelta(days=1)).isoformat()
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\ndefault_env: dev\nenvironments:\n  dev:\n    severity:\n"
        "      fail_on: Critical\nexceptions:\n"
        f"  - id: {CRITICAL_CVE}\n    expires: {past}\n    reason: was accepted until now\n")
    res, verdict = check(scene, tmp_path, scene.ref(tag="1.0.0"), "--rules", str(rules),
                         "--trivy-report", str(scene.critical))
    assert res.code == 1
    assert "severity" in failed_rules(verdict)
    assert [e["status"] for e in verdict["images"][0]["exceptions"]] == ["expired"]


def test_signatures_required_by_key(scene: Scene, tmp_path: Path) -> None:
    common = ["--insecure-ignore-tlog", "--trivy-report", str(scene.medium)]
    res, verdict = check(scene, tmp_path, scene.ref(tag="1.0.0"), "--key", str(scene.key),
                         *common)
    assert res.code == 0, res.output
    sigs = verdict["images"][0]["signatures"]
    assert any(s["verified"] and s["signer"] == "cosign.pub" for s in sigs)

    res, verdict = check(scene, tmp_path, scene.ref("gate/unsigned", "1.0.0"),
                         "--key", str(scene.key), "--insecure-ignore-tlog")
    assert res.code == 1
    assert "signatures" in failed_rules(verdict)

    res, verdict = check(scene, tmp_path, scene.ref(tag="1.0.0"), "--key",
                         str(scene.other_key), *common)
    assert res.code == 1
    assert "signatures" in failed_rules(verdict)


def test_report_for_another_image_is_a_violation(scene: Scene, tmp_path: Path) -> None:
    res, verdict = check(scene, tmp_path, scene.ref(tag="1.0.0"),
                         "--trivy-report", str(scene.foreign))
    assert res.code == 1
    assert "report-binding" in failed_rules(verdict)


def test_registry_down_is_exit_3(scene: Scene, tmp_path: Path) -> None:
    res, verdict = check(scene, tmp_path, f"127.0.0.1:{free_port()}/gate/app:1.0.0",
                         "--trivy-report", str(scene.medium))
    assert res.code == 3
    assert verdict["images"][0]["decision"] == "error"
    assert "cannot reach registry" in res.output


def test_broken_rules_are_exit_2_with_file_and_line(scene: Scene, tmp_path: Path) -> None:
    rules = tmp_path / "broken.yaml"
    rules.write_text("version: 1\nenvironments:\n  dev:\n    severity:\n      fail_on: Sever\n")
    res, _ = check(scene, tmp_path, scene.ref(tag="1.0.0"), "--rules", str(rules))
    assert res.code == 2
    assert re.search(rf"{re.escape(str(rules))}:5\b", res.output), res.output
    assert "Traceback" not in res.output


def test_unreadable_report_is_exit_3_naming_the_file(scene: Scene, tmp_path: Path) -> None:
    bad = tmp_path / "truncated.json"
    bad.write_text(scene.medium.read_text()[:500])
    res, _ = check(scene, tmp_path, scene.ref(tag="1.0.0"), "--trivy-report", str(bad))
    assert res.code == 3
    assert "truncated.json" in res.output and "Traceback" not in res.output


def test_outputs_for_several_images_in_one_call(scene: Scene, tmp_path: Path) -> None:
    res, verdict = check(scene, tmp_path, scene.ref(tag="1.0.0"),
                         scene.ref("gate/unsigned", "1.0.0"), "--trivy-report",
                         str(scene.critical))
    # The critical report names the app image only: the unsigned image gets no report.
    assert res.code == 1
    decisions = [i["decision"] for i in verdict["images"]]
    assert decisions == ["deny", "allow"]
    out = tmp_path / "out"
    gitlab = json.loads((out / "gl-container-scanning-report.json").read_text())
    jsonschema.validate(gitlab, SCHEMA)
    ids = {v["identifiers"][0]["value"] for v in gitlab["vulnerabilities"]}
    assert CRITICAL_CVE in ids
    images = {v["location"]["image"] for v in gitlab["vulnerabilities"]}
    assert images == {scene.ref(digest=scene.digest)}
    suites = ET.parse(out / "imggate-junit.xml").getroot()
    failures = [tc.get("name") for tc in suites.iter("testcase")
                if tc.find("failure") is not None]
    assert failures == ["severity"]
    html = (out / "imggate-report.html").read_text()
    assert CRITICAL_CVE in html and str(scene.digest) in html


STANDIN = Path(__file__).resolve().parents[1] / "scanners" / "fake_trivy_standin.py"


def trivy_on_path(tmp_path: Path) -> Path:
    """A ``trivy`` on PATH that runs the named stand-in (real Trivy cannot run here)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "trivy"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} {STANDIN} \"$@\"\n")
    exe.chmod(0o755)
    return bindir


@pytest.mark.parametrize("mode", ["report", "fail"])
def test_scan_trivy_on_the_pinned_digest_with_credentials_in_env(
        basic_image: PushedImage, tmp_path: Path, mode: str) -> None:
    reg = basic_image.registry
    assert reg.username and reg.password
    record = tmp_path / "trivy-run.json"
    env = {"PATH": f"{trivy_on_path(tmp_path)}:{os.environ['PATH']}",
           "FAKE_TRIVY_RECORD": str(record), "FAKE_TRIVY_MODE": mode,
           "FAKE_TRIVY_REPORT": str(SHARED / "trivy" / "debian-buster.json")}
    out = tmp_path / "out"
    res = run_imggate(["check", basic_image.ref, "--scan", "trivy", "--skip-db-update",
                       "--username", reg.username, "--password-stdin", "-q",
                       "--output-dir", str(out)], stdin=reg.password + "\n", env=env)
    run = json.loads(record.read_text())
    assert run["argv"][1:] == ["image", "--format", "json", "--quiet", "--skip-db-update",
                               basic_image.pinned]
    assert run["env"]["TRIVY_USERNAME"] == reg.username
    assert run["env"]["TRIVY_PASSWORD"] == reg.password
    assert reg.password not in " ".join(run["argv"])
    assert reg.password not in res.output
    for f in out.iterdir():
        assert reg.password not in f.read_text()
    if mode == "report":
        # The stand-in's report is a real one naming another image: a Critical finding
        # and the binding violation both deny.
        assert res.code == 1, res.output
        verdict = json.loads((out / "imggate-verdict.json").read_text())
        assert "severity" in failed_rules(verdict)
    else:
        assert res.code == 3
        assert "trivy failed (exit 1)" in res.output and "401 Unauthorized" in res.output


def test_unusable_key_and_output_dir_are_usage_errors_before_any_fetch(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pub"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnot base64\n")
    down = f"127.0.0.1:{free_port()}/gate/app:1.0.0"  # never contacted: config fails first
    res = run_imggate(["check", down, "--key", str(bad), "-q", "-o", str(tmp_path / "o")])
    assert res.code == 2
    assert "bad.pub" in res.output and "cannot reach" not in res.output
    res = run_imggate(["check", down, "-q", "-o", "/dev/null/reports"])
    assert res.code == 2
    assert "--output-dir" in res.output
