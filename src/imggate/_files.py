"""Reading a file named by a user or found in an artifact: regular files only, with a cap.

``Path.read_bytes()`` on a symlink to ``/dev/zero`` reads until memory runs
out, and on a FIFO it blocks forever. Here the file is opened without
blocking (``O_NONBLOCK``: opening a FIFO does not wait for a writer), its
type and size are taken from the open descriptor (``fstat``, so a swap after
a check cannot fool it), and at most ``limit`` bytes are ever read.

:func:`read_config_file` is the same read for the files a user names as
configuration (keys, trust roots, auth files, catalogs), with every failure a
:class:`~imggate.errors.ConfigError` that names the file and what it is.
"""

from __future__ import annotations

import os
import select
import stat

_CHUNK = 1024 * 1024


class FileRefused(Exception):
    """The path names something that is not read: a device, FIFO, directory, or too large."""


class FileTooLarge(FileRefused):
    """The file holds more than the limit."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_file(path: str | os.PathLike[str], limit: int, *, allow_pipes: bool = False,
              follow_symlinks: bool = True) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them.

    ``allow_pipes`` also reads a pipe the user named (``--rules <(…)``); it waits
    for the writer as a shell would. ``follow_symlinks=False`` refuses a
    symlink itself (``O_NOFOLLOW``). Raises :class:`FileRefused` for devices,
    FIFOs, sockets, directories and files over ``limit``; ``OSError`` when the
    file cannot be opened or read.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if stat.S_ISFIFO(st.st_mode) and allow_pipes:
            # The user's own pipe: wait for its writer as a shell would. The descriptor is
            # kept (never closed and reopened): closing the only reader while a writer is
            # mid-write discards its data (EPIPE), and a reopen waits for a writer that
            # may already have written and gone. poll() on a FIFO that never had a writer
            # waits for one; then blocking reads run to the writer's EOF.
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.poll()
            os.set_blocking(fd, True)
        elif not stat.S_ISREG(st.st_mode):
            raise FileRefused(f"{_kind(st.st_mode)}: only regular files are read")
        elif st.st_size > limit:
            raise FileTooLarge(f"{st.st_size:,} bytes, over the {limit:,}-byte limit")
        else:
            os.set_blocking(fd, True)
        # A regular file is read in one call (its size and one byte more, to see it grow):
        # 1 MiB at a time, a 90 MB report took 90 reads and a copy to join them.
        size = _CHUNK if not stat.S_ISREG(st.st_mode) else max(_CHUNK, st.st_size + 1)
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(size, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # a file that grows while read, or a pipe
                raise FileTooLarge(f"more than the {limit:,}-byte limit")
        return b"".join(chunks)
    finally:
        os.close(fd)



def read_config_file(path: str | os.PathLike[str], limit: int, *, what: str,
                     label: str | None = None) -> bytes:
    """The bytes of a configuration file the user named: a regular file of at most ``limit``.

    Every failure is a :class:`~imggate.errors.ConfigError` (exit 2) that starts with
    ``label`` (default: the path) and says ``what`` could not be read and why:
    ``<label>: cannot read <what> (<reason>)`` or ``<label>: <what> is larger than
    <limit> bytes``.
    """
    from imggate.errors import ConfigError

    name = str(path) if label is None else label
    try:
        return read_file(path, limit)
    except FileTooLarge:
        raise ConfigError(f"{name}: {what} is larger than {limit} bytes") from None
    except FileRefused as e:
        raise ConfigError(f"{name}: cannot read {what} ({e})") from None
    except OSError as e:
        raise ConfigError(f"{name}: cannot read {what} ({e.strerror or e})") from None
