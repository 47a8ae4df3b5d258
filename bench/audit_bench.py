"""Benchmark: ``imggate audit`` of 1,000 tags (300 distinct images), beside its floor and a
skopeo loop measured in the same run.

Starts a throw-away Distribution registry on loopback, pushes 1,000 ``v1.0.<i>``
tags over 300 distinct images (plus ``latest`` and ``stable``; 30 images
key-signed in cosign's format), then runs alternating rounds (the order reversed
every other round) of:

- ``imggate audit REPO`` (one process, start-up included: list, resolve every tag,
  check each distinct digest once);
- the floor: ``curl --parallel`` (16 at a time, as imggate's pool holds per host) over
  the same GETs (the tag list, each tag's manifest, each image's config once), with
  imggate's ``Accept``;
- the peer: ``skopeo list-tags`` then ``skopeo inspect`` once per tag, sequentially
  (what a shell loop over a repository does; it verifies nothing).

It prints each side's median (range) and client CPU, each round's ratio, the
machine's load before and after, and the requests and TCP connections each side made
(counted by the registry in a run of its own), and, counted the same way, wall time
and requests per tag of ``audit --key`` and of two environments that both require the
key (their signature lookups are shared: the requests per tag should match
``--key``'s). imggate and skopeo must see the pushed digest for every tag, or the run
fails. Usage::

    python bench/audit_bench.py [--tags 1000] [--digests 300] [--rounds 5]
                                [--skopeo-rounds 3]

Another script calls :func:`run` for the figures as data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from registry_figures import (
    Traffic,
    alternate,
    children_cpu,
    count_traffic,
    curl_parallel,
    get_json,
    load1,
    run_curl,
    spread,
)

from audit.audit_repository import build
from registry_harness import require_binaries, start_registry

#: imggate audit at most this many times the curl floor, and this many times faster
#: than the skopeo loop (issue 22).
TARGET_FLOOR_RATIO = 1.5
TARGET_SKOPEO_SPEEDUP = 6.0


def _this_tree() -> None:
    """Child processes run this tree's imggate (``src/`` first), not an installed one."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if src not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([src, *paths])


def _run(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of ``cmd`` (an exit status of 0 or 1: a verdict, not a failure)."""
    cpu = children_cpu()
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n"
                         f"{proc.stderr[-2000:]}")
    return elapsed, children_cpu() - cpu


@dataclass
class Figures:
    """One run's figures (seconds; each list one sample per round, in round order)."""

    tags: int
    digests: int
    gets: int
    imggate: list[float] = field(default_factory=list)
    imggate_cpu: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    floor_cpu: list[float] = field(default_factory=list)
    skopeo_rounds: list[tuple[float, float]] = field(default_factory=list)  # (imggate, skopeo)
    traffic: dict[str, Traffic] = field(default_factory=dict)
    #: ``audit --key`` and two environments needing the key: wall seconds (counted run).
    signatures: dict[str, float] = field(default_factory=dict)
    load: dict[str, tuple[float, float]] = field(default_factory=dict)


def measure(work: Path, n_tags: int, n_digests: int, rounds: int, skopeo_rounds: int, *,
            signatures: bool = True) -> Figures:
    """Push the repository to a fresh loopback registry and measure every side."""
    _this_tree()
    require_binaries("docker-registry", "skopeo", "curl")
    imggate = [sys.executable, "-m", "imggate"]
    reg = start_registry(work / "registry", auth="none")
    try:
        pushed = build(reg.url, "bench/app", n_tags=n_tags, n_digests=n_digests,
                       signed=max(1, n_digests // 10))
        want = {t: str(d) for t, d in pushed.tags.items()}
        (work / "cosign.pub").write_bytes(pushed.signer.public_pem)
        repo = f"{reg.host}/bench/app"
        base = f"{reg.url}/v2/bench/app"
        # The GETs an audit makes: the tag list, each tag's manifest, each image's config.
        urls = [f"{base}/tags/list"]
        configs: dict[str, str] = {}
        for tag, digest in want.items():
            urls.append(f"{base}/manifests/{tag}")
            if digest not in configs:
                config = get_json(f"{base}/manifests/{digest}")["config"]
                assert isinstance(config, dict)
                configs[digest] = str(config["digest"])
        urls += [f"{base}/blobs/{c}" for c in configs.values()]
        curl = curl_parallel(urls, work / "audit.curl")
        figures = Figures(len(want), n_digests, len(urls))
        out = work / "plain"

        def audit() -> float:
            elapsed, cpu = _run([*imggate, "audit", repo, "-q", "-o", str(out)])
            doc = json.loads((out / "imggate-audit.json").read_text())
            if {r["tag"]: r["digest"] for r in doc["rows"]} != want:
                raise SystemExit("MISMATCH: imggate audit disagrees with the pushed digests")
            figures.imggate_cpu.append(cpu)
            return elapsed

        def floor() -> float:
            cpu = children_cpu()
            elapsed = run_curl(curl, len(urls))
            figures.floor_cpu.append(children_cpu() - cpu)
            return elapsed

        def skopeo_loop() -> float:
            cmd = ["skopeo", "--insecure-policy"]
            started = time.perf_counter()
            listed = json.loads(subprocess.run(
                [*cmd, "list-tags", "--tls-verify=false", f"docker://{repo}"],
                capture_output=True, text=True, check=True).stdout)["Tags"]
            seen = {}
            for tag in listed:
                if tag.startswith("sha256-"):  # cosign's signature tags
                    continue
                seen[tag] = subprocess.run(
                    [*cmd, "inspect", "--tls-verify=false", "--format", "{{.Digest}}",
                     f"docker://{repo}:{tag}"], capture_output=True, text=True,
                    check=True).stdout.strip()
            elapsed = time.perf_counter() - started
            if seen != want:
                raise SystemExit("MISMATCH: the skopeo loop disagrees with the pushed digests")
            return elapsed

        audit(), floor()  # warm: page cache, the registry's caches
        figures.imggate_cpu.clear()
        figures.floor_cpu.clear()
        before = load1()
        figures.imggate, figures.floor = alternate([audit, floor], rounds)
        figures.load["floor"] = (before, load1())
        before = load1()
        mine, loop = alternate([lambda: _run([*imggate, "audit", repo, "-q", "-o",
                                              str(out)])[0], skopeo_loop], skopeo_rounds)
        figures.skopeo_rounds = list(zip(mine, loop, strict=True))
        figures.load["skopeo"] = (before, load1())

        # Counted runs of their own (their samples and CPU are not the rounds').
        counted: dict[str, Callable[[], object]] = {
            "imggate audit": lambda: _run([*imggate, "audit", repo, "-q", "-o", str(out)]),
            "curl": lambda: run_curl(curl, len(urls))}
        if signatures:
            rules = work / "rules.yaml"
            rules.write_text(json.dumps({"version": 1, "environments": {
                "prod": {"signatures": {"keys": [str(work / "cosign.pub")]}},
                "prod-eu": {"extends": "prod"}}}))
            key_cmd = [*imggate, "audit", repo, "-q", "-o", str(work / "keyed"), "--key",
                       str(work / "cosign.pub"), "--insecure-ignore-tlog"]
            two_cmd = [*imggate, "audit", repo, "-q", "-o", str(work / "two"), "--rules",
                       str(rules), "--env", "prod", "--env", "prod-eu",
                       "--insecure-ignore-tlog"]

            def keyed() -> None:
                figures.signatures["imggate audit --key"] = _run(key_cmd)[0]

            def two() -> None:
                figures.signatures["imggate audit, 2 envs needing the key"] = _run(two_cmd)[0]

            counted |= {"imggate audit --key": keyed,
                        "imggate audit, 2 envs needing the key": two}
        reg, figures.traffic = count_traffic(reg, counted)
    finally:
        reg.stop()
    return figures


def report(f: Figures) -> None:
    """Print the figures."""
    print(f"imggate audit of {f.tags:,} tags over {f.digests} distinct images; "
          f"{os.cpu_count()} CPUs; {len(f.imggate)} alternating rounds "
          f"({len(f.skopeo_rounds)} with the skopeo loop)")
    print(f"{'':44} {'median (range)':>26} {'client CPU':>11}")
    print(f"{'imggate audit, one process':44} {spread(f.imggate):>26} "
          f"{statistics.median(f.imggate_cpu):10.2f}s")
    print(f"{f'curl --parallel, the same {f.gets:,} GETs':44} {spread(f.floor):>26} "
          f"{statistics.median(f.floor_cpu):10.2f}s")
    r = [a / b for a, b in zip(f.imggate, f.floor, strict=True)]
    met = statistics.median(r) <= TARGET_FLOOR_RATIO
    print(f"  imggate / curl, per round: {spread(r, 'x')}  (target <= {TARGET_FLOOR_RATIO}x: "
          f"{'met' if met else 'MISSED'}); load {f.load['floor'][0]:.2f} -> "
          f"{f.load['floor'][1]:.2f}")
    print(f"{'imggate audit (beside the skopeo loop)':44} "
          f"{spread([a for a, _ in f.skopeo_rounds]):>26}")
    print(f"{'skopeo list-tags + inspect per tag':44} "
          f"{spread([b for _, b in f.skopeo_rounds]):>26}")
    speed = [b / a for a, b in f.skopeo_rounds]
    met = statistics.median(speed) >= TARGET_SKOPEO_SPEEDUP
    print(f"  skopeo / imggate, per round: {spread(speed, 'x')}  (target >= "
          f"{TARGET_SKOPEO_SPEEDUP:g}x: {'met' if met else 'MISSED'}); load "
          f"{f.load['skopeo'][0]:.2f} -> {f.load['skopeo'][1]:.2f}")
    for name, t in f.traffic.items():
        wall = f" in {f.signatures[name]:.2f} s" if name in f.signatures else ""
        print(f"traffic, {name}{wall}: {t.requests} requests ({t.requests / f.tags:.2f} per "
              f"tag) over {t.connections} TCP connections (counted by the registry)")
    print("digests: imggate == skopeo == pushed for every tag")


def run(quick: bool = False) -> list[dict[str, object]]:
    """The figures as data, for another script: imggate beside the curl floor, and
    beside the skopeo loop. ``quick``: 12 tags, one round (keeps it working; no meaning)."""
    tags, digests, rounds, skopeo_rounds = (12, 4, 1, 1) if quick else (1000, 300, 5, 3)
    with tempfile.TemporaryDirectory(prefix="imggate-bench-") as tmp:
        f = measure(Path(tmp), tags, digests, rounds, skopeo_rounds, signatures=False)
    traffic = {k: {"requests": t.requests, "connections": t.connections}
               for k, t in f.traffic.items()}
    return [
        {"figure": f"imggate audit of {f.tags:,} tags over {digests} images, one process",
         "unit": "s", "imggate_samples": f.imggate, "imggate_cpu": f.imggate_cpu,
         "peer_name": f"curl --parallel over the same {f.gets:,} GETs",
         "peer_samples": f.floor, "peer_cpu": f.floor_cpu,
         "target": f"<= {TARGET_FLOOR_RATIO}x", "load": f.load["floor"], "traffic": traffic},
        {"figure": f"imggate audit of {f.tags:,} tags", "unit": "s",
         "imggate_samples": [a for a, _ in f.skopeo_rounds],
         "peer_name": "skopeo list-tags + skopeo inspect per tag",
         "peer_samples": [b for _, b in f.skopeo_rounds],
         "target": f">= {TARGET_SKOPEO_SPEEDUP:g}x (skopeo / imggate)",
         "load": f.load["skopeo"]},
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--digests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating rounds of imggate and the curl floor")
    parser.add_argument("--skopeo-rounds", type=int, default=3,
                        help="alternating rounds of imggate and the skopeo loop")
    args = parser.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="imggate-bench-") as tmp:
        figures = measure(Path(tmp), args.tags, args.digests, args.rounds, args.skopeo_rounds)
    report(figures)
    print(f"({time.perf_counter() - t0:.0f} s in all, set-up included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
