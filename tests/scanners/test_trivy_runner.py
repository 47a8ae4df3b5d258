"""Running Trivy: argv, credentials in the environment only, offline flags, failures are exit 3.

Uses ``fake_trivy_standin.py``, a stand-in executable installed as ``trivy``
on PATH that prints a real Trivy report and records how it was started.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from imggate.errors import ScannerError, UsageError
from imggate.models import Digest, ImageRef, ResolvedImage
from imggate.scanners.trivy_runner import TrivyOptions, run_trivy
from scanners.report_fixtures import FIXTURES

STANDIN = Path(__file__).with_name("fake_trivy_standin.py")
REPORT = FIXTURES / "trivy" / "alpine-310.json"
DIGEST = "sha256:" + "3c" * 32
REF = f"registry.example.com/team/app@{DIGEST}"
PASSWORD = "s3cr3t-Passw0rd!"  # a test credential, not a real one


@pytest.fixture
def fake_trivy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the stand-in on PATH as ``trivy``; return the file it records its start to."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "trivy"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STANDIN}" "$@"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_TRIVY_RECORD", str(record))
    monkeypatch.setenv("FAKE_TRIVY_REPORT", str(REPORT))
    monkeypatch.delenv("TRIVY_USERNAME", raising=False)
    monkeypatch.delenv("TRIVY_PASSWORD", raising=False)
    return record


def _started(record: Path) -> dict:
    return json.loads(record.read_text())


def test_scans_the_pinned_reference_with_credentials_in_the_environment(fake_trivy: Path) -> None:
    report = run_trivy(REF, username="ci-bot", password=PASSWORD)
    assert len(report.findings) == 4
    assert report.source == f"trivy image {REF}"
    started = _started(fake_trivy)
    assert started["argv"][1:] == ["image", "--format", "json", "--quiet", REF]
    assert started["env"]["TRIVY_USERNAME"] == "ci-bot"
    assert started["env"]["TRIVY_PASSWORD"] == PASSWORD
    assert not any(PASSWORD in a or "ci-bot" in a for a in started["argv"])


def test_resolved_image_is_scanned_by_digest(fake_trivy: Path) -> None:
    d = Digest.parse(DIGEST)
    image = ResolvedImage(ImageRef("registry.example.com", "team/app", "v1"), d,
                          "application/vnd.oci.image.manifest.v1+json", (), d, None)
    run_trivy(image)
    started = _started(fake_trivy)
    assert started["argv"][-1] == REF  # the digest, not the tag
    assert "TRIVY_USERNAME" not in started["env"] and "TRIVY_PASSWORD" not in started["env"]


def test_offline_flags_are_passed_through(fake_trivy: Path, tmp_path: Path) -> None:
    opts = TrivyOptions(skip_db_update=True, offline_scan=True, cache_dir=str(tmp_path / "c"),
                        db_repository="mirror.example.com/trivy-db")
    run_trivy(REF, options=opts)
    assert _started(fake_trivy)["argv"][1:] == [
        "image", "--format", "json", "--quiet", "--skip-db-update", "--offline-scan",
        "--cache-dir", str(tmp_path / "c"), "--db-repository", "mirror.example.com/trivy-db", REF]


def test_failure_is_exit_3_with_stderr_tail_and_no_password(
        fake_trivy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TRIVY_MODE", "fail")
    with pytest.raises(ScannerError) as e:
        run_trivy(REF, username="u", password=PASSWORD)
    assert e.value.exit_code == 3
    assert "trivy failed (exit 1)" in e.value.message
    assert "401 Unauthorized" in e.value.message
    assert PASSWORD not in e.value.message and "***" in e.value.message


def test_password_from_the_base_environment_is_scrubbed_too(
        fake_trivy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TRIVY_MODE", "fail")
    monkeypatch.setenv("TRIVY_PASSWORD", PASSWORD)
    with pytest.raises(ScannerError) as e:
        run_trivy(REF)
    assert PASSWORD not in e.value.message


def test_timeout_is_exit_3(fake_trivy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TRIVY_MODE", "hang")
    with pytest.raises(ScannerError, match=r"trivy timed out after 0\.5s") as e:
        run_trivy(REF, options=TrivyOptions(timeout=0.5))
    assert e.value.exit_code == 3


def test_output_that_is_not_a_report_is_exit_3(
        fake_trivy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TRIVY_MODE", "garbage")
    with pytest.raises(ScannerError, match="trivy printed no valid report"):
        run_trivy(REF)


def test_output_of_another_scanner_is_not_accepted(
        fake_trivy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TRIVY_REPORT",
                       str(FIXTURES / "grype" / "grype-snapshot-TestJsonImgsPresenter.json"))
    with pytest.raises(ScannerError, match=r"SchemaVersion"):
        run_trivy(REF)


def test_missing_trivy_is_exit_3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ScannerError, match="trivy not found") as e:
        run_trivy(REF)
    assert e.value.exit_code == 3


def test_tag_reference_is_refused() -> None:
    with pytest.raises(UsageError, match="digest-pinned"):
        run_trivy("registry.example.com/team/app:latest")


def _runs(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _image(n: int) -> ResolvedImage:
    d = Digest.parse(f"sha256:{str(n) * 64}")
    return ResolvedImage(ImageRef("registry.example.com", f"team/app-{n}", "v1"), d,
                         "application/vnd.oci.image.manifest.v1+json", (), d, None)


def test_many_scans_update_the_db_once_run_one_at_a_time_and_keep_the_json(
        fake_trivy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from imggate.scanners.trivy_runner import TrivyScans

    log = tmp_path / "runs.jsonl"
    monkeypatch.setenv("FAKE_TRIVY_LOG", str(log))
    monkeypatch.setenv("FAKE_TRIVY_SLEEP", "0.2")
    evidence = tmp_path / "reports"
    scans = TrivyScans(TrivyOptions(evidence_dir=str(evidence)))
    images = [_image(n) for n in range(4)]
    with ThreadPoolExecutor(4) as pool:  # as the gate calls it: every image at once
        reports = list(pool.map(scans.scan, images))
    assert all(len(r.findings) == 4 for r in reports)
    runs = sorted(_runs(log), key=lambda r: r["start"])
    assert len(runs) == 4
    assert "--skip-db-update" not in runs[0]["argv"]
    assert all("--skip-db-update" in r["argv"] for r in runs[1:])
    for before, after in itertools.pairwise(runs):
        assert after["start"] >= before["end"]  # never two at once on one cache dir
    kept = sorted(p.name for p in evidence.iterdir())
    assert kept == sorted(f"trivy-team_app-{n}-{str(n) * 12}.json" for n in range(4))
    assert (evidence / kept[0]).read_bytes() == REPORT.read_bytes()


def test_db_update_is_retried_after_a_failed_first_scan(
        fake_trivy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imggate.scanners.trivy_runner import TrivyScans

    log = tmp_path / "runs.jsonl"
    monkeypatch.setenv("FAKE_TRIVY_LOG", str(log))
    scans = TrivyScans(TrivyOptions())
    monkeypatch.setenv("FAKE_TRIVY_MODE", "fail")
    with pytest.raises(ScannerError):
        scans.scan(REF)
    monkeypatch.setenv("FAKE_TRIVY_MODE", "report")
    scans.scan(REF)
    scans.scan(REF)
    assert ["--skip-db-update" in r["argv"] for r in _runs(log)] == [False, False, True]


def test_skip_db_update_given_by_the_user_applies_to_every_scan(
        fake_trivy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imggate.scanners.trivy_runner import TrivyScans

    log = tmp_path / "runs.jsonl"
    monkeypatch.setenv("FAKE_TRIVY_LOG", str(log))
    scans = TrivyScans(TrivyOptions(skip_db_update=True))
    scans.scan(REF)
    scans.scan(REF)
    assert all("--skip-db-update" in r["argv"] for r in _runs(log))
