"""Benchmark: ``imggate resolve`` of many images from two source trees and ``curl
--parallel`` over the same GETs, alternately, round by round: whether a change moved
resolve's time, measured against itself and its floor in the same rounds.

Starts a throw-away Distribution registry on loopback and pushes ``--images`` distinct
small images (as ``bench/resolve_bench.py`` does), then runs ``--rounds`` rounds of: this
tree's ``imggate resolve`` of every image in one process, the same from ``--base`` (a
source tree, e.g. ``git archive <commit> src | tar -x -C /tmp/base``), and curl over the
manifest and config GETs (16 at a time, imggate's ``Accept``), the order reversed every
other round. It prints each side's median and minimum, each tree's median ratio to curl,
and this tree's median ratio to the base round by round. Usage::

    python bench/resolve_versus.py --base /tmp/base/src [--images 200] [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from registry_figures import curl_parallel, get_json, load1, run_curl  # noqa: E402
from resolve_bench import build_and_push  # noqa: E402

from registry_harness import require_binaries, start_registry  # noqa: E402


def resolve_time(src: Path, refs: list[str]) -> float:
    """Wall time of ``imggate resolve`` of ``refs`` in one process, from source tree ``src``."""
    env = dict(os.environ, PYTHONPATH=str(src))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "imggate", "resolve", *refs], env=env,
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"imggate resolve ({src}) failed: {proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=True, help="the source tree to compare with")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    require_binaries("docker-registry", "skopeo", "umoci", "curl")
    here = HERE.parent / "src"
    for tree in (here, args.base):
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree)], check=True,
                       stdout=subprocess.DEVNULL)
    work = Path(tempfile.mkdtemp(prefix="imggate-resolve-versus-"))
    reg = start_registry(work / "registry")
    try:
        pairs = build_and_push(work, reg, args.images)
        refs = [ref for ref, _ in pairs]
        urls = []
        for ref in refs:
            repository, tag = ref.split("/", 1)[1].rsplit(":", 1)
            urls.append(f"{reg.url}/v2/{repository}/manifests/{tag}")
            manifest = get_json(urls[-1])
            config = manifest["config"]["digest"]  # type: ignore[index]
            urls.append(f"{reg.url}/v2/{repository}/blobs/{config}")
        curl = curl_parallel(urls, work / "curl.cfg")
        sides: list[tuple[str, Callable[[], float]]] = [
            ("this tree", lambda: resolve_time(here, refs)),
            (f"base {args.base}", lambda: resolve_time(args.base, refs)),
            (f"curl --parallel, {len(urls)} GETs", lambda: run_curl(curl, len(urls)))]
        times: list[list[float]] = [[] for _ in sides]
        before = load1()
        for n in range(args.rounds):
            order = range(len(sides)) if n % 2 == 0 else reversed(range(len(sides)))
            for k in order:
                times[k].append(sides[k][1]())
        print(f"{args.images} images, {args.rounds} rounds, load {before:.2f} -> {load1():.2f}")
        for (name, _), got in zip(sides, times, strict=True):
            print(f"  {name}: median {statistics.median(got):.3f} s, min {min(got):.3f} s")
        curl_times = times[2]
        for (name, _), got in zip(sides[:2], times[:2], strict=True):
            ratio = statistics.median(a / c for a, c in zip(got, curl_times, strict=True))
            print(f"  {name} / curl, round by round: median {ratio:.2f}x")
        moved = statistics.median(a / b for a, b in zip(times[0], times[1], strict=True))
        print(f"  this tree / base, round by round: median {moved:.3f}")
    finally:
        reg.stop()


if __name__ == "__main__":
    main()
