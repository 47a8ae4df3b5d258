"""A repository of 200+ tags for audit tests and the audit benchmark.

``build(n_tags, n_digests)``: ``v1.0.<i>`` tags over ``n_digests`` distinct
images (tag i names image i % n_digests, created i % n_digests days after
``BASE``), plus ``latest`` (the newest image) and ``stable`` (the oldest);
the first ``signed`` images carry a cosign-format key signature.
Built in memory in cosign's and OCI's formats and pushed over the registry
API (one request per blob, manifest and tag).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from imggate.models import Digest
from signatures.cosign_format_signer import (
    LAYER_GZIP,
    OCI_CONFIG,
    OCI_MANIFEST,
    CosignFormatSigner,
    push_repository,
)
from signatures.inmemory import InMemoryRepository

BASE = datetime(2026, 6, 1, tzinfo=UTC)


def _compact(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def dated_image(repo: InMemoryRepository, n: int, created: datetime) -> Digest:
    """A small image whose config says when it was created."""
    layer = repo.put_blob(f"layer {n}\n".encode())
    config = _compact({"architecture": "amd64", "os": "linux", "created":
                       created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "rootfs": {"type": "layers", "diff_ids": [str(layer)]},
                       "config": {"Labels": {"n": str(n)}}})
    cd = repo.put_blob(config)
    return repo.put_manifest(_compact({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": str(cd)},
        "layers": [{"mediaType": LAYER_GZIP, "size": len(f"layer {n}\n"), "digest": str(layer)}],
    }))


@dataclass
class AuditRepository:
    """What was pushed: tag -> digest, digest -> created, the signer."""

    tags: dict[str, Digest]
    created: dict[Digest, datetime]
    signer: CosignFormatSigner
    signed: set[Digest]


def build(registry_url: str, repository: str, *, n_tags: int = 200, n_digests: int = 60,
          signed: int = 10) -> AuditRepository:
    """Build and push the repository (see the module docstring)."""
    repo = InMemoryRepository(f"{registry_url.split('://')[1]}/{repository}")
    signer = CosignFormatSigner()
    digests = [dated_image(repo, d, BASE + timedelta(days=d)) for d in range(n_digests)]
    tags = {f"v1.0.{i}": digests[i % n_digests] for i in range(n_tags)}
    tags["latest"] = digests[-1]
    tags["stable"] = digests[0]
    for t, d in tags.items():
        repo.tag_map[t] = d
    for d in digests[:signed]:
        signer.sign_image(repo, d)
    push_repository(repo, registry_url, repository)
    return AuditRepository(tags, {d: BASE + timedelta(days=n) for n, d in enumerate(digests)},
                           signer, set(digests[:signed]))
