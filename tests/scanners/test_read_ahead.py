"""Reports read ahead by a forked child: the same reports, or none (the caller reads)."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import pytest

from harness_read_ahead import count_started
from imggate.errors import ReportError
from imggate.models import ScanReport
from imggate.scanners import read_ahead
from imggate.scanners.detect import load_report
from scanners.report_fixtures import GRYPE, TRIVY_JSON


@pytest.fixture
def any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read ahead whatever the reports' size and this machine's CPUs."""
    monkeypatch.setattr(read_ahead, "MIN_BYTES", 0)
    monkeypatch.setattr(read_ahead, "can_fork", lambda: True)


def _read(paths: list[str]) -> tuple[ScanReport, ...]:
    return tuple(load_report(p) for p in paths)


def _when_done(ahead: read_ahead.ReadAhead) -> tuple[ScanReport, ...] | None:
    """What ``ahead`` gives once its child is done: as a run collects it that starts
    waiting after the child handed over (told it waits, the child makes less)."""
    deadline = time.monotonic() + 30
    while ahead.busy() and time.monotonic() < deadline:
        time.sleep(0.01)
    return ahead.result()


@pytest.mark.usefixtures("any_size")
def test_the_child_hands_back_the_reports_as_read_here() -> None:
    paths = [str(TRIVY_JSON[0]), str(GRYPE[0]), str(TRIVY_JSON[-1])]
    with read_ahead.start(paths, lambda: _read(paths)) as ahead:
        got = ahead.result()
    assert got is not None and got == _read(paths)
    assert ahead.result() is None  # collected once; the child is gone
    with pytest.raises(ChildProcessError):
        os.waitpid(ahead.pid, os.WNOHANG)


@pytest.mark.usefixtures("any_size")
def test_a_report_the_child_cannot_read_is_left_to_the_caller(tmp_path: Path) -> None:
    bad = tmp_path / "trivy.json"
    bad.write_text('{"SchemaVersion": 2, "Results": [')
    paths = [str(TRIVY_JSON[0]), str(bad)]
    with read_ahead.start(paths, lambda: _read(paths)) as ahead:
        assert ahead.result() is None
    with pytest.raises(ReportError, match=r"trivy\.json"):  # worded here, as always
        _read(paths)


def test_small_reports_and_pipes_are_read_by_the_caller(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork() -> int:
        raise AssertionError("forked")

    monkeypatch.setattr(os, "fork", no_fork)
    monkeypatch.setattr(read_ahead, "can_fork", lambda: True)
    small = [str(TRIVY_JSON[0])]
    assert read_ahead.start(small, lambda: _read(small)).result() is None
    fifo = tmp_path / "report"
    os.mkfifo(fifo)
    monkeypatch.setattr(read_ahead, "MIN_BYTES", 0)
    assert not read_ahead.worth_it([str(fifo)])  # read once: only by the caller
    assert not read_ahead.worth_it([str(tmp_path / "missing.json")])
    assert read_ahead.worth_it(small)


@pytest.mark.usefixtures("any_size")
def test_a_run_that_fails_first_stops_the_child() -> None:
    paths = [str(TRIVY_JSON[0])]

    def slow() -> tuple[ScanReport, ...]:
        time.sleep(60)
        return ()

    started = time.monotonic()
    ahead = read_ahead.start(paths, slow)
    assert ahead.pid > 0
    with pytest.raises(RuntimeError), ahead:
        raise RuntimeError("the rules are broken")
    assert time.monotonic() - started < 10
    with pytest.raises(ChildProcessError):
        os.waitpid(ahead.pid, os.WNOHANG)


def test_the_reports_named_on_a_command_line_in_reading_order() -> None:
    args = ["ref", "--report", "a.json", "--trivy-report=t1.json", "-q", "--grype-report",
            "g.json", "--trivy-report", "t2.json", "--", "--report", "not-an-option.json"]
    assert read_ahead.named_on(args) == [("trivy", "t1.json"), ("trivy", "t2.json"),
                                         ("grype", "g.json"), (None, "a.json")]
    assert read_ahead.named_on(["ref", "--trivy-report"]) == []  # no value: nothing to read
    assert read_ahead.named({"--report": ["a"], "--trivy-report": ["t"]}) == [
        ("trivy", "t"), (None, "a")]


@pytest.mark.usefixtures("any_size")
def test_the_early_child_is_taken_only_for_the_same_reports(
        monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [str(TRIVY_JSON[0]), str(GRYPE[0])]
    started = count_started(monkeypatch)
    read_ahead.start_early(["ref", "--trivy-report", paths[0], "--report", paths[1]])
    same = [("trivy", paths[0]), (None, paths[1])]
    with read_ahead.take(same) as ahead:
        early = ahead.pid
        assert early > 0 and ahead.result() == read_ahead.read_reports(same)
    read_ahead.start_early(["ref", "--trivy-report", paths[0]])
    other = [(None, paths[0])]  # read as another kind: not the child's to give
    with read_ahead.take(other) as ahead:
        assert ahead.pid not in (0, early)
        assert ahead.result() == read_ahead.read_reports(other)
    read_ahead.start_early(["ref", "--trivy-report", paths[0]])
    read_ahead.discard_early()  # the run stopped before check took it: the child is stopped
    with pytest.raises(ChildProcessError):
        os.waitpid(started[-1], os.WNOHANG)
    assert len(started) == 4 and len(set(started)) == 4


@pytest.mark.usefixtures("any_size")
def test_the_child_merges_the_findings_too() -> None:
    from imggate.scanners.merge import merge, merge_findings

    paths = [str(TRIVY_JSON[0]), str(GRYPE[0])]
    with read_ahead.start(paths, lambda: _read(paths)) as ahead:
        reports = ahead.result()
    assert reports is not None
    merged = merge(reports)
    assert merged == merge_findings(f for r in reports for f in r.findings)
    assert merge(reports) is merged  # the child's, remembered
    assert merge(_read(paths)) is not merged  # other objects: merged here


@pytest.mark.usefixtures("any_size")
def test_the_child_sorts_the_merge_worst_first_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from imggate.formats import verdict_json
    from imggate.scanners.merge import merge

    sorted_here: list[int] = []
    key = verdict_json.finding_sort_key

    def counted(f: object) -> object:
        sorted_here.append(1)
        return key(f)  # type: ignore[arg-type]

    paths = [str(TRIVY_JSON[0]), str(GRYPE[0])]
    with read_ahead.start(paths, lambda: _read(paths)) as ahead:
        reports = ahead.result()
    assert reports is not None
    monkeypatch.setattr(verdict_json, "finding_sort_key", counted)
    merged = merge(reports)
    # The decision's own tuple of the same findings: the child's order, not sorted here.
    ordered = verdict_json.worst_first(tuple(list(merged)))
    assert sorted_here == [] and len(ordered) == len(merged) > 1
    assert list(ordered) == sorted(merged, key=key)


@pytest.mark.usefixtures("any_size")
def test_the_child_makes_the_html_reports_rows_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from imggate.formats import html, verdict_json
    from imggate.scanners.merge import merge

    paths = [str(TRIVY_JSON[0]), str(GRYPE[0])]
    with read_ahead.start(paths, lambda: _read(paths)) as ahead:
        reports = _when_done(ahead)
    assert reports is not None
    ordered = verdict_json.worst_first(tuple(list(merge(reports))))
    made_here = html._finding_rows((f, None) for f in ordered)
    monkeypatch.setattr(html, "_finding_rows", lambda items: pytest.fail("made here"))
    assert html.active_rows(ordered) == made_here.encode("utf-8")  # the child's, the same


@pytest.mark.usefixtures("any_size")
def test_the_child_makes_the_verdict_jsons_findings_block_too(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from formats.verdict_samples import sample_verdict
    from imggate.formats import verdict_json
    from imggate.scanners.merge import merge
    from imggate.values import replace

    paths = [str(TRIVY_JSON[0]), str(GRYPE[0])]
    with read_ahead.start(paths, lambda: _read(paths)) as ahead:
        reports = _when_done(ahead)
    assert reports is not None
    findings = tuple(list(merge(reports)))  # (the decision's own tuple of them)
    made_here = verdict_json.findings_block(findings)
    monkeypatch.setattr(verdict_json, "findings_block", lambda f: pytest.fail("made here"))
    verdict = sample_verdict(1)
    image = replace(verdict.images[1], findings=findings)
    assert made_here in verdict_json.render(replace(verdict, images=(image,)))


@pytest.mark.usefixtures("any_size")
def test_the_rows_and_block_written_a_few_at_a_time_are_the_ones_made_here(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from imggate.formats import html, verdict_json
    from imggate.scanners.merge import merge

    monkeypatch.setattr(read_ahead, "_PER_WRITE", 2)  # (the child's, forked from here)
    paths = [str(TRIVY_JSON[0]), str(GRYPE[0])]
    with read_ahead.start(paths, lambda: _read(paths)) as ahead:
        reports = _when_done(ahead)
    assert reports is not None
    findings = tuple(list(merge(reports)))
    ordered = verdict_json.worst_first(findings)
    assert len(ordered) > 4
    made_here = html._finding_rows((f, None) for f in ordered).encode("utf-8")
    assert html.active_rows(ordered) == made_here
    block = verdict_json.findings_block(findings)
    assert verdict_json._block is not None and verdict_json._block[1] == block.encode("ascii")


@pytest.mark.usefixtures("any_size")
def test_told_the_run_the_writer_holds_the_previous_reports_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Renaming this run's report over the previous one frees the previous one's pages then
    # (~17 ms for 18 MB), in the writer's work after the verdict: held open by the writer,
    # they are freed when it exits instead.
    from imggate.formats import written_ahead
    from imggate.formats.outputs import GITLAB_FILENAME
    from imggate.redact import Redactor

    monkeypatch.setattr(written_ahead, "MIN_FINDINGS", 0)
    monkeypatch.setattr(written_ahead, "SECRETS", Redactor())
    (tmp_path / GITLAB_FILENAME).write_text("{}")
    (tmp_path / "imggate-verdict.json").mkdir()  # (not a file: not opened)
    os.mkfifo(tmp_path / "imggate-junit.xml")  # (not a file: not opened, never waited on)
    # A symlink is not followed: the rename replaces the link, and what it points at
    # could be anything.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "page.html").write_text("<html></html>")
    (tmp_path / "imggate-report.html").symlink_to(elsewhere / "page.html")
    watched = {str(p) for p in tmp_path.iterdir()} | {str(elsewhere / "page.html")}
    paths = [str(TRIVY_JSON[0])]
    with read_ahead.start(paths, lambda: _read(paths), writes=True) as ahead:
        assert ahead.result() is not None
        writer = ahead.writer(written_ahead.Plan(tmp_path, images=("registry.example/a@x",)))
        assert writer is not None
        with writer:
            fds = Path(f"/proc/{writer.pid}/fd")  # (imggate's CI and users: Linux)
            deadline, held = time.monotonic() + 30, set()
            while time.monotonic() < deadline and not held:
                held = _opened(fds) & watched
                time.sleep(0.01)
            time.sleep(0.2)  # (anything else it would hold is held by now too)
            held = _opened(fds) & watched
            assert held == {str(tmp_path / GITLAB_FILENAME)}


def _opened(fds: Path) -> set[str]:
    """What the descriptors in ``fds`` (a ``/proc/PID/fd``) name."""
    names = set()
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):  # (closed meanwhile)
            names.add(os.readlink(fd))
    return names


def _many(reports: tuple[ScanReport, ...], copies: int) -> tuple[ScanReport, ...]:
    """``reports`` with each one's findings repeated ``copies`` times under other ids: more
    than a pipe holds once pickled."""
    from imggate.values import replace

    return tuple(replace(r, findings=tuple(
        replace(f, id=f"{f.id}-{n}", description=f"({n}) {f.description} {'.' * 1000}")
        for n in range(copies) for f in r.findings))
        for r in reports)


def _exited(pid: int, within: float) -> bool:
    """Whether ``pid`` (a child of this process) ends within ``within`` seconds; it is
    left to be reaped."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        time.sleep(0.01)
    return False


@pytest.mark.usefixtures("any_size")
def test_the_child_is_done_before_its_reports_are_collected() -> None:
    # The child hands over what it read without waiting for this process to take it (the
    # parent may be busy importing for a while): more than a pipe holds (1 MiB at most)
    # would keep it waiting on its write instead of going on to the reports' parts.
    paths = [str(max(TRIVY_JSON, key=lambda p: p.stat().st_size))]
    big = _many(_read(paths), 250)
    with read_ahead.start(paths, lambda: big) as ahead:
        assert ahead.pid > 0
        import pickle

        assert len(pickle.dumps(big)) > 2 << 20
        assert _exited(ahead.pid, 30), "the child waited for its reports to be collected"
        assert not ahead.busy()
        assert ahead.result() == big


@pytest.mark.usefixtures("any_size")
def test_busy_while_the_child_reads() -> None:
    paths = [str(TRIVY_JSON[0])]

    def slow() -> tuple[ScanReport, ...]:
        time.sleep(1.5)
        return _read(paths)

    with read_ahead.start(paths, slow) as ahead:
        assert ahead.busy()
        assert _exited(ahead.pid, 30)
        assert not ahead.busy()  # it has said it is done
        assert ahead.result() == _read(paths)
    assert not ahead.busy()  # collected: nothing to wait for
    assert not read_ahead.ReadAhead(0, None).busy()  # no child


@pytest.mark.usefixtures("any_size")
def test_a_child_that_dies_before_saying_it_is_done_gives_nothing() -> None:
    paths = [str(TRIVY_JSON[0])]

    def dies() -> tuple[ScanReport, ...]:
        os._exit(0)  # as a crash would, before a word to the parent

    with read_ahead.start(paths, dies) as ahead:
        assert _exited(ahead.pid, 30)
        assert not ahead.busy()  # its end is news too: the caller reads
        assert ahead.result() is None


def test_a_store_shorter_than_the_child_said_or_not_sealed_gives_nothing() -> None:
    # Mapped past its end, the file would kill this process (SIGBUS) where it is read;
    # sealed, it can neither shrink nor change once mapped.
    import pickle

    data = pickle.dumps(((), (), ()))
    fd = read_ahead._anonymous_file()
    try:
        os.write(fd, data + b"[]" + b"rows")
        said = [len(data), 2, 4, 1]  # (the pickle, the block, the rows of 1 finding)
        whole = b"".join(n.to_bytes(8, "big") for n in said)
        if hasattr(os, "memfd_create"):  # (Linux: the child seals what it wrote)
            assert read_ahead._stored(fd, whole) is None
            read_ahead._seal(fd)
            with pytest.raises(PermissionError):
                os.ftruncate(fd, 1)
            with pytest.raises(PermissionError):
                os.pwrite(fd, b"x", 0)
        parts = read_ahead._stored(fd, whole)
        assert parts is not None and [bytes(p) for p in parts[:3]] == [data, b"[]", b"rows"]
        assert parts[3] == 1
        said[1] += 1
        assert read_ahead._stored(fd, b"".join(n.to_bytes(8, "big") for n in said)) is None
        assert read_ahead._stored(fd, b"\0" * 24) is None  # (not all it says)
    finally:
        os.close(fd)


def _reports_parts(reports: tuple[ScanReport, ...] | None) -> tuple[bytes, str]:
    """The HTML report's rows and the verdict JSON of ``reports``' findings, as a run
    writes them once a reading child gave them."""
    from formats.verdict_samples import sample_verdict
    from imggate.formats import html, verdict_json
    from imggate.scanners.merge import merge
    from imggate.values import replace

    assert reports is not None
    findings = tuple(list(merge(reports)))  # (the decision's own tuple of them)
    rows = html.active_rows(verdict_json.worst_first(findings))
    verdict = sample_verdict(1)
    image = replace(verdict.images[1], findings=findings)
    document = verdict_json.render(replace(verdict, images=(image,)))
    return (rows.encode("utf-8") if isinstance(rows, str) else bytes(rows)), document


@pytest.fixture
def nothing_made_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """No rows or block remembered from an earlier test."""
    from imggate.formats import html, verdict_json

    monkeypatch.setattr(html, "_ahead", None)
    monkeypatch.setattr(verdict_json, "_block", None)


def _made_by_a_child_then_forgotten(paths: list[str],
                                    monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, str]:
    """The report parts of ``paths`` as a child not waited for makes them all (the rows
    and the block remembered, then forgotten here, for a run that makes them again)."""
    from imggate.formats import html, verdict_json

    with read_ahead.start(paths, lambda: _read(paths)) as ahead:
        made_there = _reports_parts(_when_done(ahead))
    assert html._ahead is not None and verdict_json._block is not None  # the child's
    monkeypatch.setattr(html, "_ahead", None)
    monkeypatch.setattr(verdict_json, "_block", None)
    return made_there


@pytest.mark.usefixtures("any_size", "nothing_made_ahead")
def test_a_child_waited_for_hands_over_without_its_parts_and_they_are_made_here(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from imggate.formats import html, verdict_json

    paths = [str(TRIVY_JSON[0]), str(GRYPE[0])]
    made_there = _made_by_a_child_then_forgotten(paths, monkeypatch)

    def slow() -> tuple[ScanReport, ...]:
        time.sleep(0.5)  # (this process waits for it meanwhile)
        return _read(paths)

    with read_ahead.start(paths, slow) as ahead:
        assert ahead.busy()
        reports = ahead.result()  # told it waits: the reports without the parts
        assert reports is not None
        assert html._ahead is None and verdict_json._block is None
        assert _reports_parts(reports) == made_there  # made here, the same bytes


@pytest.mark.usefixtures("any_size", "nothing_made_ahead")
def test_rows_made_in_part_by_a_child_waited_for_are_made_whole_here(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from imggate.formats import html, verdict_json
    from imggate.scanners.merge import merge

    paths = [str(TRIVY_JSON[0]), str(GRYPE[0])]
    made_there = _made_by_a_child_then_forgotten(paths, monkeypatch)

    # (In the child, forked from here:) told it is waited for after the block and two
    # steps of rows, two findings each.
    looks = iter([False, False, False])
    monkeypatch.setattr(read_ahead, "_waited_for", lambda fd: next(looks, True))
    monkeypatch.setattr(read_ahead, "_ROWS_PER_STEP", 2)
    made_here: list[int] = []
    row_list = html.row_list
    monkeypatch.setattr(html, "row_list", lambda ordered: (
        made_here.append(len(ordered)), row_list(ordered))[1])
    with read_ahead.start(paths, lambda: _read(paths)) as ahead:
        reports = _when_done(ahead)
        assert reports is not None and verdict_json._block is not None  # the child's
        # The child's four rows taken, the others not made before the page is written
        # (after the verdict).
        assert made_here == [] and html._ahead is not None and html._ahead[2] == 4
        assert _reports_parts(reports) == made_there
        # The rows of the other findings made then, once (the child's four kept).
        assert made_here == [len(merge(reports)) - 4]
        assert _reports_parts(reports) == made_there and len(made_here) == 1
