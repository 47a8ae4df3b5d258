"""Benchmark: the whole gate, ``imggate check``, as a CI job runs it.

Starts a throw-away Distribution registry on loopback and pushes signed images
(cosign-format signatures written by the tests' signer, a stand-in for the
cosign binary). Then, in the same run:

1. one image, a 10,000-finding Trivy report bound to it (built from the real
   entries of ``tests/fixtures/trivy``), signature verification, every
   output written: wall time of ``imggate check`` as a process; peer: ``imggate
   resolve`` of the same image, the floor of any check (target, issue 22: <= 2x);
2. 100 images checked in one call versus 100 calls of one image each.

    python bench/check_bench.py [--images 100] [--findings 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from convert_bench import build_report, real_entries  # noqa: E402

from registry_harness import Registry, require_binaries, start_registry  # noqa: E402
from signatures.cosign_format_signer import (  # noqa: E402
    CosignFormatSigner,
    make_image,
    push_repository,
)
from signatures.inmemory import InMemoryRepository  # noqa: E402

TARGET_TO_RESOLVE = 2.0


def imggate() -> list[str]:
    exe = shutil.which("imggate")
    return [exe] if exe else [sys.executable, "-m", "imggate"]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], repeats: int = 3, ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """Best wall time and best CPU time (user + system of the process and the children it
    waited for) of ``repeats`` runs: on a loaded machine wall time mostly measures the
    other processes, CPU time much less so."""
    best = cpu = float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), _children_cpu()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        best = min(best, time.perf_counter() - t)
        cpu = min(cpu, _children_cpu() - c)
        if proc.returncode not in ok:
            raise SystemExit(f"{' '.join(cmd[:4])}… exited {proc.returncode}:\n"
                             f"{proc.stderr[-2000:]}")
    return best, cpu


def push_signed(registry: Registry, work: Path, count: int) -> tuple[list[str], Path]:
    """Push ``count`` key-signed images; their pinned references and the public key."""
    work.mkdir(parents=True, exist_ok=True)
    signer = CosignFormatSigner()
    key = work / "cosign.pub"
    key.write_bytes(signer.public_pem)

    def push(i: int) -> str:
        repo = InMemoryRepository(f"{registry.host}/bench/app-{i}")
        digest = make_image(repo, "1.0.0", f"bench image {i}".encode())
        signer.sign_image(repo, digest)
        push_repository(repo, registry.url, f"bench/app-{i}")
        return registry.ref(f"bench/app-{i}", digest=str(digest))

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(push, range(count))), key


def write_report(work: Path, ref: str, findings: int, *, distinct: bool = False) -> Path:
    """A Trivy report of ``findings`` real entries, bound to ``ref`` (``distinct``: each
    finding a vulnerability of its own, see :func:`convert_bench.build_report`)."""
    doc = build_report(real_entries(), findings, distinct=distinct)
    doc["ArtifactName"] = ref
    doc.setdefault("Metadata", {})["RepoDigests"] = [ref]
    doc["Metadata"].pop("ImageID", None)
    report = work / f"trivy-{findings}{'-distinct' if distinct else ''}.json"
    report.write_text(json.dumps(doc))
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--findings", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3, help="runs of the 10k check (best kept)")
    args = ap.parse_args()
    require_binaries()
    with tempfile.TemporaryDirectory(prefix="imggate-check-bench-") as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry", auth="none")
        try:
            refs, key = push_signed(registry, work, args.images)
            report = write_report(work, refs[0], args.findings)
            common = ["--key", str(key), "--insecure-ignore-tlog", "-q"]
            out = work / "out"
            # A 10k-finding report has Critical findings: the gate denies (exit 1), by design.
            one, one_cpu = timed([*imggate(), "check", refs[0], "--trivy-report", str(report),
                         "--output-dir", str(out), *common], repeats=args.repeats, ok=(0, 1))
            floor, floor_cpu = timed([*imggate(), "resolve", refs[0]], repeats=args.repeats)
            written = sorted(p.name for p in out.iterdir())
            batch, _ = timed([*imggate(), "check", *refs, "--output-dir", str(out), *common],
                          repeats=1)
            t = time.perf_counter()
            for ref in refs:
                timed([*imggate(), "check", ref, "--output-dir", str(out), *common], repeats=1)
            singles = time.perf_counter() - t
        finally:
            registry.stop()
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"{os.cpu_count()} CPUs, load average {load}")
    print(f"check 1 image, {args.findings} findings, signature, all outputs: {one:.3f} s, "
          f"CPU {one_cpu:.3f} s")
    print(f"  peer: imggate resolve of the same image: {floor:.3f} s, CPU {floor_cpu:.3f} s; "
          f"outputs: {written}")
    ratio = one / floor
    print(f"  check / resolve: {ratio:.2f}x (target <= {TARGET_TO_RESOLVE:g}x: "
          f"{'met' if ratio <= TARGET_TO_RESOLVE else 'MISSED'})")
    print(f"check {len(refs)} signed images in one call: {batch:.3f} s "
          f"({batch / len(refs) * 1000:.1f} ms/image)")
    print(f"check {len(refs)} signed images in {len(refs)} calls: {singles:.3f} s "
          f"({singles / len(refs) * 1000:.1f} ms/image)")
    print(f"ratio: one call is {singles / batch:.1f}x faster than one call per image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
