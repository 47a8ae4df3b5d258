"""Benchmark: a huge ``.trivyignore`` (100,000 and 1,000,000 ids) through the engine and reports.

Timed: read + parse the file, apply it to a 3-finding report, render the
verdict JSON and the HTML page. Printed: seconds, peak RSS, output sizes, and
the 1M/100k time ratio (linear growth is ~10). Peer, measured in the same
run: reading the same file and splitting it into lines (the floor of any
reader).

Before issue 9 item 10 (same machine): 1M lines took 141 s and 2.7 GB in
``imggate check`` and wrote a 274 MB verdict and a 318 MB HTML page.

    python bench/allowlist_bench.py
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

from imggate.formats import html, verdict_json
from imggate.models import Severity, Verdict
from imggate.policy.allowlists import load_allowlist
from imggate.policy.engine import evaluate
from imggate.policy.loader import load_rules

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from policy.policy_builders import DIGEST, NOW, evidence, finding, ref, report


def _write(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            if i % 10 == 0:
                fh.write(f"# accepted in review {i}\n")
            fh.write(f"CVE-2099-{i}\n")


def _run(path: Path) -> tuple[float, int, int]:
    start = time.perf_counter()
    exceptions = load_allowlist(path)
    iv = evaluate(evidence(ref(None, DIGEST), reports=(report(finding("CVE-2099-5",
                                                                      Severity.HIGH)),)),
                  load_rules().effective("dev"), exceptions=exceptions, now=NOW)
    verdict = Verdict(env="dev", images=(iv,), generated=NOW)
    doc, page = verdict_json.render(verdict), html.render(verdict)
    return time.perf_counter() - start, len(doc), len(page)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        times = {}
        for n in (100_000, 1_000_000):
            path = Path(tmp) / f"{n}.trivyignore"
            _write(path, n)
            floor = time.perf_counter()
            lines = len(path.read_text().splitlines())
            floor = time.perf_counter() - floor
            seconds, doc, page = _run(path)
            times[n] = seconds
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{n:>9,} ids ({lines:,} lines): {seconds:.2f} s, peak RSS {rss:.0f} MB, "
                  f"verdict {doc / 1024:.0f} KB, HTML {page / 1024:.0f} KB; "
                  f"peer read+splitlines {floor:.2f} s ({seconds / floor:.0f}x)")
        print(f"1M/100k time ratio: {times[1_000_000] / times[100_000]:.1f} (linear: 10)")


if __name__ == "__main__":
    main()
