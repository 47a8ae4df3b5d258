"""Whether this process may hand work to a forked child (the one test every fork here
uses), and how a child tells its parent what went wrong."""

from __future__ import annotations

import contextlib
import os
import threading

from imggate.errors import Error, UsageError


def can_fork() -> bool:
    """A second CPU to use, and a process that can be forked safely (one thread)."""
    if not hasattr(os, "fork") or threading.active_count() != 1:
        return False
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cpus or 1) > 1


def tell_parent(fd: int, e: BaseException) -> None:
    """Write why a forked child failed to ``fd``, for its parent to report (imggate's own
    message for an imggate error, else the exception's type and text; at most 4 KiB).
    A parent that stopped listening is not an error here: the child is ending anyway."""
    text = e.message if isinstance(e, Error) else f"{type(e).__name__}: {e}"
    with contextlib.suppress(OSError):
        os.write(fd, text.encode("utf-8", "replace")[:4096])


def failed_with(e: BaseException) -> int:
    """The exit status a forked child that failed with ``e`` ends with: 2 for an error the
    user must fix (a directory where a report's file goes), else 1. Its parent makes the
    same kind of error of it again (:func:`child_error`)."""
    return 2 if isinstance(e, Error) and e.exit_code == 2 else 1


def child_error(message: str, status: int) -> Error:
    """The error a forked child said (``message``) and ended with (``status``, see
    :func:`failed_with`), for its parent to raise: its exit code is the child's error's."""
    return UsageError(message) if status == 2 else Error(message)
