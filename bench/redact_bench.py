"""Benchmark: 100,000 bearer-token renewals through the redactor (issue 18, item 2).

A registry that issues a fresh token per request (or Docker Hub's per-repository
tokens over a long run) registers every token with :mod:`imggate.redact`. Here
1,000 scopes are renewed round robin, 100 renewals per simulated second, as
:class:`imggate.registry.auth.RegistryAuth` does it: register the new token
until its expiry (300 s), release the one it replaces. Every 10,000 renewals:
the secrets held, the process's RSS, the cost of one registration, and the cost
of redacting a 200-character log line and a 1 MB report.

Peers, measured in the same run:

- *one secret*: a redactor holding a single credential, the cheapest possible
  per-message cost (the ceiling);
- *unbounded*: the redactor as it was before (every token kept, one regular
  expression of all forms rebuilt per registration), for the first
  ``--peer-renewals`` renewals only (it takes minutes and GBs beyond that).

    python bench/redact_bench.py [--renewals 100000] [--peer-renewals 100]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import string
import threading
import time
from collections.abc import Callable
from pathlib import Path

from imggate.redact import Redactor, _spellings

ALPHABET = string.ascii_letters + string.digits + "-_"
LINE = ("imggate: registry 127.0.0.1:5000 answered HTTP 401 for churn/app:v1 "
        "(repository:churn/app:pull): credentials missing or refused; ") * 2
REPORT = ("x" * 99 + "\n") * 10_000  # 1 MB, no secret in it


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def token(rng: random.Random, n: int) -> str:
    """A JWT-like token: the shared header registries use, then unique text."""
    return "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9." + "".join(rng.choices(ALPHABET, k=n))


def per_call_us(fn: Callable[[], object], repeat: int) -> float:
    """The median of ``repeat`` timed calls, in microseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


class UnboundedPeer:
    """The redactor before issue 18: every form kept, one alternation rebuilt per add."""

    def __init__(self) -> None:
        self.forms: set[str] = set()
        self.ordered: tuple[str, ...] = ()
        self.pattern: re.Pattern[str] | None = None
        self.lock = threading.Lock()

    def add(self, secret: str) -> None:
        forms = {f for f in _spellings(secret) if len(f) >= 4}
        with self.lock:
            self.forms |= forms
            self.ordered = tuple(sorted(self.forms, key=len, reverse=True))
            self.pattern = re.compile("|".join(re.escape(f) for f in self.ordered))

    def redact(self, text: str) -> str:
        if not any(form in text for form in self.ordered):
            return text
        assert self.pattern is not None
        return self.pattern.sub("[redacted]", text)


def run_peer(renewals: int, chars: int, rng: random.Random
             ) -> list[tuple[int, float, float, float]]:
    """(renewals, ms to register the last one, us per line, RSS) at four points."""
    peer = UnboundedPeer()
    rows = []
    for i in range(1, renewals + 1):
        start = time.process_time()
        peer.add(token(rng, chars))
        took = time.process_time() - start
        if i % max(renewals // 4, 1) == 0:
            line = per_call_us(lambda: peer.redact(LINE), 200)
            rows.append((i, took * 1000, line, rss_mb()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--renewals", type=int, default=100_000)
    parser.add_argument("--peer-renewals", type=int, default=100)
    parser.add_argument("--scopes", type=int, default=1000)
    parser.add_argument("--token-chars", type=int, default=1000)
    args = parser.parse_args()
    rng = random.Random(18)

    ceiling = Redactor()
    ceiling.add("a-credential-" + "x" * 40)
    one_line = per_call_us(lambda: ceiling.redact(LINE), 2000)
    one_report = per_call_us(lambda: ceiling.redact(REPORT), 20)
    print(f"peer 'one secret': line {one_line:.1f} us, 1 MB report {one_report / 1000:.2f} ms")

    for i, add_ms, line, rss in run_peer(args.peer_renewals, args.token_chars, rng):
        print(f"peer 'unbounded' after {i:>6} renewals: register {add_ms:8.1f} ms, "
              f"line {line:7.1f} us, RSS {rss:6.0f} MB")

    clock = [0.0]
    redactor = Redactor(lambda: clock[0])
    redactor.add("a-credential-" + "x" * 40)
    current: dict[int, str] = {}
    add_times: list[float] = []
    print(f"{'renewals':>9} {'held':>6} {'forms':>6} {'RSS MB':>7} {'register us':>12} "
          f"{'line us':>8} {'1 MB ms':>8}")
    started = time.perf_counter()
    for i in range(1, args.renewals + 1):
        clock[0] += 0.01
        new = token(rng, args.token_chars)
        start = time.perf_counter()
        redactor.add(new, until=clock[0] + 300)
        old = current.get(i % args.scopes)
        if old is not None:
            redactor.release(old)
        add_times.append(time.perf_counter() - start)
        current[i % args.scopes] = new
        if i % 10_000 == 0 or i == args.renewals:
            line = per_call_us(lambda: redactor.redact(LINE), 2000)
            report = per_call_us(lambda: redactor.redact(REPORT), 10)
            assert redactor.redact(f"Bearer {new}") == "Bearer [redacted]"
            print(f"{i:>9} {len(redactor):>6} {redactor.forms:>6} {rss_mb():>7.0f} "
                  f"{statistics.mean(add_times) * 1e6:>12.1f} {line:>8.1f} "
                  f"{report / 1000:>8.2f}")
            add_times.clear()
    print(f"{args.renewals} renewals in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
