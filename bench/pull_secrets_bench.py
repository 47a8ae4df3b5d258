"""Benchmark: what reading each pod's pull secrets costs ``imggate serve``, beside not reading them.

Starts a Distribution registry with htpasswd Basic auth on loopback, private
images pushed by skopeo, the STAND-IN API server of the tests
(tests/registry/k8s_apiserver_standin.py: real Secret JSON over TLS with a
bearer token; no kube-apiserver runs here) holding the pods' pull secret, and
two ``imggate serve`` processes over TLS:

- peer: ``--no-pull-secrets --registry-auth-file`` (the same credentials, mounted);
- measured: ``--pull-secrets``: every review reads the pod's service account and
  ``imagePullSecrets`` (cached 60 s) and uses its own registry client.

For each: the cold review of each of ``--cold`` distinct images (tag, manifest,
config fetched with the credentials; the first review of the measured server
also reads the secrets from the API), then ``--warm`` sequential warm reviews on
one keep-alive connection (latency p50/p99 and server CPU time per review).

    python bench/pull_secrets_bench.py [--cold 20] [--warm 3000]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from admission.serve_harness import ServeProcess, pod, review, start_serve  # noqa: E402
from harness_images import APP_SPEC, LayoutBuilder, Skopeo  # noqa: E402
from registry.k8s_apiserver_standin import KubeApiStandIn  # noqa: E402
from registry_harness import require_binaries, start_registry  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def doc(image: str) -> dict[str, Any]:
    """A Pod in namespace ``team`` naming the pull secret ``regcred``."""
    obj = pod([image], namespace="team")
    obj["spec"]["imagePullSecrets"] = [{"name": "regcred"}]
    return review(obj, namespace="team")


def measure(name: str, server: ServeProcess, images: list[str], warm: int) -> dict[str, float]:
    """Cold reviews of ``images``, then ``warm`` reviews of the first, one connection."""
    cold: list[float] = []
    with server.client() as c:
        for image in images:
            t = time.perf_counter()
            r = c.post("/validate", json=doc(image)).json()["response"]
            cold.append((time.perf_counter() - t) * 1000)
            if not r["allowed"]:
                sys.exit(f"{name}: {image} denied: {r['status']['message']}")
        body = json.dumps(doc(images[0])).encode()
        headers = {"Content-Type": "application/json"}
        lat: list[float] = []
        cpu = cpu_seconds(server.process.pid)
        for _ in range(warm):
            t = time.perf_counter()
            c.post("/validate", content=body, headers=headers)
            lat.append((time.perf_counter() - t) * 1000)
        cpu = cpu_seconds(server.process.pid) - cpu
    return {"cold_p50": statistics.median(cold), "cold_max": max(cold),
            "warm_p50": statistics.median(lat), "warm_p99": pct(lat, 0.99),
            "cpu_us": cpu / warm * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold", type=int, default=20, help="distinct private images")
    ap.add_argument("--warm", type=int, default=3000, help="warm reviews per server")
    args = ap.parse_args()
    require_binaries("docker-registry", "skopeo", "umoci", "htpasswd")
    work = Path(tempfile.mkdtemp(prefix="imggate-pullsecrets-bench-"))
    reg = start_registry(work / "registry", auth="htpasswd")
    assert reg.username
    assert reg.password
    servers: list[ServeProcess] = []
    api = None
    try:
        layout = LayoutBuilder(work / "layout")
        layout.build(APP_SPEC)
        skopeo = Skopeo(work / "skopeo")
        names = [f"private/app{i}" for i in range(2 * args.cold)]
        print(f"pushing {len(names)} private images ...", flush=True)
        for name in names:
            skopeo.push(layout.path, APP_SPEC.tag, reg, name, "v1")
        token = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
        config = json.dumps({"auths": {reg.host: {"auth": token}}})
        secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                  "metadata": {"name": "regcred", "namespace": "team"},
                  "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()}}
        api = KubeApiStandIn(work / "api", [secret])
        mounted = work / ".dockerconfigjson"
        mounted.write_text(config)
        common = ["--env", "dev", "--deadline", "8"]
        peer = start_serve(work / "peer", [*common, "--no-pull-secrets",
                                           "--registry-auth-file", str(mounted)])
        servers.append(peer)
        pulls = start_serve(work / "pulls", [
            *common, "--pull-secrets", "--service-account-dir",
            str(api.service_account_dir(work / "serviceaccount"))],
            env={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port)})
        servers.append(pulls)
        refs = [reg.ref(n, "v1") for n in names]
        # Each server its own images: neither benefits from the registry's warm caches
        # for the other's.
        rows = {"--no-pull-secrets, mounted file (peer)": measure("peer", peer,
                                                                  refs[:args.cold], args.warm),
                "--pull-secrets (pod's imagePullSecrets)": measure("pulls", pulls,
                                                                   refs[args.cold:], args.warm)}
        reads = sum(1 for p in api.requests if "/secrets/" in p)
        print(f"\n{args.cold} cold reviews, then {args.warm} warm reviews on one connection "
              f"(API server secret reads by the measured server: {reads})")
        print(f"{'server':<42} {'cold p50':>9} {'cold max':>9} {'warm p50':>9} {'warm p99':>9}"
              f" {'CPU/review':>11}")
        for label, m in rows.items():
            print(f"{label:<42} {m['cold_p50']:>7.2f}ms {m['cold_max']:>7.2f}ms "
                  f"{m['warm_p50']:>7.2f}ms {m['warm_p99']:>7.2f}ms {m['cpu_us']:>9.0f}us")
    finally:
        for s in servers:
            s.stop()
        if api is not None:
            api.stop()
        reg.stop()


if __name__ == "__main__":
    main()
