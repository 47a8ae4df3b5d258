"""Benchmark: ``imggate resolve`` of many images in one process, beside its floor and a
skopeo loop measured in the same run.

Starts a throw-away Distribution registry on loopback, pushes N distinct small
images (one umoci layout, one label varied per image, pushed by skopeo), then
runs alternating rounds (the order reversed every other round) of:

- ``imggate resolve REF...`` for all N references in one process (start-up included);
- the floor: ``curl --parallel`` (16 at a time, as imggate's pool holds per host) over
  the same GETs (each manifest by tag, then its config blob), with imggate's ``Accept``;
- the peer: ``skopeo inspect --format {{.Digest}}`` once per reference, sequentially
  (fewer rounds: it takes a while).

It prints each side's median (range) and client CPU, each round's ratio, the machine's
load before and after, ``imggate resolve`` of one image (start-up and two GETs), and the
requests and TCP connections each side made (counted by the registry in a run of its
own). imggate and skopeo must report the pushed digests, or the run fails. Usage::

    python bench/resolve_bench.py [--images 200] [--rounds 5] [--skopeo-rounds 3]
                                  [--auth none|htpasswd|token]

Another script calls :func:`run` for the figures as data.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
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

from harness_images import ImageSpec, LayoutBuilder, Skopeo
from registry_harness import Registry, require_binaries, start_registry

#: imggate resolve of N images at most this many times the curl floor (issue 22).
TARGET_FLOOR_RATIO = 1.5


def build_and_push(workdir: Path, registry: Registry, count: int) -> list[tuple[str, str]]:
    """Push ``count`` distinct images; return ``(reference, digest)`` pairs."""
    layout = LayoutBuilder(workdir / "layout")
    base = ImageSpec(tag="base", labels={"bench": "base"}, content=b"imggate bench layer\n")
    layout.build(base)
    tags = []
    for i in range(count):
        tag = f"img-{i:04d}"
        # A different label gives a different config blob and so a distinct manifest digest.
        layout.configure("base", ImageSpec(tag=tag, labels={"bench.index": str(i)}), new_tag=tag)
        tags.append(tag)
    skopeo = Skopeo(workdir / "skopeo")

    def push(tag: str) -> tuple[str, str]:
        repo = f"bench/app-{tag}"
        digest = skopeo.push(layout.path, tag, registry, repo, "v1")
        return registry.ref(repo, "v1"), digest

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(push, tags))


def imggate_cmd() -> list[str]:
    """``python -m imggate``: this tree's, with ``src/`` first on ``PYTHONPATH``."""
    return [sys.executable, "-m", "imggate"]


def time_imggate(registry: Registry, refs: list[str]) -> tuple[float, list[str], float]:
    cmd = [*imggate_cmd(), "resolve"]
    stdin = ""
    if registry.username:
        cmd += ["--username", registry.username, "--password-stdin"]
        stdin = f"{registry.password}\n"
    cpu = children_cpu()
    started = time.perf_counter()
    proc = subprocess.run([*cmd, *refs], input=stdin, capture_output=True, text=True,
                          check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"imggate resolve failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return (elapsed, [line.rsplit("@", 1)[1] for line in proc.stdout.splitlines()],
            children_cpu() - cpu)


def time_skopeo(registry: Registry, refs: list[str], authfile: Path
                ) -> tuple[float, list[str], float]:
    base = ["skopeo", "inspect", "--authfile", str(authfile), "--tls-verify=false",
            "--format", "{{.Digest}}"]
    if registry.creds:
        base += ["--creds", registry.creds]
    digests = []
    cpu = children_cpu()
    started = time.perf_counter()
    for ref in refs:
        proc = subprocess.run([*base, f"docker://{ref}"], capture_output=True, text=True,
                              check=True)
        digests.append(proc.stdout.strip())
    return time.perf_counter() - started, digests, children_cpu() - cpu


def _this_tree() -> None:
    """Child processes run this tree's imggate (``src/`` first), not an installed one."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if src not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([src, *paths])


@dataclass
class Figures:
    """One run's figures (seconds; each list one sample per round, in round order)."""

    images: int
    gets: int
    imggate: list[float]
    imggate_cpu: list[float]
    floor: list[float] = field(default_factory=list)
    floor_cpu: list[float] = field(default_factory=list)
    skopeo_rounds: list[tuple[float, float]] = field(default_factory=list)  # (imggate, skopeo)
    single: list[float] = field(default_factory=list)
    traffic: dict[str, Traffic] = field(default_factory=dict)
    load: dict[str, tuple[float, float]] = field(default_factory=dict)


def measure(workdir: Path, images: int, rounds: int, skopeo_rounds: int,
            auth: str = "none") -> Figures:
    """Push ``images`` images to a fresh loopback registry and measure every side."""
    _this_tree()
    require_binaries()
    registry = start_registry(workdir / "registry", auth=auth)
    try:
        pushed = build_and_push(workdir, registry, images)
        refs = [ref for ref, _ in pushed]
        expected = [digest for _, digest in pushed]
        authfile = workdir / "skopeo" / "skopeo-auth.json"
        urls = []
        if auth == "none":  # curl cannot follow a bearer challenge; htpasswd is n/a too
            for ref in refs:
                repo, tag = ref.split("/", 1)[1].rsplit(":", 1)
                manifest = f"{registry.url}/v2/{repo}/manifests/{tag}"
                config = get_json(manifest)["config"]
                assert isinstance(config, dict)
                urls += [manifest, f"{registry.url}/v2/{repo}/blobs/{config['digest']}"]
        curl = curl_parallel(urls, workdir / "resolve.curl") if urls else None
        figures = Figures(images, 2 * images, [], [])

        def ours() -> float:
            elapsed, digests, cpu = time_imggate(registry, refs)
            if digests != expected:
                raise SystemExit("MISMATCH: imggate resolve disagrees with the pushed digests")
            figures.imggate_cpu.append(cpu)
            return elapsed

        def floor() -> float:
            assert curl is not None
            cpu = children_cpu()
            elapsed = run_curl(curl, len(urls))
            figures.floor_cpu.append(children_cpu() - cpu)
            return elapsed

        def skopeo() -> float:
            elapsed, digests, _ = time_skopeo(registry, refs, authfile)
            if digests != expected:
                raise SystemExit("MISMATCH: skopeo disagrees with the pushed digests")
            return elapsed

        # Warm both paths once (page cache, the registry's caches), then measure.
        time_imggate(registry, refs[:1])
        if curl is not None:
            run_curl(curl, len(urls))
        before = load1()
        if curl is not None:
            figures.imggate, figures.floor = alternate([ours, floor], rounds)
        else:
            figures.imggate = alternate([ours], rounds)[0]
        figures.load["floor"] = (before, load1())
        before = load1()
        mine, loop = alternate([lambda: time_imggate(registry, refs)[0], skopeo],
                               skopeo_rounds)
        figures.skopeo_rounds = list(zip(mine, loop, strict=True))
        figures.load["skopeo"] = (before, load1())
        figures.single = [time_imggate(registry, refs[:1])[0] for _ in range(max(rounds, 3))]
        if auth == "none":
            registry, figures.traffic = count_traffic(registry, {
                "imggate": lambda: time_imggate(registry, refs),
                "curl": lambda: run_curl(curl, len(urls)) if curl else None})
    finally:
        registry.stop()
    return figures


def report(f: Figures, auth: str) -> None:
    """Print the figures."""
    rounds = len(f.imggate)
    print(f"imggate resolve of {f.images} distinct images (auth: {auth}); {os.cpu_count()} CPUs; "
          f"{rounds} alternating rounds ({len(f.skopeo_rounds)} with the skopeo loop)")
    print(f"{'':44} {'median (range)':>26} {'client CPU':>11}")
    print(f"{'imggate resolve, one process':44} {spread(f.imggate):>26} "
          f"{statistics.median(f.imggate_cpu):10.2f}s")
    if f.floor:
        print(f"{f'curl --parallel, the same {f.gets} GETs':44} {spread(f.floor):>26} "
              f"{statistics.median(f.floor_cpu):10.2f}s")
        r = [a / b for a, b in zip(f.imggate, f.floor, strict=True)]
        met = statistics.median(r) <= TARGET_FLOOR_RATIO
        print(f"  imggate / curl, per round: {spread(r, 'x')}  (target <= "
              f"{TARGET_FLOOR_RATIO}x: {'met' if met else 'MISSED'}); load "
              f"{f.load['floor'][0]:.2f} -> {f.load['floor'][1]:.2f}")
    mine = [a for a, _ in f.skopeo_rounds]
    loop = [b for _, b in f.skopeo_rounds]
    print(f"{'imggate resolve (beside the skopeo loop)':44} {spread(mine):>26}")
    print(f"{'skopeo inspect, one per image':44} {spread(loop):>26}")
    speed = [b / a for a, b in f.skopeo_rounds]
    print(f"  skopeo / imggate, per round: {spread(speed, 'x')}; load "
          f"{f.load['skopeo'][0]:.2f} -> {f.load['skopeo'][1]:.2f}")
    print(f"imggate resolve of 1 image (start-up, scheme probe, 2 GETs): {spread(f.single)}")
    for name, t in f.traffic.items():
        print(f"traffic, {name}: {t.requests} requests over {t.connections} TCP connections "
              "(counted by the registry)")
    print("digests: imggate == skopeo == pushed for every image")


def run(quick: bool = False) -> list[dict[str, object]]:
    """The figures as data, for another script: imggate beside the curl floor, and
    beside the skopeo loop. ``quick``: 6 images, one round (keeps it working; no meaning)."""
    images, rounds, skopeo_rounds = (6, 1, 1) if quick else (200, 5, 3)
    with tempfile.TemporaryDirectory(prefix="imggate-bench-") as tmp:
        f = measure(Path(tmp), images, rounds, skopeo_rounds)
    traffic = {k: {"requests": t.requests, "connections": t.connections}
               for k, t in f.traffic.items()}
    return [
        {"figure": f"imggate resolve of {images} images, one process (start-up included)",
         "unit": "s", "imggate_samples": f.imggate, "imggate_cpu": f.imggate_cpu,
         "peer_name": f"curl --parallel over the same {f.gets} GETs",
         "peer_samples": f.floor, "peer_cpu": f.floor_cpu,
         "target": f"<= {TARGET_FLOOR_RATIO}x", "load": f.load["floor"], "traffic": traffic},
        {"figure": f"imggate resolve of {images} images", "unit": "s",
         "imggate_samples": [a for a, _ in f.skopeo_rounds],
         "peer_name": "skopeo inspect once per image",
         "peer_samples": [b for _, b in f.skopeo_rounds], "target": "",
         "load": f.load["skopeo"]},
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--auth", choices=["none", "htpasswd", "token"], default="none")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating rounds of imggate and the curl floor")
    parser.add_argument("--skopeo-rounds", type=int, default=3,
                        help="alternating rounds of imggate and the skopeo loop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="imggate-bench-") as tmp:
        t0 = time.perf_counter()
        figures = measure(Path(tmp), args.images, args.rounds, args.skopeo_rounds, args.auth)
    report(figures, args.auth)
    print(f"({time.perf_counter() - t0:.0f} s in all, set-up included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
