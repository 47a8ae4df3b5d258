"""A small cluster for ``audit --cluster`` tests: pods in the stand-in API server, images in
the loopback registry.

``build_world`` pushes six images (the first three key-signed, cosign's format) to a real
Distribution registry and serves pods that run them through the kube-apiserver stand-in
(tests/registry/k8s_apiserver_standin.py): a signed image, an unsigned one, one whose
signature is removed after it was admitted, a spec pinned to one digest running another
(``image-drift``), a container not yet started, a namespace the rules do not map, an
exempt namespace, a registry that refuses (Basic auth, no credentials), the same
registry opened by the pod's ``imagePullSecrets`` (a real ``kubernetes.io/dockerconfigjson``
Secret served by the stand-in), and a pull secret the API server forbids reading.
"""

from __future__ import annotations

import base64
import json
import secrets
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.audit_repository import AuditRepository, build, dated_image
from registry.k8s_apiserver_standin import KubeApiStandIn
from registry_harness import Registry
from signatures.cosign_format_signer import push_repository
from signatures.inmemory import InMemoryRepository

RULES = """\
version: 1
default_env: dev
namespaces:
  exempt: [kube-system]
  map:
    - {{match: "shop-*", env: prod}}
    - {{match: "dev-*", env: dev}}
environments:
  dev:
    severity: {{fail_on: Critical}}
  prod:
    extends: dev
    tags: {{deny: [{deny}]}}
    signatures: {{keys: [cosign.pub], require_tlog: false}}
"""


def pod(namespace: str, name: str, containers: list[tuple[str, str, str | None]], *,
        init: list[tuple[str, str, str | None]] | None = None,
        pull_secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    """A Pod as the API returns it: ``(container, spec image, imageID or None)``."""
    def statuses(items: list[tuple[str, str, str | None]]) -> list[dict[str, Any]]:
        return [{"name": c, "image": image, "ready": True, "restartCount": 0,
                 "imageID": image_id, "containerID": f"containerd://{secrets.token_hex(32)}",
                 "started": True, "state": {"running": {"startedAt": "2026-12-06T10:00:00Z"}}}
                for c, image, image_id in items if image_id is not None]

    return {
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app": name}, "creationTimestamp": "2026-12-06T10:00:00Z"},
        "spec": {"containers": [{"name": c, "image": i, "imagePullPolicy": "IfNotPresent"}
                                for c, i, _ in containers],
                 "initContainers": [{"name": c, "image": i} for c, i, _ in init or []],
                 "imagePullSecrets": [{"name": n} for n in pull_secrets],
                 "serviceAccountName": "default", "restartPolicy": "Always"},
        "status": {"phase": "Running", "containerStatuses": statuses(containers),
                   "initContainerStatuses": statuses(list(init or []))},
    }


@dataclass
class World:
    """What was pushed and served."""

    registry: Registry
    repository: str
    pushed: AuditRepository
    standin: KubeApiStandIn
    work: Path
    digests: list[str] = field(default_factory=list)
    #: The Basic-auth registry (refuses without credentials).
    registry_basic: Registry | None = None
    #: The image in the registry that needs the pull secret.
    private: str = ""

    def ref(self, tag: str | None = None, digest: str | None = None) -> str:
        """``host/repository[:tag][@digest]``."""
        return self.registry.ref(self.repository, tag, digest)

    def rules(self, deny: str = "latest") -> Path:
        """Write the rules (``prod`` denies the tags ``deny``) and return their path."""
        path = self.work / "rules.yaml"
        path.write_text(RULES.format(deny=deny))
        return path

    def remove_signature(self, digest: str) -> None:
        """Delete the ``sha256-<hex>.sig`` manifest of ``digest`` from the registry."""
        tag = digest.replace(":", "-") + ".sig"
        base = f"{self.registry.url}/v2/{self.repository}/manifests"
        head = urllib.request.Request(f"{base}/{tag}", method="HEAD", headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json"})
        with urllib.request.urlopen(head, timeout=10) as r:
            sig = r.headers["Docker-Content-Digest"]
        with urllib.request.urlopen(urllib.request.Request(
                f"{base}/{sig}", method="DELETE"), timeout=10):
            pass


def build_world(registry: Registry, refusing: Registry, work: Path) -> World:
    """Push the images and start the stand-in with the pods (see the module docstring)."""
    repository = f"cluster/{secrets.token_hex(4)}"
    pushed = build(registry.url, repository, n_tags=6, n_digests=6, signed=3)
    digests = [str(pushed.tags[f"v1.0.{i}"]) for i in range(6)]
    standin = KubeApiStandIn(work / "apiserver", [])
    world = World(registry, repository, pushed, standin, work, digests, refusing)
    (work / "cosign.pub").write_bytes(pushed.signer.public_pem)
    r = world.ref
    d = digests
    standin.add_pod(pod("shop-a", "signed", [("app", r("v1.0.0"), f"{r(digest=d[0])}")],
                        init=[("migrate", r("v1.0.1"), r(digest=d[1]))]))
    standin.add_pod(pod("shop-a", "unsigned", [("app", r("v1.0.3"), r(digest=d[3]))]))
    standin.add_pod(pod("shop-b", "removed", [("app", r("v1.0.2"), r(digest=d[2]))]))
    standin.add_pod(pod("shop-b", "drift", [("app", r(digest=d[1]),
                                             f"docker-pullable://{r(digest=d[0])}")]))
    standin.add_pod(pod("dev-a", "pending", [("app", r("v1.0.4"), None)]))
    standin.add_pod(pod("nowhere", "lost", [("app", r("v1.0.0"), r(digest=d[0]))]))
    standin.add_pod(pod("kube-system", "dns", [("dns", r("v1.0.5"), r(digest=d[5]))]))
    # The Basic-auth registry: refused without credentials, opened by the pod's pull secret.
    private = InMemoryRepository(f"{refusing.host}/private/app")
    private_digest = dated_image(private, 99, pushed.created[pushed.tags["v1.0.0"]])
    pushed.signer.sign_image(private, private_digest)
    private.tag_map["v1"] = private_digest
    basic = base64.b64encode(f"{refusing.username}:{refusing.password}".encode()).decode()
    push_repository(private, refusing.url, "private/app", {"Authorization": f"Basic {basic}"})
    world.private = str(private_digest)
    refused = refusing.ref("private/app", digest=world.private)
    standin.add_pod(pod("shop-c", "refused", [("app", refused, refused)]))
    config = {"auths": {refusing.host: {"auth": basic}}}
    standin.objects[("secrets", "shop-d", "regcred")] = {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "regcred", "namespace": "shop-d"},
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()}}
    standin.add_pod(pod("shop-d", "private", [("app", refusing.ref("private/app", "v1"),
                                                refused)], pull_secrets=("regcred",)))
    standin.forbidden.add(("secrets", "shop-d", "locked"))
    standin.add_pod(pod("shop-d", "locked", [("app", r("v1.0.0"), r(digest=d[0]))],
                        pull_secrets=("locked",)))
    return world
