"""The GitLab report of a large ``check``, written by the child that read its reports.

The report is mostly its findings: each finding's part of it (the GitLab
vulnerability's members but its id and location) depends on the finding alone. The
child that read the reports (:mod:`imggate.scanners.read_ahead`) goes on, once it has
handed them over, to make those parts on the other CPU (:func:`serve`;
:func:`imggate.formats.gitlab.warm`) while this process reads the registry, checks the
signatures and decides; then it waits for the verdict (:meth:`WrittenAhead.submit`)
and writes the report while this process writes the HTML, JUnit and verdict JSON
reports (the verdict JSON's findings lines come made with the reports: see
:mod:`imggate.scanners.read_ahead`).

When this process takes the child (:meth:`imggate.scanners.read_ahead.ReadAhead.writer`)
it tells it what it knows of the run by then (:class:`Plan`: where the reports go, the
image the command line pins), and the child makes the vulnerabilities whole for that
image, ids included, and their text (:func:`imggate.formats.gitlab.warm_image`), before
the verdict. A plan is a guess: what the child writes is the verdict it is sent, and
what it made for another image, or for other findings, is not used. After the verdict
the child then only puts the document together and writes it (a check of 10,000
findings: ~220M instructions there before (the GitLab report and the verdict JSON then),
~7M now; issue 22).

A child that is done with the plan before the verdict comes loads the HTML report's
templates meanwhile and says so; told then, it writes the HTML report too (its rows it
made itself), and this process never imports Jinja2: ~30-60 ms of this process's work
after the verdict, where the child would only wait (:meth:`WrittenAhead.submit`).

The verdict goes to the child pickled without its findings and reports, which go as
their places among those the child holds (the ones it handed over, in the same
order): what the child puts together is the verdict this process has, its findings
the objects the child made parts for (pickling them cost ~50M instructions on each
side). A verdict with a finding or report the child does not hold is written here.
Nothing from outside is unpickled: the pipe is the two processes' own.

Failure is as for any report: :meth:`WrittenAhead.wait` says why the child wrote
nothing (or died), and the run removes every report. A run that stops before it
submits closes the pipe: the child reads nothing and ends without writing. The
child redacts with the secrets this process held when it forked: a run that holds
any then, or when it submits, writes the report itself.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import select
import signal
import stat
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from msgspec import Struct

from imggate._fork import child_error, failed_with, tell_parent
from imggate.errors import Error
from imggate.models import Finding, ScanReport, Verdict
from imggate.redact import SECRETS
from imggate.values import replace, same_objects

#: Below this many findings the report takes a few ms: not worth a process.
MIN_FINDINGS = 2000
#: What the child says when it has written the report (an error is said in words).
_WRITTEN = b"\0written"
#: What the child says, before the verdict, when it can write the HTML report too.
_READY = b"\0ready"


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class Plan(Struct, frozen=True):
    """What the child is told of the run before its verdict (see the module): guesses
    that let it make more of the reports ahead, never what it writes."""

    #: Where the reports will be written.
    directory: Path
    #: The images as their reports will name them (``registry/repository@digest``), for
    #: the references the command line pins by digest.
    images: tuple[str, ...] = ()
    #: ``--default-branch-image``.
    default_branch_image: str | None = None


class WrittenAhead:
    """The child that writes the GitLab report (see the module)."""

    def __init__(self, pid: int, job: int, result: int, held: _Held) -> None:
        #: The child's process id.
        self.pid = pid
        self._job: int | None = job
        self._result: int | None = result
        self._held = held
        self._reaped = False
        self._said = b""  # what the child said before wait() (not that it is ready)
        #: Whether the child writes the HTML report too (see :meth:`submit`).
        self.html = False

    def plan(self, plan: Plan) -> None:
        """Tell the child what it may make ahead for this run (see :class:`Plan`)."""
        if self._job is not None:
            with contextlib.suppress(OSError):  # (gone: submit() finds out)
                _send(self._job, plan)

    def submit(self, verdict: Verdict, directory: Path, *, started: datetime,
               default_branch_image: str | None, html: bool = False) -> bool:
        """Have the child write ``verdict``'s GitLab report into ``directory``; ``False``
        (and the child stopped) when this process must write it itself. With ``html``
        (the built-in HTML report is wanted), the child writes that too when it said it
        can (:attr:`html` says which)."""
        job = self._job
        shell = _shell(verdict, self._held) if job is not None and not SECRETS else None
        if job is None or shell is None or self._gone():
            # (gone: it failed making its parts; this process writes, as without it)
            self.discard()
            return False
        self._job = None
        self.html = html and self._ready()
        try:
            _send(job, (*shell, directory, started, default_branch_image, self.html))
        except OSError:  # the child is gone: wait() says so
            pass
        finally:
            os.close(job)
        return True

    def _ready(self) -> bool:
        """Whether the child has said it can write the HTML report (without waiting)."""
        if self._result is None:
            return False
        try:
            if not select.select([self._result], [], [], 0)[0]:
                return False
            said = os.read(self._result, len(_READY))
        except (OSError, ValueError):
            return False
        if said == _READY:
            return True
        self._said = said  # (the start of why it failed: wait() says all of it)
        return False

    def wait(self) -> Error | None:
        """Wait for the child: ``None`` when it wrote the report, else why not (the error
        the child failed with: its exit code too, see :func:`imggate._fork.child_error`)."""
        if self._result is None:
            return Error("the reports' writer was stopped")
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := os.read(self._result, 4096):
                chunks.append(chunk)
        os.close(self._result)
        self._result = None
        said = self._said + b"".join(chunks)
        # (Ready after submit() looked: the verdict went without the HTML report.)
        said = said.removeprefix(_READY)
        if said == _WRITTEN:
            # Both written: not waited for while the kernel frees the child's memory (it
            # says so before it exits); reaped if it is gone already, else by init.
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, os.WNOHANG)
            return None
        _, status = os.waitpid(self.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        message = said.decode("utf-8", "replace")
        return child_error(message or f"writing the GitLab report failed (exit status {code})",
                           code)

    def discard(self) -> None:
        """Stop the child if it was not waited for."""
        if self._job is not None:
            os.close(self._job)
            self._job = None
        if self._result is None:  # waited for already
            return
        os.close(self._result)
        self._result = None
        if self._reaped:  # (its process id may be another process's by now)
            return
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    def _gone(self) -> bool:
        """Whether the child has ended (it is reaped then)."""
        try:
            self._reaped = os.waitpid(self.pid, os.WNOHANG)[0] != 0
        except ChildProcessError:
            self._reaped = True
        return self._reaped

    def __enter__(self) -> WrittenAhead:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.discard()


#: What the child was forked with: findings and reports, and the place of each by id.
class _Held:
    def __init__(self, findings: Sequence[Finding], reports: Sequence[ScanReport]) -> None:
        self.findings = tuple(findings)
        self.reports = tuple(reports)
        # Ids of objects held here: no other object has one of them meanwhile.
        self.report_at = {id(r): n for n, r in enumerate(self.reports)}

    @functools.cached_property
    def finding_at(self) -> dict[int, int]:
        """The place of each finding, by id (made when a verdict needs it: one whose image
        holds all of them, in order, does not)."""
        return {id(f): n for n, f in enumerate(self.findings)}


#: Per image: its findings' places (``None``: all held, in order), its suppressed
#: findings' and reports' places, and the reasons.
_Places = list[tuple[list[int] | None, list[int], list[str], list[int]]]


def _shell(verdict: Verdict, held: _Held) -> tuple[Verdict, _Places] | None:
    """``verdict`` without its findings and reports, and their places in ``held``;
    ``None`` when it has one ``held`` does not hold."""
    # (Imported here: this module is imported before the reading child is forked.)

    places: _Places = []
    images = []
    report_at = held.report_at
    for iv in verdict.images:
        try:
            found = None if same_objects(iv.findings, held.findings) else [
                held.finding_at[id(f)] for f in iv.findings]
            suppressed = [held.finding_at[id(f)] for f, _ in iv.suppressed]
            reports = [report_at[id(r)] for r in iv.reports]
        except KeyError:
            return None
        places.append((found, suppressed, [why for _, why in iv.suppressed], reports))
        images.append(replace(iv, findings=(), suppressed=(), reports=()))
    return replace(verdict, images=tuple(images)), places


def _whole(shell: Verdict, places: _Places, held: _Held) -> Verdict:
    """The verdict :func:`_shell` took apart, with the objects ``held`` holds."""
    findings, reports = held.findings, held.reports
    return replace(shell, images=tuple(
        replace(iv, findings=findings if found is None else tuple([findings[n] for n in found]),
                suppressed=tuple(zip([findings[n] for n in suppressed], why, strict=True)),
                reports=tuple([reports[n] for n in used]))
        for iv, (found, suppressed, why, used) in zip(shell.images, places, strict=True)))


def _send(fd: int, message: object) -> None:
    """Write ``message`` pickled to the job pipe, after its length (8 bytes)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(len(data).to_bytes(8, "big") + data)
    while view:
        view = view[os.write(fd, view):]


def _received(job: int) -> Any:
    """The next message on the job pipe (see :func:`_send`); ``None`` when it has none
    left whole (this process wrote its reports itself, or stopped). Read as it comes,
    nothing read ahead of it (so :func:`_waiting` sees what follows)."""
    said = _read_exactly(job, 8)
    size = int.from_bytes(said, "big") if len(said) == 8 else -1
    data = _read_exactly(job, size) if size >= 0 else b""
    if len(data) != size:
        return None
    return pickle.loads(data)  # noqa: S301 - our parent's, see the module


def _read_exactly(fd: int, size: int) -> bytes:
    """``size`` bytes from ``fd``, or fewer where it ends."""
    chunks, left = [], size
    while left > 0 and (chunk := os.read(fd, left)):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _waiting(fd: int) -> bool:
    """Whether the parent has sent something (or closed the pipe) that is not read yet."""
    return bool(select.select([fd], [], [], 0)[0])


class Pipes:
    """The two pipes between this process and the child: the job to it, the outcome back.
    Made before the fork (by :func:`imggate.scanners.read_ahead.start`)."""

    def __init__(self) -> None:
        self.job_read, self.job_write = os.pipe()
        self.result_read, self.result_write = os.pipe()

    def parent_side(self) -> None:
        """Close the child's ends (in this process, after the fork)."""
        os.close(self.job_read)
        os.close(self.result_write)

    def close(self) -> None:
        """Close this process's ends (no child to write)."""
        os.close(self.job_write)
        os.close(self.result_read)


def wanted(findings: Sequence[Finding]) -> bool:
    """Whether a child is worth its process for ``findings``, and may write: many
    findings, no secret held (the child redacts with the secrets of its fork)."""
    return len(findings) >= MIN_FINDINGS and not SECRETS


def attach(pid: int, pipes: Pipes, findings: Sequence[Finding],
           reports: Sequence[ScanReport], plan: Plan | None = None) -> WrittenAhead:
    """The child ``pid``, serving (:func:`serve`) ``findings`` of ``reports`` (this
    process's copies of what the child holds, in the same order), told ``plan``."""
    ahead = WrittenAhead(pid, pipes.job_write, pipes.result_read, _Held(findings, reports))
    if plan is not None:
        ahead.plan(plan)
    return ahead


def serve(findings: Sequence[Finding], reports: Sequence[ScanReport], pipes: Pipes, *,
          html_too: bool = True) -> None:
    """In the child (never returns): make the parts of ``findings``, then write the
    documents of the verdict the parent sends (nothing if it sends none). ``html_too``:
    whether it may offer to write the HTML report (it holds all its rows)."""
    os.close(pipes.job_write)
    os.close(pipes.result_read)
    if not wanted(findings):
        os._exit(1)
    _child(_Held(findings, reports), pipes.job_read, pipes.result_write, html_too)


def _child(held: _Held, job: int, result: int, html_too: bool) -> None:
    code = 1
    try:
        from imggate.formats import gitlab, html
        from imggate.formats.outputs import GITLAB_FILENAME, gitlab_document

        gitlab.warm(held.findings)
        message = _received(job)
        if type(message) is Plan:
            # Failing here only makes less ahead: what fails fails again, and is
            # said, when the documents are written.
            with contextlib.suppress(Exception):
                _ahead_of(message, held)
            # (A verdict there already: not waited for longer. Without all the rows, the
            # parent has them, or makes them: made here too, they took this child ~150
            # ms at 10,000 findings, mostly past a verdict that came meanwhile.)
            if html_too and not _waiting(job):
                with contextlib.suppress(Exception):
                    html.prepare()
                    os.write(result, _READY)
            message = _received(job)
        os.close(job)
        if message is not None:  # (none: the run wrote its reports itself, or stopped)
            shell, places, directory, started, dbi, page = message
            verdict = _whole(shell, places, held)
            if page:  # (first: its failure is the one said, as when the parent writes both)
                html.write(verdict, directory)
            gitlab.write(directory / GITLAB_FILENAME,
                         gitlab_document(verdict, started=started, default_branch_image=dbi))
            os.write(result, _WRITTEN)
            os.close(result)  # now: exiting frees the memory first, then the files
            # The standard streams too (nothing more is said there): a caller reading the
            # run's output to its end (a CI runner, a benchmark) would otherwise wait for
            # this process's memory to be freed when it ended after the parent.
            for fd in (0, 1, 2):
                with contextlib.suppress(OSError):
                    os.close(fd)
            code = 0
    except BaseException as e:  # the parent reports it and fails
        tell_parent(result, e)
        code = failed_with(e)
    finally:
        os._exit(code)


def _ahead_of(plan: Plan, held: _Held) -> None:
    """Make in the child what ``plan`` lets it make before the verdict (see the module)."""
    from imggate.formats import gitlab
    from imggate.formats.outputs import report_paths

    # The previous run's reports are held open until this child exits (never closed
    # here): renaming a report over one frees its pages (18 MB for the GitLab report of
    # 10,000 findings: ~17 ms of wall time); held open, they are freed when this child
    # exits instead, after it said it wrote. Opened read-only, never through a symlink
    # (a rename replaces the link, not its target) and without waiting (a FIFO), and
    # kept only when it is a regular file: nothing about them changes.
    for path in report_paths(plan.directory):
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
    if len(plan.images) == 1:
        os_name = next((r.operating_system for r in held.reports if r.operating_system), None)
        gitlab.warm_image(held.findings, image=plan.images[0], operating_system=os_name,
                          default_branch_image=plan.default_branch_image)
