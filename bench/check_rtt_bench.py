"""Benchmark: ``imggate check`` of one key-signed image through a registry a set round trip
away, against ``imggate resolve`` of the same image through the same proxy.

Starts a throw-away Distribution registry on loopback, pushes one key-signed image (the
tests' cosign-format signer, a stand-in for the cosign binary) and puts a TCP proxy in
front of it that holds every chunk for half the round trip in each direction (``--rtt``).
Then runs, alternating, ``check`` of that image (its signature required, every output
written) and ``resolve`` of it, as processes, each ``--rounds`` times; with ``--src``, the
``check`` of another source tree too (the tree before a change), in the same rotation.

What it shows: how many round trips to the registry a ``check`` waits for beyond a
resolve (a registry 20 ms away adds ~20 ms per round trip: the wall times' differences,
divided by the round trip, count them). Usage::

    python bench/check_rtt_bench.py [--rtt 20] [--rounds 7] [--src PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from check_bench import push_signed  # noqa: E402

from registry_harness import require_binaries, start_registry  # noqa: E402
from tcp_proxy import TcpProxy  # noqa: E402


def timed(cmd: Sequence[str], src: Path, ok: tuple[int, ...] = (0,)) -> float:
    """Wall time of ``cmd`` run with ``src`` first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    started = time.perf_counter()
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False, env=env)
    took = time.perf_counter() - started
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd[:4])}… exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rtt", type=float, default=20, help="round trip the proxy adds, in ms")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--src", type=Path, help="another tree's src/ to check alternately")
    args = ap.parse_args()
    require_binaries()
    ours = HERE.parent / "src"
    trees = {"this tree": ours} | ({"--src tree": args.src.resolve()} if args.src else {})
    with tempfile.TemporaryDirectory(prefix="imggate-check-rtt-") as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry", auth="none")
        try:
            [ref], key = push_signed(registry, work, 1)
            host = TcpProxy(registry.host, rtt=args.rtt / 1000).start_in_thread()
            ref = ref.replace(registry.host, host)
            python = [sys.executable, "-m", "imggate"]
            check = [*python, "check", ref, "--key", str(key), "--insecure-ignore-tlog", "-q",
                     "--output-dir", str(work / "out")]
            commands = {f"check ({name})": (check, src) for name, src in trees.items()}
            commands["resolve (this tree)"] = ([*python, "resolve", ref], ours)
            times: dict[str, list[float]] = {name: [] for name in commands}
            for cmd, src in commands.values():  # warm-up: page cache, bytecode
                timed(cmd, src)
            for _ in range(args.rounds):
                for name, (cmd, src) in commands.items():
                    times[name].append(timed(cmd, src))
        finally:
            registry.stop()
    print(f"{os.cpu_count()} CPUs, load average {Path('/proc/loadavg').read_text().split()[0]}; "
          f"proxy round trip {args.rtt:g} ms; {args.rounds} alternating rounds")
    floor = statistics.median(times["resolve (this tree)"])
    for name, got in times.items():
        mid = statistics.median(got)
        extra = (mid - floor) * 1000 / args.rtt if args.rtt else float("nan")
        print(f"  {name:22} median {mid * 1000:7.1f} ms (range {min(got) * 1000:.1f}-"
              f"{max(got) * 1000:.1f}); beyond the resolve: {extra:+.1f} round trips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
