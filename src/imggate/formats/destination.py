"""Writing a report where the user said: never replacing what is not a regular file.

A report is written atomically (a temporary file renamed over the target) so
a reader never sees half of it. Renaming over a FIFO, a device node or a
symlink would *replace* it with a regular file, though: ``-o /dev/full`` run as
root would destroy the device node, ``-o /proc/self/fd/1`` would hide the
output. So the target decides:

================================  ================================================
target                            written how
================================  ================================================
``-``, ``/dev/stdout``            to standard output
missing                           a new file, created with the umask's mode
regular file                      atomically replaced, its permission bits kept
symlink                           what it points to, by the same rules (the link
                                  stays; ``/proc/…/fd/N`` and ``/dev/fd/N`` are
                                  written through, as a shell would)
FIFO, character device            written through (opened, never replaced)
directory, socket, block device   refused (:class:`UsageError`)
================================  ================================================
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from collections.abc import Iterable
from pathlib import Path

from imggate.errors import Error, UsageError

#: Targets that mean "standard output", as in ``trivy convert -o``.
STDOUT_NAMES = frozenset({"-", "/dev/stdout"})


#: Pieces of a report, written one after the other (see :func:`write_parts`).
Parts = Iterable[bytes | memoryview]


def write_bytes(target: str | os.PathLike[str], data: bytes, *, what: str = "report") -> None:
    """Write ``data`` to ``target`` (see the module table).

    Raises :class:`UsageError` for a target that cannot hold a report and
    :class:`Error` naming the target when writing fails (a full disk, a closed pipe).
    """
    write_parts(target, (data,), what=what)


def write_parts(target: str | os.PathLike[str], parts: Parts, *, what: str = "report") -> None:
    """:func:`write_bytes` of the concatenation of ``parts``.

    A file (the temporary one renamed over the target) is written part by part as
    the iterable makes them, so a large report need never be held whole; what is
    written through (standard output, a FIFO, a device) is written once every part is
    made. Either way an exception raised while the parts are made leaves the target
    as it was.
    """
    name = os.fspath(target)
    if name in STDOUT_NAMES:
        _write_stdout(b"".join(parts), name, what)
        return
    path = Path(name)
    try:
        _write(path, parts, what)
    except OSError as e:
        raise Error(f"cannot write {what} {path}: {e.strerror or e}") from e


def _write_stdout(data: bytes, name: str, what: str) -> None:
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except OSError as e:
        raise Error(f"cannot write {what} to standard output ({name}): {e.strerror or e}") from e


def _write(path: Path, parts: Parts, what: str) -> None:
    try:
        st = os.stat(path)  # follows symlinks: the type of what would be written
    except FileNotFoundError:
        if path.is_symlink():  # dangling: create what it names, the link stays
            path = Path(os.path.realpath(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace(path, parts, None)
        return
    mode = st.st_mode
    if stat.S_ISREG(mode):
        real = Path(os.path.realpath(path))
        if _same_file(real, st):
            _replace(real, parts, stat.S_IMODE(mode))
        else:  # a "magic" link such as /proc/self/fd/1: the open file itself
            _write_through(path, b"".join(parts), truncate=True)
    elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        _write_through(path, b"".join(parts), truncate=False)
    elif stat.S_ISDIR(mode):
        raise UsageError(f"cannot write {what} to {path}: it is a directory",
                         hint=f"name a file, e.g. {path / 'report.json'}")
    else:
        kind = "a socket" if stat.S_ISSOCK(mode) else "a block device"
        raise UsageError(f"cannot write {what} to {path}: it is {kind}")


def _same_file(path: Path, st: os.stat_result) -> bool:
    try:
        other = os.stat(path)
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


def _write_through(path: Path, data: bytes, *, truncate: bool) -> None:
    """Open ``path`` for writing (a FIFO waits for its reader, as a shell's ``>`` does)."""
    flags = os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC | (os.O_TRUNC if truncate else 0)
    fd = os.open(path, flags)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _replace(path: Path, parts: Parts, keep_mode: int | None) -> None:
    """Write a temporary file beside ``path`` and rename it over ``path``.

    The temporary file is created with mode 0666, which the kernel narrows by
    the umask, so a new report gets the same mode as any file the user makes;
    an existing file keeps its own.
    """
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                 0o666)
    try:
        try:
            if keep_mode is not None:
                os.fchmod(fd, keep_mode)
            for part in parts:
                _write_all(fd, part)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
