"""Writing every report of a ``check`` run, and never leaving an earlier run's behind.

:func:`publish` writes the GitLab report, HTML, JUnit and verdict JSON (and
the dotenv report when asked). When they cannot all be written, it removes
the ones it would have written, so a CI job never uploads a previous run's
``imggate-verdict.json`` as this run's; :func:`stale_removed_on_error` does
the same for a run that fails before it reaches the output stage. Files are
written atomically and honour the umask (``imggate.formats.files``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from msgspec import Struct

from imggate._fork import can_fork as _can_fork
from imggate._fork import child_error, failed_with, tell_parent
from imggate.errors import Error
from imggate.formats.files import remove_stale
from imggate.models import Decision, Verdict

if TYPE_CHECKING:
    from imggate.formats.html_template import UserTemplate
    from imggate.formats.written_ahead import WrittenAhead

T = TypeVar("T")

GITLAB_FILENAME = "gl-container-scanning-report.json"


def report_paths(directory: Path, dotenv: Path | None = None) -> list[Path]:
    """Every file a run writes into ``directory`` (and the dotenv report, when asked)."""
    from imggate.formats import html, junit, verdict_json

    paths = [directory / GITLAB_FILENAME, directory / html.FILENAME,
             directory / junit.FILENAME, directory / verdict_json.FILENAME]
    return paths + ([dotenv] if dotenv is not None else [])


@contextlib.contextmanager
def stale_removed_on_error(directory: Path, dotenv: Path | None = None) -> Iterator[None]:
    """On any failure inside, remove the reports a run would write there, then re-raise:
    a run that stops early (a bad rules file, an interrupted job) leaves no stale verdict."""
    try:
        yield
    except BaseException:
        remove_stale(report_paths(directory, dotenv))
        raise


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class Published(Struct, frozen=True):
    """What :func:`publish` wrote, or why it could not (then nothing of this run is there).

    ``template_error`` says why a team's ``--html-template`` failed to render: the other
    reports were written, the HTML report was not (nor left from an earlier run).
    """

    written: tuple[Path, ...]
    error: str | None = None
    left_behind: tuple[Path, ...] = ()
    template_error: str | None = None
    #: The exit code of ``error``: 2 when the user must change where the reports go (a
    #: directory where a report's file goes), 3 when a retry may write them (a full disk).
    error_exit: int = 3

    def exit_code(self, verdict: Verdict) -> int:
        """The verdict's exit code; 2 when the user's HTML template failed (the user's to
        fix; the other reports say the verdict); an allow whose reports could not be
        written is :attr:`error_exit` (a denial stays a denial)."""
        code = verdict.exit_code
        if self.template_error is not None:
            return 2
        return self.error_exit if self.error is not None and code == 0 else code

    @property
    def failure(self) -> str | None:
        """Why the run's exit code is not its verdict's, or ``None``."""
        if self.template_error is not None:
            return f"the HTML report was not written: {self.template_error}"
        return self.error


def publish(verdict: Verdict, directory: Path, *, started: datetime,
            default_branch_image: str | None = None, dotenv: Path | None = None,
            html_template: UserTemplate | None = None,
            ahead: WrittenAhead | None = None) -> Published:
    """Write every report of the run; on failure remove them all and say why.

    A team's ``html_template`` that fails while rendering is such a failure. ``ahead``
    is the run's child that writes the GitLab report.
    """
    page: str | None = None
    template_error = None
    if html_template is not None:
        from imggate.errors import ConfigError

        try:
            page = html_template.render(verdict)
        except ConfigError as e:
            template_error = e.message
            remove_stale([directory / html_page_name()])
    try:
        written = write_outputs(verdict, directory, started=started,
                                default_branch_image=default_branch_image,
                                html_page=page, skip_html=template_error is not None,
                                ahead=ahead)
        if dotenv is not None:
            from imggate.formats import dotenv as dotenv_report

            written.append(dotenv_report.write(dotenv, verdict, written))
    except Error as e:
        left = remove_stale(report_paths(directory, dotenv))
        return Published((), e.message, tuple(left), error_exit=e.exit_code)
    return Published(tuple(written), template_error=template_error)


def prepare(*, html_page: bool = True) -> None:
    """Import and load now what :func:`publish` would on first use (the report writers;
    with ``html_page``, the built-in page's templates): for a caller with nothing else to
    do meanwhile (``check`` while its child still reads a large report), ~50 ms of the
    run's path after its verdict otherwise."""
    from imggate.formats import html, junit, verdict_json  # noqa: F401 - imported ahead

    if html_page:
        html.prepare()


def html_page_name() -> str:
    """The HTML report's file name."""
    from imggate.formats import html

    return html.FILENAME


def write_outputs(verdict: Verdict, directory: Path, *, started: datetime,
                  default_branch_image: str | None = None,
                  html_page: str | None = None, skip_html: bool = False,
                  ahead: WrittenAhead | None = None,
                  meanwhile: Callable[[], Path] | None = None) -> list[Path]:
    """Write the GitLab report, HTML, JUnit and verdict JSON into ``directory``.

    ``html_page`` is a team's template already rendered (else the built-in page is
    written); ``skip_html`` writes no HTML report (the team's template failed).
    ``ahead`` writes the GitLab report when it can (and the built-in HTML report when it
    says it can; see :mod:`imggate.formats.written_ahead`); this process the others
    meanwhile.
    ``meanwhile`` writes a file of the caller's, listed last, after this process's
    reports and before a child writing the others is waited for (an audit's summary,
    while the child's page, the longer side, is still being written).
    """

    def callers() -> list[Path]:
        return [] if meanwhile is None else [meanwhile()]

    directory.mkdir(parents=True, exist_ok=True)
    gl_path = directory / GITLAB_FILENAME
    if ahead is not None and ahead.submit(verdict, directory, started=started,
                                          default_branch_image=default_branch_image,
                                          html=html_page is None and not skip_html):
        try:
            from imggate.formats import html, junit, verdict_json

            pages = []
            if html_page is not None:
                pages.append(verdict_json.write_text(directory / html.FILENAME, html_page))
            elif ahead.html:  # (the child's: see imggate.formats.written_ahead)
                pages.append(directory / html.FILENAME)
            elif not skip_html:
                # (Rows the reading child left are made as it is written, the verdict sent:
                # see html.active_rows.)
                pages.append(html.write(verdict, directory))
            written = [gl_path, *pages, junit.write(verdict, directory),
                       verdict_json.write(verdict, directory), *callers()]
        finally:
            # Waited for whatever happened here: the reports are then all removed, none
            # written after.
            failure = ahead.wait()
        if failure is not None:
            raise failure
        return written

    # Each side imports its own formats: with the GitLab report forked off, those imports
    # run on both CPUs at once instead of before the fork (~40M instructions of a check).
    def write_gitlab() -> None:
        from imggate.formats import gitlab

        gitlab.write(gl_path, gitlab_document(verdict, started=started,
                                              default_branch_image=default_branch_image))

    def write_others() -> list[Path]:
        from imggate.formats import html, junit, verdict_json

        pages = []
        if html_page is not None:
            pages.append(verdict_json.write_text(directory / html.FILENAME, html_page))
        elif not skip_html:
            pages.append(html.write(verdict, directory))
        return [*pages, junit.write(verdict, directory),
                verdict_json.write(verdict, directory), *callers()]

    findings = sum(len(iv.findings) + len(iv.suppressed) for iv in verdict.images)
    if findings < _FORK_MIN_FINDINGS and html_page is None and not skip_html \
            and len(verdict.images) >= _FORK_MIN_IMAGES and _can_fork():
        # Many images, few findings (an audit of a repository's tags): the HTML page (the
        # template's section per image) is the largest report, so it is the child's.
        def write_html() -> None:
            from imggate.formats import html

            html.write(verdict, directory)

        def write_rest() -> list[Path]:
            from imggate.formats import html, junit, verdict_json

            write_gitlab()
            return [directory / html.FILENAME, junit.write(verdict, directory),
                    verdict_json.write(verdict, directory), *callers()]

        return [gl_path, *_alongside(write_html, write_rest, fork=True)]
    return [gl_path, *_alongside(write_gitlab, write_others,
                                 fork=findings >= _FORK_MIN_FINDINGS and _can_fork())]


#: Below this many findings the reports take a few ms; a second process is not worth it.
_FORK_MIN_FINDINGS = 2000
#: From this many images the HTML page alone takes ~50 ms (1,002 images: ~1,200M
#: instructions, the other reports together ~1,000M): written by a child meanwhile.
_FORK_MIN_IMAGES = 200


def _alongside(job: Callable[[], None], main: Callable[[], T], *, fork: bool) -> T:
    """Run ``job`` and ``main``; with ``fork``, ``job`` runs in a child process meanwhile.

    The reports are independent files written atomically: the GitLab report
    (the largest) is built and written by a forked child (copy-on-write: the
    verdict is not copied) while this process writes the others, which halves
    the report time on two CPUs. Whatever happens here, the child is waited
    for; its failure is raised here as an :class:`~imggate.errors.Error`.
    """
    if not fork:
        job()
        return main()
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: run the job, say what went wrong, never return
        code = 1
        try:
            os.close(read_end)
            job()
            code = 0
        except BaseException as e:  # the parent reports it and fails
            tell_parent(write_end, e)
            code = failed_with(e)
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        result = main()
    finally:
        with os.fdopen(read_end, "rb") as pipe:
            message = pipe.read().decode("utf-8", "replace")
        _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise child_error(message or f"writing the GitLab report failed (exit status {code})",
                          code)
    return result


def gitlab_document(verdict: Verdict, *, started: datetime,
                    default_branch_image: str | None = None) -> dict[str, object]:
    """One GitLab container-scanning document for every image of the run.

    Suppressed findings are not vulnerabilities here (as Trivy leaves out ignored
    ones): each is listed with why as an ``info`` message of the scan. The scan
    status is ``failure`` when an image (or the run) could not be decided, or when
    nothing was judged at all; a run that decided every image is a ``success``, even
    if none had an image to report on (``check -f`` where every image is exempt).
    """
    from imggate.formats import gitlab
    from imggate.formats.suppressions import suppression_lines

    ended = datetime.now(UTC)
    docs: list[dict[str, Any]] = []
    for iv in verdict.images:
        if iv.image is None:
            continue
        if docs and not iv.findings and not iv.suppressed:
            # Past the first (whose scan section is the document's), an image with nothing
            # to list adds nothing: not rendered (an audit: 1,000 tags, ~100M instructions).
            continue
        scanners = tuple(dict.fromkeys(r.scanner for r in iv.reports))
        os_name = next((r.operating_system for r in iv.reports if r.operating_system), None)
        said = [f"{iv.image.pinned}: {line}" for line in suppression_lines(iv)]
        docs.append(gitlab.render(iv.findings, image=iv.image.pinned, operating_system=os_name,
                                  scanners=scanners, start=started, end=ended,
                                  default_branch_image=default_branch_image, messages=said))
    # Any undecided image (or run) makes the scan a failure, whatever the others did.
    failed = verdict.error is not None or not verdict.images or any(
        iv.decision is Decision.ERROR for iv in verdict.images)
    if not docs:
        return gitlab.render((), image="unknown", operating_system=None, scanners=(),
                             start=started, end=ended,
                             status="failure" if failed else "success")
    doc = docs[0]
    for extra in docs[1:]:
        doc["vulnerabilities"].extend(extra["vulnerabilities"])
        if extra["scan"].get("messages"):
            doc["scan"].setdefault("messages", []).extend(extra["scan"]["messages"])
    if failed:
        doc["scan"]["status"] = "failure"
    return doc
