"""AskedOnce: one image's signature and attestation lookups share their answers."""

from __future__ import annotations

import asyncio

import pytest

from imggate.errors import RegistryError
from imggate.models import Digest
from imggate.registry import memo
from imggate.registry.memo import AskedOnce, SharedAnswers
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


def test_shared_answers_serve_later_passes_and_keep_small_blobs_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # imggate audit: one pass per environment, each through its own view, one store.
    inner = InMemoryRepository()
    image = make_image(inner, "app")
    CosignFormatSigner().sign_image(inner, image)
    sig = f"{image.tag_form}.sig"
    big = inner.put_blob(b"x" * (memo.SHARED_BLOB_LIMIT + 1))
    shared = SharedAnswers()

    async def one_pass() -> bytes:
        repo = AskedOnce(inner, shared)
        found = await repo.try_resolve_tag(sig)
        assert found is not None
        assert await repo.referrers(image, None) == ()
        payload = await repo.blob(found.layers[0].digest)
        assert len(await repo.blob(big)) == memo.SHARED_BLOB_LIMIT + 1
        return payload

    payloads = [asyncio.run(one_pass()) for _ in range(3)]  # a loop per pass, as audit runs
    assert payloads[0] == payloads[1] == payloads[2]
    counts = dict(inner.fetches)
    payload_key = next(k for k in counts if k.startswith("blob:") and k != f"blob:{big}")
    assert counts == {f"tag:{sig}": 1, f"referrers:{image}": 1, payload_key: 1,
                      f"blob:{big}": 3}  # too large to keep: fetched by every pass
    # A kept blob larger than a later caller's limit is not handed out: the registry
    # read (and its size check) answers.
    payload_digest = Digest.parse(payload_key.removeprefix("blob:"))
    with pytest.raises(RegistryError):
        asyncio.run(AskedOnce(inner, shared).blob(payload_digest, max_size=1))
    # Past the budget, nothing more is kept.
    monkeypatch.setattr(memo, "SHARED_BLOBS_BUDGET", 0)
    fresh = SharedAnswers()
    for _ in range(2):
        asyncio.run(AskedOnce(inner, fresh).blob(payload_digest))
    assert inner.fetches[payload_key] == 1 + 1 + 2


def test_shared_answers_are_kept_per_repository() -> None:
    one, two = InMemoryRepository("mem.example/one"), InMemoryRepository("mem.example/two")
    shared = SharedAnswers()
    subject = Digest.of(b"an image")
    for repo in (one, two, one, two):
        assert asyncio.run(AskedOnce(repo, shared).referrers(subject)) == ()
    assert one.fetches[f"referrers:{subject}"] == 1 == two.fetches[f"referrers:{subject}"]
