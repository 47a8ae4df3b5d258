"""The webhook's caches: verdicts by digest, and tag -> digest lookups, each in two layers.

Layer one is in-process (an LRU with a TTL per entry); layer two, with
``--cache redis://…``, is Redis, shared by every replica. A lookup tries the
local layer, then Redis (and copies a Redis hit into the local layer).

What may be cached, and for how long, is decided here and nowhere else:

- a verdict is keyed by image digest + repository + rules hash + environment,
  never by a tag (:func:`verdict_key`);
- only definitive verdicts exist as :class:`CachedVerdict` (``allow`` or
  ``deny``); an error has no cached form at all, so it can never come back
  as an allow. Denials live briefly (the image may be fixed or signed soon);
- a tag's digest lives a short time, because tags move.

Redis is a helper, never a dependency of a decision: any Redis error marks
it down (reported by :attr:`RedisLayer.up`), the webhook carries on with its
local layer, and Redis is tried again after a pause.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, Literal, TypeVar

import orjson

if TYPE_CHECKING:
    import redis.asyncio

log = logging.getLogger(__name__)

T = TypeVar("T")
_PREFIX: Final = "imggate:v1"
#: How long Redis is left alone after an error before it is tried again.
REDIS_RETRY_SECONDS: Final = 2.0

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
    ``warnings`` are ``(rule, message)`` pairs.
    """

    decision: Literal["allow", "deny"]
    digest: str
    violations: tuple[tuple[str, str], ...] = ()
    warnings: tuple[tuple[str, str], ...] = ()

    def to_bytes(self) -> bytes:
        """The form stored in Redis."""
        return orjson.dumps({"d": self.decision, "g": self.digest,
                             "v": self.violations, "w": self.warnings})

    @classmethod
    def from_bytes(cls, raw: bytes) -> CachedVerdict | None:
        """Read a stored entry; anything malformed is a miss, never a verdict."""
        try:
            doc = json.loads(raw)  # not orjson: it crashes on pathological nesting
            decision = doc["d"]
            if decision not in ("allow", "deny") or not isinstance(doc["g"], str):
                return None
            pairs = [tuple(p) for p in (*doc["v"], *doc["w"])]
            if not all(len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs):
                return None
            return cls(decision, doc["g"], tuple((a, b) for a, b in doc["v"]),
                       tuple((a, b) for a, b in doc["w"]))
        except (RecursionError, KeyError, TypeError, ValueError):
            return None


@functools.lru_cache(maxsize=4096)  # pure, and asked for the same few images on every review
def verdict_key(digest: str, name: str, rules_hash: str, env: str) -> str:
    """The cache key of a verdict: digest, repository, rules and environment; never a tag.

    The repository is part of it because per-image rules and the place
    signatures are looked up depend on the name, not only on the bytes.
    """
    ident = hashlib.sha256(f"{digest}\0{name}\0{rules_hash}\0{env}".encode()).hexdigest()
    return f"{_PREFIX}:verdict:{ident}"


@functools.lru_cache(maxsize=4096)
def tag_key(name: str, tag: str) -> str:
    """The cache key of a tag's digest."""
    return f"{_PREFIX}:tag:{hashlib.sha256(f'{name}:{tag}'.encode()).hexdigest()}"


class LocalCache(Generic[T]):
    """An in-process LRU whose entries expire after their own TTL."""

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    def get(self, key: str) -> T | None:
        """The live value of ``key``, or ``None``."""
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= self._clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

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
    """Redis as a shared, optional layer: errors mark it down, never fail a review."""

    def __init__(self, client: redis.asyncio.Redis, where: str) -> None:
        self._client = client
        self.where = where  # host:port only: a URL may hold a password
        self.up = False
        self._retry_at = 0.0
        self.errors = 0

    @classmethod
    def from_url(cls, url: str, timeout: float = 0.25) -> RedisLayer:
        """A layer for ``redis://[:password@]host:port/db`` (``rediss://`` for TLS);
        :class:`~imggate.errors.UsageError` when ``url`` is not one (see :func:`check_url`)."""
        import redis.asyncio

        params = check_url(url)
        if params.get("password"):
            from imggate import redact

            redact.register(str(params["password"]))  # never in a log line or error
        where = f"{params.get('host', 'localhost')}:{params.get('port', 6379)}"
        client = redis.asyncio.Redis.from_url(url, socket_timeout=timeout,
                                              socket_connect_timeout=timeout,
                                              retry_on_timeout=False)
        return cls(client, where)

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

    async def get(self, key: str) -> bytes | None:
        """The stored bytes of ``key``; ``None`` when absent or Redis is down."""
        if self._skip():
            return None
        try:
            value = await self._client.get(key)
        except Exception as e:  # see ping()
            self._down(e)
            return None
        self._back()
        return value if isinstance(value, bytes) else None

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds (best effort)."""
        if self._skip():
            return
        try:
            await self._client.set(key, value, px=max(1, int(ttl * 1000)))
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
    """Verdicts and tag digests, local first, then Redis when configured."""

    def __init__(self, times: CacheTimes | None = None, redis_layer: RedisLayer | None = None
                 ) -> None:
        self.times = times or CacheTimes()
        self.redis = redis_layer
        self._verdicts: LocalCache[CachedVerdict] = LocalCache(self.times.local_entries)
        self._tags: LocalCache[str] = LocalCache(self.times.local_entries)

    def local_verdict(self, key: str) -> CachedVerdict | None:
        """The verdict in the in-process layer only (no I/O)."""
        return self._verdicts.get(key)

    def local_tag(self, key: str) -> str | None:
        """The tag digest in the in-process layer only (no I/O)."""
        return self._tags.get(key)

    async def verdict(self, key: str) -> tuple[CachedVerdict, Layer] | None:
        """A cached verdict and the layer it came from, or ``None``."""
        found = self._verdicts.get(key)
        if found is not None:
            return found, "local"
        if self.redis is None:
            return None
        raw = await self.redis.get(key)
        found = CachedVerdict.from_bytes(raw) if raw is not None else None
        if found is None:
            return None
        # Redis knows the real expiry; the local copy lives no longer than a denial would.
        self._verdicts.put(key, found, min(self._ttl(found), self.times.deny))
        return found, "redis"

    def _ttl(self, verdict: CachedVerdict) -> float:
        return self.times.allow if verdict.decision == "allow" else self.times.deny

    async def put_verdict(self, key: str, verdict: CachedVerdict) -> None:
        """Keep a definitive verdict (allow long, deny briefly) in every layer."""
        ttl = self._ttl(verdict)
        if ttl <= 0:
            return
        self._verdicts.put(key, verdict, ttl)
        if self.redis is not None:
            await self.redis.put(key, verdict.to_bytes(), ttl)

    async def tag(self, key: str) -> tuple[str, Layer] | None:
        """A cached tag digest and the layer it came from, or ``None``."""
        found = self._tags.get(key)
        if found is not None:
            return found, "local"
        if self.redis is None:
            return None
        raw = await self.redis.get(key)
        if raw is None:
            return None
        text = raw.decode("ascii", "replace")
        if not text.startswith("sha256:"):
            return None
        self._tags.put(key, text, self.times.tag)
        return text, "redis"

    async def put_tag(self, key: str, digest: str) -> None:
        """Keep a tag's digest for the short tag TTL."""
        if self.times.tag <= 0:
            return
        self._tags.put(key, digest, self.times.tag)
        if self.redis is not None:
            await self.redis.put(key, digest.encode(), self.times.tag)

    def clear_local(self) -> None:
        """Forget local entries (rules reloaded: their keys would never be asked again)."""
        self._verdicts.clear()
        self._tags.clear()
