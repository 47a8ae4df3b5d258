"""Read a scanner report from a file and pick its adapter, by name or by looking.

The entry point for everything that consumes reports::

    report = load_report("trivy.json")            # auto-detect
    report = load_report("x.json", kind="grype")  # or name the kind
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
from os import PathLike
from typing import Any

from imggate._files import FileRefused, read_file
from imggate.errors import ReportError, UsageError
from imggate.models import ScanReport
from imggate.scanners import gitlab, grype, imggate_json, trivy, trivy_cyclonedx, trivy_sarif
from imggate.scanners._doc import (
    _FAST_DECODE_MIN,
    MAX_REPORT_BYTES,
    gc_paused,
    load_json,
    type_name,
)
from imggate.scanners.interface import ReportParser

#: Every adapter, in detection order (the first whose ``detect`` is true wins).
PARSERS: tuple[ReportParser, ...] = (
    trivy.PARSER,
    grype.PARSER,
    trivy_cyclonedx.PARSER,
    trivy_sarif.PARSER,
    gitlab.PARSER,
    imggate_json.PARSER,
)
_ALIASES = {"gitlab-cs": "gitlab", "sarif": "trivy-sarif", "trivy-cyclonedx": "cyclonedx"}

#: The names ``kind`` accepts.
KINDS: tuple[str, ...] = tuple(p.kind for p in PARSERS)
#: Regular files at least this large are read into memory advised for huge pages.
_HUGE_READ_MIN = 4 << 20
_MADV_HUGEPAGE: int | None = getattr(mmap, "MADV_HUGEPAGE", None)  # Linux only
_HUGE_PAGE = 2 << 20


def parser_for(kind: str) -> ReportParser:
    """The adapter called ``kind``; :class:`UsageError` for an unknown name."""
    name = _ALIASES.get(kind.lower(), kind.lower())
    for p in PARSERS:
        if p.kind == name:
            return p
    raise UsageError(f"unknown report kind {kind[:50]!r}; expected one of: {', '.join(KINDS)}")


def detect_kind(doc: Any) -> ReportParser | None:
    """The adapter for decoded JSON ``doc``, or ``None`` when nothing recognises it."""
    for p in PARSERS:
        if p.detect(doc):
            return p
    return None


def parse_report(data: bytes | memoryview, *, source: str, kind: str | None = None
                 ) -> ScanReport:
    """Parse report bytes read from ``source`` (a file name for messages)."""
    parser = parser_for(kind) if kind else None
    with gc_paused():
        return _parse(data, source, parser)


def _parse(data: bytes | memoryview, source: str, parser: ReportParser | None) -> ScanReport:
    if (parser is trivy.PARSER or parser is None) and _FAST_DECODE_MIN <= len(data) \
            <= MAX_REPORT_BYTES and _looks_like_trivy(data):
        from imggate.scanners import trivy_typed

        # A large Trivy report decoded into typed values; anything that path does not
        # read exactly as the checked one would is read below as before.
        report = trivy_typed.parse(data, source)
        if report is not None:
            return report
    doc = load_json(data, source)
    if parser is None:
        parser = detect_kind(doc)
        if parser is None:
            shape = "an empty array" if doc == [] else f"a JSON {type_name(doc)}"
            raise ReportError(
                f"{source}: not a scanner report imggate recognises ({shape} that is none of: "
                "Trivy JSON, Grype JSON, GitLab container-scanning, SARIF, CycloneDX, "
                "imggate findings JSON)",
                hint="name the kind with --kind if the file is one of these",
            )
    return parser.parse(doc, source=source)


def _looks_like_trivy(data: bytes | memoryview) -> bool:
    """Whether a report's first bytes name Trivy's ``SchemaVersion`` (Trivy writes it
    first): only then is the typed decode tried (a failed try costs a decode)."""
    return b'"SchemaVersion"' in bytes(data[:1024])


def load_report(path: str | PathLike[str], kind: str | None = None) -> ScanReport:
    """Read and validate the report at ``path``; ``kind`` names its format (default: detect).

    Raises :class:`~imggate.errors.ReportError` (exit 3) when the file cannot
    be read or is not a valid report, naming the file and the JSON path.
    """
    source = str(path)
    try:
        data = _read(path)
    except FileRefused as e:
        raise ReportError(f"{source}: cannot read report: {e}") from None
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ReportError(f"{source}: cannot read report: {reason}") from e
    return parse_report(data, source=source, kind=kind)


def _read(path: str | PathLike[str]) -> bytes | memoryview:
    """The bytes of the report at ``path`` (:func:`read_file`'s checks and bounds).

    A large regular file is read into an anonymous mapping advised for huge pages: a
    94 MB report in 4 KiB pages took 23,000 page faults to read (59 ms, where its decode
    takes ~170 ms), in 2 MiB pages 45 faults and 20 ms; the small pages also made the
    reading of a report grow faster than its size (9 MB: 1.7 ms, as in 2 MiB pages).
    Anything else, and a file that grows while it is read, is read by :func:`read_file`.
    """
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if (_MADV_HUGEPAGE is None or st is None or not stat.S_ISREG(st.st_mode)
            or not _HUGE_READ_MIN <= st.st_size <= MAX_REPORT_BYTES):
        # A pipe is read (``--report <(trivy …)``); a device such as /dev/zero is refused.
        return read_file(path, MAX_REPORT_BYTES, allow_pipes=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        size = st.st_size
        if stat.S_ISREG(st.st_mode) and _HUGE_READ_MIN <= size <= MAX_REPORT_BYTES:
            # One byte more than the file holds, to see it grow; a whole number of huge
            # pages, which Linux places on a huge page boundary (else the first and last
            # megabytes are small pages: 750 faults for a 9 MB report instead of 5).
            length = -(-(size + 1) // _HUGE_PAGE) * _HUGE_PAGE
            buf = mmap.mmap(-1, length, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            with contextlib.suppress(OSError):  # a kernel without huge pages: small ones
                buf.madvise(_MADV_HUGEPAGE)
            view = memoryview(buf)
            done = 0
            while done <= size and (n := os.readv(fd, [view[done:]])):
                done += n
            if done <= size:
                return view[:done]
    finally:
        os.close(fd)
    return read_file(path, MAX_REPORT_BYTES, allow_pipes=True)
