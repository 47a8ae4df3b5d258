"""The verdict and tag caches: local LRU + TTL, and a real redis-server shared between them,
whose entries are sealed and checked (forged, moved, oversized or odd entries are misses)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from admission.serve_harness import RedisServer, start_redis
from imggate.admission.cache import (
    MAX_ENTRY_BYTES,
    AdmissionCache,
    CachedVerdict,
    CacheTimes,
    LocalCache,
    RedisLayer,
    Rejected,
    VerdictKey,
    read_verdict,
    tag_key,
    tag_payload,
    trust_hash,
    verdict_key,
    verdict_payload,
)
from imggate.admission.seal import CacheKeys, load_cache_keys, parse_cache_keys
from imggate.errors import ConfigError

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
DENIED = (("signatures", "unsigned"),)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def new_keys(*keys: str) -> CacheKeys:
    return CacheKeys(tuple(k.encode() for k in keys) or (secrets.token_hex(32).encode(),))


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


def test_keys_name_the_digest_rules_trust_and_env_never_the_tag() -> None:
    k = verdict_key(DIGEST, "r.example/app", "h1", "prod")
    assert (k.digest, k.name, k.rules_hash, k.env) == (DIGEST, "r.example/app", "h1", "prod")
    assert k.id != verdict_key(DIGEST, "r.example/app", "h2", "prod").id
    # Other trust roots (serve --trusted-root), another key: and the order of roots counts.
    a, b = trust_hash([b"root a"]), trust_hash([b"root b"])
    assert len({a, b, trust_hash([b"root a", b"root b"]), trust_hash([b"root b", b"root a"]),
                trust_hash([b"root ", b"aroot b"])}) == 5
    assert a == trust_hash([b"root a"])
    assert verdict_key(DIGEST, "r.example/app", "h1", "prod", a).id != verdict_key(
        DIGEST, "r.example/app", "h1", "prod", b).id != k.id
    assert k.id != verdict_key(DIGEST, "r.example/app", "h1", "dev").id
    assert k.id != verdict_key(DIGEST, "r.example/other", "h1", "prod").id
    assert tag_key("r.example/app", "v1").id != tag_key("r.example/app", "v2").id


def test_a_denial_always_has_a_violation_and_an_allow_none() -> None:
    CachedVerdict("deny", DIGEST, DENIED)
    CachedVerdict("allow", DIGEST, (), (("age", "old"),))
    for decision, violations in (("deny", ()), ("allow", DENIED), ("error", ())):
        with pytest.raises(ValueError, match="a cached denial needs a violation"):
            CachedVerdict(decision, DIGEST, violations)  # type: ignore[arg-type]


def test_denials_are_kept_briefly_and_zero_means_never() -> None:
    key = verdict_key(DIGEST, "r.example/app", "h", "prod")

    async def go() -> None:
        cache = AdmissionCache(CacheTimes(allow=300, deny=0))
        await cache.put_verdict(key, CachedVerdict("deny", DIGEST, DENIED))
        assert await cache.verdict(key) is None
        await cache.put_verdict(key, CachedVerdict("allow", DIGEST))
        assert await cache.verdict(key) == (CachedVerdict("allow", DIGEST), "local")

    asyncio.run(go())


def test_a_seal_binds_the_redis_key_and_every_accepted_key_opens() -> None:
    old, new = secrets.token_hex(32), secrets.token_hex(32)
    writer, rotated, stranger = new_keys(old), new_keys(new, old), new_keys(new)
    sealed = writer.seal("imggate:v2:verdict:a", b"payload")
    assert rotated.open("imggate:v2:verdict:a", sealed) == b"payload"
    assert writer.open("imggate:v2:verdict:a", sealed) == b"payload"
    assert stranger.open("imggate:v2:verdict:a", sealed) is None
    # Moved to another key, altered, truncated: none opens.
    assert writer.open("imggate:v2:verdict:b", sealed) is None
    assert writer.open("imggate:v2:verdict:a", sealed[:-1] + b"X") is None
    assert writer.open("imggate:v2:verdict:a", sealed[:32]) is None
    assert rotated.label("h") == stranger.label("h") != writer.label("h")  # the first key


@pytest.mark.parametrize(("text", "said"), [
    ("", "no cache key in the file"),
    ("# only a comment\n\n", "no cache key in the file"),
    ("short-key\n", "at least 32 are needed"),
    # Random keys: a fixed id, so every xdist worker collects the same test names.
    pytest.param("\n".join(secrets.token_hex(32) for _ in range(9)), "at most 8 are read",
                 id="nine-random-keys"),
    ("k" * 40 + "\x01\n", "non-printable"),
])
def test_a_bad_key_file_is_a_config_error_that_never_shows_a_key(text: str, said: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_cache_keys(text, "keys.txt")
    assert said in e.value.message and "keys.txt" in e.value.message
    for line in text.splitlines():
        if len(line) > 8:
            assert line not in str(e.value.diagnostics())


def test_the_key_file_is_read_with_comments_and_its_keys_are_redacted(tmp_path: Path) -> None:
    from imggate import redact

    one, two = secrets.token_hex(32), secrets.token_hex(20)
    path = tmp_path / "keys"
    path.write_text(f"# current first\n{one}\n\n  {two}  \n")
    keys = load_cache_keys(path)
    assert keys.keys == (one.encode(), two.encode())
    assert redact.redact(f"x {one} y {two}") == f"x {redact.MASK} y {redact.MASK}"


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def run_with_caches(redis_server: RedisServer, *key_sets: CacheKeys,
                    rejected: list[str] | None = None):  # type: ignore[no-untyped-def]
    """A decorator: run ``fn(*caches)`` with one Redis-backed cache per key set."""
    def wrap(fn):  # type: ignore[no-untyped-def]
        async def go() -> None:
            caches = [AdmissionCache(redis_layer=RedisLayer.from_url(redis_server.url, keys),
                                     on_reject=(rejected.append if rejected is not None
                                                else None))
                      for keys in key_sets]
            try:
                await fn(*caches)
            finally:
                for c in caches:
                    assert c.redis is not None
                    await c.redis.close()
        asyncio.run(go())
    return wrap


def test_two_caches_share_verdicts_and_tags_through_redis(redis_server: RedisServer) -> None:
    keys = new_keys()

    @run_with_caches(redis_server, keys, keys)
    async def _(one: AdmissionCache, two: AdmissionCache) -> None:
        key = verdict_key(DIGEST, "r.example/shared", "h", "prod")
        await one.put_verdict(key, CachedVerdict("allow", DIGEST, (), (("age", "old"),)))
        await one.put_tag(tag_key("r.example/shared", "v1"), DIGEST)
        assert await two.verdict(key) == (CachedVerdict("allow", DIGEST, (),
                                                        (("age", "old"),)), "redis")
        hit = await two.verdict(key)
        assert hit is not None and hit[1] == "local"
        assert await two.tag(tag_key("r.example/shared", "v1")) == (DIGEST, "redis")
        assert one.redis is not None and one.redis.up


def _forge(raw: redis.Redis, key: VerdictKey | str, value: bytes) -> None:
    raw.set(key.id if isinstance(key, VerdictKey) else key, value, px=60_000)


def test_forged_moved_and_odd_entries_are_misses_counted_by_reason(
        redis_server: RedisServer, raw: redis.Redis) -> None:
    keys = new_keys()
    rejected: list[str] = []
    name = f"r.example/forged-{secrets.token_hex(4)}"
    key = verdict_key(DIGEST, name, "rules", "prod")
    allow = CachedVerdict("allow", DIGEST)
    cases: list[tuple[bytes, str]] = [
        # The attack as reported: an allow written by whoever can write to Redis.
        (b'{"d":"allow","g":"' + DIGEST.encode() + b'","v":[],"w":[]}', "mac"),
        (verdict_payload(key, allow), "mac"),  # the right document, unsealed
        (new_keys().seal(key.id, verdict_payload(key, allow)), "mac"),  # another key
        # Sealed by us, but for another image or place: moved here, or naming another one.
        (keys.seal(verdict_key(OTHER, name, "rules", "prod").id,
                   verdict_payload(verdict_key(OTHER, name, "rules", "prod"), allow)), "mac"),
        (keys.seal(key.id, verdict_payload(verdict_key(OTHER, name, "rules", "prod"),
                                           CachedVerdict("allow", OTHER))), "mismatch"),
        (keys.seal(key.id, verdict_payload(verdict_key(DIGEST, name, "rules", "dev"),
                                           allow)), "mismatch"),
        # Made under other trust roots, and moved under this key.
        (keys.seal(key.id, verdict_payload(verdict_key(DIGEST, name, "rules", "prod",
                                                       trust_hash([b"other root"])),
                                           allow)), "mismatch"),
        # Sealed, but not the shape written: a deny with nothing denied, extra fields.
        (keys.seal(key.id, json.dumps({"k": "verdict", "g": DIGEST, "n": name, "r": "rules",
                                       "e": "prod", "t": "", "d": "deny", "v": [],
                                       "w": []}).encode()), "shape"),
        (keys.seal(key.id, json.dumps({"k": "verdict", "g": DIGEST, "n": name, "r": "rules",
                                       "e": "prod", "t": "", "d": "allow", "v": [],
                                       "w": [], "x": 1}).encode()), "shape"),
        (keys.seal(key.id, b"[" * 100_00 + b"]" * 100_00), "shape"),
        (keys.seal(key.id, b"\xff\xfe not json"), "shape"),
    ]

    @run_with_caches(redis_server, keys, rejected=rejected)
    async def _(cache: AdmissionCache) -> None:
        for value, reason in cases:
            _forge(raw, key, value)
            cache.clear_local()
            before = len(rejected)
            assert await cache.verdict(key) is None, reason
            assert rejected[before:] == [reason], (reason, rejected[before:])
        # Not a string at all.
        raw.delete(key.id)
        raw.rpush(key.id, b"allow")
        assert await cache.verdict(key) is None and rejected[-1] == "shape"
        assert cache.redis is not None and cache.redis.up  # Redis answered: not "down"
        raw.delete(key.id)
        # A sealed denial stays a denial.
        deny = CachedVerdict("deny", DIGEST, DENIED)
        await cache.put_verdict(key, deny)
        cache.clear_local()
        assert await cache.verdict(key) == (deny, "redis")


def test_a_huge_entry_is_refused_without_being_read(redis_server: RedisServer,
                                                    raw: redis.Redis) -> None:
    keys = new_keys()
    rejected: list[str] = []
    key = verdict_key(DIGEST, "r.example/huge", "rules", "prod")
    payload = verdict_payload(key, CachedVerdict("allow", DIGEST))
    # Sealed and valid but padded past the cap (whitespace is still valid JSON).
    _forge(raw, key, keys.seal(key.id, payload + b" " * (88 * 1024 * 1024)))
    big_tag = tag_key("r.example/huge", "v1")
    raw.set(big_tag.id, b"x" * (MAX_ENTRY_BYTES + 1))

    @run_with_caches(redis_server, keys, rejected=rejected)
    async def _(cache: AdmissionCache) -> None:
        started = time.perf_counter()
        assert await cache.verdict(key) is None
        assert await cache.tag(big_tag) is None
        took = time.perf_counter() - started
        assert rejected == ["size", "size"]
        assert took < 0.2, took  # 64 KiB read, not 88 MB

    raw.delete(key.id, big_tag.id)


def test_forged_tag_entries_are_misses(redis_server: RedisServer, raw: redis.Redis) -> None:
    keys = new_keys()
    rejected: list[str] = []
    name = f"r.example/tag-{secrets.token_hex(4)}"
    key = tag_key(name, "v1")

    @run_with_caches(redis_server, keys, rejected=rejected)
    async def _(cache: AdmissionCache) -> None:
        for value, reason in ((OTHER.encode(), "mac"),  # the old, unsealed form
                              (keys.seal(key.id, tag_payload(tag_key(name, "v2"), OTHER)),
                               "mismatch"),
                              (keys.seal(key.id, tag_payload(key, "sha256:short")), "shape"),
                              (keys.seal(tag_key(name, "v2").id, tag_payload(key, OTHER)),
                               "mac")):
            raw.set(key.id, value)
            cache.clear_local()
            assert await cache.tag(key) is None, reason
            assert rejected[-1] == reason
        await cache.put_tag(key, DIGEST)
        cache.clear_local()
        assert await cache.tag(key) == (DIGEST, "redis")


def test_rotation_reads_entries_sealed_with_the_previous_key(redis_server: RedisServer) -> None:
    old, new = secrets.token_hex(32), secrets.token_hex(32)
    key = verdict_key(DIGEST, f"r.example/rot-{secrets.token_hex(4)}", "h", "prod")
    rejected: list[str] = []

    @run_with_caches(redis_server, new_keys(old), new_keys(new, old), new_keys(new),
                     rejected=rejected)
    async def _(before: AdmissionCache, during: AdmissionCache, after: AdmissionCache) -> None:
        await before.put_verdict(key, CachedVerdict("allow", DIGEST))
        assert await during.verdict(key) == (CachedVerdict("allow", DIGEST), "redis")
        assert await after.verdict(key) is None and rejected == ["mac"]
        await during.put_verdict(key, CachedVerdict("allow", DIGEST))  # sealed with new
        assert await after.verdict(key) == (CachedVerdict("allow", DIGEST), "redis")


def test_redis_down_falls_back_to_the_local_layer(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "redis")
    key, other = (verdict_key(DIGEST, "r.example/app", "h", e) for e in ("prod", "dev"))

    async def go() -> None:
        layer = RedisLayer.from_url(server.url, new_keys())
        cache = AdmissionCache(redis_layer=layer)
        assert await layer.ping()
        server.stop()
        await cache.put_verdict(key, CachedVerdict("allow", DIGEST))
        assert not layer.up
        assert await cache.verdict(key) == (CachedVerdict("allow", DIGEST), "local")
        assert await cache.verdict(other) is None  # Redis skipped while down: no error
        assert not await layer.ping()
        await layer.close()

    asyncio.run(go())


def test_rediss_with_a_password_as_docs_admission_shows(tmp_path: Path) -> None:
    # deploy/'s Redis asks for a password; docs/admission.md shows rediss:// for TLS.
    from admission.serve_harness import make_tls

    password = secrets.token_hex(16)
    server = start_redis(tmp_path / "redis", password=password,
                         tls=make_tls(tmp_path / "tls"))
    keys = new_keys()
    key = verdict_key(DIGEST, "r.example/tls", "h", "prod")

    async def go() -> None:
        # This test is about TLS and the password, not latency: a first TLS handshake on a
        # loaded CI machine can take longer than the admission path's 0.25 s.
        good = RedisLayer.from_url(server.url, keys, timeout=5.0)
        wrong = RedisLayer.from_url(server.url.replace(password, "not-the-password"), keys)
        plain = RedisLayer.from_url(f"redis://:{password}@127.0.0.1:{server.port}/0", keys)
        try:
            assert await good.ping()
            assert not await wrong.ping() and not await plain.ping()
            await AdmissionCache(redis_layer=good).put_verdict(key, CachedVerdict("allow", DIGEST))
            assert await AdmissionCache(redis_layer=good).verdict(key) == (
                CachedVerdict("allow", DIGEST), "redis")
        finally:
            for layer in (good, wrong, plain):
                await layer.close()

    try:
        asyncio.run(go())
    finally:
        server.stop()


def test_an_entry_keeps_the_rules_that_passed_and_older_entries_still_read() -> None:
    """``audit --cluster`` reports the passed rules of a shared entry; an entry written
    without them (before they were kept) is still read; a malformed list is refused."""
    key = verdict_key(DIGEST, "r.example/app", "rules", "prod")
    passed = (("signatures", "enforce", "signed by release.pub"), ("age", "warn", ""))
    cached = CachedVerdict("allow", DIGEST, (), (), passed)
    assert read_verdict(key, verdict_payload(key, cached)) == cached
    doc = json.loads(verdict_payload(key, cached))
    del doc["p"]
    assert read_verdict(key, json.dumps(doc).encode()) == CachedVerdict("allow", DIGEST)
    for bad in ([["signatures", "sometimes", "x"]], [["signatures", "enforce"]], "x", [[1, 2, 3]]):
        doc["p"] = bad
        assert read_verdict(key, json.dumps(doc).encode()) == Rejected.SHAPE, bad
