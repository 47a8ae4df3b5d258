"""Writing report files: atomically, with the mode ``open()`` would give (the umask's),
and with the run's secrets redacted.

A report is written to a temporary file beside it and renamed over the
target, so a reader (GitLab's artifact upload, a browser) never sees half a
file. ``mkstemp`` creates that file ``0600``; it is then given ``0666`` less
the process umask, as a plain ``open()`` would (``0644`` under the usual
``022``): reports are meant to be read by the CI job's other steps.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from imggate.errors import Error


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
    """Write ``data`` to ``path`` atomically, mode ``0666 & ~umask``.

    Raises :class:`~imggate.errors.Error` naming the path when it cannot be written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o666 & ~current_umask())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise Error(f"cannot write report {path}: {e.strerror or e}") from e
    return path


def write_text(path: Path, text: str) -> Path:
    """:func:`write_atomic` for text (UTF-8, ``\\n`` line ends).

    Every text report passes through here (the GitLab report through
    :func:`imggate.formats.gitlab.write`): the run's secrets are redacted
    from ``text`` on the way out.
    """
    from imggate.redact import redact

    return write_atomic(path, redact(text).encode("utf-8"))


def remove_stale(paths: list[Path]) -> list[Path]:
    """Delete the files a run would have written but could not, so that no earlier run's
    report is left to be uploaded as this run's; return those that could not be removed."""
    left = []
    for p in paths:
        try:
            Path(p).unlink(missing_ok=True)
        except OSError:
            left.append(Path(p))
    return left
