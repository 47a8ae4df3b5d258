"""Benchmark: reading rendered manifests for ``imggate check -f``.

Generates a multi-document stream of Deployments (each with an init container
and a container, labels, env, resources: the shape ``helm template`` writes)
and measures, in the same run:

1. peer (the floor): PyYAML parsing the same text into Python objects
   (``yaml.load_all`` with the libyaml ``CSafeLoader`` when it is built in);
2. ``parse_manifests``: the same parse plus depth, duplicate-key and alias
   checks, image extraction and the line of every image field;
3. for scale: PyYAML's pure-Python ``SafeLoader`` on the same text.

    python bench/manifests_bench.py [--objects 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from imggate.admission.manifests import parse_manifests

DOC = """\
# Source: shop/templates/deployment-{i}.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-{i}
  namespace: shop-prod
  labels: {{app: web-{i}, tier: frontend, helm.sh/chart: shop-1.0.0}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web-{i}}}}}
  template:
    metadata: {{labels: {{app: web-{i}}}}}
    spec:
      initContainers:
        - name: migrate
          image: registry.example.com/shop/migrate:1.{i}
      containers:
        - name: web
          image: registry.example.com/shop/web:1.{i}
          ports: [{{containerPort: 8080}}]
          env:
            - {{name: LOG_LEVEL, value: info}}
            - {{name: WORKERS, value: "4"}}
          resources: {{requests: {{cpu: 100m, memory: 128Mi}}, limits: {{memory: 256Mi}}}}
"""


def best(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    text = "---\n".join(DOC.format(i=i) for i in range(args.objects))
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    peer = best(lambda: list(yaml.load_all(text, Loader=loader)), args.repeat)
    scan = parse_manifests(text, "bench.yaml")
    assert len(scan.images) == 2 * args.objects
    ours = best(lambda: parse_manifests(text, "bench.yaml"), args.repeat)
    pure = best(lambda: list(yaml.load_all(text, Loader=yaml.SafeLoader)), 1)
    mb = len(text.encode()) / 1e6
    print(f"{args.objects} Deployments, {len(scan.images)} images, {mb:.1f} MB "
          f"(best of {args.repeat}; loader {loader.__name__})")
    print(f"{'':34}{'seconds':>10}{'MB/s':>8}{'vs peer':>9}")
    print(f"{'peer: yaml.load_all':34}{peer:>10.3f}{mb / peer:>8.1f}{1.0:>9.2f}")
    print(f"{'imggate parse_manifests':34}{ours:>10.3f}{mb / ours:>8.1f}{ours / peer:>9.2f}")
    print(f"{'pure-Python SafeLoader (once)':34}{pure:>10.3f}{mb / pure:>8.1f}{pure / peer:>9.2f}")


if __name__ == "__main__":
    main()
