#!/usr/bin/env python3
"""STAND-IN for the ``trivy`` executable, used only by tests.

Real Trivy cannot run here (it downloads its vulnerability DB), so this
script plays its part at the process boundary: it records the argv and
environment it was started with to ``$FAKE_TRIVY_RECORD`` (JSON), appends one
line per run (argv, start and end time) to ``$FAKE_TRIVY_LOG`` (JSON lines: a
run of many scans can be checked for DB updates and overlap), waits
``$FAKE_TRIVY_SLEEP`` seconds as a scan takes time, and then, per
``$FAKE_TRIVY_MODE``:

* ``report`` (default): prints ``$FAKE_TRIVY_REPORT``, a real Trivy report fixture;
* ``fail``: writes an error (echoing ``$TRIVY_PASSWORD``, as a careless tool
  might) to stderr and exits 1;
* ``hang``: sleeps far longer than any test timeout;
* ``garbage``: prints something that is not JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    started = time.time()
    record = os.environ.get("FAKE_TRIVY_RECORD")
    if record:
        with open(record, "w", encoding="utf-8") as fh:
            json.dump({"argv": sys.argv, "env": dict(os.environ)}, fh)
    time.sleep(float(os.environ.get("FAKE_TRIVY_SLEEP", "0")))
    log = os.environ.get("FAKE_TRIVY_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"argv": sys.argv[1:], "start": started, "end": time.time()})
                     + "\n")
    mode = os.environ.get("FAKE_TRIVY_MODE", "report")
    if mode == "fail":
        sys.stderr.write("2024-01-01T00:00:00Z INFO Need to update DB\n")
        sys.stderr.write(f"FATAL unable to authenticate with password "
                         f"{os.environ.get('TRIVY_PASSWORD', '')}: 401 Unauthorized\n")
        return 1
    if mode == "hang":
        time.sleep(60)
        return 0
    if mode == "garbage":
        sys.stdout.write("Legend: - '-': Not scanned\n")
        return 0
    with open(os.environ["FAKE_TRIVY_REPORT"], "rb") as fh:
        sys.stdout.buffer.write(fh.read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
