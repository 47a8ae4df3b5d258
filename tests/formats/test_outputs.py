"""A run's reports: all written (the GitLab one in a forked child for large runs), or none."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from formats.verdict_samples import allow_image, deny_image, single
from imggate.errors import Error
from imggate.formats import outputs as check
from imggate.models import Verdict
from imggate.values import replace

STARTED = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)


def test_alongside_runs_the_job_in_a_child_and_returns_the_main_result(tmp_path: Path) -> None:
    marker = tmp_path / "job"

    def job() -> None:
        marker.write_text(str(os.getpid()))

    assert check._alongside(job, lambda: 42, fork=True) == 42
    assert int(marker.read_text()) != os.getpid()  # it really ran elsewhere


def test_a_failing_child_is_an_error_with_its_message() -> None:
    def job() -> None:
        raise Error("cannot write report /x/gl.json: disk full")

    with pytest.raises(Error, match="disk full"):
        check._alongside(job, lambda: None, fork=True)

    def crash() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(Error, match=r"OSError.*No space left"):
        check._alongside(crash, lambda: None, fork=True)


def test_a_failing_main_still_waits_for_the_child(tmp_path: Path) -> None:
    marker = tmp_path / "job"

    def main() -> None:
        raise Error("html failed")

    with pytest.raises(Error, match="html failed"):
        check._alongside(lambda: marker.write_text(str(os.getpid())), main, fork=True)
    child = int(marker.read_text())  # the child had finished when the error surfaced
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)  # and was reaped


def _reports(directory: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for p in sorted(directory.iterdir()):
        if p.name.endswith(".json"):
            doc = json.loads(p.read_text())
            doc.get("scan", {}).pop("end_time", None)  # the GitLab report's own clock
            out[p.name] = doc
        else:
            out[p.name] = p.read_text()
    return out


def _forked_equals_plain(verdict: Verdict, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> Path:
    """Write ``verdict``'s reports with a child (whatever this machine's CPUs), then in this
    process alone: the same four reports, byte for byte; the forked ones' directory."""
    forked = tmp_path / "forked"
    monkeypatch.setattr(check, "_can_fork", lambda: True)
    written = check.write_outputs(verdict, forked, started=STARTED)
    assert [p.name for p in written] == ["gl-container-scanning-report.json",
                                         "imggate-report.html", "imggate-junit.xml",
                                         "imggate-verdict.json"]
    monkeypatch.setattr(check, "_can_fork", lambda: False)
    plain = tmp_path / "plain"
    check.write_outputs(verdict, plain, started=STARTED)
    assert _reports(forked) == _reports(plain)
    return forked


def test_forked_and_sequential_writes_give_the_same_reports(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    verdict = single(deny_image(check._FORK_MIN_FINDINGS + 10))
    forked = _forked_equals_plain(verdict, tmp_path, monkeypatch)
    gl = json.loads((forked / "gl-container-scanning-report.json").read_text())
    assert len(gl["vulnerabilities"]) == check._FORK_MIN_FINDINGS + 13


def test_many_images_have_their_html_page_written_by_a_child(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An audit's verdict: many images, few findings; the page is the child's, the same page.
    from formats.verdict_samples import sample_verdict

    verdict = sample_verdict(5)
    monkeypatch.setattr(check, "_FORK_MIN_IMAGES", len(verdict.images))
    monkeypatch.setattr(check, "_can_fork", lambda: True)
    children: list[bool] = []
    alongside = check._alongside

    def watched(job: Callable[[], None], main: Callable[[], object], *, fork: bool) -> object:
        children.append(fork and job.__name__ == "write_html")
        return alongside(job, main, fork=fork)

    monkeypatch.setattr(check, "_alongside", watched)
    _forked_equals_plain(verdict, tmp_path, monkeypatch)
    assert children == [True, False]


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "one-process"])
def test_the_callers_file_is_written_before_the_child_is_waited_for_and_listed_last(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork: bool) -> None:
    # An audit's summary is written while the child writes the page (the longer side),
    # not after waiting for it.
    from formats.verdict_samples import sample_verdict

    verdict = sample_verdict(5)
    monkeypatch.setattr(check, "_FORK_MIN_IMAGES", len(verdict.images))
    monkeypatch.setattr(check, "_can_fork", lambda: fork)
    events: list[str] = []
    waitpid = os.waitpid

    def waited(pid: int, options: int) -> tuple[int, int]:
        events.append("child waited for")
        return waitpid(pid, options)

    monkeypatch.setattr(check.os, "waitpid", waited)

    def summary() -> Path:
        events.append("summary")
        (tmp_path / "summary.json").write_text("{}")
        return tmp_path / "summary.json"

    written = check.write_outputs(verdict, tmp_path, started=STARTED, meanwhile=summary)
    assert events == (["summary", "child waited for"] if fork else ["summary"])
    assert [p.name for p in written] == ["gl-container-scanning-report.json",
                                         "imggate-report.html", "imggate-junit.xml",
                                         "imggate-verdict.json", "summary.json"]
    assert (tmp_path / "imggate-report.html").is_file()


def test_a_page_the_child_cannot_write_is_an_error(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from formats.verdict_samples import sample_verdict

    verdict = sample_verdict(5)
    monkeypatch.setattr(check, "_FORK_MIN_IMAGES", 1)
    monkeypatch.setattr(check, "_can_fork", lambda: True)
    (tmp_path / "imggate-report.html").mkdir()  # the page cannot replace a directory
    (tmp_path / "imggate-report.html" / "x").write_text("")
    with pytest.raises(Error, match=r"imggate-report\.html"):
        check.write_outputs(verdict, tmp_path, started=STARTED)


def test_the_gitlab_document_lists_every_image_s_findings_and_suppressions() -> None:
    # Images with nothing to list (an audit's tags) are passed over; the document is the
    # first image's, with every other image's vulnerabilities and messages after it.

    plain = allow_image()
    empty = replace(plain, findings=(), suppressed=())
    denied = deny_image(3)
    v = Verdict(env="prod", images=(empty, denied, empty, plain, empty), generated=STARTED)
    doc = check.gitlab_document(v, started=STARTED)
    each = [check.gitlab_document(replace(v, images=(iv,)), started=STARTED)
            for iv in (denied, plain)]
    assert doc["vulnerabilities"] == [x for d in each for x in d["vulnerabilities"]]
    assert doc["scan"].get("messages", []) == [
        m for d in each for m in d["scan"].get("messages", [])]
    first = check.gitlab_document(replace(v, images=(empty,)), started=STARTED)
    assert doc["scan"]["scanner"] == first["scan"]["scanner"]
    assert doc["scan"]["status"] == "success"


def test_reports_honour_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        written = check.publish(single(deny_image(3)), tmp_path / "a", started=STARTED,
                                dotenv=tmp_path / "a" / "gate.env").written
        assert len(written) == 5
        assert {oct(p.stat().st_mode & 0o777) for p in written} == {"0o644"}
        os.umask(0o077)
        written = check.publish(single(deny_image(3)), tmp_path / "b", started=STARTED).written
        assert {oct(p.stat().st_mode & 0o777) for p in written} == {"0o600"}
    finally:
        os.umask(previous)


def test_a_report_that_cannot_be_written_removes_the_stale_ones(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    first = check.publish(single(allow_image()), out, started=STARTED)
    assert first.error is None and len(first.written) == 4
    # Yesterday's allow is there; today one report cannot be written (a directory
    # stands where the JUnit file goes): none of yesterday's may be left to upload.
    (out / "imggate-junit.xml").unlink()
    (out / "imggate-junit.xml").mkdir()
    denied = single(deny_image(3))
    result = check.publish(denied, out, started=STARTED)
    assert result.written == () and result.error is not None
    assert "imggate-junit.xml" in result.error
    assert sorted(p.name for p in out.iterdir()) == ["imggate-junit.xml"]
    # The directory is the user's, not a report left behind.
    assert result.left_behind == ()
    assert result.exit_code(denied) == 1  # still a denial
    # An allow without its reports is not an allow: the user must move the directory, no
    # retry writes them (exit 2, not 3).
    assert result.exit_code(single(allow_image())) == 2


def test_an_allow_whose_reports_a_full_disk_refused_is_undecided(tmp_path: Path) -> None:
    # /dev/full refuses every write (ENOSPC): what a retry may get past, so exit 3.
    out = tmp_path / "reports"
    out.mkdir()
    (out / "imggate-junit.xml").symlink_to("/dev/full")
    result = check.publish(single(allow_image()), out, started=STARTED)
    assert result.written == () and result.error is not None
    assert "imggate-junit.xml" in result.error
    assert result.exit_code(single(allow_image())) == 3
    assert result.exit_code(single(deny_image(3))) == 1


def test_a_run_that_stops_early_leaves_no_stale_report(tmp_path: Path) -> None:
    check.publish(single(allow_image()), tmp_path, started=STARTED)
    assert (tmp_path / "imggate-verdict.json").exists()
    with pytest.raises(Error), check.stale_removed_on_error(tmp_path, tmp_path / "x.env"):
        raise Error("the rules file is broken")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("html_page", [True, False])
def test_prepare_loads_the_writers_and_only_with_the_page_its_templates(
        html_page: bool) -> None:
    import json
    import subprocess
    import sys

    probe = ("import json, sys\nfrom imggate.formats import outputs\n"
             f"outputs.prepare(html_page={html_page})\n"
             "modules = sorted(sys.modules)\n"
             "from imggate.formats import _jinja\n"
             "print(json.dumps([modules, _jinja.report_template.cache_info().currsize,"
             " _jinja.section_template.cache_info().currsize]))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    modules, report, section = json.loads(out)
    assert {"imggate.formats.html", "imggate.formats.junit",
            "imggate.formats.verdict_json"} <= set(modules)
    assert ("jinja2" in modules) is html_page
    assert (report, section) == ((1, 1) if html_page else (0, 0))
