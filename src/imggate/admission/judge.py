"""One image at admission: reference rules first, then the cache, then the gate.

The order is the point:

1. the rules that need only the reference (denied tags, allowed registries,
   digest pinning) run first, on every request: a violation answers at once,
   without a registry call, and a cache hit can never skip them;
2. the tag is pinned to a digest (tag cache, short TTL; else the registry);
3. the verdict cache is asked by digest + repository + rules hash + trust roots + env;
4. on a miss, one resolution per key runs at a time (single-flight): the
   gate's own pieces resolve the image, read reports from the evidence
   sources, fetch each signature and attestation once and verify them
   locally, and the policy engine decides. Definitive verdicts are cached;
   errors never are.

Registry calls go through the review's :class:`~imggate.admission.pull_access.RegistryAccess`:
the client holding the pod's pull credentials. The caches are shared between
pods (a verdict is about the image, see :mod:`imggate.admission.pull_access`);
in-flight work is shared only between reviews with the same credentials, and a
registry that refuses access is answered with which credentials were used.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, Literal, NamedTuple, TypeVar

from imggate import values
from imggate._aio import settle
from imggate.admission.cache import (
    AdmissionCache,
    CachedVerdict,
    VerdictKey,
    passed_rules,
    tag_key,
    trust_hash,
    verdict_key,
)
from imggate.admission.evidence import EvidenceSource
from imggate.admission.metrics import Metrics
from imggate.admission.policies import EnvPolicy, PolicySet
from imggate.admission.pull_access import RegistryAccess
from imggate.errors import AuthError, Error
from imggate.gate import (
    CheckRequest,
    bind_reports,
    given_roots,
    image_evidence,
    with_attested_vex,
)
from imggate.models import (
    Decision,
    Digest,
    Evidence,
    EvidenceGroup,
    ImageRef,
    Mode,
    Platform,
    ResolvedImage,
    RuleResult,
    ScanReport,
    SignatureOptions,
    Unchecked,
)
from imggate.policy.checks import reference_results
from imggate.policy.decision import REFERENCE_RULES, certain, decide
from imggate.registry.client import RegistryClient
from imggate.registry.deadline import Deadline
from imggate.registry.deadline import current as current_deadline
from imggate.registry.interface import Manifest
from imggate.registry.resolve import (
    describe_image,
    open_repository,
    pin_platform,
    read_config,
    top_manifest,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

CacheLayer = Literal["local", "redis", "miss", "none"]
#: Manifests kept between pinning a tag and evaluating its digest (the same review, or
#: reviews that joined it: an entry is taken by the first evaluation).
_TOPS_KEPT = 256
#: How long after the registry deadline a shared evaluation is cancelled outright.
_BACKSTOP = 0.5
#: References whose reference-rule answers are remembered (per rules hash).
_MEMO_ENTRIES = 10_000


@dataclass(slots=True)
class Progress:
    """What an image's evaluation is doing now: named in a deadline denial."""

    stage: str = "waiting to start"


class ImageOutcome(NamedTuple):
    """The decision about one image reference of a review (a named tuple: made for every
    image of every review, see :class:`~imggate.admission.review.ReviewRequest`)."""

    reference: str
    decision: Decision
    digest: str | None = None
    violations: tuple[tuple[str, str], ...] = ()
    warnings: tuple[tuple[str, str], ...] = ()
    error: str | None = None
    cache: CacheLayer = "none"
    pin: bool = False
    #: The ``namespaces.exempt_images`` glob that exempted the image (never checked, never
    #: pinned), or ``None``.
    exempt: str | None = None
    #: Until when (``time.monotonic()``) the same reference, under the same rules, gets this
    #: outcome without I/O: the expiry of the cache entries it was read from (infinity: the
    #: rules decided on the reference alone). 0: it needed the registry, or Redis.
    until: float = 0.0


@dataclass(frozen=True, slots=True)
class ReferenceVerdict:
    """What the rules say about an image reference alone, before any registry call."""

    #: The ``namespaces.exempt_images`` glob that exempts the image (nothing else applies).
    exempt: str | None = None
    #: ``/mutate`` will pin this tag to the digest it checks.
    pin: bool = False
    violations: tuple[tuple[str, str], ...] = ()
    warnings: tuple[tuple[str, str], ...] = ()
    #: The decision function's answer on the reference alone: a certain denial.
    denied: bool = False


@dataclass(frozen=True, slots=True)
class JudgeSettings:
    """How images are judged: registry access and signature options are the gate's."""

    signatures: SignatureOptions = field(default_factory=SignatureOptions)
    platform: Platform | None = None
    #: The longest one shared evaluation may run (the review deadline).
    deadline: float = 8.0
    #: A loaded Sigstore trusted root (``None``: the production one).
    root: object | None = None


def served_trust(root: object | None, signatures: SignatureOptions | None = None) -> str:
    """:func:`trust_hash` of the roots the server was given, else of the production root
    that ships with the installed sigstore package (an upgrade that changes it changes
    the key); ``""`` when neither can be read (then no keyless signature verifies).

    With ``signatures``, how they are verified and where they are looked up is part of it
    too when it is not the default (``--insecure-ignore-tlog``, ``--signature-repository``
    / ``COSIGN_REPOSITORY``): a verdict made under weaker or other verification is never a
    hit for a door (a webhook replica, ``audit --cluster --cache``) that verifies otherwise.
    """
    base = _roots_trust(root)
    how = []
    if signatures is not None:
        if signatures.ignore_tlog:
            how.append("insecure-ignore-tlog")
        if signatures.signature_repository:
            how.append(f"signature-repository={signatures.signature_repository}")
        if signatures.accept_platform_signatures:
            how.append("accept-platform-signatures")
    if not how:
        return base
    return trust_hash([base.encode(), *(h.encode() for h in how)])


def _roots_trust(root: object | None) -> str:
    from imggate.errors import ConfigError
    from imggate.signatures.trustroot import production_trusted_root_path

    roots = given_roots(root)
    if roots:
        return trust_hash([r.raw for r in roots])
    try:
        return trust_hash([production_trusted_root_path().read_bytes()])
    except (ConfigError, OSError):
        return ""


class SingleFlight(Generic[T]):
    """At most one running task per key; later callers join the running one."""

    def __init__(self) -> None:
        self._running: dict[str, tuple[asyncio.Task[T], Progress]] = {}

    def start(self, key: str, factory: Callable[[Progress], Awaitable[T]]
              ) -> tuple[asyncio.Task[T], Progress, bool]:
        """(task, its progress, whether it was already running)."""
        running = self._running.get(key)
        if running is not None:
            return running[0], running[1], True
        progress = Progress()
        task: asyncio.Task[T] = asyncio.ensure_future(factory(progress))
        self._running[key] = (task, progress)

        def done(t: asyncio.Task[T]) -> None:
            if self._running.get(key, (None,))[0] is t:
                del self._running[key]
            if not t.cancelled():
                t.exception()  # retrieved here: a joiner may have given up waiting

        task.add_done_callback(done)
        return task, progress, False


def _pairs(results: Sequence[RuleResult], mode: Mode, failed: bool = True
           ) -> tuple[tuple[str, str], ...]:
    return tuple((r.rule, r.messages[0] if r.messages else "failed") for r in results
                 if r.passed is not failed and r.mode is mode)


class Judge:
    """Decides single images for reviews, sharing caches and in-flight work between them."""

    def __init__(self, client: RegistryClient, cache: AdmissionCache, metrics: Metrics,
                 sources: Sequence[EvidenceSource] = (),
                 settings: JudgeSettings | None = None) -> None:
        self.client = client
        self.cache = cache
        self.metrics = metrics
        self.sources = tuple(sources)
        self.settings = settings or JudgeSettings()
        self._verdicts: SingleFlight[CachedVerdict] = SingleFlight()
        self._tags: SingleFlight[str] = SingleFlight()
        #: Manifests fetched to pin a tag, until the evaluation of that digest (by the same
        #: credentials) starts: it has them already (bytes verified against the digest).
        self._tops: OrderedDict[tuple[str, str, str], Manifest] = OrderedDict()
        self._memo: dict[tuple[str, str, bool], ReferenceVerdict] = {}
        self._memo_hash = ""
        #: The trust roots' part of every verdict key (computed once: roots are read once).
        self.trust = served_trust(self.settings.root, self.settings.signatures)

    def _by_reference(self, text: str, ref: ImageRef, policies: PolicySet, env: str,
                      mutate: bool) -> ReferenceVerdict:
        """What the rules say about the reference alone, remembered per rules hash.

        A pure function of (rules, environment, reference, endpoint), asked on every
        review: remembering it is most of a warm review's cost saved. The denials are
        part of what is remembered, so a remembered answer never skips one."""
        if self._memo_hash != policies.hash:
            self._memo.clear()
            self._memo_hash = policies.hash
        key = (env, text, mutate)
        found = self._memo.get(key)
        if found is not None:
            return found
        exempt = policies.exempt_image(ref)
        if exempt is not None:
            found = ReferenceVerdict(exempt=exempt)
        else:
            rules = policies.environments[env].rules.for_image(ref).rules
            pin = mutate and rules.mutate is not False and ref.digest is None
            by_ref = reference_results(ref, rules, pinning=pin)
            found = ReferenceVerdict(None, pin, _pairs(by_ref, Mode.ENFORCE),
                                     _pairs(by_ref, Mode.WARN),
                                     denied=decide(by_ref) is Decision.DENY)
        if len(self._memo) >= _MEMO_ENTRIES:
            self._memo.clear()  # many distinct references: start over rather than grow
        self._memo[key] = found
        return found

    def _final(self, text: str, cached: CachedVerdict, layer: CacheLayer, pin: bool,
               ref_warnings: tuple[tuple[str, str], ...], until: float = 0.0) -> ImageOutcome:
        # A denial is a denial whatever it lists (CachedVerdict also refuses the mix).
        denied = cached.decision == "deny" or bool(cached.violations)
        decision = Decision.DENY if denied else Decision.ALLOW
        return ImageOutcome(text, decision, cached.digest, cached.violations,
                            ref_warnings + cached.warnings, cache=layer,
                            pin=pin and decision is Decision.ALLOW, until=until)

    @staticmethod
    def _by_reference_alone(text: str, by_ref: ReferenceVerdict) -> ImageOutcome | None:
        """The outcome when the reference decides it (exempt, or a reference rule denies),
        with no registry call; ``None``: the image must be looked at."""
        if by_ref.exempt is not None:
            return ImageOutcome(text, Decision.ALLOW, exempt=by_ref.exempt, until=math.inf)
        if by_ref.denied:
            return ImageOutcome(text, Decision.DENY, None, by_ref.violations, by_ref.warnings,
                                until=math.inf)
        return None

    def quick(self, text: str, ref: ImageRef, policies: PolicySet, env: str, *,
              mutate: bool) -> ImageOutcome | None:
        """The decision when it needs no I/O (exempt images, reference rules, or both caches'
        local layer); ``None``: :meth:`judge` must run. :meth:`judge`'s answer, without a task."""
        by_ref = self._by_reference(text, ref, policies, env, mutate)
        decided = self._by_reference_alone(text, by_ref)
        if decided is not None:
            return decided
        pin, warnings = by_ref.pin, by_ref.warnings
        until = math.inf
        if ref.digest is not None:
            digest = str(ref.digest)
        else:
            tag = self.cache.local_tag(tag_key(ref.name, ref.tag or "latest"))
            if tag is None:
                return None
            digest, until = tag
        found = self.cache.local_verdict(verdict_key(digest, ref.name, policies.hash, env,
                                                     self.trust))
        if found is None:
            return None
        cached, expires = found
        if ref.digest is None:
            self.metrics.cache.inc("tag", "local", "hit")
        self.metrics.cache.inc("verdict", "local", "hit")
        return self._final(text, cached, "local", pin, warnings, min(until, expires))

    async def judge(self, text: str, ref: ImageRef, policies: PolicySet, env: str, *,
                    mutate: bool, dry_run: bool, progress: Progress,
                    access: RegistryAccess | None = None) -> ImageOutcome:
        """Decide ``ref`` (given as ``text``) in ``env``, reading the registry through
        ``access`` (default: this judge's client); never raises an imggate error."""
        access = access or RegistryAccess(self.client)
        # In-flight work is joined only by reviews holding the same credentials: a pod
        # must neither borrow another's credentials nor fail for another's lack of them.
        flight = f"|{access.key}" if access.key else ""
        by_ref = self._by_reference(text, ref, policies, env, mutate)
        decided = self._by_reference_alone(text, by_ref)
        if decided is not None:
            return decided
        env_policy = policies.environments[env]
        pin, ref_warnings = by_ref.pin, by_ref.warnings
        try:
            progress.stage = f"resolving the tag of {text}"
            digest, _ = await self._digest(ref, progress, access.client, flight)
            progress.stage = f"checking {text}"
            key = verdict_key(str(digest), ref.name, policies.hash, env, self.trust)
            hit = await self.cache.verdict(key)
            layer: CacheLayer
            if hit is not None:
                cached, layer = hit
                self.metrics.cache.inc("verdict", layer, "hit")
            else:
                self.metrics.cache.inc("verdict", "all", "miss")
                layer = "miss"
                top = self._tops.pop((flight, ref.name, str(digest)), None)
                task, shared, joined = self._verdicts.start(
                    key.id + flight, lambda p: self._evaluate(
                        text, ref.with_digest(digest), env_policy, policies, key, dry_run, p,
                        access.client, top))
                if joined:
                    self.metrics.shared_resolutions.inc()
                progress.stage = shared.stage
                try:
                    cached = await asyncio.shield(task)
                finally:
                    progress.stage = shared.stage
        except AuthError as e:
            retry = access.fallback_for(ref.registry)
            if retry is not None:
                # The pod's credentials were refused: the mounted ones next, as the kubelet
                # tries the node's (its own explanation then says both).
                return await self.judge(text, ref, policies, env, mutate=mutate,
                                        dry_run=dry_run, progress=progress, access=retry)
            said = access.explain(ref.registry)
            return ImageOutcome(text, Decision.ERROR, None, (), ref_warnings,
                                error=f"{e.message} ({said})" if said else e.message)
        except Error as e:
            return ImageOutcome(text, Decision.ERROR, None, (), ref_warnings,
                                error=e.message)
        return self._final(text, cached, layer, pin, ref_warnings)

    async def _digest(self, ref: ImageRef, progress: Progress, client: RegistryClient,
                      flight: str = "") -> tuple[Digest, bool]:
        """The digest ``ref`` names (a tag: cached briefly, else asked once per tag at a time)."""
        if ref.digest is not None:
            return ref.digest, False
        tag = ref.tag or "latest"
        key = tag_key(ref.name, tag)
        hit = await self.cache.tag(key)
        if hit is not None:
            self.metrics.cache.inc("tag", hit[1], "hit")
            return Digest.parse(hit[0]), False
        self.metrics.cache.inc("tag", "all", "miss")

        async def lookup(p: Progress) -> str:
            p.stage = f"resolving {ref} in the registry"
            self.metrics.child(self.metrics.registry_ops, "resolve").inc()
            repo = open_repository(ref, client)
            try:
                with self._registry_deadline().applied():
                    top = await asyncio.wait_for(repo.resolve(tag),
                                                 self.settings.deadline + _BACKSTOP)
                    image = await describe_image(repo, ref, top, details=False)
            except Error:
                self.metrics.child(self.metrics.registry_errors, "resolve").inc()
                raise
            self._tops[(flight, ref.name, str(image.digest))] = top
            while len(self._tops) > _TOPS_KEPT:
                self._tops.popitem(last=False)
            await self.cache.put_tag(key, str(image.digest))
            return str(image.digest)

        task, shared, _ = self._tags.start(key.id + flight, lookup)
        progress.stage = shared.stage
        try:
            return Digest.parse(await asyncio.shield(task)), True
        except TimeoutError:
            raise Error(f"resolving {ref} took longer than {self.settings.deadline:g}s") from None

    def _registry_deadline(self) -> Deadline:
        """When this task's registry requests must end: ``settings.deadline`` from now, or
        the review's own registry deadline (applied by the reviewer) when that is sooner.

        Cutting the requests off a moment before the review's answer is due lets the
        evaluation finish with what it found: a violation found before a fetch timed out
        is still a denial (:func:`imggate.policy.decision.decide`), not "timed out"."""
        own = Deadline.after(self.settings.deadline)
        review = current_deadline()
        return review if review.at < own.at else own

    async def _evaluate(self, text: str, ref: ImageRef, env_policy: EnvPolicy,
                        policies: PolicySet, key: VerdictKey, dry_run: bool,
                        progress: Progress, client: RegistryClient,
                        top: Manifest | None = None) -> CachedVerdict:
        # Every registry request of this evaluation ends by the deadline (the registry
        # client's own budget, so its error says which request); wait_for is the backstop.
        with self._registry_deadline().applied():
            try:
                return await asyncio.wait_for(
                    self._gather_and_decide(text, ref, env_policy, policies, key, dry_run,
                                            progress, client, top),
                    self.settings.deadline + _BACKSTOP)
            except TimeoutError:
                raise Error(f"{progress.stage} took longer than "
                            f"{self.settings.deadline:g}s") from None

    async def _evidence(self, text: str, ref: ImageRef, image: ResolvedImage,
                        env_policy: EnvPolicy, policies: PolicySet, now: datetime,
                        progress: Progress, client: RegistryClient) -> Evidence:
        """The evidence about ``image`` (pinned; its config may still be being read): the
        sources' reports, then signatures and attestations; what could not be read is in
        its errors."""
        progress.stage = f"reading scanner evidence for {text}"
        reports: list[ScanReport] = []
        errors: list[Unchecked] = []
        for source in self.sources:  # local files today: quick, and before the registry work
            try:
                reports += await source.reports_for(image, client)
            except Error as e:
                errors.append(Unchecked(e.message, frozenset({EvidenceGroup.SCANNER})))
        if env_policy.rules.trust(ref).needed:
            self.metrics.child(self.metrics.registry_ops, "signatures").inc()
        progress.stage = f"fetching and verifying signatures and attestations of {text}"
        request = CheckRequest(references=(text,), refs=(ref,), policy=env_policy.policy,
                               now=now, platform=self.settings.platform,
                               signatures=self.settings.signatures)
        # The gate's own evidence step: signatures, attestations and signed vuln
        # attestations, exactly as `imggate check` gathers them.
        evidence = await image_evidence(request, client, text, ref, image,
                                        bind_reports(reports, [image])[0], policies.keys,
                                        self.settings.root)
        if errors or evidence.errors:
            self.metrics.child(self.metrics.registry_errors, "evidence").inc()
            evidence = values.replace(evidence, errors=(*errors, *evidence.errors))
        return evidence

    async def _gather_and_decide(self, text: str, ref: ImageRef, env_policy: EnvPolicy,
                                 policies: PolicySet, key: VerdictKey, dry_run: bool,
                                 progress: Progress, client: RegistryClient,
                                 top: Manifest | None) -> CachedVerdict:
        """``top``: the image's top-level manifest when pinning its tag fetched it."""
        from imggate.policy.engine import evaluate

        resolving = f"resolving {ref} in the registry"
        progress.stage = resolving
        self.metrics.child(self.metrics.registry_ops, "resolve").inc()
        repo = open_repository(ref, client)
        platform = self.settings.platform
        try:
            pinned, manifest = await pin_platform(
                repo, ref, top if top is not None else await top_manifest(repo, ref), platform)
        except Error:
            self.metrics.child(self.metrics.registry_errors, "resolve").inc()
            raise
        # The config is read while the signatures, attestations and reports are looked up:
        # they need only the image's digests. A cold review waits for one round trip to
        # the registry fewer: three instead of four (a registry 20 ms away: p50 ~135 ->
        # ~111 ms). A config that cannot be read (or names another platform) fails the
        # review as soon as it is known, the lookups stopped, as when it was read first:
        # a registry that fails the config and stalls the lookups does not hold the
        # review (and its in-flight slot) until the deadline.
        now = datetime.now(UTC)
        described = asyncio.ensure_future(read_config(repo, pinned, manifest, platform))
        gathering = asyncio.ensure_future(self._evidence(text, ref, pinned, env_policy,
                                                         policies, now, progress, client))
        try:
            await asyncio.wait((described, gathering), return_when=asyncio.FIRST_COMPLETED)
            if not described.done():  # the lookups ended first: the config is waited for
                progress.stage = resolving  # (what a deadline error then names)
                await asyncio.wait((described,))
            try:
                image = described.result()
            except Error:
                self.metrics.child(self.metrics.registry_errors, "resolve").inc()
                raise
            evidence = await gathering
        finally:
            settle(described)
            settle(gathering)
        evidence = values.replace(evidence, image=image)
        # Signed OpenVEX beside the image (exceptions.vex_attestations), as check reads it.
        evidence, exceptions = with_attested_vex(env_policy.policy, evidence, now)
        verdict = evaluate(evidence, env_policy.rules, exceptions=exceptions,
                           now=now, kev=env_policy.kev)
        # The reference rules were decided before any registry call (by this review's
        # endpoint: /mutate's pin satisfies digest pinning); the rest decides here.
        rules = [r for r in verdict.rules if r.rule not in REFERENCE_RULES]
        if decide(rules, evidence.errors) is Decision.ERROR:
            raise Error(verdict.error or "could not decide")  # never cached
        if evidence.errors:
            # Denied by what was found, with some evidence unread: only the certain
            # violations are said, then what was not checked; a later review may read
            # more, so this is not cached.
            violations = tuple((r.rule, r.messages[0] if r.messages else "failed")
                               for r in rules if certain(r, evidence.errors))
            unread = (("not checked", verdict.error or "evidence could not be read"),)
            return CachedVerdict("deny", str(image.digest), violations,
                                 _pairs(rules, Mode.WARN) + unread)
        violations = _pairs(rules, Mode.ENFORCE)
        cached = CachedVerdict("deny" if violations else "allow", str(image.digest),
                               violations, _pairs(rules, Mode.WARN), passed_rules(rules))
        if not dry_run:
            await self.cache.put_verdict(key, cached)
        return cached


