"""Benchmark: a 50,000-finding Trivy report -> gl-container-scanning-report.json.

The report is built from the real vulnerability entries in
``tests/fixtures/trivy`` (every field as Trivy wrote it), each repeated
with a distinct installed version so all 50,000 (id, package, version)
entries are unique and nothing is merged away. Timed end to end, as
``imggate convert`` does it: read + validate, merge, render, write.

Targets (issue 22): 50k <= 1.3x the peer below, same run; 50k/5k time ratio <= 11
(linear growth). ``bench/run_all.py`` measures the same in alternating rounds.
Peer, measured in the same run: the bare floor of any converter, ``json.load``
of the input plus ``json.dump`` of the output document with the stdlib.

    python bench/convert_bench.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from imggate.formats import gitlab
from imggate.scanners._doc import gc_paused
from imggate.scanners.detect import load_report
from imggate.scanners.merge import merge

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "trivy"
TARGET_PEER = 1.3
TARGET_RATIO = 11.0
REPEATS = 5


def real_entries() -> list[dict]:
    """Every distinct vulnerability entry of the real Trivy JSON fixtures."""
    seen: dict[tuple[str, str, str], dict] = {}
    for path in sorted(FIXTURES.glob("**/*.json")):
        if "other-formats" in path.parts:
            continue
        doc = json.loads(path.read_text(encoding="utf-8"))
        results = doc if isinstance(doc, list) else doc.get("Results") or []
        for r in results:
            for v in r.get("Vulnerabilities") or []:
                seen.setdefault((v["VulnerabilityID"], v["PkgName"], v["InstalledVersion"]), v)
    return list(seen.values())


def build_report(entries: list[dict], n: int, *, distinct: bool = False) -> dict:
    """A SchemaVersion 2 report with ``n`` unique findings made from ``entries``.

    The real entries are 130 (85 vulnerabilities); past them, each finding repeats one
    with another installed version, so a vulnerability's findings share its id and text
    (~118 findings a vulnerability at 10,000: more than any real image has; Trivy
    repeats a vulnerability once per affected package). With ``distinct``, every
    repeat is a vulnerability of its own instead (its own id, title and description):
    nothing is shared, the other end of what real reports hold.
    """
    vulns = []
    for i in range(n):
        v = dict(entries[i % len(entries)])
        round_ = i // len(entries)
        if round_:
            v["InstalledVersion"] = f"{v['InstalledVersion']}+b{round_}"
            if distinct:
                v["VulnerabilityID"] = f"CVE-2099-{100000 + i}"
                for key in ("Title", "Description"):
                    if isinstance(v.get(key), str):
                        v[key] = f"{v[key]} ({i})"
        vulns.append(v)
    return {
        "SchemaVersion": 2,
        "CreatedAt": "2026-01-01T00:00:00Z",
        "ArtifactName": "registry.example.com/bench/app:1.0",
        "ArtifactType": "container_image",
        "Metadata": {"OS": {"Family": "debian", "Name": "10.8"},
                     "RepoDigests": ["registry.example.com/bench/app@sha256:" + "ab" * 32]},
        "Results": [{"Target": "registry.example.com/bench/app:1.0 (debian 10.8)",
                     "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": vulns}],
    }


def convert(src: Path, dst: Path) -> int:
    """What ``imggate convert src -o dst`` does; returns the number of vulnerabilities written."""
    with gc_paused():
        return _convert(src, dst)


def _convert(src: Path, dst: Path) -> int:
    report = load_report(src)
    findings = merge([report])
    now = datetime.now(UTC)
    doc = gitlab.render(findings, image=report.image_name or "img",
                        operating_system=report.operating_system, scanners=[report.scanner],
                        start=report.finished or now, end=now)
    gitlab.write(dst, doc)
    return len(doc["vulnerabilities"])


def peer(src: Path, dst: Path) -> None:
    """The floor: stdlib JSON read of the input and write of it back (GC paused, as imggate)."""
    with gc_paused():
        doc = json.loads(src.read_bytes())
        dst.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")),
                       encoding="utf-8")


def best_of(fn, *args) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds of ``REPEATS`` runs."""
    walls, cpus = [], []
    for _ in range(REPEATS):
        w0, c0 = time.perf_counter(), time.process_time()
        fn(*args)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus)


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "n/a"


def main() -> int:
    entries = real_entries()
    print(f"real Trivy entries used as templates: {len(entries)}; "
          f"{os.cpu_count()} CPUs, load average {load_average()} at start")
    wall: dict[int, float] = {}
    cpu: dict[int, float] = {}
    peer_wall: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (5_000, 50_000):
            src, dst = Path(tmp) / f"trivy-{n}.json", Path(tmp) / f"gl-{n}.json"
            src.write_text(json.dumps(build_report(entries, n)), encoding="utf-8")
            written = convert(src, dst)
            assert written == n, f"expected {n} vulnerabilities, wrote {written}"
            wall[n], cpu[n] = best_of(convert, src, dst)
            p, p_cpu = best_of(peer, src, Path(tmp) / "peer.json")
            peer_wall[n] = p
            size = src.stat().st_size / 1e6
            out = dst.stat().st_size / 1e6
            print(f"{n:>6} findings: input {size:6.1f} MB -> output {out:6.1f} MB | imggate "
                  f"{wall[n]:.3f} s wall, {cpu[n]:.3f} s CPU ({n / wall[n]:,.0f} findings/s) | "
                  f"peer json load+dump {p:.3f} s wall, {p_cpu:.3f} s CPU | "
                  f"imggate/peer {wall[n] / p:.2f}x wall, {cpu[n] / p_cpu:.2f}x CPU")
    verdicts = []
    for label, t in (("wall", wall), ("CPU", cpu)):
        ratio = t[50_000] / t[5_000]
        ok = ratio <= TARGET_RATIO
        verdicts.append(ok)
        print(f"{label:>4}: 50k in {t[50_000]:.3f} s, "
              f"50k/5k ratio {ratio:.2f} (target <= {TARGET_RATIO}; 10 = linear): "
              f"{'OK' if ok else 'MISSED'}")
    to_peer = wall[50_000] / peer_wall[50_000]
    verdicts.append(to_peer <= TARGET_PEER)
    print(f"50k: {to_peer:.2f}x the peer's wall time (target <= {TARGET_PEER}x): "
          f"{'OK' if to_peer <= TARGET_PEER else 'MISSED'}")
    print(f"load average at end {load_average()} (other processes inflate wall time; "
          "CPU time is this process's own work)")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
