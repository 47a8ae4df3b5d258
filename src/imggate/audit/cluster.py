"""``imggate audit --cluster``: what the cluster runs now, judged as the gate judges it.

The steps:

1. **Read** every pod (or those of ``--namespace``) through the API a page at a
   time (:mod:`imggate.audit.pods`), each container written to a spool on disk
   (:mod:`imggate.audit.spool`) and only the distinct references kept in memory.
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
result is one :class:`ContainerResult` per container, made again from the spool a
namespace at a time (:mod:`imggate.audit.cluster_results`), and a combined
:class:`~imggate.models.Verdict` of the distinct images for the usual reports.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from sys import intern
from typing import TYPE_CHECKING, Any

from imggate import values
from imggate.audit.pods import DEFAULT_PAGE, ContainerRow, KubeSource
from imggate.audit.shared_cache import (
    HIT_NOTE,
    CacheStats,
    SharedCache,
    VerdictCache,
)
from imggate.audit.spool import ContainerSpool
from imggate.errors import Error, InvalidReference
from imggate.models import (
    Decision,
    ImageRef,
    ImageVerdict,
    Mode,
    RuleResult,
    RunInfo,
    SignatureOptions,
    Unchecked,
    Verdict,
)
from imggate.registry.deadline import Deadline
from imggate.registry.options import RegistryOptions
from imggate.registry.pod_secrets import PodPullSecrets

if TYPE_CHECKING:
    from imggate.admission.policies import PolicySet
    from imggate.audit.cluster_judge import Combo
    from imggate.audit.cluster_results import ContainerResults

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

    results: ContainerResults
    verdict: Verdict
    #: Every namespace a pod was read in (reports are written for these).
    namespaces: tuple[str, ...]
    pods: int
    #: Registry resolutions made (one per distinct image is the goal).
    resolutions: int
    distinct_images: int
    #: What the shared verdict cache did (``None``: no ``--cache``).
    cache: CacheStats | None = None
    #: Containers per decision (counted once; ``None``: count them from the results).
    decisions: Counter[Decision] | None = None
    #: Seconds each phase took (``list_pods``: reading pods and pull secrets; ``judge``:
    #: registries and the cache); the reports are timed by the command.
    seconds: Mapping[str, float] = field(default_factory=dict)

    @property
    def counts(self) -> Counter[Decision]:
        """Containers per decision."""
        if self.decisions is not None:
            return self.decisions
        return Counter(r.decision for r in self.results)

    @property
    def decision(self) -> Decision:
        """Denied if any container is, else error if any could not be decided."""
        from imggate.policy.decision import run_decision

        counts = self.counts
        if not sum(counts.values()):
            return Decision.ALLOW  # an empty cluster: nothing runs, nothing to deny
        return run_decision(d for d, n in counts.items() if n)

    def close(self) -> None:
        """Remove the results' spool."""
        self.results.close()

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
            judged = values.replace(ran, tag=tag)
            if spec.digest is not None and spec.digest != ran.digest:
                drift = RuleResult(DRIFT_RULE, False, Mode.ENFORCE, (
                    f"the spec pins {spec.digest} but the kubelet runs {ran.digest}",))
    return spec, judged, drift


@functools.lru_cache(maxsize=16384)
def text_of(ref: ImageRef) -> str:
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


def fixed_verdict(p: _Planned) -> ImageVerdict:
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


def gated(p: _Planned) -> bool:
    """Whether the gate judges ``p``'s image (not exempt, mapped, readable, credentials read)."""
    return p.judged is not None and p.why is None and p.env not in (EXEMPT_ENV, UNMAPPED_ENV)


@dataclass(slots=True)
class _Reading:
    """What reading the pods keeps: the spool, the distinct references, the counts."""

    spool: ContainerSpool
    combos: dict[Combo, tuple[ImageRef, ImageRef, str]] = field(default_factory=dict)
    credentials: dict[str, PodPullSecrets] = field(default_factory=dict)
    pods: int = 0
    namespaces: dict[str, None] = field(default_factory=dict)
    envs: dict[str, None] = field(default_factory=dict)


class _PullCredentials:
    """Each gated pod's pull credentials, read once per (namespace, service account,
    secrets); a pod whose secrets cannot be read cannot be judged (error, saying which)."""

    def __init__(self, client: Any) -> None:
        from imggate.registry.pull_secrets import PullSecretError, PullSecretReader

        self._reader = PullSecretReader(client)
        self._read: dict[tuple[str, str, tuple[str, ...]], PodPullSecrets | Error] = {}
        self._error = PullSecretError

    async def of(self, p: _Planned, found: dict[str, PodPullSecrets]) -> _Planned:
        """``p`` with its credentials' fingerprint, or why they cannot be read."""
        key = (p.row.namespace, p.row.account, p.row.pull_secrets)
        if key not in self._read:
            spec = {"serviceAccountName": p.row.account,
                    "imagePullSecrets": [{"name": n} for n in p.row.pull_secrets]}
            try:
                self._read[key] = await self._reader.read_pod(p.row.namespace, spec)
            except self._error as e:
                self._read[key] = e
        got = self._read[key]
        if isinstance(got, Error):
            return values.replace(p, why=f"pull secrets: {got.message}")
        found.setdefault(got.fingerprint, got)
        return values.replace(p, creds=got.fingerprint)


async def _read(req: ClusterRequest, client: Any, progress: Progress) -> _Reading:
    """Every pod, a page at a time: each container spooled, each distinct reference kept."""
    reading = _Reading(ContainerSpool())
    try:
        await _read_into(req, client, progress, reading)
    except BaseException:
        reading.spool.close()
        raise
    return reading


async def _read_into(req: ClusterRequest, client: Any, progress: Progress,
                     reading: _Reading) -> None:
    from imggate.audit.cluster_results import record
    from imggate.audit.pods import list_pods

    last: tuple[str, str] | None = None
    pulls = _PullCredentials(client) if req.pull_secrets else None
    async for page in list_pods(client, req.namespaces, page=req.page):
        for row in page:
            # A pod's containers come together (pod_rows reads one pod at a time).
            if (row.namespace, row.pod) != last:
                reading.pods += 1
                last = (row.namespace, row.pod)
            reading.namespaces.setdefault(row.namespace)
            p = plan_row(req.policies, row)
            if pulls is not None and gated(p):
                p = await pulls.of(p, reading.credentials)
            reading.envs.setdefault(p.env)
            if gated(p):
                assert p.judged is not None
                spec = p.spec or p.judged
                reading.combos.setdefault((p.env, text_of(spec), text_of(p.judged)),
                                          (spec, p.judged, p.creds))
            reading.spool.add(row.namespace, record(row, p.why))
        progress("list", reading.pods, reading.pods)
    # Namespaces asked for by name get a report even when no pod runs there (it empties).
    for ns in req.namespaces:
        reading.namespaces.setdefault(ns)


async def _audit(req: ClusterRequest, progress: Progress) -> ClusterResult:
    from imggate.audit.cluster_judge import judge
    from imggate.audit.cluster_results import ContainerResults, Results
    from imggate.audit.pods import open_client

    started = time.monotonic()
    client = open_client(req.source)
    try:
        reading = await _read(req, client, progress)
    finally:
        await client.close()
    listed = time.monotonic()
    # From here the spool is the result's (ClusterResult.close), or closed below on error.
    try:
        cache = None
        if req.cache is not None:
            cache = VerdictCache(req.cache, req.policies.hash, req.signatures)
        try:
            judged, resolutions = await judge(req, reading.combos, reading.credentials,
                                              progress, cache)
            judging = time.monotonic() - listed
        finally:
            if cache is not None:
                await cache.close()
        made = Results(req.policies, judged)
        results = ContainerResults(made.make, reading.spool)
        # One pass makes every fixed verdict and counts the decisions; later passes (the
        # reports) make the same results again from the spool.
        decisions = Counter(r.decision for r in results)
    except BaseException:
        reading.spool.close()
        raise
    verdict = Verdict(env=", ".join(reading.envs) or "(none)",
                      images=(*made.distinct.values(), *made.drifted.values()),
                      generated=req.now, run=_run_info(req))
    return ClusterResult(results, verdict, tuple(reading.namespaces), reading.pods,
                         resolutions, len(judged), cache.stats if cache is not None else None,
                         decisions, {"list_pods": round(listed - started, 3),
                                     "judge": round(judging, 3)})


def _run_info(req: ClusterRequest) -> RunInfo | None:
    from imggate.gate import run_info

    envs = list(req.policies.environments.values())
    if not envs:
        return None
    base = run_info(envs[0].policy)
    return values.replace(base, env="(per namespace)", env_origin="namespaces",
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
