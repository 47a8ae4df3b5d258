"""The verdict and tag caches: local LRU + TTL, and a real redis-server shared between them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from admission.serve_harness import RedisServer, start_redis
from imggate.admission.cache import (
    AdmissionCache,
    CachedVerdict,
    CacheTimes,
    LocalCache,
    RedisLayer,
    tag_key,
    verdict_key,
)

DIGEST = "sha256:" + "ab" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_local_cache_expires_and_evicts_least_recently_used() -> None:
    clock = Clock()
    cache: LocalCache[str] = LocalCache(2, clock)
    cache.put("a", "A", 10)
    cache.put("b", "B", 1)
    assert cache.get("a") == "A"  # a is now the most recent
    cache.put("c", "C", 10)
    assert cache.get("b") is None and cache.get("a") == "A" and len(cache) == 2
    clock.now = 11
    assert cache.get("a") is None and cache.get("c") is None


def test_keys_name_the_digest_rules_and_env_never_the_tag() -> None:
    k = verdict_key(DIGEST, "r.example/app", "h1", "prod")
    assert k != verdict_key(DIGEST, "r.example/app", "h2", "prod")
    assert k != verdict_key(DIGEST, "r.example/app", "h1", "dev")
    assert k != verdict_key(DIGEST, "r.example/other", "h1", "prod")
    assert tag_key("r.example/app", "v1") != tag_key("r.example/app", "v2")


def test_only_definitive_verdicts_have_a_stored_form() -> None:
    v = CachedVerdict("deny", DIGEST, (("signatures", "unsigned"),), (("age", "old"),))
    assert CachedVerdict.from_bytes(v.to_bytes()) == v
    # Anything else read back from Redis is a miss, never a verdict (let alone an allow).
    for raw in (b'{"d":"error","g":"x","v":[],"w":[]}', b"allow", b"{}", b'{"d":"allow"}',
                b'{"d":"allow","g":"x","v":[[1,2]],"w":[]}'):
        assert CachedVerdict.from_bytes(raw) is None


def test_denials_are_kept_briefly_and_zero_means_never() -> None:
    async def go() -> None:
        cache = AdmissionCache(CacheTimes(allow=300, deny=0))
        await cache.put_verdict("k", CachedVerdict("deny", DIGEST))
        assert await cache.verdict("k") is None
        await cache.put_verdict("k", CachedVerdict("allow", DIGEST))
        assert await cache.verdict("k") == (CachedVerdict("allow", DIGEST), "local")

    asyncio.run(go())


def test_two_caches_share_verdicts_and_tags_through_redis(redis_server: RedisServer) -> None:
    async def go() -> None:
        one = AdmissionCache(redis_layer=RedisLayer.from_url(redis_server.url))
        two = AdmissionCache(redis_layer=RedisLayer.from_url(redis_server.url))
        key = verdict_key(DIGEST, "r.example/shared", "h", "prod")
        await one.put_verdict(key, CachedVerdict("allow", DIGEST, (), (("age", "old"),)))
        await one.put_tag(tag_key("r.example/shared", "v1"), DIGEST)
        assert await two.verdict(key) == (CachedVerdict("allow", DIGEST, (),
                                                        (("age", "old"),)), "redis")
        assert await two.verdict(key) is not None and (await two.verdict(key))[1] == "local"
        assert await two.tag(tag_key("r.example/shared", "v1")) == (DIGEST, "redis")
        assert one.redis is not None and one.redis.up
        for c in (one, two):
            assert c.redis is not None
            await c.redis.close()

    asyncio.run(go())


def test_redis_down_falls_back_to_the_local_layer(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "redis")

    async def go() -> None:
        layer = RedisLayer.from_url(server.url)
        cache = AdmissionCache(redis_layer=layer)
        assert await layer.ping()
        server.stop()
        await cache.put_verdict("k", CachedVerdict("allow", DIGEST))
        assert not layer.up
        assert await cache.verdict("k") == (CachedVerdict("allow", DIGEST), "local")
        assert await cache.verdict("other") is None  # Redis skipped while down: no error
        assert not await layer.ping()
        await layer.close()

    asyncio.run(go())
