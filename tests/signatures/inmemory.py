"""InMemoryRepository: a :class:`Repository` over dicts, verifying digests like the real ones.

Bytes are stored under the digest they are *claimed* to have, so a test can
store tampered content and watch the repository refuse it (``DigestMismatch``),
exactly as the registry client and the OCI layout source do. Every fetch is
counted so tests can assert "each signature manifest and payload is fetched once".
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from imggate.errors import DigestMismatch, NotFound, RegistryError
from imggate.models import Digest
from imggate.registry.interface import Descriptor, Manifest, Repository


class InMemoryRepository(Repository):
    """Manifests, blobs and tags held in memory; hands out only verified bytes."""

    def __init__(self, name: str = "mem.example/repo") -> None:
        self.name = name
        self.manifests: dict[Digest, bytes] = {}
        self.blobs: dict[Digest, bytes] = {}
        self.tag_map: dict[str, Digest] = {}
        self.fetches: Counter[str] = Counter()
        self.fail_with: RegistryError | None = None

    # ------------------------------------------------------------------ building

    def put_manifest(self, raw: bytes, tag: str | None = None,
                     digest: Digest | None = None) -> Digest:
        """Store a manifest (under ``digest`` if given, even if it does not match)."""
        d = digest or Digest.of(raw)
        self.manifests[d] = raw
        if tag:
            self.tag_map[tag] = d
        return d

    def put_blob(self, raw: bytes, digest: Digest | None = None) -> Digest:
        """Store a blob (under ``digest`` if given, even if it does not match)."""
        d = digest or Digest.of(raw)
        self.blobs[d] = raw
        return d

    def put_file(self, path: Path, tag: str | None = None) -> Digest:
        """Store the exact bytes of a fixture file as a manifest."""
        return self.put_manifest(path.read_bytes(), tag)

    # ------------------------------------------------------------------ Repository

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def _manifest(self, digest: Digest) -> Manifest:
        raw = self.manifests.get(digest)
        if raw is None:
            raise NotFound(f"manifest {digest} not found", repository=self.name)
        if not digest.matches(raw):
            raise DigestMismatch(f"manifest {digest} does not match its digest")
        try:
            return Manifest.parse(raw, digest, None, f"{self.name}@{digest}")
        except ValueError as e:
            raise RegistryError(str(e)) from None

    async def resolve(self, reference: str | Digest) -> Manifest:
        self._check()
        if isinstance(reference, Digest):
            return await self.manifest(reference)
        m = await self.try_resolve_tag(reference)
        if m is None:
            raise NotFound(f"tag {reference} not found", repository=self.name)
        return m

    async def manifest(self, digest: Digest) -> Manifest:
        self._check()
        self.fetches[f"manifest:{digest}"] += 1
        return self._manifest(digest)

    async def blob(self, digest: Digest, *, max_size: int = 64 * 1024 * 1024) -> bytes:
        self._check()
        self.fetches[f"blob:{digest}"] += 1
        raw = self.blobs.get(digest)
        if raw is None:
            raise NotFound(f"blob {digest} not found", repository=self.name)
        if len(raw) > max_size:
            raise RegistryError(f"blob {digest} is over the {max_size} byte limit")
        if not digest.matches(raw):
            raise DigestMismatch(f"blob {digest} does not match its digest")
        return raw

    async def tags(self) -> tuple[str, ...]:
        self._check()
        return tuple(sorted(self.tag_map))

    async def try_resolve_tag(self, tag: str) -> Manifest | None:
        self._check()
        self.fetches[f"tag:{tag}"] += 1
        d = self.tag_map.get(tag)
        return None if d is None else self._manifest(d)

    async def referrers(self, digest: Digest,
                        artifact_type: str | None = None) -> tuple[Descriptor, ...]:
        self._check()
        self.fetches[f"referrers:{digest}"] += 1
        out = []
        for d, raw in self.manifests.items():
            try:
                doc = json.loads(raw)
            except ValueError:
                continue
            subject = doc.get("subject") if isinstance(doc, dict) else None
            if not isinstance(subject, dict) or subject.get("digest") != str(digest):
                continue
            at = doc.get("artifactType") or (doc.get("config") or {}).get("mediaType")
            if artifact_type is None or at == artifact_type:
                out.append(Descriptor(doc.get("mediaType", ""), d, len(raw),
                                      doc.get("annotations") or {}, at))
        return tuple(out)
