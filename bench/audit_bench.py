"""Benchmark: ``imggate audit`` of 1,000 tags (300 distinct images) vs a skopeo loop.

Starts a throw-away Distribution registry on loopback with its access log on,
pushes 1,000 ``v1.0.<i>`` tags over 300 distinct images (plus ``latest`` and
``stable``; 30 images key-signed in cosign's format), then times, in the same run:

- ``imggate audit REPO`` (one process: list, resolve every tag, check each distinct
  digest once), without signature rules, with a ``--key`` rule, and with rules of two
  environments that both require the key (their signature lookups are shared: the
  requests per tag should match the ``--key`` run's);
- the peer: ``skopeo list-tags`` then ``skopeo inspect`` once per tag, sequentially (what
  a shell loop over a repository does, and it verifies nothing).

For each it prints wall time, tags per second and registry requests per tag (counted in the
registry's access log). Both must see the same digest for every tag, or the run fails.
Usage::

    python bench/audit_bench.py [--tags 1000] [--digests 300]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from audit.audit_repository import build
from registry_harness import Registry, require_binaries, start_registry


def _with_access_log(reg: Registry) -> Registry:
    """Restart ``reg`` with the same storage and its access log on (one line a request)."""
    reg.stop()
    config = json.loads(reg.config_path.read_text())
    config["log"] = {"level": "info", "accesslog": {"disabled": False}}
    reg.config_path.write_text(json.dumps(config))
    log = reg.log_path.open("ab")
    proc = subprocess.Popen(["docker-registry", "serve", str(reg.config_path)], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    fresh = Registry(reg.host, reg.root, reg.config_path, reg.log_path, proc)
    for _ in range(200):
        try:
            import urllib.request

            urllib.request.urlopen(f"{fresh.url}/v2/", timeout=1).close()
            return fresh
        except OSError:
            time.sleep(0.05)
    raise SystemExit("registry did not come back")


def _requests(reg: Registry) -> int:
    text = reg.log_path.read_text(errors="replace")
    return sum(1 for line in text.splitlines() if '"GET /v2/' in line or '"HEAD /v2/' in line)


def _timed(reg: Registry, cmd: list[str]) -> tuple[float, int, subprocess.CompletedProcess[str]]:
    before = _requests(reg)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    time.sleep(0.3)  # the registry writes its access log after answering
    return elapsed, _requests(reg) - before, proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--digests", type=int, default=300)
    args = parser.parse_args()
    require_binaries("docker-registry", "skopeo")
    imggate = [sys.executable, "-m", "imggate"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        reg = _with_access_log(start_registry(work / "registry", auth="none"))
        try:
            t0 = time.perf_counter()
            pushed = build(reg.url, "bench/app", n_tags=args.tags, n_digests=args.digests,
                           signed=args.digests // 10)
            setup = time.perf_counter() - t0
            n = len(pushed.tags)
            (work / "cosign.pub").write_bytes(pushed.signer.public_pem)
            repo = f"{reg.host}/bench/app"
            plain_s, plain_req, plain = _timed(reg, [*imggate, "audit", repo, "-q", "-o",
                                                     str(work / "plain")])
            key_s, key_req, keyed = _timed(reg, [
                *imggate, "audit", repo, "-q", "-o", str(work / "keyed"), "--key",
                str(work / "cosign.pub"), "--insecure-ignore-tlog"])
            rules = work / "rules.yaml"
            rules.write_text(json.dumps({"version": 1, "environments": {
                "prod": {"signatures": {"keys": [str(work / "cosign.pub")]}},
                "prod-eu": {"extends": "prod"}}}))
            two_s, two_req, two = _timed(reg, [
                *imggate, "audit", repo, "-q", "-o", str(work / "two"), "--rules", str(rules),
                "--env", "prod", "--env", "prod-eu", "--insecure-ignore-tlog"])
            for name, proc in (("audit", plain), ("audit --key", keyed),
                               ("audit --env prod --env prod-eu", two)):
                if proc.returncode not in (0, 1):
                    raise SystemExit(f"imggate {name} failed ({proc.returncode}):\n"
                                     f"{proc.stderr[-2000:]}")
            doc = json.loads((work / "plain" / "imggate-audit.json").read_text())
            seen = {r["tag"]: r["digest"] for r in doc["rows"]}

            def skopeo_loop() -> dict[str, str]:
                base = ["skopeo", "--insecure-policy"]
                listed = json.loads(subprocess.run(
                    [*base, "list-tags", "--tls-verify=false", f"docker://{repo}"],
                    capture_output=True, text=True, check=True).stdout)["Tags"]
                out = {}
                for tag in listed:
                    if tag.startswith("sha256-"):
                        continue
                    out[tag] = subprocess.run(
                        [*base, "inspect", "--tls-verify=false", "--format", "{{.Digest}}",
                         f"docker://{repo}:{tag}"], capture_output=True, text=True,
                        check=True).stdout.strip()
                return out

            before = _requests(reg)
            t0 = time.perf_counter()
            peer = skopeo_loop()
            peer_s = time.perf_counter() - t0
            time.sleep(0.3)
            peer_req = _requests(reg) - before
        finally:
            reg.stop()
    want = {t: str(d) for t, d in pushed.tags.items()}
    if seen != want or peer != want:
        print("MISMATCH: imggate, skopeo and the pushed digests disagree")
        return 1
    print(f"{n} tags over {args.digests} distinct images ({args.digests // 10} signed), "
          f"pushed in {setup:.1f} s; every digest agrees (imggate == skopeo == pushed)")
    print(f"{'':38} {'wall':>8} {'tags/s':>8} {'requests/tag':>13}")
    rows = [("imggate audit", plain_s, plain_req), ("imggate audit --key (signatures)", key_s,
                                                    key_req),
            ("imggate audit, 2 envs needing the key", two_s, two_req),
            ("skopeo list-tags + inspect loop", peer_s, peer_req)]
    for label, secs, req in rows:
        print(f"{label:38} {secs:7.2f}s {n / secs:8.0f} {req / n:13.2f}")
    print(f"ratio (skopeo loop / imggate audit): {peer_s / plain_s:.1f}x; "
          f"with signatures checked: {peer_s / key_s:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
