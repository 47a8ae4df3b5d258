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
from datetime import UTC, date, datetime, timedelta
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

    def bound_report(self, name: str, digest: Digest | None, suffix: str = "", *,
                     age: timedelta = timedelta(hours=1), repo: str = "gate/app") -> Path:
        """A real Trivy report whose metadata names ``digest`` (as Trivy writes RepoDigests;
        ``None``: by tag only), made ``age`` ago as its ``CreatedAt`` says (as a pipeline's
        scan job would have just made it)."""
        doc = json.loads((SHARED / "trivy" / name).read_text())
        full = f"{self.registry.host}/{repo}"
        doc["ArtifactName"] = f"{full}@{digest}" if digest else f"{full}:1.0.0"
        doc.setdefault("Metadata", {})["RepoDigests"] = [f"{full}@{digest}"] if digest else []
        doc["Metadata"].pop("ImageID", None)
        created = datetime.now(UTC) - age
        doc["CreatedAt"] = created.isoformat().replace("+00:00", "Z")
        out = self.tmp / f"{suffix}{name}"
        out.write_text(json.dumps(doc))
        return out


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Run where no ./rules/ or .trivyignore of this repository is found, with no CI
    # environment variables: each test says which rules and environment it means.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI_ENVIRONMENT_TIER", raising=False)
    monkeypatch.delenv("CI_ENVIRONMENT_NAME", raising=False)


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


def test_unreadable_report_is_exit_2_naming_the_file(scene: Scene, tmp_path: Path) -> None:
    # The user's file is wrong: no retry fixes it, so it is not "could not decide".
    bad = tmp_path / "truncated.json"
    bad.write_text(scene.medium.read_text()[:500])
    res, _ = check(scene, tmp_path, scene.ref(tag="1.0.0"), "--trivy-report", str(bad))
    assert res.code == 2
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
    failures = [(tc.get("classname"), tc.get("name")) for tc in suites.iter("testcase")
                if tc.find("failure") is not None]
    # The unsigned image had no report: NOT SCANNED is a JUnit failure, whatever the env.
    assert failures == [(scene.ref(tag="1.0.0"), "severity"),
                        (scene.ref("gate/unsigned", "1.0.0"), "evidence")]
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
        # The stand-in's report is a real one naming another image: a binding
        # violation, and its Critical finding is not attributed to this image.
        assert res.code == 1, res.output
        verdict = json.loads((out / "imggate-verdict.json").read_text())
        assert failed_rules(verdict) == {"report-binding"}
        assert verdict["images"][0]["findings_total"] == 0
        assert verdict["images"][0]["evidence"][0]["kind"] == "scan"
    else:
        assert res.code == 3
        assert "trivy failed (exit 1)" in res.output and "401 Unauthorized" in res.output


def test_scan_trivy_on_many_images_one_db_update_serialised_json_kept(
        anon_image: PushedImage, anon_docker_image: PushedImage, tmp_path: Path) -> None:
    log = tmp_path / "trivy-runs.jsonl"
    env = {"PATH": f"{trivy_on_path(tmp_path)}:{os.environ['PATH']}",
           "FAKE_TRIVY_LOG": str(log), "FAKE_TRIVY_SLEEP": "0.2",
           "FAKE_TRIVY_REPORT": str(SHARED / "trivy" / "alpine-310.json")}
    out = tmp_path / "out"
    run_imggate(["check", anon_image.ref, anon_docker_image.ref, "--scan", "trivy", "-q",
                 "--output-dir", str(out)], env=env)
    runs = sorted((json.loads(line) for line in log.read_text().splitlines()),
                  key=lambda r: r["start"])
    assert sorted(r["argv"][-1] for r in runs) == sorted([anon_image.pinned,
                                                          anon_docker_image.pinned])
    assert ["--skip-db-update" in r["argv"] for r in runs] == [False, True]
    assert runs[1]["start"] >= runs[0]["end"]
    kept = sorted(out.glob("trivy-*.json"))
    assert len(kept) == 2
    assert {p.read_bytes() for p in kept} == {(SHARED / "trivy" / "alpine-310.json").read_bytes()}


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


# --- issue 8: evidence that fails closed, artifacts that match the run ---------------------

def _all_outputs(out: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(out.iterdir()) if p.is_file())


def test_no_report_in_prod_is_denied_and_not_scanned(scene: Scene, tmp_path: Path) -> None:
    res = run_imggate(["check", "--output-dir", str(tmp_path / "out"), "--env", "prod",
                       scene.ref(digest=scene.digest)])
    assert res.code == 1, res.output
    assert "DENY NOT SCANNED" in res.output
    assert "NOT SCANNED: no scanner evidence was given for this image" in res.output
    verdict = json.loads((tmp_path / "out" / "imggate-verdict.json").read_text())
    image = verdict["images"][0]
    assert image["scanned"] is False and failed_rules(verdict) == {"severity"}
    assert verdict["summary"]["not_scanned"] == 1
    junit = ET.parse(tmp_path / "out" / "imggate-junit.xml").getroot()
    kinds = {tc.get("name"): tc.find("failure").get("type")  # type: ignore[union-attr]
             for tc in junit.iter("testcase") if tc.find("failure") is not None}
    assert kinds == {"severity": "violation", "evidence": "not-scanned"}
    html = (tmp_path / "out" / "imggate-report.html").read_text()
    assert "NOT SCANNED" in html
    # dev does not require a report: allowed, and still NOT SCANNED everywhere.
    res, verdict = check(scene, tmp_path, scene.ref(digest=scene.digest), "--env", "dev")
    assert res.code == 0 and verdict["images"][0]["scanned"] is False
    assert [w["rule"] for w in verdict["images"][0]["warnings"]] == ["severity"]


def test_a_stale_report_is_denied_in_prod(scene: Scene, tmp_path: Path) -> None:
    stale = scene.bound_report("alpine-310.json", scene.digest, "stale-", age=timedelta(days=8))
    res, verdict = check(scene, tmp_path, scene.ref(digest=scene.digest), "--env", "prod",
                         "--trivy-report", str(stale))
    assert res.code == 1
    assert failed_rules(verdict) == {"report-age"}
    (ev,) = verdict["images"][0]["evidence"]
    assert ev["scanner"] == "trivy" and ev["used"] and 8 * 86400 <= ev["age_seconds"] < 9 * 86400
    fresh, _ = check(scene, tmp_path, scene.ref(digest=scene.digest), "--env", "prod",
                     "--trivy-report", str(scene.medium))
    assert fresh.code == 0, fresh.output


def test_a_report_for_another_repository_is_denied_and_in_no_output(
        scene: Scene, tmp_path: Path) -> None:
    redis = scene.bound_report("debian-buster.json", None, "redis-", repo="library/redis")
    res, verdict = check(scene, tmp_path, scene.ref(digest=scene.digest), "--env", "prod",
                         "--trivy-report", str(redis), "--trivy-report", str(scene.medium))
    assert res.code == 1
    assert failed_rules(verdict) == {"report-binding"}
    image = verdict["images"][0]
    assert [(e["binding"], e["used"]) for e in image["evidence"]] == [
        ("other-repository", False), ("bound", True)]
    # Not one of its findings reaches any output under this image.
    text = _all_outputs(tmp_path / "out")
    assert CRITICAL_CVE not in text
    gitlab = json.loads((tmp_path / "out" / "gl-container-scanning-report.json").read_text())
    assert {v["location"]["image"] for v in gitlab["vulnerabilities"]} == {
        scene.ref(digest=scene.digest)}
    assert len(gitlab["vulnerabilities"]) == image["findings_total"] == 4


def test_an_unknown_ci_environment_name_is_exit_2(scene: Scene, tmp_path: Path) -> None:
    res = run_imggate(["check", "--output-dir", str(tmp_path / "out"),
                       scene.ref(digest=scene.digest)],
                      env={"CI_ENVIRONMENT_NAME": "prod-eu-west", "CI_ENVIRONMENT_TIER": None})
    assert res.code == 2
    assert "CI_ENVIRONMENT_NAME='prod-eu-west' matches no environment" in res.output
    assert "known environments: dev" in res.output
    assert list((tmp_path / "out").iterdir()) == []


def test_deny_and_error_in_one_run_is_exit_1(scene: Scene, tmp_path: Path) -> None:
    down = f"127.0.0.1:{free_port()}/gate/app:1.0.0"
    res, verdict = check(scene, tmp_path, scene.ref(tag="1.0.0"), down, down.replace(
        "app:", "other:"), "--trivy-report", str(scene.critical))
    assert [i["decision"] for i in verdict["images"]] == ["deny", "error", "error"]
    assert res.code == 1 and verdict["exit_code"] == 1 and verdict["decision"] == "deny"


def test_an_unreadable_report_is_exit_2_and_leaves_no_earlier_verdict(scene: Scene,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "out"
    first, _ = check(scene, tmp_path, scene.ref(tag="1.0.0"), "--trivy-report",
                     str(scene.medium))
    assert first.code == 0  # yesterday's allow, now in out/
    bad = tmp_path / "truncated.json"
    bad.write_text(scene.medium.read_text()[:500])
    res, _ = check(scene, tmp_path, scene.ref(tag="1.0.0"), "--trivy-report", str(bad))
    assert res.code == 2 and "truncated.json" in res.output
    # Found before anything was fetched; the earlier run's allow is not left to upload.
    assert sorted(p.name for p in out.iterdir()) == []


def test_stale_reports_are_removed_when_the_run_stops_early(scene: Scene,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "out"
    first, _ = check(scene, tmp_path, scene.ref(tag="1.0.0"), "--trivy-report",
                     str(scene.medium))
    assert first.code == 0 and (out / "imggate-verdict.json").exists()
    broken = tmp_path / "rules.yaml"
    broken.write_text("environments:\n  dev:\n    severity: {fail_on: Sever}\n")
    res, _ = check(scene, tmp_path, scene.ref(tag="1.0.0"), "--rules", str(broken))
    assert res.code == 2
    assert list(out.iterdir()) == []  # GitLab finds no earlier run's verdict to upload


def test_report_files_honour_the_umask(scene: Scene, tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        res, _ = check(scene, tmp_path, scene.ref(tag="1.0.0"), "--trivy-report",
                       str(scene.medium))
    finally:
        os.umask(previous)
    assert res.code == 0
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (tmp_path / "out").iterdir()}
    assert set(modes.values()) == {"0o644"}, modes


def test_a_trivyignore_in_the_working_directory_needs_the_opt_in(scene: Scene,
                                                                 tmp_path: Path) -> None:
    # The autouse fixture runs imggate in tmp_path: a developer's repository in CI.
    (tmp_path / ".trivyignore").write_text(f"{CRITICAL_CVE}\n")
    common = ["--output-dir", str(tmp_path / "out"), scene.ref(digest=scene.digest),
              "--trivy-report", str(scene.critical)]
    res = run_imggate(["check", *common])
    assert res.code == 1  # not read, and said
    assert ("note: ignored .trivyignore in the working directory: exception_policy.discover "
            "is off in dev") in res.output
    verdict = json.loads((tmp_path / "out" / "imggate-verdict.json").read_text())
    assert "ignored .trivyignore" in verdict["policy"]["notes"][0]
    rules = tmp_path / "rules.yaml"
    rules.write_text("environments:\n  dev:\n    severity: {fail_on: Critical}\n"
                     "    exception_policy: {discover: true}\n"
                     "  prod:\n    severity: {fail_on: Critical}\n"
                     "    exception_policy: {discover: true, require_expiry: true}\n")
    res = run_imggate(["check", "--rules", str(rules), *common])
    assert res.code == 0, res.output  # opted in: read, and every suppression printed
    assert "note: read .trivyignore from the working directory" in res.output
    assert re.search(r"SUPPRESSED 1 finding\(s\): 1 by trivyignore \S*\.trivyignore "
                     r"\(worst Critical\)", res.output), res.output
    res = run_imggate(["check", "--rules", str(rules), "--env", "prod", *common])
    assert res.code == 1  # prod requires an expiry: refused, reported, not applied
    assert "1 exception(s) refused by the exception policy of prod" in res.output
    verdict = json.loads((tmp_path / "out" / "imggate-verdict.json").read_text())
    assert [e["status"] for e in verdict["images"][0]["exceptions"]] == ["refused"]


def test_an_exception_used_by_one_image_is_not_stale_on_another(scene: Scene,
                                                                 tmp_path: Path) -> None:
    future = (date.today() + timedelta(days=30)).isoformat()
    rules = tmp_path / "rules.yaml"
    rules.write_text("environments:\n  dev:\n    severity: {fail_on: Critical}\n"
                     f"exceptions:\n  - {{id: {CRITICAL_CVE}, expires: {future}, reason: r}}\n")
    unsigned = scene.bound_report("alpine-310.json", scene.unsigned, "unsigned-",
                                  repo="gate/unsigned")
    res, verdict = check(scene, tmp_path, scene.ref(tag="1.0.0"),
                         scene.ref("gate/unsigned", "1.0.0"), "--rules", str(rules),
                         "--trivy-report", str(scene.critical), "--trivy-report", str(unsigned))
    assert res.code == 0, res.output
    assert [[e["status"] for e in i["exceptions"]] for i in verdict["images"]] == [
        ["used"], ["unmatched-here"]]
    assert "matched nothing" not in json.dumps(verdict)
