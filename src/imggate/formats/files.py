"""Writing report files: atomically, with the mode ``open()`` would give (the umask's),
and with the run's secrets redacted.

A report is written to a temporary file beside it and renamed over the
target, so a reader (GitLab's artifact upload, a browser) never sees half a
file. That file is created ``0666`` less the process umask, as a plain
``open()`` would (``0644`` under the usual ``022``): reports are meant to be
read by the CI job's other steps. FIFOs, devices and links are handled by
:mod:`imggate.formats.destination`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where the kernel says it (Linux >= 4.7)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # Elsewhere: set and restore (not thread-safe, but only ever a few microseconds).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path``: a regular file atomically, mode ``0666 & ~umask`` when new.

    What is not a regular file is written through or refused, never replaced,
    and ``-`` is standard output (see :mod:`imggate.formats.destination`).
    Raises :class:`~imggate.errors.Error` naming the path when it cannot be written.
    """
    from imggate.formats.destination import write_bytes

    write_bytes(path, data)
    return Path(path)


def write_text(path: Path, text: str) -> Path:
    """:func:`write_atomic` for text (UTF-8, ``\\n`` line ends).

    Every text report passes through here (the GitLab report through
    :func:`imggate.formats.gitlab.write`): the run's secrets are redacted
    from ``text`` on the way out.
    """
    from imggate.redact import redact

    return write_atomic(path, redact(text).encode("utf-8"))


def write_text_parts(path: Path, parts: Iterable[str | bytes | memoryview]) -> Path:
    """:func:`write_text` of the concatenation of ``parts`` (text, or UTF-8 already), each
    written as it comes: a large report (the HTML page, the verdict JSON of 10,000
    findings) is never joined and encoded whole, which copied it twice more into fresh
    memory. While the run holds a secret, the parts are joined and redacted as one text
    (a secret could span two parts)."""
    from imggate.formats.destination import write_parts
    from imggate.redact import SECRETS

    if SECRETS:
        return write_text(path, "".join(p if isinstance(p, str) else str(p, "utf-8")
                                        for p in parts))
    write_parts(path, (p.encode("utf-8") if isinstance(p, str) else p for p in parts))
    return Path(path)


def remove_stale(paths: list[Path]) -> list[Path]:
    """Delete the files a run would have written but could not, so that no earlier run's
    report is left to be uploaded as this run's; return those that could not be removed.

    A directory there holds no report (none can be written there): it is the user's, and
    neither removed nor said to be left behind."""
    left = []
    for p in paths:
        try:
            if stat.S_ISDIR(os.lstat(p).st_mode):
                continue
            Path(p).unlink()
        except FileNotFoundError:
            continue
        except OSError:
            left.append(Path(p))
    return left
