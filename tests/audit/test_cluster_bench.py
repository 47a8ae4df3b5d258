"""bench/cluster_audit_bench.py keeps working: run small (4 images, 10 pods), its figures read
back from its output. The sizes mean nothing for time; the counts do: one registry resolution
and one signature lookup per distinct digest cold, half of them warm (the webhook judged every
other digest first), and the webhook's verdicts found in the shared cache."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from registry_harness import MissingComponentError, missing_component, require_binaries

pytestmark = pytest.mark.registry

ROOT = Path(__file__).resolve().parents[2]


def test_the_cluster_audit_bench_runs_and_counts_registry_work() -> None:
    try:
        require_binaries("docker-registry", "redis-server")
    except MissingComponentError as e:
        missing_component(str(e))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "cluster_audit_bench.py"),
                           "--digests", "4", "--sizes", "10", "--pods-per-namespace", "5",
                           "--peer-sample", "1"], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = {m.group(1): m.group(2).split() for m in re.finditer(
        r"^audit --cluster (cold|warm), 10 pods / 4 digests\s+(.*)$", proc.stdout, re.M)}
    assert set(lines) == {"cold", "warm"}, proc.stdout
    # wall, pods/s, resolutions, signatures, requests, hits, peak RSS
    assert lines["cold"][2:4] == ["1.00", "1.00"] and lines["cold"][5] == "0", lines
    assert lines["warm"][2:4] == ["0.50", "0.50"] and lines["warm"][5] == "2", lines
    assert "peer: imggate check per digest" in proc.stdout
    assert "load average after:" in proc.stdout
