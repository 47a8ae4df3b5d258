"""Sealing the webhook's shared cache entries: HMAC-SHA256 over key + value.

Whoever can write to Redis must not be able to write a verdict. Every entry
the webhook puts in Redis is ``MAC || payload``, where ``MAC`` is
HMAC-SHA256, under the current cache key, of the entry's Redis key, a zero
byte and the payload; an entry is read only when its MAC verifies under one
of the accepted keys. The Redis key is inside the MAC, so a sealed entry
cannot be moved to another key (a verdict about one image replayed for
another).

The keys come from ``serve --cache-key-file FILE`` (a mounted Secret): one
key per line, at least :data:`MIN_KEY_CHARS` characters each (``openssl
rand -hex 32``), blank lines and ``#`` comments ignored. The first key seals
new entries; every key in the file opens entries. Rotation, with replicas
that pick up the Secret at different times:

1. add the new key as the *second* line and roll out: every replica can now
   read entries sealed with it, none writes them yet;
2. swap the two lines and roll out: new entries are sealed with the new key,
   and entries sealed by the old one are still read;
3. after the longest cache TTL (``--cache-ttl``), remove the old line.

An entry written under a key a replica does not know is a miss for that
replica (counted as ``mac``), never an error. Keys are secrets: they are
registered with the redactor and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

#: The shortest key accepted (64 hex digits from ``openssl rand -hex 32`` is typical).
MIN_KEY_CHARS: Final = 32
#: More keys than this is a mistake (rotation needs two).
MAX_KEYS: Final = 8
_MAX_FILE_BYTES: Final = 64 * 1024
MAC_BYTES: Final = 32


@dataclass(frozen=True, slots=True)
class CacheKeys:
    """The accepted cache keys; ``keys[0]`` seals new entries."""

    keys: tuple[bytes, ...]
    _macs: tuple[hmac.HMAC, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("at least one cache key is needed")
        # Keyed once; each use copies the keyed state instead of hashing the key again.
        object.__setattr__(self, "_macs", tuple(hmac.new(k, digestmod=hashlib.sha256)
                                                for k in self.keys))

    def _mac(self, which: int, key: str, payload: bytes) -> bytes:
        mac = self._macs[which].copy()
        mac.update(key.encode())
        mac.update(b"\0")
        mac.update(payload)
        return mac.digest()

    def seal(self, key: str, payload: bytes) -> bytes:
        """``payload`` as stored under the Redis key ``key``: the MAC, then the payload."""
        return self._mac(0, key, payload) + payload

    def open(self, key: str, stored: bytes) -> bytes | None:
        """The payload of ``stored`` when its MAC verifies for ``key`` under any accepted
        key; ``None`` otherwise."""
        if len(stored) <= MAC_BYTES:
            return None
        tag, payload = stored[:MAC_BYTES], stored[MAC_BYTES:]
        # Every key is tried (no early exit): the time taken says nothing about which.
        ok = False
        for which in range(len(self._macs)):
            ok |= hmac.compare_digest(tag, self._mac(which, key, payload))
        return payload if ok else None

    def label(self, text: str) -> str:
        """A short keyed hash of ``text`` (the rules hash on ``/readyz``): equal on every
        replica sharing the key, useless for forging or guessing anything."""
        return hmac.new(self.keys[0], b"imggate label\0" + text.encode(),
                        hashlib.sha256).hexdigest()[:16]


def parse_cache_keys(text: str, where: str) -> CacheKeys:
    """The keys written in ``text`` (see the module docstring); ``ConfigError`` says what is
    wrong and on which line, never showing a key."""
    from imggate.errors import ConfigError

    keys: list[bytes] = []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if len(line) < MIN_KEY_CHARS:
            raise ConfigError(f"cache key is {len(line)} characters; at least {MIN_KEY_CHARS} "
                              "are needed", location=f"{where}:{n}",
                              hint="generate one with: openssl rand -hex 32")
        if not line.isascii() or not line.isprintable():
            raise ConfigError("cache key holds non-printable or non-ASCII characters",
                              location=f"{where}:{n}")
        keys.append(line.encode("ascii"))
    if not keys:
        raise ConfigError("no cache key in the file", location=where,
                          hint="one key per line; generate one with: openssl rand -hex 32")
    if len(keys) > MAX_KEYS:
        raise ConfigError(f"{len(keys)} cache keys; at most {MAX_KEYS} are read (the first "
                          "seals, the others are previous keys still accepted)", location=where)
    return CacheKeys(tuple(keys))


def load_cache_keys(path: str | Path) -> CacheKeys:
    """The keys in ``path`` (a regular file of at most 64 KiB), registered as secrets."""
    from imggate import redact
    from imggate._files import read_config_file
    from imggate.errors import ConfigError

    raw = read_config_file(path, _MAX_FILE_BYTES, what="cache key file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("cache key file is not UTF-8 text", location=str(path)) from None
    keys = parse_cache_keys(text, str(path))
    for k in keys.keys:
        redact.register(k.decode("ascii"))
    return keys
