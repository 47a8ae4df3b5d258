"""``imggate audit --cluster``: what the cluster runs now, judged as the gate judges it.

The steps:

1. **Read** every pod (or those of ``--namespace``) through the API a page at a
   time (:mod:`imggate.audit.pods`), keeping one small row per container.
2. **Map** each namespace to its environment exactly as the webhook does
   (:meth:`~imggate.admission.policies.PolicySet.env_for_namespace`: exempt,
   ``namespaces.map``, names and aliases, then ``--env``; else *unmapped*,
   denied saying so). An image matching ``namespaces.exempt_images`` is skipped.
3. **Name what runs**: a started container's evidence is that of the digest the
   kubelet pulled (``imageID``), named ``repo:tag@digest`` with the spec's tag;
   the rules about the reference apply to the spec as written, as the webhook
   applied them (a tag-only spec is not pinned by what the kubelet reports). A
   container not yet started is judged by its spec's reference, as the webhook
   would. A spec pinned to a digest other than the one running is an
   ``image-drift`` finding of its own.
4. **Resolve** each distinct image once for the whole audit (``repo@digest``, or
   the reference of a container not started), concurrently and bounded.
5. **Judge** each distinct (reference, environment) once: the gate's evidence
   step (:func:`imggate.gate.gather`, signatures looked up once across
   environments) and the one decision function (:func:`imggate.gate.decide`,
   :func:`imggate.policy.engine.evaluate`), with today's date and rules; or,
   with ``--cache``, from the verdict cache shared with the webhook
   (:mod:`imggate.audit.shared_cache`), the reference rules applied again.

Nothing is dropped: a container whose image cannot be checked carries an
``error`` verdict; one whose reference does not parse too. The
result is one :class:`ContainerResult` per container, and a combined
:class:`~imggate.models.Verdict` of the distinct images for the usual reports.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from sys import intern
from typing import TYPE_CHECKING, Any

from imggate.audit.pods import DEFAULT_PAGE, ContainerRow, KubeSource
from imggate.audit.shared_cache import (
    HIT_NOTE,
    CacheStats,
    SharedCache,
    VerdictCache,
    hit_verdict,
)
from imggate.errors import Error, InvalidReference
from imggate.gate import SignatureOptions
from imggate.models import (
    Decision,
    Evidence,
    ImageRef,
    ImageVerdict,
    Mode,
    ResolvedImage,
    RuleResult,
    RunInfo,
    Unchecked,
    Verdict,
)
from imggate.registry.client import RegistryOptions
from imggate.registry.deadline import Deadline
from imggate.registry.pod_secrets import PodPullSecrets

if TYPE_CHECKING:
    from imggate.admission.cache import CachedVerdict
    from imggate.admission.policies import PolicySet
    from imggate.gate import CheckRequest

#: The rule of the namespace decision (an exempt or unmapped namespace), as ``check -f``.
NAMESPACE_RULE = "namespace"
#: The rule of a spec pinned to one digest while another runs.
DRIFT_RULE = "image-drift"
#: The rule of a container whose reference cannot be judged at all.
REFERENCE_RULE = "reference"
EXEMPT_ENV = "(exempt)"
UNMAPPED_ENV = "(unmapped)"

#: ``progress(phase, done, total)``: called as work completes.
Progress = Callable[[str, int, int], None]


def _nothing(phase: str, done: int, total: int) -> None:
    """The default progress callback."""


@dataclass(frozen=True, slots=True)
class ClusterRequest:
    """One cluster audit: where the API is, the rules, and the bounds."""

    policies: PolicySet
    now: datetime
    registry: RegistryOptions
    source: KubeSource = field(default_factory=KubeSource)
    namespaces: tuple[str, ...] = ()
    concurrency: int = 16
    #: Bounds every registry request of the audit (``--deadline``).
    deadline: Deadline | None = None
    #: Seconds the whole audit may take, API listing included (``--total-deadline``).
    total: float | None = None
    signatures: SignatureOptions = field(default_factory=SignatureOptions)
    page: int = DEFAULT_PAGE
    #: The verdict cache shared with the webhook (``--cache``, ``--cache-key-file``,
    #: ``--fresh``); ``None``: none.
    cache: SharedCache | None = None
    #: Read each pod's pull secrets (and its service account's) for its registries, as the
    #: kubelet pulls with them; ``False``: the docker config's credentials only.
    pull_secrets: bool = True


@dataclass(frozen=True, slots=True)
class ContainerResult:
    """One container's outcome: the verdict of what it runs, and the drift finding."""

    row: ContainerRow
    env: str
    #: How the namespace got ``env`` (``namespaces.map[0] 'shop-*'``...).
    mapped_by: str
    #: The reference judged: ``repo:tag@running-digest``, or the spec's reference.
    judged: str
    verdict: ImageVerdict
    drift: RuleResult | None = None

    @property
    def decision(self) -> Decision:
        """The container's decision: the image's, and denied when its spec drifted."""
        from imggate.policy.decision import decide, run_decision

        if self.drift is None:
            return self.verdict.decision
        return run_decision([self.verdict.decision, decide([self.drift])])

    @property
    def digest(self) -> str | None:
        """The digest judged (the running one when the container started)."""
        image = self.verdict.image
        if image is not None:
            return str(image.digest)
        if HIT_NOTE in self.verdict.notes:
            return self.judged.rpartition("@")[2]  # a hit is about the running digest
        return None


@dataclass(frozen=True, slots=True)
class ClusterResult:
    """Every container's result, the combined verdict, and what the run cost."""

    results: tuple[ContainerResult, ...]
    verdict: Verdict
    #: Every namespace a pod was read in (reports are written for these).
    namespaces: tuple[str, ...]
    pods: int
    #: Registry resolutions made (one per distinct image is the goal).
    resolutions: int
    distinct_images: int
    #: What the shared verdict cache did (``None``: no ``--cache``).
    cache: CacheStats | None = None

    @property
    def decision(self) -> Decision:
        """Denied if any container is, else error if any could not be decided."""
        from imggate.policy.decision import run_decision

        if not self.results:
            return Decision.ALLOW  # an empty cluster: nothing runs, nothing to deny
        return run_decision(r.decision for r in self.results)

    @property
    def exit_code(self) -> int:
        """As ``check``: 0 allowed, 1 denied, 3 undecided."""
        from imggate.models import EXIT_CODES

        return EXIT_CODES[self.decision]


@dataclass(frozen=True, slots=True)
class _Planned:
    """A container with its environment and the reference to judge (or why none)."""

    row: ContainerRow
    env: str
    mapped_by: str
    judged: ImageRef | None
    why: str | None = None
    drift: RuleResult | None = None
    #: The reference as the spec writes it (the reference rules apply to it).
    spec: ImageRef | None = None
    exempt_by: str | None = None
    #: The fingerprint of the pod's pull credentials (``""``: none; the docker config's).
    creds: str = ""


def _parse(text: str) -> ImageRef:
    from imggate.registry.reference import parse_reference

    ref = parse_reference(text)
    if ref.source != "registry":
        raise InvalidReference(f"{text[:80]!r} is not a registry image")
    return ref


@functools.lru_cache(maxsize=16384)
def _naming(image: str, running: str | None
            ) -> tuple[ImageRef, ImageRef, RuleResult | None] | str:
    """``(spec, judged, drift)`` for a spec image and the digest running, or why the spec
    cannot be read. Many pods run the same image: each pair is parsed once and its answer
    (frozen values) shared by every container that names it."""
    try:
        spec = _parse(image)
    except InvalidReference as e:
        return f"the pod's image reference cannot be read: {e.message}"
    judged = spec
    drift = None
    if running is not None:
        try:
            ran: ImageRef | None = _parse(running)
        except InvalidReference:
            ran = None
        if ran is not None and ran.digest is not None:
            tag = spec.tag if ran.name == spec.name else None
            judged = dataclasses.replace(ran, tag=tag)
            if spec.digest is not None and spec.digest != ran.digest:
                drift = RuleResult(DRIFT_RULE, False, Mode.ENFORCE, (
                    f"the spec pins {spec.digest} but the kubelet runs {ran.digest}",))
    return spec, judged, drift


@functools.lru_cache(maxsize=16384)
def _text(ref: ImageRef) -> str:
    """``str(ref)``, made once per distinct reference and shared."""
    return intern(str(ref))


def plan_row(policies: PolicySet, row: ContainerRow) -> _Planned:
    """Which environment, which reference, and whether the spec drifted."""
    mapping = policies.env_for_namespace(row.namespace)
    named = _naming(row.image, row.running)
    if isinstance(named, str):
        return _Planned(row, mapping.env or UNMAPPED_ENV, mapping.by, None, named)
    spec, judged, drift = named
    if mapping.exempt:
        return _Planned(row, EXEMPT_ENV, mapping.describe(), judged, drift=drift,
                        exempt_by=mapping.describe())
    exempt = policies.exempt_image(spec)
    if exempt is not None:
        return _Planned(row, EXEMPT_ENV, f"namespaces.exempt_images {exempt!r}", judged,
                        drift=drift, exempt_by=f"{row.image} matches namespaces.exempt_images "
                                               f"{exempt!r}")
    if mapping.unmapped or mapping.env is None:
        return _Planned(row, UNMAPPED_ENV, mapping.describe(), judged, drift=drift)
    return _Planned(row, mapping.env, mapping.by, judged, drift=drift, spec=spec)


def _fixed_verdict(p: _Planned) -> ImageVerdict:
    """The verdict of a container the gate does not judge: exempt, unmapped or unreadable."""
    from imggate.policy.decision import decide

    reference = str(p.judged) if p.judged is not None else p.row.image
    if p.env == EXEMPT_ENV:
        rule = RuleResult(NAMESPACE_RULE, True, Mode.ENFORCE, (p.exempt_by or p.mapped_by,))
        return ImageVerdict(reference=reference, env=EXEMPT_ENV, decision=decide([rule]),
                            rules=(rule,), notes=(f"not checked: {p.exempt_by}",))
    if p.judged is None or p.why is not None:
        why = p.why or "the image reference cannot be read"
        unchecked = (Unchecked(why),)
        return ImageVerdict(reference=reference, env=p.env, decision=decide([], unchecked),
                            error=why)
    rule = RuleResult(NAMESPACE_RULE, False, Mode.ENFORCE, (p.mapped_by,))
    return ImageVerdict(reference=reference, env=UNMAPPED_ENV, decision=decide([rule]),
                        rules=(rule,))


def _resolution_key(ref: ImageRef) -> ImageRef:
    """What one registry resolution answers for: ``repo@digest`` (every tag and environment
    of that image), else the reference itself."""
    if ref.digest is not None:
        return ImageRef(ref.registry, ref.repository, None, ref.digest)
    return ref


def _gated(p: _Planned) -> bool:
    return p.judged is not None and p.why is None and p.env not in (EXEMPT_ENV, UNMAPPED_ENV)


def _with_spec_rules(iv: ImageVerdict, spec: ImageRef, check: CheckRequest,
                     unchecked: tuple[Unchecked, ...]) -> ImageVerdict:
    """``iv`` (the evidence of what runs) with the rules about the reference applied to
    the spec as written, as the webhook applied them: a tag-only spec is not pinned
    however precisely the kubelet reports what it pulled."""
    from imggate.policy.checks import reference_results
    from imggate.policy.decision import REFERENCE_RULES, decide

    by_ref = reference_results(spec, check.policy.rules.for_image(spec).rules)
    rules = (*by_ref, *(r for r in iv.rules if r.rule not in REFERENCE_RULES))
    return dataclasses.replace(iv, rules=rules, decision=decide(rules, unchecked))


def _unchecked(ev: Evidence) -> tuple[Unchecked, ...]:
    """What could not be checked, as :func:`imggate.policy.engine.evaluate` counts it."""
    if ev.image is None and not ev.errors:
        return (Unchecked("the image was not resolved to a digest"),)
    return ev.errors


async def _judge(req: ClusterRequest, planned: list[_Planned],
                 credentials: Mapping[str, PodPullSecrets], progress: Progress,
                 cache: VerdictCache | None = None
                 ) -> tuple[dict[tuple[str, str, str], ImageVerdict], int]:
    """Each distinct (environment, spec, what runs) judged; the resolutions made.

    The evidence of what runs is gathered once per (environment, reference judged),
    or read from the shared verdict cache; the rules about the reference are applied to
    each spec. An image is read with the pull credentials of the first pod found running
    it (the docker config's where that pod has none for its registry), as the webhook's
    verdict cache shares a verdict between pods: it is about the image, whoever asked.
    """
    from imggate.gate import NOT_FETCHED, CheckRequest, denied_by_reference, gather
    from imggate.gate import decide as decide_all
    from imggate.registry.client import RegistryClient
    from imggate.registry.memo import SharedAnswers
    from imggate.registry.pull_secrets import PullSecretCredentials
    from imggate.registry.resolve import open_repository, resolve_image

    # (env, spec text, judged text) -> (spec, judged, credentials of the first pod).
    combos: dict[tuple[str, str, str], tuple[ImageRef, ImageRef, str]] = {}
    for p in planned:
        if _gated(p):
            assert p.judged is not None
            spec = p.spec or p.judged
            combos.setdefault((p.env, _text(spec), _text(p.judged)), (spec, p.judged, p.creds))
    options = {"": req.registry}
    for fp, secrets in credentials.items():
        if fp and fp not in options:
            options[fp] = dataclasses.replace(req.registry, credentials=PullSecretCredentials(
                secrets.found, req.registry.credentials))
    envs = dict.fromkeys(env for env, _, _ in combos)
    checks = {env: CheckRequest(references=(), refs=(),
                                policy=req.policies.environments[env].policy, now=req.now,
                                registry=req.registry, concurrency=req.concurrency,
                                deadline=req.deadline, signatures=req.signatures)
              for env in envs}
    # A spec that its environment's rules deny by themselves is not fetched (as check -f
    # and the webhook do): the registry cannot change that decision.
    denied = {c for c, (spec, _, _) in combos.items() if denied_by_reference(checks[c[0]], spec)}
    # The evidence wanted: (env, judged text) -> (judged, credentials).
    units: dict[tuple[str, str], tuple[ImageRef, str]] = {}
    for c, (_, running, fp) in combos.items():
        if c not in denied:
            units.setdefault((c[0], c[2]), (running, fp))
    hits: dict[tuple[str, str], CachedVerdict] = {}
    if cache is not None:
        for (env, text), (ref, _) in units.items():
            if ref.digest is not None:
                found = await cache.get(env, ref.name, str(ref.digest))
                if found is not None:
                    hits[(env, text)] = found
    wanted: dict[tuple[str, ImageRef], None] = {}
    for unit, (ref, fp) in units.items():
        if unit not in hits:
            wanted.setdefault((fp, _resolution_key(ref)))
    resolved: dict[tuple[str, ImageRef], ResolvedImage | Error] = {}
    sem = asyncio.Semaphore(req.concurrency)
    async with RegistryClient(req.registry, deadline=req.deadline) as base:
        # One connection pool; each credential set its own client (and token cache), as
        # the webhook's access pool does.
        clients = {fp: base if fp == "" else base.with_credentials(options[fp].credentials)
                   for fp in options}

        async def resolve(key: tuple[str, ImageRef]) -> None:
            async with sem:
                try:
                    resolved[key] = await resolve_image(
                        open_repository(key[1], clients[key[0]]), key[1])
                except Error as e:
                    resolved[key] = e
            progress("resolve", len(resolved), len(wanted))

        await asyncio.gather(*(resolve(k) for k in wanted))
    pinned: dict[tuple[str, str], ResolvedImage] = {}
    if cache is not None:
        # A tag (a container not started) is looked up once the registry has named its digest.
        for unit, (ref, fp) in units.items():
            image = resolved.get((fp, _resolution_key(ref)))
            if unit not in hits and ref.digest is None and isinstance(image, ResolvedImage):
                found = await cache.get(unit[0], ref.name, str(image.digest))
                if found is not None:
                    hits[unit] = found
                    pinned[unit] = image
    shared = SharedAnswers()
    out: dict[tuple[str, str, str], ImageVerdict] = {}
    # (env, judged text) -> the verdict of the evidence, and what could not be checked.
    judged: dict[tuple[str, str], tuple[ImageVerdict, tuple[Unchecked, ...]]] = {}
    for unit, found in hits.items():
        judged[unit] = (hit_verdict(found, unit[1], unit[0], pinned.get(unit)), ())
    for env in envs:
        check = checks[env]
        ready: dict[str, list[tuple[str, ImageRef, ResolvedImage]]] = {}
        evidence: dict[str, Evidence] = {}
        for (u_env, text), (ref, fp) in units.items():
            if u_env != env or (env, text) in hits:
                continue
            image = resolved[(fp, _resolution_key(ref))]
            if isinstance(image, Error):
                evidence[text] = Evidence(text, ref, None, errors=(Unchecked(image.message),))
            else:
                ready.setdefault(fp, []).append((text, ref, dataclasses.replace(
                    image, ref=ref.with_digest(image.digest))))
        done = 0
        for fp, items in ready.items():
            sub = dataclasses.replace(check, references=tuple(t for t, _, _ in items),
                                      refs=tuple(r for _, r, _ in items), registry=options[fp])

            def advance(n: int, env: str = env, base: int = done,
                        total: int = sum(map(len, ready.values()))) -> None:
                progress(f"check {env}", base + n, total)

            gathered = await gather(sub, progress=advance, resolved=[i for _, _, i in items],
                                    shared=shared)
            done += len(items)
            for (text, _, _), ev in zip(items, gathered, strict=True):
                evidence[text] = ev
        # The specs denied by the reference alone: nothing fetched, as check -f says it.
        refused = {c: Evidence(c[2], spec, None, errors=(Unchecked(NOT_FETCHED),))
                   for c, (spec, _, _) in combos.items() if c[0] == env and c in denied}
        found_all = [*evidence.values(), *refused.values()]
        verdict = decide_all(dataclasses.replace(
            check, references=tuple(e.reference for e in found_all),
            refs=tuple(e.ref for e in found_all)), found_all)
        for (text, ev), iv in zip(evidence.items(), verdict.images[:len(evidence)],
                                  strict=True):
            judged[(env, text)] = (iv, _unchecked(ev))
            if cache is not None:
                await cache.put(env, units[(env, text)][0].name, iv, _unchecked(ev))
        out.update(zip(refused, verdict.images[len(evidence):], strict=True))
    for c, (spec, ref, _) in combos.items():
        if c in denied:
            continue
        env, _, text = c
        iv, unchecked = judged[(env, text)]
        out[c] = iv if spec is ref and (env, text) not in hits else _with_spec_rules(
            iv, spec, checks[env], unchecked)
    return out, len(wanted)


async def _read(req: ClusterRequest, client: Any, progress: Progress
                ) -> tuple[list[_Planned], int, tuple[str, ...]]:
    from imggate.audit.pods import list_pods

    planned: list[_Planned] = []
    pods = 0
    last: tuple[str, str] | None = None
    namespaces: dict[str, None] = {}
    async for page in list_pods(client, req.namespaces, page=req.page):
        for row in page:
            # A pod's containers come together (pod_rows reads one pod at a time).
            if (row.namespace, row.pod) != last:
                pods += 1
                last = (row.namespace, row.pod)
            namespaces.setdefault(row.namespace)
            planned.append(plan_row(req.policies, row))
        progress("list", pods, pods)
    # Namespaces asked for by name get a report even when no pod runs there (it empties).
    for ns in req.namespaces:
        namespaces.setdefault(ns)
    return planned, pods, tuple(namespaces)


async def _pull_credentials(client: Any, planned: list[_Planned]
                            ) -> tuple[list[_Planned], dict[str, PodPullSecrets]]:
    """Each gated pod's pull credentials, read once per (namespace, service account,
    secrets); a pod whose secrets cannot be read cannot be judged (error, saying which)."""
    from imggate.registry.pull_secrets import PullSecretError, PullSecretReader

    reader = PullSecretReader(client)
    read: dict[tuple[str, str, tuple[str, ...]], PodPullSecrets | PullSecretError] = {}
    found: dict[str, PodPullSecrets] = {}
    out = []
    for p in planned:
        if p.judged is None or p.why is not None or p.env in (EXEMPT_ENV, UNMAPPED_ENV):
            out.append(p)
            continue
        key = (p.row.namespace, p.row.account, p.row.pull_secrets)
        if key not in read:
            spec = {"serviceAccountName": p.row.account,
                    "imagePullSecrets": [{"name": n} for n in p.row.pull_secrets]}
            try:
                read[key] = await reader.read_pod(p.row.namespace, spec)
            except PullSecretError as e:
                read[key] = e
        got = read[key]
        if isinstance(got, PullSecretError):
            out.append(dataclasses.replace(p, why=f"pull secrets: {got.message}"))
            continue
        found.setdefault(got.fingerprint, got)
        out.append(dataclasses.replace(p, creds=got.fingerprint))
    return out, found


async def _audit(req: ClusterRequest, progress: Progress) -> ClusterResult:
    from imggate.audit.pods import open_client

    client = open_client(req.source)
    try:
        planned, pods, namespaces = await _read(req, client, progress)
        credentials: dict[str, PodPullSecrets] = {}
        if req.pull_secrets:
            planned, credentials = await _pull_credentials(client, planned)
    finally:
        await client.close()
    cache = None
    if req.cache is not None:
        cache = VerdictCache(req.cache, req.policies.hash)
    try:
        judged, resolutions = await _judge(req, planned, credentials, progress, cache)
    finally:
        if cache is not None:
            await cache.close()
    results = []
    distinct: dict[tuple[str, str], ImageVerdict] = {}
    for (env, spec_text, text), iv in judged.items():
        # The same image run under another spec (a tag, a digest) has its own verdict.
        distinct[(env, text) if (env, text) not in distinct else
                 (env, f"{spec_text} running {text}")] = iv
    drifted: list[ImageVerdict] = []
    envs = dict.fromkeys(p.env for p in planned)
    # Each plan is dropped as its result is made: the two never both exist for every pod.
    planned.reverse()
    while planned:
        p = planned.pop()
        text = _text(p.judged) if p.judged is not None else p.row.image
        spec = _text(p.spec) if p.spec is not None else text
        found = None if p.why is not None else judged.get((p.env, spec, text))
        if found is not None:
            iv = found
        else:
            iv = _fixed_verdict(p)
            if p.why is None:
                iv = distinct.setdefault((p.env, text), iv)
            else:
                distinct.setdefault((p.env, f"{p.row.where}: {text}"), iv)
        results.append(ContainerResult(p.row, p.env, p.mapped_by, text, iv, p.drift))
        if p.drift is not None:
            from imggate.policy.decision import decide

            drifted.append(ImageVerdict(reference=f"{p.row.where}: {p.row.image}", env=p.env,
                                        decision=decide([p.drift]), rules=(p.drift,)))
    verdict = Verdict(env=", ".join(envs) or "(none)",
                      images=(*distinct.values(), *drifted), generated=req.now,
                      run=_run_info(req))
    return ClusterResult(tuple(results), verdict, namespaces, pods, resolutions,
                         len(judged), cache.stats if cache is not None else None)


def _run_info(req: ClusterRequest) -> RunInfo | None:
    from imggate.gate import run_info

    envs = list(req.policies.environments.values())
    if not envs:
        return None
    base = run_info(envs[0].policy)
    return dataclasses.replace(base, env="(per namespace)", env_origin="namespaces",
                               env_reason="each pod's namespace, mapped as the webhook maps it")


def run_cluster_audit(req: ClusterRequest, progress: Progress = _nothing) -> ClusterResult:
    """Read the cluster's pods and judge what each container runs (see the module doc).

    Raises :class:`~imggate.audit.pods.ApiServerError` (exit 3) when the pods cannot all
    be read, or the total deadline passes.
    """
    from imggate._aio import run

    async def bounded() -> ClusterResult:
        if req.total is None:
            return await _audit(req, progress)
        try:
            async with asyncio.timeout(req.total):
                return await _audit(req, progress)
        except TimeoutError:
            raise Error(f"audit --cluster did not finish within --total-deadline "
                                 f"{req.total:g}s: no report was written") from None

    return run(bounded())
