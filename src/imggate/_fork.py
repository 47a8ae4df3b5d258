"""Whether this process may hand work to a forked child: the one test every fork here uses."""

from __future__ import annotations

import os
import threading


def can_fork() -> bool:
    """A second CPU to use, and a process that can be forked safely (one thread)."""
    if not hasattr(os, "fork") or threading.active_count() != 1:
        return False
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cpus or 1) > 1
