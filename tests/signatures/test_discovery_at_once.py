"""Discovery reads the places an image's signatures live at once, each as soon as its
lookup answers, and puts what they hold together in a fixed order.

The repository is the tests' in-memory one with key-signed images (cosign's formats,
written by the tests' signer), wrapped so that one question is held until another was
asked: read in turn, such a discovery would wait forever (bounded here by a timeout).
"""

from __future__ import annotations

import asyncio
import json

from imggate.models import Digest
from imggate.registry.interface import Descriptor, Manifest
from imggate.signatures.discovery import discover
from imggate.signatures.interface import AttachmentKind, TrustConfig
from signatures.cosign_format_signer import OCI_MANIFEST, CosignFormatSigner, make_image
from signatures.inmemory import InMemoryRepository

BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


class _Holding(InMemoryRepository):
    """Holds the referrers lookup until a payload blob was asked for, and every referrer
    manifest until ``together`` of them were asked for."""

    def __init__(self, name: str, together: int = 1) -> None:
        super().__init__(name)
        self.blob_asked = asyncio.Event()
        self.together = together
        self.manifests_asked = 0
        self.all_asked = asyncio.Event()

    async def referrers(self, digest: Digest,
                        artifact_type: str | None = None) -> tuple[Descriptor, ...]:
        await self.blob_asked.wait()
        return await super().referrers(digest, artifact_type)

    async def blob(self, digest: Digest, *, max_size: int = 64 * 1024 * 1024) -> bytes:
        self.blob_asked.set()
        return await super().blob(digest, max_size=max_size)

    async def manifest(self, digest: Digest) -> Manifest:
        self.manifests_asked += 1
        if self.manifests_asked >= self.together:
            self.all_asked.set()
        await self.all_asked.wait()
        return await super().manifest(digest)


def _referrer(repo: InMemoryRepository, subject: Digest, payload: bytes) -> Digest:
    """A referrer of ``subject`` holding one bundle-typed layer ``payload``."""
    layer = repo.put_blob(payload)
    empty = repo.put_blob(b"{}")
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE,
           "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                      "digest": str(empty), "size": 2},
           "layers": [{"mediaType": BUNDLE, "digest": str(layer), "size": len(payload)}],
           "subject": {"mediaType": OCI_MANIFEST, "digest": str(subject),
                       "size": len(repo.manifests[subject])}}
    return repo.put_manifest(json.dumps(doc).encode())


def _discover(repo: InMemoryRepository, digest: Digest, trust: TrustConfig
              ) -> tuple[tuple[AttachmentKind, str], ...]:
    async def go() -> tuple[tuple[AttachmentKind, str], ...]:
        found = await asyncio.wait_for(discover(repo, digest, trust), 5)
        return tuple((a.kind, a.location) for a in found)

    return asyncio.run(go())


def test_a_sig_payload_is_fetched_while_the_referrers_are_still_asked_for() -> None:
    signer = CosignFormatSigner()
    repo = _Holding("mem.example/held")
    digest = make_image(repo, "v1")
    signer.sign_image(repo, digest)
    found = _discover(repo, digest, TrustConfig(keys=(signer.trusted("k"),)))
    assert found == ((AttachmentKind.SIGNATURE,
                      f"mem.example/held:{digest.tag_form}.sig layers[0]"),)


def test_referrer_manifests_are_asked_for_at_once_and_kept_in_the_lists_order() -> None:
    signer = CosignFormatSigner()
    repo = _Holding("mem.example/referred", together=3)
    digest = make_image(repo, "v1")
    signer.sign_image(repo, digest)  # (its payload fetch lets the referrers lookup answer)
    referrers = [_referrer(repo, digest, f"bundle {n}".encode()) for n in range(3)]
    found = _discover(repo, digest, TrustConfig(keys=(signer.trusted("k"),)))
    listed = [d.digest for d in asyncio.run(InMemoryRepository.referrers(repo, digest))]
    assert sorted(listed) == sorted(referrers)
    assert found == (
        (AttachmentKind.SIGNATURE, f"mem.example/referred:{digest.tag_form}.sig layers[0]"),
        *((AttachmentKind.BUNDLE, f"mem.example/referred@{d} (referrer) layers[0]")
          for d in listed))
