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
from signatures.cosign_format_signer import (
    OCI_MANIFEST,
    CosignFormatSigner,
    append_layer,
    make_image,
)
from signatures.inmemory import InMemoryRepository

BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
DSSE = "application/vnd.dsse.envelope.v1+json"


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


SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


def _sig_manifest(repo: InMemoryRepository, subject: Digest, payload: bytes,
                  said_size: int) -> None:
    """``subject``'s ``.sig`` manifest with one simple-signing layer ``payload`` whose
    descriptor says it is ``said_size`` bytes."""
    layer = repo.put_blob(payload)
    config = repo.put_blob(b"{}")
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": str(config), "size": 2},
           "layers": [{"mediaType": SIMPLE_SIGNING, "digest": str(layer), "size": said_size}]}
    repo.put_manifest(json.dumps(doc).encode(), f"{subject.tag_form}.sig")


def _found(repo: InMemoryRepository, digest: Digest) -> dict[AttachmentKind, tuple[
        bytes | None, str | None]]:
    """What discovery found of each kind (signatures and attestations asked for)."""

    async def go() -> dict[AttachmentKind, tuple[bytes | None, str | None]]:
        trust = TrustConfig(check_attestations=True)
        found = await asyncio.wait_for(discover(repo, digest, trust), 5)
        return {a.kind: (a.payload, a.error) for a in found}

    return asyncio.run(go())


def test_a_payload_longer_than_its_descriptor_says_is_not_used() -> None:
    repo = InMemoryRepository("mem.example/understated")
    digest = make_image(repo, "v1")
    payload = b'{"critical": {"type": "cosign container image signature"}}'
    _sig_manifest(repo, digest, payload, said_size=10)
    found = _found(repo, digest)
    layer = Digest.of(payload)
    assert found[AttachmentKind.SIGNATURE] == (
        None, f"payload blob {layer} is {len(payload)} bytes where its descriptor says 10")


class _SigAfterBlob(InMemoryRepository):
    """Answers the ``.sig`` tag only once a blob was fetched: the ``.att`` layer's fetch
    of the shared blob comes first."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.fetched = asyncio.Event()

    async def try_resolve_tag(self, tag: str) -> Manifest | None:
        if tag.endswith(".sig"):
            await self.fetched.wait()
        return await super().try_resolve_tag(tag)

    async def blob(self, digest: Digest, *, max_size: int = 64 * 1024 * 1024) -> bytes:
        try:
            return await super().blob(digest, max_size=max_size)
        finally:
            self.fetched.set()


def test_a_blob_an_att_layer_fetched_whole_does_not_reach_a_sig_layer_past_its_limit() -> None:
    """The same blob named by an ``.att`` layer (16 MiB limit, its true size) and by a
    ``.sig`` layer whose descriptor understates it under the ``.sig`` limit (1 MiB):
    fetched once for both, it is the ``.att`` layer's, never the ``.sig`` layer's
    payload."""
    repo = _SigAfterBlob("mem.example/shared-blob")
    digest = make_image(repo, "v1")
    payload = b"x" * (1536 * 1024)  # 1.5 MiB: over the .sig limit, under the .att one
    append_layer(repo, digest, "att", payload, DSSE, {})
    _sig_manifest(repo, digest, payload, said_size=1024)
    found = _found(repo, digest)
    assert found[AttachmentKind.ATTESTATION] == (payload, None)
    layer = Digest.of(payload)
    assert found[AttachmentKind.SIGNATURE] == (
        None, f"payload blob {layer} is {len(payload)} bytes where its descriptor says 1024")
