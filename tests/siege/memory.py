"""The memory of a process under attack: its RSS now, and its peak while a block runs."""

from __future__ import annotations

import threading
from pathlib import Path

#: deploy/'s memory limit is 512Mi; the issue's bound for every attack is 256 MB.
RSS_LIMIT_MB = 256


def rss_mb(pid: int) -> float:
    """The resident set size of ``pid`` in MiB (``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


class RssSampler:
    """The peak RSS of a process, sampled every 10 ms from a thread while in the block."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = self.peak = rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb(self.pid))
