"""Benchmark: ``imggate audit --cluster`` over 2,000 and 10,000 pods, cold and warm, vs a loop of
``imggate check``.

Starts a throw-away Distribution registry on loopback with its access log on and
pushes ``--digests`` distinct images (every tenth key-signed, cosign's format),
then serves pods through the kube-apiserver STAND-IN of the tests
(tests/registry/k8s_apiserver_standin.py: real TLS, a bearer token, ``PodList``
pages with ``continue``, PolicyReport server-side apply). Every pod runs one
container whose ``imageID`` names one of the images (pod i runs image i % digests),
spread over many namespaces that the rules map to ``prod`` (signature required).

For each size it runs ``imggate audit --cluster --cache`` (reports applied to the
stand-in) in a fresh process, twice, with a real redis-server as the shared verdict
cache (sealed with a ``--cache-key-file``):

- **cold**: Redis empty;
- **warm**: Redis emptied, then a real ``imggate serve`` on the same Redis and key
  admits a pod for every other distinct digest (half of them), as the webhook would
  have when those pods were created; then the audit.

Each line gives wall time, pods per second, registry resolutions (manifest
requests by digest) and signature lookups (``sha256-<hex>.sig`` manifests) per
distinct digest (the goal is <= 1.1 cold, about half warm), all registry requests
per digest, cache hits, and the process's peak RSS. The peer, in the same run, is
``imggate check REF@DIGEST --env prod`` once per distinct digest (what a shell loop
over the running images does), timed over a sample of ``--peer-sample`` digests and
scaled to all of them (said in the output).

Usage::

    python bench/cluster_audit_bench.py [--digests 1000] [--sizes 2000,10000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from admission.serve_harness import RedisServer, review, start_redis, start_serve
from audit.audit_repository import build
from audit.cluster_world import pod
from registry.k8s_apiserver_standin import KubeApiStandIn
from registry_harness import Registry, registry_requests, require_binaries, start_registry

ROOT = Path(__file__).resolve().parents[1]
RULES = """\
version: 1
namespaces:
  map:
    - {{match: "team-*", env: prod}}
environments:
  prod:
    signatures: {{keys: [{key}], require_tlog: false}}
"""
# Runs imggate in this process and reports its peak RSS (KiB) on stderr at exit: VmHWM,
# the high-water mark of this process image. Not getrusage's ru_maxrss: Linux carries it
# over exec from the forked parent, so a child of a big parent (this bench holds 10,000
# pods in its stand-in) would report the parent's size.
_RSS_WRAPPER = (
    "import re, sys\n"
    "from imggate._cli import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "finally:\n"
    "    status = open('/proc/self/status').read()\n"
    "    peak = re.search(r'VmHWM:\\s*(\\d+) kB', status).group(1)\n"
    "    sys.stderr.write(f'\\nPEAK_RSS_KB={peak}\\n')\n"
)


def _manifest_requests(reg: Registry, digests: set[str], start: int) -> int:
    """Requests for the manifests of the pushed images (by digest), from line ``start``."""
    lines = reg.log_path.read_text(errors="replace").splitlines()[start:]
    pattern = re.compile(r'"(?:GET|HEAD) /v2/[^ ]+/manifests/(sha256:[0-9a-f]{64})')
    return sum(1 for line in lines for m in pattern.finditer(line) if m.group(1) in digests)


def _signature_lookups(reg: Registry, digests: set[str], start: int) -> int:
    """Lookups of the cosign signature tags (``sha256-<hex>.sig``) of the pushed images."""
    lines = reg.log_path.read_text(errors="replace").splitlines()[start:]
    pattern = re.compile(r'"(?:GET|HEAD) /v2/[^ ]+/manifests/sha256-([0-9a-f]{64})\.sig')
    hexes = {d.split(":")[1] for d in digests}
    return sum(1 for line in lines for m in pattern.finditer(line) if m.group(1) in hexes)


def _flush(redis: RedisServer) -> None:
    import redis as redis_client

    with redis_client.Redis.from_url(redis.url) as raw:
        raw.flushdb()


def _webhook_admits(work: Path, redis: RedisServer, key_file: Path, rules: Path,
                    refs: list[str]) -> float:
    """A real ``imggate serve`` on ``redis`` admits a pod for each of ``refs``; seconds."""
    server = start_serve(work, ["--rules", str(rules), "--no-pull-secrets", "--cache",
                                redis.url, "--cache-key-file", str(key_file)])
    t0 = time.perf_counter()
    try:
        with server.client() as c:
            for n, ref in enumerate(refs):
                doc = review({"apiVersion": "v1", "kind": "Pod",
                              "metadata": {"name": f"w{n}", "namespace": "team-0000"},
                              "spec": {"containers": [{"name": "app", "image": ref}]}},
                             namespace="team-0000")
                if c.post("/validate", json=doc).status_code != 200:
                    raise SystemExit(f"the webhook did not answer for {ref}")
    finally:
        server.stop()
    return time.perf_counter() - t0


def _log_lines(reg: Registry) -> int:
    return len(reg.log_path.read_text(errors="replace").splitlines())


def _run(cmd: list[str]) -> tuple[float, int, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin",
                               "HOME": str(Path.home())})
    elapsed = time.perf_counter() - started
    m = re.search(r"PEAK_RSS_KB=(\d+)", proc.stderr)
    return elapsed, int(m.group(1)) if m else -1, proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digests", type=int, default=1000)
    parser.add_argument("--sizes", default="2000,10000")
    parser.add_argument("--pods-per-namespace", type=int, default=20)
    parser.add_argument("--peer-sample", type=int, default=40)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    require_binaries("docker-registry")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        reg = start_registry(work / "registry", auth="none", access_log=True)
        try:
            t0 = time.perf_counter()
            pushed = build(reg.url, "bench/running", n_tags=args.digests,
                           n_digests=args.digests, signed=args.digests // 10)
            setup = time.perf_counter() - t0
            digests = sorted({str(d) for d in pushed.tags.values()})
            ordered = [str(pushed.tags[f"v1.0.{i}"]) for i in range(args.digests)]
            key = work / "cosign.pub"
            key.write_bytes(pushed.signer.public_pem)
            rules = work / "rules.yaml"
            rules.write_text(RULES.format(key=key))
            print(f"{args.digests} distinct images pushed in {setup:.1f} s "
                  f"({args.digests // 10} key-signed)")
            redis = start_redis(work / "redis")
            key_file = work / "cache.key"
            key_file.write_text("0123456789abcdef" * 4 + "\n")
            print(f"{'':46} {'wall':>8} {'pods/s':>7} {'resolutions':>11} {'signatures':>10} "
                  f"{'requests':>8} {'hits':>5} {'peak RSS':>9}")
            print(f"{'':46} {'':>8} {'':>7} {'per digest':>11} {'per digest':>10} "
                  f"{'/digest':>8}")
            try:
                for size in sizes:
                    standin = KubeApiStandIn(work / f"api-{size}", [])
                    for i in range(size):
                        ns = f"team-{i // args.pods_per_namespace:04d}"
                        n = i % args.digests
                        spec = f"{reg.host}/bench/running:v1.0.{n}"
                        standin.add_pod(pod(ns, f"app-{i}", [
                            ("app", spec, f"{reg.host}/bench/running@{ordered[n]}")]))
                    kubeconfig = standin.kubeconfig(work / f"kube-{size}")
                    used = sorted({i % args.digests for i in range(size)})
                    for run in ("cold", "warm"):
                        _flush(redis)
                        note = ""
                        if run == "warm":
                            half = [f"{reg.host}/bench/running@{ordered[n]}" for n in used[::2]]
                            took = _webhook_admits(work / f"serve-{size}", redis, key_file,
                                                   rules, half)
                            note = (f"; the webhook admitted {len(half)} digests first "
                                    f"({took:.0f} s)")
                        out = work / f"out-{size}-{run}"
                        pages = len(standin.page_sizes)
                        start, before = _log_lines(reg), registry_requests(reg)
                        secs, rss, proc = _run([
                            sys.executable, "-c", _RSS_WRAPPER, "audit", "--cluster",
                            "--kubeconfig", str(kubeconfig), "--rules", str(rules),
                            "--cache", redis.url, "--cache-key-file", str(key_file), "-q",
                            "-o", str(out)])
                        time.sleep(0.5)  # the registry writes its access log after answering
                        if proc.returncode not in (0, 1):
                            raise SystemExit(f"audit --cluster failed ({proc.returncode}):\n"
                                             f"{proc.stderr[-3000:]}")
                        doc = json.loads((out / "imggate-cluster.json").read_text())
                        if doc["pods"] != size or len(standin.reports) != -(
                                -size // args.pods_per_namespace):
                            raise SystemExit(f"expected {size} pods and their reports, got "
                                             f"{doc['pods']} pods, {len(standin.reports)} "
                                             "reports")
                        resolutions = _manifest_requests(reg, set(digests), start)
                        signatures = _signature_lookups(reg, set(digests), start)
                        total = registry_requests(reg) - before
                        hits = doc["verdict_cache"]["hits"]
                        label = f"audit --cluster {run}, {size} pods / {len(used)} digests"
                        print(f"{label:46} {secs:7.2f}s {size / secs:7.0f} "
                              f"{resolutions / len(used):11.2f} {signatures / len(used):10.2f} "
                              f"{total / len(used):8.2f} {hits:5d} {rss / 1024:7.0f}MB")
                        phases = doc["seconds"]
                        rest = secs - phases["list_pods"] - phases["judge"]
                        print(f"{'':46} ({len(standin.reports)} namespaces, "
                              f"{len(standin.page_sizes) - pages} list pages of <= 500, exit "
                              f"{proc.returncode}{note})")
                        print(f"{'':46} (pods and pull secrets listed in "
                              f"{phases['list_pods']:.1f} s, images judged in "
                              f"{phases['judge']:.1f} s, start-up, reports and their "
                              f"applies {rest:.1f} s)")
                    standin.stop()
            finally:
                redis.stop()
            sample = ordered[:args.peer_sample]
            start, before = _log_lines(reg), registry_requests(reg)
            t0 = time.perf_counter()
            rss_peer = 0
            for d in sample:
                _, rss, proc = _run([sys.executable, "-c", _RSS_WRAPPER, "check",
                                     f"{reg.host}/bench/running@{d}", "--rules", str(rules),
                                     "--env", "prod", "-q", "-o", str(work / "peer")])
                if proc.returncode not in (0, 1):
                    raise SystemExit(f"check failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
                rss_peer = max(rss_peer, rss)
            peer_s = time.perf_counter() - t0
            time.sleep(0.5)
            per = peer_s / len(sample)
            resolutions = _manifest_requests(reg, set(digests), start)
            total = registry_requests(reg) - before
            label = f"peer: imggate check per digest (x{len(sample)})"
            print(f"{label:44} {per:7.2f}s/digest; {resolutions / len(sample):.2f} "
                  f"resolutions/digest, {total / len(sample):.2f} requests/digest, peak RSS "
                  f"{rss_peer / 1024:.0f}MB")
            for size in sizes:
                n_used = len({i % args.digests for i in range(size)})
                print(f"  scaled to the {n_used} digests of {size} pods: {per * n_used:.0f} s "
                      f"({size / (per * n_used):.0f} pods/s)")
        finally:
            reg.stop()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
