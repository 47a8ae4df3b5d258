"""Benchmark: ``imggate resolve`` of many images in one process vs ``skopeo inspect`` per image.

Starts a throw-away Distribution registry on loopback, pushes N distinct small
images (one umoci layout, one label varied per image, pushed by skopeo), then
times, in the same run:

- ``imggate resolve REF...`` for all N references in one process (start-up included),
- ``skopeo inspect --format {{.Digest}}`` once per reference, sequentially,
- ``imggate --help`` (the start-up cost every CI job pays).

Both tools must report the same digests, or the run fails. Usage::

    python bench/resolve_bench.py [--images 200] [--auth none|htpasswd|token]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness_images import ImageSpec, LayoutBuilder, Skopeo
from registry_harness import Registry, require_binaries, start_registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TARGET_RATIO = 10.0
TARGET_HELP_SECONDS = 0.2


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
    """The installed console script, or ``python -m imggate``."""
    exe = shutil.which("imggate")
    return [exe] if exe else [sys.executable, "-m", "imggate"]


def children_cpu() -> float:
    """User+system CPU seconds of all waited-for child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """CPU seconds a running process (the registry) has used, from /proc; 0 if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def time_floor(registry: Registry, refs: list[str]) -> float:
    """Registry floor: the same two GETs per image over one keep-alive connection, no client.

    Only meaningful anonymously; tells how much of imggate's time the registry itself takes.
    """
    host, port = registry.host.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    started = time.perf_counter()
    for ref in refs:
        repo, tag = ref.split("/", 1)[1].rsplit(":", 1)
        conn.request("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        manifest = json.loads(conn.getresponse().read())
        conn.request("GET", f"/v2/{repo}/blobs/{manifest['config']['digest']}")
        conn.getresponse().read()
    conn.close()
    return time.perf_counter() - started


def time_help(runs: int = 7) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([*imggate_cmd(), "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--auth", choices=["none", "htpasswd", "token"], default="none")
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure each side this many times and keep the best")
    args = parser.parse_args()
    require_binaries()

    with tempfile.TemporaryDirectory(prefix="imggate-bench-") as tmp:
        workdir = Path(tmp)
        registry = start_registry(workdir / "registry", auth=args.auth)
        try:
            t0 = time.perf_counter()
            pushed = build_and_push(workdir, registry, args.images)
            setup = time.perf_counter() - t0
            refs = [ref for ref, _ in pushed]
            expected = [digest for _, digest in pushed]
            authfile = workdir / "skopeo" / "skopeo-auth.json"

            # Warm both paths once (page cache, registry), then measure.
            time_imggate(registry, refs[:1])
            time_skopeo(registry, refs[:1], authfile)
            reg_cpu = process_cpu(registry.process.pid)
            imggate_runs = [time_imggate(registry, refs) for _ in range(args.repeat)]
            registry_cpu_imggate = (process_cpu(registry.process.pid) - reg_cpu) / args.repeat
            reg_cpu = process_cpu(registry.process.pid)
            skopeo_runs = [time_skopeo(registry, refs, authfile) for _ in range(args.repeat)]
            registry_cpu_skopeo = (process_cpu(registry.process.pid) - reg_cpu) / args.repeat
            imggate_s, imggate_digests, imggate_cpu = min(imggate_runs)
            skopeo_s, skopeo_digests, skopeo_cpu = min(skopeo_runs)
            single_s = min(time_imggate(registry, refs[:1])[0] for _ in range(5))
            floor_s = min(time_floor(registry, refs) for _ in range(3)) if not registry.username \
                else None
            help_times = time_help()
        finally:
            registry.stop()

    if imggate_digests != expected or skopeo_digests != expected:
        print("MISMATCH: imggate and skopeo disagree with the pushed digests")
        return 1
    ratio = skopeo_s / imggate_s
    help_best, help_median = min(help_times), statistics.median(help_times)
    n = len(refs)
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    print(f"images: {n} distinct, pushed in {setup:.1f}s (auth: {args.auth}); "
          f"{os.cpu_count()} CPUs, load average {load}; best of {args.repeat}")
    for label, secs, cpu in (("imggate resolve, one process: ", imggate_s, imggate_cpu),
                             ("skopeo inspect, one per image:", skopeo_s, skopeo_cpu)):
        print(f"{label} {secs:7.3f} s wall ({secs / n * 1000:6.2f} ms/image), "
              f"{cpu:6.2f} s client CPU")
    print(f"registry CPU while serving: imggate {registry_cpu_imggate:.2f} s, "
          f"skopeo {registry_cpu_skopeo:.2f} s (mean per run)")
    cpus = os.cpu_count() or 1
    bound = (registry_cpu_imggate + imggate_cpu) / cpus
    print(f"lower bound for imggate's wall time on {cpus} CPUs "
          f"((registry + client CPU) / CPUs): {bound:.3f} s -> best possible ratio "
          f"{skopeo_s / bound if bound else float('inf'):.1f}x")
    print(f"imggate resolve of 1 image (start-up + one resolve): {single_s:.3f} s")
    if floor_s is not None:
        print(f"registry floor (same GETs, one connection, no client): {floor_s:.3f} s")
    print(f"ratio skopeo/imggate: {ratio:.1f}x  (target >= {TARGET_RATIO:.0f}x: "
          f"{'met' if ratio >= TARGET_RATIO else 'MISSED'})")
    print(f"imggate --help: best {help_best:.3f} s, median {help_median:.3f} s "
          f"(target < {TARGET_HELP_SECONDS} s: "
          f"{'met' if help_median < TARGET_HELP_SECONDS else 'MISSED'})")
    print("digests: imggate == skopeo == pushed for all images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
