"""The webhook's caches: verdicts by digest, and tag -> digest lookups, each in two layers.

Layer one is in-process (an LRU with a TTL per entry); layer two, with
``--cache redis://…``, is Redis, shared by every replica. A lookup tries the
local layer, then Redis (and copies a Redis hit into the local layer).

What may be cached, and for how long, is decided here and nowhere else:

- a verdict is keyed by image digest + repository + rules hash + trust roots +
  environment, never by a tag (:func:`verdict_key`);
- only definitive verdicts exist as :class:`CachedVerdict` (``allow`` or
  ``deny``); an error has no cached form at all, so it can never come back
  as an allow. Denials live briefly (the image may be fixed or signed soon);
- a tag's digest lives a short time, because tags move.

Redis is a helper, never a dependency of a decision: any Redis error marks
it down (reported by :attr:`RedisLayer.up`), the webhook carries on with its
local layer, and Redis is tried again after a pause.

Redis is also never trusted. Every entry written there is sealed with an HMAC
over its key and value (:mod:`imggate.admission.seal`) and names what it was
computed for (a verdict: digest, repository, environment, rules hash and trust
roots; a
tag: repository, tag and digest). An entry read back is used only when it is
at most :data:`MAX_ENTRY_BYTES` (Redis is asked for no more than that), its
seal verifies, it has exactly the shape written, and it names what was asked;
anything else is a miss, counted by reason (``size``, ``mac``, ``shape``,
``mismatch``: ``imggate_cache_rejected_total``). The in-process layer holds
only what this process computed or verified, and needs no seal.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Final, Generic, Literal, TypeVar

import orjson

if TYPE_CHECKING:
    import redis.asyncio

    from imggate.admission.seal import CacheKeys
    from imggate.models import RuleResult

log = logging.getLogger(__name__)

T = TypeVar("T")
# v2: sealed entries (v1 entries, unsealed, are never read).
_PREFIX: Final = "imggate:v2"
#: The largest entry read from Redis (a verdict with many violations is a few KiB).
MAX_ENTRY_BYTES: Final = 64 * 1024
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class Rejected(StrEnum):
    """Why a Redis entry was not used (the ``reason`` label of the rejection counter)."""

    SIZE = "size"  # over MAX_ENTRY_BYTES
    MAC = "mac"  # the seal does not verify under any accepted key
    SHAPE = "shape"  # not the JSON document written, or not a Redis string
    MISMATCH = "mismatch"  # sealed, but about another digest, repository, tag, rules or env
#: How long Redis is left alone after an error before it is tried again.
REDIS_RETRY_SECONDS: Final = 2.0
#: At most one warning per this many seconds about refused entries (they are counted).
REJECT_LOG_SECONDS: Final = 60.0

Layer = Literal["local", "redis"]


@dataclass(frozen=True, slots=True)
class CacheTimes:
    """How long each kind of entry lives, in seconds."""

    allow: float = 300.0
    deny: float = 30.0
    tag: float = 30.0
    local_entries: int = 10_000


@dataclass(frozen=True, slots=True)
class CachedVerdict:
    """What the rules that need the image decided about one digest.

    The rules about the reference (tags, registries) are not in it: they
    are applied to every request, hit or miss. ``violations`` and
    ``warnings`` are ``(rule, message)`` pairs. A denial always has a
    violation and an allow never has one: no value says ``deny`` and
    reads as an allow.
    """

    decision: Literal["allow", "deny"]
    digest: str
    violations: tuple[tuple[str, str], ...] = ()
    warnings: tuple[tuple[str, str], ...] = ()
    #: ``(rule, mode, message)`` of the rules that passed: a review needs none of them,
    #: ``audit --cluster`` reports them (a PolicyReport's ``pass`` results) on a hit.
    passed: tuple[tuple[str, str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.decision not in ("allow", "deny") or \
                (self.decision == "deny") != bool(self.violations):
            raise ValueError("a cached denial needs a violation, and an allow has none")


def passed_rules(results: Sequence[RuleResult]) -> tuple[tuple[str, str, str], ...]:
    """``(rule, mode, message)`` of the rules that passed, as a cached verdict keeps them
    (``audit --cluster`` reports them from a shared entry)."""
    return tuple((r.rule, r.mode.value, "; ".join(r.messages)[:512]) for r in results
                 if r.passed)


@dataclass(frozen=True, slots=True)
class VerdictKey:
    """What a verdict is about, and the cache key it is stored under (:attr:`id`)."""

    digest: str
    name: str
    rules_hash: str
    env: str
    id: str
    #: :func:`trust_hash` of the trust roots given to the server (``serve --trusted-root``).
    trust: str = ""


@dataclass(frozen=True, slots=True)
class TagKey:
    """A repository's tag, and the cache key of its digest (:attr:`id`)."""

    name: str
    tag: str
    id: str


@functools.lru_cache(maxsize=4096)  # pure, and asked for the same few images on every review
def verdict_key(digest: str, name: str, rules_hash: str, env: str, trust: str = ""
                ) -> VerdictKey:
    """The cache key of a verdict: digest, repository, rules, trust roots and environment;
    never a tag.

    The repository is part of it because per-image rules and the place
    signatures are looked up depend on the name, not only on the bytes. The
    trust roots are (``trust``, from :func:`trust_hash`) because a signature
    verified under one set of roots may not verify under another: replicas
    given other roots, or a restart with new ones, never share a verdict. The
    roots the rules name (``signatures.trusted_roots``) are in ``rules_hash``.
    """
    ident = hashlib.sha256(
        f"{digest}\0{name}\0{rules_hash}\0{env}\0{trust}".encode()).hexdigest()
    return VerdictKey(digest, name, rules_hash, env, f"{_PREFIX}:verdict:{ident}", trust)


def trust_hash(documents: Sequence[bytes]) -> str:
    """A short hash of trust root documents as read (their order counts: it is the order
    they are tried in); the same for the same bytes in every replica."""
    digest = hashlib.sha256(b"imggate trust roots\0")
    for doc in documents:
        digest.update(len(doc).to_bytes(8, "big") + doc)
    return digest.hexdigest()[:32]


@functools.lru_cache(maxsize=4096)
def tag_key(name: str, tag: str) -> TagKey:
    """The cache key of a tag's digest."""
    ident = hashlib.sha256(f"{name}:{tag}".encode()).hexdigest()
    return TagKey(name, tag, f"{_PREFIX}:tag:{ident}")


_VERDICT_FIELDS: Final = frozenset("kgnredtvw")
# An entry may also list the rules that passed ("p"; entries written before it have none).
_VERDICT_FIELDS_PASSED: Final = _VERDICT_FIELDS | {"p"}
_MODES: Final = ("enforce", "warn")
_TAG_FIELDS: Final = frozenset("kntg")


def verdict_payload(key: VerdictKey, verdict: CachedVerdict) -> bytes:
    """The JSON stored (sealed) in Redis for ``verdict``: it names what it is about."""
    return orjson.dumps({"k": "verdict", "g": verdict.digest, "n": key.name,
                         "r": key.rules_hash, "e": key.env, "t": key.trust,
                         "d": verdict.decision,
                         "v": verdict.violations, "w": verdict.warnings,
                         "p": verdict.passed})


def tag_payload(key: TagKey, digest: str) -> bytes:
    """The JSON stored (sealed) in Redis for a tag's digest."""
    return orjson.dumps({"k": "tag", "n": key.name, "t": key.tag, "g": digest})


def _pairs(value: object) -> tuple[tuple[str, str], ...] | None:
    if not isinstance(value, list):
        return None
    out = []
    for p in value:
        if not (isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)):
            return None
        out.append((p[0], p[1]))
    return tuple(out)


def _passed(value: object) -> tuple[tuple[str, str, str], ...] | None:
    if not isinstance(value, list):
        return None
    out = []
    for p in value:
        if not (isinstance(p, list) and len(p) == 3 and all(isinstance(x, str) for x in p)
                and p[1] in _MODES):
            return None
        out.append((p[0], p[1], p[2]))
    return tuple(out)


def read_verdict(key: VerdictKey, payload: bytes) -> CachedVerdict | Rejected:
    """The verdict in an opened (MAC-verified) payload, or why it is not one for ``key``."""
    doc = _json_object(payload)
    if doc is None or doc.keys() not in (_VERDICT_FIELDS, _VERDICT_FIELDS_PASSED) \
            or doc["k"] != "verdict":
        return Rejected.SHAPE
    if (doc["g"], doc["n"], doc["r"], doc["e"], doc["t"]) != (
            key.digest, key.name, key.rules_hash, key.env, key.trust):
        return Rejected.MISMATCH
    violations, warnings = _pairs(doc["v"]), _pairs(doc["w"])
    passed = _passed(doc.get("p", []))
    if violations is None or warnings is None or passed is None \
            or doc["d"] not in ("allow", "deny") or (doc["d"] == "deny") != bool(violations):
        return Rejected.SHAPE
    return CachedVerdict(doc["d"], key.digest, violations, warnings, passed)


def read_tag(key: TagKey, payload: bytes) -> str | Rejected:
    """The digest in an opened payload, or why it is not one for ``key``."""
    doc = _json_object(payload)
    if doc is None or doc.keys() != _TAG_FIELDS or doc["k"] != "tag" \
            or not isinstance(doc["g"], str) or not _DIGEST.fullmatch(doc["g"]):
        return Rejected.SHAPE
    if (doc["n"], doc["t"]) != (key.name, key.tag):
        return Rejected.MISMATCH
    return str(doc["g"])


def _json_object(payload: bytes) -> dict[str, object] | None:
    try:
        doc = json.loads(payload)  # not orjson: it crashes on pathological nesting
    except (RecursionError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


class LocalCache(Generic[T]):
    """An in-process LRU whose entries expire after their own TTL."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    def get(self, key: str) -> T | None:
        """The live value of ``key``, or ``None``."""
        item = self.get_until(key)
        return None if item is None else item[0]

    def get_until(self, key: str) -> tuple[T, float] | None:
        """The live value of ``key`` and when it expires (a clock time), or ``None``."""
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= self._clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value, expires

    def put(self, key: str, value: T, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds, evicting the least recently used past the cap."""
        self._data[key] = (self._clock() + ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    def clear(self) -> None:
        """Forget everything (the rules changed)."""
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


def check_url(url: str) -> dict[str, object]:
    """The connection settings of a ``--cache`` URL, or a :class:`UsageError` naming the
    part that is wrong. The URL itself is never repeated: it may hold a password."""
    import urllib.parse

    from redis.asyncio.connection import parse_url

    from imggate.errors import UsageError

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise UsageError("--cache must be a redis://, rediss:// or unix:// URL")
    try:
        port = parts.port
    except ValueError:
        raise UsageError("--cache: the port is not a number from 1 to 65535") from None
    if parts.scheme == "unix":
        if not parts.path:
            raise UsageError("--cache unix://PATH: the socket path is missing")
    else:
        if not parts.hostname:
            raise UsageError(f"--cache {parts.scheme}://HOST[:PORT][/DB]: the host is missing")
        if port == 0:
            raise UsageError("--cache: the port is not a number from 1 to 65535")
        db = parts.path.strip("/")
        if db and not (db.isascii() and db.isdigit() and int(db) < 2**31):
            raise UsageError("--cache: the database (the path after the host) is not a "
                             "number")
    try:
        return dict(parse_url(url))
    except ValueError:
        raise UsageError("--cache: an option in the URL's query has an invalid value") from None


class RedisLayer:
    """Redis as a shared, optional layer: errors mark it down, never fail a review.

    Every value is sealed with ``keys`` on the way in and opened on the way out
    (see the module docstring); only a verified payload leaves :meth:`get`.
    """

    def __init__(self, client: redis.asyncio.Redis, where: str, keys: CacheKeys) -> None:
        self._client = client
        self.where = where  # host:port only: a URL may hold a password
        self.keys = keys
        self.up = False
        self._retry_at = 0.0
        self.errors = 0

    @classmethod
    def from_url(cls, url: str, keys: CacheKeys, timeout: float = 0.25) -> RedisLayer:
        """A layer for ``redis://[:password@]host:port/db`` (``rediss://`` for TLS), sealing
        with ``keys``; :class:`~imggate.errors.UsageError` when ``url`` is not one (see
        :func:`check_url`)."""
        import redis.asyncio

        params = check_url(url)
        if params.get("password"):
            from imggate import redact

            redact.register(str(params["password"]))  # never in a log line or error
        where = f"{params.get('host', 'localhost')}:{params.get('port', 6379)}"
        client = redis.asyncio.Redis.from_url(url, socket_timeout=timeout,
                                              socket_connect_timeout=timeout,
                                              retry_on_timeout=False)
        return cls(client, where, keys)

    def _down(self, e: Exception) -> None:
        if self.up or self.errors == 0:
            log.warning("redis at %s is unavailable (%s): using the local cache only",
                        self.where, type(e).__name__)
        self.up = False
        self.errors += 1
        self._retry_at = time.monotonic() + REDIS_RETRY_SECONDS

    def _skip(self) -> bool:
        return not self.up and time.monotonic() < self._retry_at

    def _back(self) -> None:
        if not self.up:
            log.warning("redis at %s answers again", self.where)
        self.up = True

    async def ping(self) -> bool:
        """Whether Redis answers now (also brings a down layer back)."""
        try:
            await self._client.ping()
        except Exception as e:  # any client, socket or protocol error: Redis is down
            self._down(e)
            return False
        self._back()
        return True

    async def get(self, key: str) -> bytes | Rejected | None:
        """The verified payload stored under ``key``; why it was refused; or ``None`` when
        absent or Redis is down."""
        if self._skip():
            return None
        from redis.exceptions import ResponseError

        try:
            # At most one byte past the cap is asked for: a huge value is refused
            # without being read (an 88 MB GET blocks the event loop for seconds).
            value = await self._client.getrange(key, 0, MAX_ENTRY_BYTES)
        except ResponseError:
            self._back()  # Redis answered: the key holds a list, a hash... not ours
            return Rejected.SHAPE
        except Exception as e:  # see ping()
            self._down(e)
            return None
        self._back()
        if not isinstance(value, bytes) or not value:
            return None  # absent (GETRANGE answers an empty string)
        if len(value) > MAX_ENTRY_BYTES:
            return Rejected.SIZE
        payload = self.keys.open(key, value)
        return Rejected.MAC if payload is None else payload

    async def put(self, key: str, payload: bytes, ttl: float) -> None:
        """Store ``payload``, sealed, for ``ttl`` seconds (best effort)."""
        if self._skip():
            return
        try:
            await self._client.set(key, self.keys.seal(key, payload),
                                   px=max(1, int(ttl * 1000)))
        except Exception as e:  # see ping()
            self._down(e)
            return
        self._back()

    async def close(self) -> None:
        """Close the connection pool."""
        try:
            await self._client.aclose()
        except Exception:  # closing a broken connection may fail; nothing to keep
            log.debug("closing redis", exc_info=True)


class AdmissionCache:
    """Verdicts and tag digests, local first, then Redis when configured.

    ``on_reject`` is called with the reason of every Redis entry refused (the
    metrics counter); a refused entry is a miss.
    """

    def __init__(self, times: CacheTimes | None = None, redis_layer: RedisLayer | None = None,
                 on_reject: Callable[[str], None] | None = None) -> None:
        self.times = times or CacheTimes()
        self.redis = redis_layer
        self._on_reject = on_reject
        self._verdicts: LocalCache[CachedVerdict] = LocalCache(self.times.local_entries)
        self._tags: LocalCache[str] = LocalCache(self.times.local_entries)
        self._warned_at = -REJECT_LOG_SECONDS

    def _rejected(self, reason: Rejected, what: str) -> None:
        if self._on_reject is not None:
            self._on_reject(reason.value)
        now = time.monotonic()
        if now - self._warned_at >= REJECT_LOG_SECONDS:  # a flood of them: one line a minute
            self._warned_at = now
            log.warning("redis at %s holds a %s entry that is not imggate's (%s): ignored; "
                        "imggate_cache_rejected_total counts them",
                        self.redis.where if self.redis else "?", what, reason.value)

    def local_verdict(self, key: VerdictKey) -> tuple[CachedVerdict, float] | None:
        """The verdict in the in-process layer only (no I/O), and when it expires
        (``time.monotonic()``)."""
        return self._verdicts.get_until(key.id)

    def local_tag(self, key: TagKey) -> tuple[str, float] | None:
        """The tag digest in the in-process layer only (no I/O), and when it expires."""
        return self._tags.get_until(key.id)

    async def verdict(self, key: VerdictKey) -> tuple[CachedVerdict, Layer] | None:
        """A cached verdict and the layer it came from, or ``None``."""
        found = self._verdicts.get(key.id)
        if found is not None:
            return found, "local"
        if self.redis is None:
            return None
        payload = await self.redis.get(key.id)
        if payload is None:
            return None
        read = payload if isinstance(payload, Rejected) else read_verdict(key, payload)
        if isinstance(read, Rejected):
            self._rejected(read, "verdict")
            return None
        # Redis knows the real expiry; the local copy lives no longer than a denial would.
        self._verdicts.put(key.id, read, min(self._ttl(read), self.times.deny))
        return read, "redis"

    def _ttl(self, verdict: CachedVerdict) -> float:
        return self.times.allow if verdict.decision == "allow" else self.times.deny

    async def put_verdict(self, key: VerdictKey, verdict: CachedVerdict) -> None:
        """Keep a definitive verdict (allow long, deny briefly) in every layer."""
        ttl = self._ttl(verdict)
        if ttl <= 0:
            return
        self._verdicts.put(key.id, verdict, ttl)
        if self.redis is not None:
            await self.redis.put(key.id, verdict_payload(key, verdict), ttl)

    async def tag(self, key: TagKey) -> tuple[str, Layer] | None:
        """A cached tag digest and the layer it came from, or ``None``."""
        found = self._tags.get(key.id)
        if found is not None:
            return found, "local"
        if self.redis is None:
            return None
        payload = await self.redis.get(key.id)
        if payload is None:
            return None
        read = payload if isinstance(payload, Rejected) else read_tag(key, payload)
        if isinstance(read, Rejected):
            self._rejected(read, "tag")
            return None
        self._tags.put(key.id, read, self.times.tag)
        return read, "redis"

    async def put_tag(self, key: TagKey, digest: str) -> None:
        """Keep a tag's digest for the short tag TTL."""
        if self.times.tag <= 0:
            return
        self._tags.put(key.id, digest, self.times.tag)
        if self.redis is not None:
            await self.redis.put(key.id, tag_payload(key, digest), self.times.tag)

    def clear_local(self) -> None:
        """Forget local entries (rules reloaded: their keys would never be asked again)."""
        self._verdicts.clear()
        self._tags.clear()
