"""``audit --cluster --cache``: the webhook's verdict cache, shared both ways.

The audit reads and writes the entries ``imggate serve --cache`` does, with
the same pieces (:mod:`imggate.admission.cache`, :mod:`imggate.admission.seal`):
the key is the image digest + repository + rules hash + trust roots + environment
(:func:`~imggate.admission.cache.verdict_key`), every entry is sealed with
the first key of ``--cache-key-file`` and opened with any of them, so an image
the webhook judged is a hit for the audit and one the audit judged is a hit for
the webhook. An entry that is not sealed with an accepted key, names another
image, rules or environment, or has another shape is a miss, counted by reason
(as the webhook's ``imggate_cache_rejected_total``), never believed.

What an entry holds is what the rules that need the image decided: the
violations, the warnings and the rules that passed, each with its first
message. The rules about the reference (tags, registries, digest pinning) are
never in it: the audit applies them again to each container's spec, hit or
miss. An entry holds no findings, signatures or report details: a container
judged from one says so in a note, and ``--fresh`` reads everything again.

Only definitive verdicts are written (an allow, or a denial whose evidence was
all read), as the webhook writes them; errors never are. ``--fresh`` reads
nothing from the cache (after a key rotation, or to re-verify everything) and
still writes what it found. Redis being down is a miss for every image, said
in the run's summary, never a failure of the audit.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from imggate.admission.cache import (
    AdmissionCache,
    CachedVerdict,
    CacheTimes,
    RedisLayer,
    passed_rules,
    verdict_key,
)
from imggate.admission.seal import CacheKeys
from imggate.models import (
    Decision,
    ImageVerdict,
    Mode,
    ResolvedImage,
    RuleResult,
    SignatureOptions,
    Unchecked,
)
from imggate.policy.decision import REFERENCE_RULES, decide

#: Seconds each Redis request may take (the audit is not a review: a little more than
#: the webhook's quarter second, still bounded).
REDIS_TIMEOUT = 2.0
#: The note of a container judged from a shared entry.
HIT_NOTE = ("judged from the verdict cache shared with the webhook (a sealed entry for this "
            "digest, rules and environment); its findings are not in the entry: "
            "--fresh reads them again")


@dataclass(frozen=True, slots=True)
class SharedCache:
    """``--cache URL``, ``--cache-key-file`` and ``--fresh``."""

    url: str
    keys: CacheKeys
    #: Read nothing from the cache: judge every image again (and write the results).
    fresh: bool = False
    #: How long written entries live (the webhook's defaults: the shorter is safe).
    times: CacheTimes = field(default_factory=CacheTimes)


@dataclass(slots=True)
class CacheStats:
    """What the shared cache did for one audit."""

    where: str
    fresh: bool
    hits: int = 0
    misses: int = 0
    written: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    #: Redis errors met (each makes the next requests misses for a moment).
    errors: int = 0

    def document(self) -> dict[str, object]:
        """The JSON form written in ``imggate-cluster.json``."""
        return {"redis": self.where, "fresh": self.fresh, "hits": self.hits,
                "misses": self.misses, "written": self.written,
                "rejected": dict(sorted(self.rejected.items())), "errors": self.errors}

    def line(self) -> str:
        """The console's line about the cache."""
        rejected = sum(self.rejected.values())
        return (f"verdict cache at {self.where}: "
                + ("not read (--fresh), " if self.fresh else
                   f"{self.hits} hits, {self.misses} misses, ")
                + f"{self.written} written"
                + (f", {rejected} entries refused (not imggate's: "
                   + ", ".join(f"{k} {n}" for k, n in sorted(self.rejected.items())) + ")"
                   if rejected else "")
                + (f", {self.errors} Redis errors" if self.errors else ""))


class VerdictCache:
    """The webhook's two-layer cache, opened for one audit under one rules hash.

    The trust roots' part of the key is the webhook's for the same roots: ``audit
    --cluster`` takes no ``--trusted-root``, so the production root shipped with sigstore
    (a webhook given ``serve --trusted-root`` shares nothing with it, by design)."""

    def __init__(self, settings: SharedCache, rules_hash: str,
                 signatures: SignatureOptions | None = None) -> None:
        from imggate.admission.judge import served_trust

        self.settings = settings
        self.rules_hash = rules_hash
        # How signatures were verified is part of the key: --insecure-ignore-tlog's
        # verdicts are never the webhook's, nor the webhook's ones made with it the audit's.
        self.trust = served_trust(None, signatures)
        self._redis = RedisLayer.from_url(settings.url, settings.keys, timeout=REDIS_TIMEOUT)
        self.stats = CacheStats(self._redis.where, settings.fresh)
        self._cache = AdmissionCache(settings.times, self._redis, on_reject=self._refused)

    def _refused(self, reason: str) -> None:
        self.stats.rejected[reason] += 1

    async def get(self, env: str, name: str, digest: str) -> CachedVerdict | None:
        """The verified entry for ``name@digest`` in ``env``, or ``None`` (a miss; always
        with ``--fresh``)."""
        if self.settings.fresh:
            return None
        found = await self._cache.verdict(verdict_key(digest, name, self.rules_hash, env,
                                                     self.trust))
        self.stats.errors = self._redis.errors
        if found is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return found[0]

    async def put(self, env: str, name: str, verdict: ImageVerdict,
                  unchecked: Sequence[Unchecked]) -> None:
        """Write ``verdict`` when it is definitive (see :func:`entry`)."""
        cached = entry(verdict, unchecked)
        if cached is None:
            return
        await self._cache.put_verdict(
            verdict_key(cached.digest, name, self.rules_hash, env, self.trust), cached)
        self.stats.errors = self._redis.errors
        if self._redis.up:
            self.stats.written += 1

    async def get_many(self, wanted: Sequence[tuple[str, str, str]], concurrency: int = 16
                       ) -> list[CachedVerdict | None]:
        """:meth:`get` for each ``(env, name, digest)``, ``concurrency`` at a time (a round
        trip each: a thousand images one after another would wait a thousand of them)."""
        sem = asyncio.Semaphore(concurrency)

        async def one(env: str, name: str, digest: str) -> CachedVerdict | None:
            async with sem:
                return await self.get(env, name, digest)

        return list(await asyncio.gather(*(one(*w) for w in wanted)))

    async def put_many(self, items: Sequence[tuple[str, str, ImageVerdict,
                                                    Sequence[Unchecked]]],
                       concurrency: int = 16) -> None:
        """:meth:`put` for each ``(env, name, verdict, unchecked)``, ``concurrency`` at a
        time."""
        sem = asyncio.Semaphore(concurrency)

        async def one(env: str, name: str, verdict: ImageVerdict,
                      unchecked: Sequence[Unchecked]) -> None:
            async with sem:
                await self.put(env, name, verdict, unchecked)

        await asyncio.gather(*(one(*i) for i in items))

    async def close(self) -> None:
        """Close the Redis connections."""
        await self._redis.close()


def entry(verdict: ImageVerdict, unchecked: Sequence[Unchecked]) -> CachedVerdict | None:
    """The cache entry of an image's verdict, as the webhook would write it: the rules that
    need the image (never the reference rules, applied to every request); ``None`` when it
    is not definitive (evidence unread, undecided, or the image never resolved)."""
    if unchecked or verdict.image is None or verdict.decision is Decision.ERROR:
        return None
    rules = [r for r in verdict.rules if r.rule not in REFERENCE_RULES]
    violations = _firsts(rules, Mode.ENFORCE)
    return CachedVerdict("deny" if violations else "allow", str(verdict.image.digest),
                         violations, _firsts(rules, Mode.WARN), passed_rules(rules))


def _firsts(rules: Sequence[RuleResult], mode: Mode) -> tuple[tuple[str, str], ...]:
    return tuple((r.rule, r.messages[0] if r.messages else "failed") for r in rules
                 if not r.passed and r.mode is mode)


def hit_verdict(cached: CachedVerdict, reference: str, env: str,
                image: ResolvedImage | None) -> ImageVerdict:
    """The verdict of the rules that need the image, from a shared entry (the reference
    rules are added by the caller, from the container's spec)."""
    rules = (*(RuleResult(rule, False, Mode.ENFORCE, (msg,)) for rule, msg in cached.violations),
             *(RuleResult(rule, False, Mode.WARN, (msg,)) for rule, msg in cached.warnings),
             *(RuleResult(rule, True, Mode(mode), (msg,) if msg else ())
               for rule, mode, msg in cached.passed))
    return ImageVerdict(reference=reference, env=env, decision=decide(rules), image=image,
                        rules=rules, notes=(HIT_NOTE, f"digest {cached.digest}"))

