"""Large scanner reports read by a forked child while ``check`` starts up.

Reading a 10,000-finding report (decoding 19 MB of JSON and building the
findings) is ~450M instructions, and ``check`` does it on one CPU right after
importing and loading the rules (~700M more). Neither needs the other, so
:func:`start` forks a child that reads the reports on the second CPU meanwhile
and hands them back pickled: unpickling them is ~90M instructions, a fifth of
reading them (a check of 10,000 findings: ~15% less wall time). The pickle goes
into a file in memory with no name that only the two processes hold (made before
the fork), the pipe only saying when all of it is there: the child never waits for
this process to take it. The reports' parts the child makes as text (the HTML rows,
the verdict JSON's findings) follow the pickle as they are, and this process maps the
file and writes them from there, never copying them into its own memory.

Those parts are made ahead only while this process is not yet waiting for them: when
:meth:`ReadAhead.result` has to wait, it says so, and the child hands over what it has
made by then (see :func:`_waited_for`); this process makes the rest.

The child only ever delivers reports it read successfully. Anything else
(an unreadable or invalid report, a crash, a child that never ran) makes
:meth:`ReadAhead.result` return ``None``, and the caller reads the reports
itself as it always did: every refusal is worded, and exits, exactly as before.
The pickle comes from this process's own child through a file and a pipe only
the two of them hold: nothing from outside is ever unpickled.

The child also merges the findings (:func:`imggate.scanners.merge.remember`), and
the program starts it as early as it can (:func:`start_early`, before the
command line is even parsed): the reading then overlaps ``typer``'s import too.
``check`` takes that child (:func:`take`) only when it reads exactly the reports
``check`` was given, else stops it and starts its own.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import stat
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

from imggate._fork import can_fork
from imggate.models import Finding, ScanReport

if TYPE_CHECKING:
    from imggate.formats.written_ahead import Pipes, Plan, WrittenAhead

#: Below this many bytes of reports in all, reading them takes a few ms: not worth a fork.
MIN_BYTES = 1 << 20

Reader = Callable[[], tuple[ScanReport, ...]]
#: Reports as ``check`` reads them: (kind or ``None`` to detect it, path), in order.
Named = list[tuple[str | None, str]]

#: ``check``'s options that name a report, and the kind each is read as, in the order
#: ``check`` reads them (all of the first, then all of the next, ...).
REPORT_OPTIONS: dict[str, str | None] = {
    "--trivy-report": "trivy", "--grype-report": "grype", "--gitlab-report": "gitlab",
    "--report": None,
}


class ReadAhead:
    """A child reading the reports; :meth:`result` collects them (once)."""

    def __init__(self, pid: int, fd: int | None, pipes: Pipes | None = None,
                 store: int | None = None, waits: int | None = None) -> None:
        #: The child's process id (0: no child; :meth:`result` is ``None``).
        self.pid = pid
        self._fd = fd  # the child says here how much of ``store`` it wrote
        self._store = store
        self._waits = waits  # this process says here that it waits (see result())
        self._pipes = pipes  # the child writes reports after (see writer())
        self._running = pid > 0
        self._got: tuple[tuple[ScanReport, ...], tuple[Finding, ...]] | None = None

    def busy(self) -> bool:
        """Whether the child is still reading (it has sent nothing yet): what the caller
        does before :meth:`result` then costs the run no time."""
        if self._fd is None:
            return False
        try:
            ready, _, _ = select.select([self._fd], [], [], 0)
        except (OSError, ValueError):
            return False
        return not ready

    def result(self) -> tuple[ScanReport, ...] | None:
        """The reports the child read, or ``None`` (read them here instead)."""
        if self._fd is None:
            return None
        if self._waits is not None:
            # Waiting for the child: told so, it hands the reports over without the parts
            # it has not made yet, and this process makes them (see _waited_for()).
            if self.busy():
                with contextlib.suppress(OSError):  # (gone: nothing to say)
                    os.write(self._waits, _WAITING)
            self._close_waits()
        said = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(self._fd, 64):
                said += chunk
        os.close(self._fd)
        self._fd = None
        got = _payload(_stored(self._store, said))
        self._close_store()
        if got is None or self._pipes is None:
            # Done (or failed, or ended before it said all of it was there): stopped, not
            # waited for as it goes on to write (see writer()).
            self._stop()
            return None if got is None else got[0]
        self._got = got
        return got[0]

    def writer(self, plan: Plan | None = None) -> WrittenAhead | None:
        """The child, from now on writing the GitLab report (see
        :mod:`imggate.formats.written_ahead`) and told ``plan``, when :meth:`result` gave
        its reports and it may; else ``None`` (and the child stopped)."""
        from imggate.formats import written_ahead

        pipes, got = self._pipes, self._got
        if pipes is None or got is None or not written_ahead.wanted(got[1]):
            self._stop()
            return None
        self._pipes = None  # the WrittenAhead's now, and the child too
        self._running = False
        return written_ahead.attach(self.pid, pipes, got[1], got[0], plan)

    def _stop(self) -> None:
        if self._pipes is not None:
            self._pipes.close()
            self._pipes = None
        if self._running:
            self._running = False
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)

    def discard(self) -> None:
        """Stop the child unless :meth:`writer` handed it on (the run failed first, or
        wrote its reports itself)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._close_waits()
        self._close_store()
        self._stop()

    def _close_waits(self) -> None:
        if self._waits is not None:
            os.close(self._waits)
            self._waits = None

    def _close_store(self) -> None:
        if self._store is not None:
            os.close(self._store)
            self._store = None

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.discard()


#: What the child wrote, as :func:`_stored` gives it: its pickle, the block and the rows
#: (each a view of the file), and how many findings those rows are of.
Stored = tuple[memoryview, memoryview, memoryview, int]


def _stored(store: int | None, said: bytes) -> Stored | None:
    """What the child wrote into ``store`` when it said (``said``: three lengths and a
    count, 8 bytes each) that it wrote all of it: its pickle, the block (empty when not
    made) and the rows of the first findings (worst first; as many as the count says),
    each a view of the file mapped here; else ``None``.

    Mapped, not read: read, the 11 MB (at 10,000 findings) were copied into fresh memory
    of this process (~2,700 page faults, ~4 µs each on this VM), and the rows and block
    copied once more out of the pickle (~2,100). Mapped, they are written from the
    file's own pages (the pickle's findings are the only copies made here).
    """
    if store is None or len(said) != 32:
        return None
    import mmap

    *sizes, count = [int.from_bytes(said[at:at + 8], "big") for at in (0, 8, 16, 24)]
    try:
        # (A page past the file's end would be SIGBUS where it is read.)
        if os.fstat(store).st_size < sum(sizes) or not _sealed(store):
            return None
        # Its pages mapped as they are read, 16 at a fault (the kernel's fault-around), not
        # all at once (MAP_POPULATE): the rows, half of it, are mostly the child's to
        # write (see imggate.formats.written_ahead); populated, pickle and block read
        # took ~1.5 ms more (medians of 30 alternating).
        view = memoryview(mmap.mmap(store, sum(sizes), prot=mmap.PROT_READ,
                                    flags=mmap.MAP_SHARED))
    except (OSError, ValueError):
        return None
    data, block, rows = view[:sizes[0]], view[sizes[0]:sizes[0] + sizes[1]], \
        view[sizes[0] + sizes[1]:sum(sizes)]
    return data, block, rows, count


#: The seals the child puts on the file once written (see :func:`_seal`).
_SEALS = ("F_SEAL_SHRINK", "F_SEAL_GROW", "F_SEAL_WRITE", "F_SEAL_SEAL")


def _seal(fd: int) -> None:
    """In the child, once all is written: the file made unchangeable (Linux's memfd seals),
    so that what the parent maps can neither change nor shrink under it."""
    try:
        import fcntl

        seals = 0
        for name in _SEALS:
            seals |= getattr(fcntl, name)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    except (ImportError, AttributeError, OSError):
        pass  # (no seals here: the parent maps a file only the two processes hold)


def _sealed(fd: int) -> bool:
    """Whether the file is sealed as :func:`_seal` seals it, where files can be sealed (a
    Linux without ``memfd_create``, its temporary file not sealable: never, and the
    parent reads the reports itself)."""
    try:
        import fcntl

        seals = [getattr(fcntl, name) for name in _SEALS]
        have = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except (ImportError, AttributeError):
        return True  # (no seals on this system)
    except OSError:
        return False
    return all(have & seal for seal in seals)


def _payload(stored: Stored | None,
             ) -> tuple[tuple[ScanReport, ...], tuple[Finding, ...]] | None:
    """The reports and their merge the child sent (the merge remembered, its order worst
    first, the verdict JSON's block and the HTML report's rows of it when made), or
    ``None``."""
    if stored is None:
        return None
    data, block, rows, count = stored
    try:
        got = pickle.loads(data)  # noqa: S301 - our child's, see the module
    except Exception:  # (a child cut off mid-write leaves a partial pickle)
        return None
    if type(got) is not tuple or len(got) != 3:
        return None
    reports, merged, worst = got
    if type(reports) is not tuple or not all(type(r) is ScanReport for r in reports):
        return None
    if type(merged) is not tuple or not all(type(f) is Finding for f in merged):
        return None
    if type(worst) is not tuple or len(worst) != len(merged) \
            or not all(type(f) is Finding for f in worst) or count > len(worst):
        return None
    from imggate.formats.html import remember_rows
    from imggate.formats.verdict_json import remember_block, worst_first
    from imggate.scanners.merge import remember

    remember(reports, merged)
    worst_first.remember(merged, worst)
    # (Not made, see _waited_for(): this process makes it when it writes.)
    if block:
        remember_block(worst, block)
    if count:
        # (Made in part, when the child was waited for: the rest made as the HTML report
        # is written, see imggate.formats.html.active_rows.)
        remember_rows(worst, rows, count)
    return reports, merged


def worth_it(paths: Sequence[str]) -> bool:
    """Whether ``paths`` are regular files of :data:`MIN_BYTES` or more in all.

    A pipe (``--report <(trivy …)``) can be read only once: whatever the child read of
    it could not be read again here, so reports that are not all regular files are
    read by the caller.
    """
    total = 0
    for p in paths:
        try:
            st = os.stat(p)
        except (OSError, ValueError):
            return False
        if not stat.S_ISREG(st.st_mode):
            return False
        total += st.st_size
    return total >= MIN_BYTES and can_fork()


def start(paths: Sequence[str], read: Reader, *, writes: bool = False) -> ReadAhead:
    """Fork a child that runs ``read`` (which reads ``paths``) and sends back what it
    returns, when that is :func:`worth_it`; else (or when this process cannot fork) a
    :class:`ReadAhead` whose :meth:`~ReadAhead.result` is ``None``: the caller reads.
    With ``writes``, the child then goes on to write reports (:meth:`ReadAhead.writer`)."""
    if not worth_it(paths):
        return ReadAhead(0, None)
    pipes = None
    try:
        store = _anonymous_file()
    except OSError:
        return ReadAhead(0, None)
    fds = [store]
    try:
        read_end, write_end = os.pipe()
        fds += (read_end, write_end)
        waits_read, waits_write = os.pipe()
        fds += (waits_read, waits_write)
        if writes:
            from imggate.formats.written_ahead import Pipes

            pipes = Pipes()
    except OSError:
        for fd in fds:
            os.close(fd)
        return ReadAhead(0, None)
    try:
        pid = os.fork()
    except OSError:
        for fd in fds:
            os.close(fd)
        if pipes is not None:
            pipes.parent_side()
            pipes.close()
        return ReadAhead(0, None)
    if pid == 0:  # the child: read, send, never return
        code = 1
        try:
            os.close(read_end)
            os.close(waits_write)
            from imggate.formats.html import row_list
            from imggate.formats.verdict_json import findings_block_parts, worst_first
            from imggate.scanners.merge import merge

            reports = read()
            merged = merge(reports)
            # Sorted for the reports here, while the parent starts up, not by both
            # processes after the verdict (~45M instructions each at 10,000 findings);
            # sent as references to the merge's findings (pickle's memo), ~3M more.
            worst = worst_first.of_merge(merged)
            # Into a file in memory, not down the pipe: ~11 MB at 10,000 findings, more
            # than a pipe holds (1 MiB at most, unprivileged), so this child would wait
            # for the parent to read it all before going on to the reports' parts. The
            # pipe only says that all of it is there, and how much of each part. After the
            # pickle, the reports' parts made here go in as text: the parent maps the file
            # and writes them from there, never copying them (see _stored()).
            with open(store, "wb", closefd=False) as file:
                pickle.dump((reports, merged, worst), file, protocol=pickle.HIGHEST_PROTOCOL)
                # The pickle, the block, the rows and how many findings they are of.
                sizes = [file.tell(), 0, 0, 0]
                # The verdict JSON's findings block too (~170M): that report is the
                # parent's, as this child makes the GitLab report's parts and then writes
                # it. (JSON with ensure_ascii: ASCII.) Made whole: only a parent waiting
                # before it starts makes it instead.
                if not _waited_for(waits_read):
                    sizes[1] = _write_joined(file, *findings_block_parts(merged), "ascii")
                # The HTML report's rows of them too (~110M): the parent, not this child,
                # is the longer of the two from start to end when the findings share
                # their vulnerabilities (its imports are slow per instruction); this child
                # would wait for its verdict meanwhile. UTF-8: the parent writes them as
                # they come. After the block, as the larger part where the findings share
                # little (~150 ms against ~70 at 10,000), a few at a time: a parent
                # waiting by then makes the rest (see _waited_for()).
                while sizes[1] and sizes[3] < len(worst) and not _waited_for(waits_read):
                    step = worst[sizes[3]:sizes[3] + _ROWS_PER_STEP]
                    sizes[2] += _write_joined(file, row_list(step), "", "utf-8")
                    sizes[3] += len(step)
            _seal(store)
            said = b"".join(n.to_bytes(8, "big") for n in sizes)
            os.write(write_end, said)
            os.close(write_end)  # the parent's read ends
            if pipes is not None:
                from imggate.formats.html import remember_rows
                from imggate.formats.written_ahead import serve

                # The rows for this child's HTML report too, when it writes that (see
                # imggate.formats.written_ahead): mapped as the parent maps them. Not all
                # made, that report is the parent's.
                parts = _stored(store, said)
                whole = parts is not None and parts[3] == len(worst)
                if parts is not None and whole:
                    remember_rows(worst, parts[2])
                serve(merged, reports, pipes, html_too=whole)
            code = 0
        except BaseException:  # noqa: S110 - the parent reads the reports itself and says why
            pass
        finally:
            os._exit(code)
    os.close(write_end)
    if pipes is not None:
        pipes.parent_side()
    os.close(waits_read)
    return ReadAhead(pid, read_end, pipes, store, waits_write)


#: Findings whose rows the child makes between two looks at whether the parent waits
#: (~15-20 ms of rows when each finding is a vulnerability of its own). Each step makes
#: its rows' shared parts afresh: ~10 times per vulnerability where 10,000 findings
#: share 85, ~5M instructions more there, where this child is done long before the
#: parent waits.
_ROWS_PER_STEP = 1000

#: What :meth:`ReadAhead.result` says to a child it waits for.
_WAITING = b"w"


def _waited_for(waits: int) -> bool:
    """In the child: whether the parent waits for it (it said so, or no longer listens).

    Then the reports go over without the parts not made yet (the block, the rows not
    made yet), and the parent makes those itself (the rows' rest as it takes them, the
    rest when it writes), while this child makes the GitLab report's parts: where the
    findings share little (each its own vulnerability) this child's part of a check is
    the longer (~3.0G instructions against the parent's ~2.1G at 10,000 findings), and
    the parent waited for it twice, at the hand-over and for the GitLab report. Where
    they share much, the child is done with them before the parent waits: as before.
    """
    try:
        return bool(select.select([waits], [], [], 0)[0])
    except (OSError, ValueError):
        return False


#: Texts joined and encoded per write by :func:`_write_joined`: ~300 KB at a time.
_PER_WRITE = 512


def _write_joined(file: BinaryIO, texts: list[str], separator: str, encoding: str) -> int:
    """Write ``separator.join(texts)`` encoded into ``file``, a few hundred texts at a
    time; return its size. Joined whole, then encoded whole, the rows (5.6 MB at 10,000
    findings) and the block (3.1 MB) were 17 MB of memory new to this process: ~4,200
    page faults, ~4 µs each on the 2-CPU VM measured."""
    size = 0
    for at in range(0, len(texts), _PER_WRITE):
        # ("" first: the separator between this part and the one before.)
        text = separator.join(([""] if at else []) + texts[at:at + _PER_WRITE])
        size += file.write(text.encode(encoding))
    return size


def _anonymous_file() -> int:
    """A file descriptor of a file in memory with no name (Linux's ``memfd_create``,
    elsewhere a temporary file already removed), shared with the child the fork makes."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None:
        fd: int = memfd("imggate-read-ahead", getattr(os, "MFD_CLOEXEC", 0)
                        | getattr(os, "MFD_ALLOW_SEALING", 0))
        return fd
    import tempfile

    with tempfile.TemporaryFile() as f:
        return os.dup(f.fileno())


def read_reports(named: Named) -> tuple[ScanReport, ...]:
    """Read every report (kind, path), in order."""
    from imggate.scanners.detect import load_report

    return tuple(load_report(p, kind) for kind, p in named)


def named(given: Mapping[str, Sequence[str] | None]) -> Named:
    """The reports ``given`` per option of :data:`REPORT_OPTIONS`, in reading order."""
    return [(kind, p) for option, kind in REPORT_OPTIONS.items() for p in given.get(option) or ()]


def named_on(args: Sequence[str]) -> Named:
    """The reports a ``check`` command line names, found by looking at the words alone.

    Only a guess at what the parser will make of ``args`` (an option's value that
    happens to read ``--report`` is taken for the option): :func:`take` uses a child
    started on it only when the parser's list is the same.
    """
    given: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            break
        option, eq, value = word.partition("=")
        if option in REPORT_OPTIONS:
            if not eq:
                if i + 1 == len(args):
                    break
                i += 1
                value = args[i]
            given.setdefault(option, []).append(value)
        i += 1
    return named(given)


#: The child :func:`start_early` started and what it reads; :func:`take` takes it.
_early: tuple[Named, ReadAhead] | None = None


def start_early(args: Sequence[str]) -> None:
    """Start reading the reports a ``check`` command line names (the words after the
    command), before anything else of the program runs; see :func:`take`."""
    global _early
    reports = named_on(args)
    if reports:
        _early = (reports, start([p for _, p in reports], lambda: read_reports(reports),
                                 writes=True))


def discard_early() -> None:
    """Stop the child :func:`start_early` started, unless :func:`take` took it."""
    global _early
    if _early is not None:
        _early[1].discard()
        _early = None


def take(reports: Named) -> ReadAhead:
    """A child reading ``reports``: the one :func:`start_early` started when it reads
    exactly these, else one started now (see :func:`start`)."""
    global _early
    early, _early = _early, None
    if early is not None:
        if early[0] == reports:
            return early[1]
        early[1].discard()
    return start([p for _, p in reports], lambda: read_reports(reports), writes=True)
