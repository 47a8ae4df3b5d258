"""AskedOnce: one image's signature and attestation lookups share their answers."""

from __future__ import annotations

import asyncio

import pytest

from imggate.errors import RegistryError
from imggate.models import Digest
from imggate.registry.memo import AskedOnce
from signatures.cosign_format_signer import CosignFormatSigner, make_image
from signatures.inmemory import InMemoryRepository


def test_each_lookup_is_asked_once_and_blobs_every_time() -> None:
    inner = InMemoryRepository()
    image = make_image(inner, "app")
    CosignFormatSigner().sign_image(inner, image)
    repo = AskedOnce(inner)
    sig = f"{image.tag_form}.sig"

    async def twice() -> None:
        for _ in range(2):
            found = await repo.try_resolve_tag(sig)
            assert found is not None and found.layers
            assert await repo.try_resolve_tag(f"{image.tag_form}.att") is None
            assert await repo.referrers(image, "application/x-one") == ()
            assert await repo.referrers(image, None) == ()
            assert (await repo.manifest(image)).digest == image
            assert (await repo.resolve(image)).digest == image
            await repo.blob(found.layers[0].digest)

    asyncio.run(twice())
    counts = dict(inner.fetches)
    blob = next(k for k in counts if k.startswith("blob:"))
    assert counts == {f"tag:{sig}": 1, f"tag:{image.tag_form}.att": 1,
                      f"referrers:{image}": 2,  # once per artifact type
                      f"manifest:{image}": 1, blob: 2}
    assert repo.name == inner.name


def test_a_failure_is_not_kept() -> None:
    inner = InMemoryRepository()
    repo = AskedOnce(inner)
    subject = Digest.of(b"no such image")
    inner.fail_with = RegistryError("registry down")
    with pytest.raises(RegistryError, match="registry down"):
        asyncio.run(repo.referrers(subject))
    inner.fail_with = None
    assert asyncio.run(repo.referrers(subject)) == ()
    assert asyncio.run(repo.referrers(subject)) == ()
    assert inner.fetches[f"referrers:{subject}"] == 1
