"""Benchmark: the webhook's cold review (an image it has not judged), on loopback and
through a registry a set round trip away.

Starts a throw-away Distribution registry on loopback with key-signed images (the
tests' cosign-format signer, a stand-in for the cosign binary), a TCP proxy in front of
it that holds every chunk for half the round trip in each direction (``--rtt``), and
``imggate serve`` over TLS with rules that require the key, the images named through
the proxy. Each image is reviewed once, one at a time, after one warm-up review; the
figure is each review's wall time seen by the client (p50, p90, p99, max). With
``--rtt 0`` the proxy adds nothing but its own hop.

What it shows: how many round trips to the registry a cold review waits for (a
registry 20 ms away adds ~20 ms per round). Usage::

    python bench/cold_review_bench.py [--images 40] [--rtt 20] [--src PATH]

``--src``: the imggate source tree served (default: this tree's ``src/``), to compare
two trees on the same machine, alternately.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from admission_bench import webhook_world  # noqa: E402

from admission.serve_harness import pod, review, start_serve  # noqa: E402
from registry_harness import require_binaries, start_registry  # noqa: E402
from tcp_proxy import TcpProxy  # noqa: E402


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=40, help="distinct images, one review each")
    ap.add_argument("--rtt", type=float, default=20, help="round trip the proxy adds, in ms")
    ap.add_argument("--src", type=Path, default=HERE.parent / "src",
                    help="the imggate source tree to serve")
    args = ap.parse_args()
    require_binaries("docker-registry")
    work = Path(tempfile.mkdtemp(prefix="imggate-cold-review-bench-"))
    reg = start_registry(work / "registry")
    server = None
    try:
        world = webhook_world(work, reg, args.images + 1)
        proxy = TcpProxy(reg.host, rtt=args.rtt / 1000).start_in_thread()
        rules = work / "rules-through-proxy.yaml"
        rules.write_text(world.rules.read_text().replace(reg.host, proxy))
        server = start_serve(work / "serve", ["--rules", str(rules), "--insecure-ignore-tlog",
                                              "--cache-ttl", "3600", "--tag-ttl", "3600"],
                             tls=world.tls, env={"PYTHONPATH": str(args.src.resolve())})
        took = []
        with server.client() as c:
            for n, name in enumerate(world.names):
                doc = json.dumps(review(pod([f"{proxy}/{name}:v1"]),
                                        namespace="prod-bench"))
                t = time.perf_counter()
                answer = c.post("/validate", content=doc).json()["response"]
                if not answer["allowed"]:
                    raise SystemExit(f"the webhook refused {name}, a signed image: {answer}")
                if n:  # the first review warms the server's connections and imports
                    took.append((time.perf_counter() - t) * 1000)
        print(f"cold review, {len(took)} images, +{args.rtt:g} ms round trip, "
              f"src {args.src}: p50 {statistics.median(took):.1f} ms, "
              f"p90 {quantile(took, 0.9):.1f} ms, p99 {quantile(took, 0.99):.1f} ms, "
              f"max {max(took):.1f} ms")
    finally:
        if server is not None:
            server.stop()
        reg.stop()


if __name__ == "__main__":
    main()
