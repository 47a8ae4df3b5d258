"""One AdmissionReview -> one answer, within the deadline, failing closed.

The reviewer reads the workload's images (``admission.workloads``), maps
the namespace to an environment, judges each distinct image once, all
concurrently (:mod:`imggate.admission.judge`), and words the answer: a 403
naming each denied image and its violations, warnings for warn-mode
results, audit annotations with digests and verdicts, and for ``/mutate`` a
JSONPatch pinning each checked tag to its digest.

The images are read with the pod's own pull credentials when ``imggate serve``
reads pull secrets (:mod:`imggate.admission.pull_access`). A pull secret or
service account that cannot be read (API 403, a secret that is not a docker
config, the API not answering in time) denies the review naming it: imggate
would otherwise judge with other credentials than the kubelet pulls with. A
secret that does not exist is skipped, as the kubelet skips it.

Whatever happens, the answer comes before the deadline: an image whose
evidence is not in by then is denied with a message naming what was still
running. Nothing that prevents a decision is an allow.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from imggate.admission.judge import ImageOutcome, Judge, Progress
from imggate.admission.metrics import Metrics
from imggate.admission.policies import PolicySet
from imggate.admission.pull_access import AccessPool, RegistryAccess
from imggate.admission.review import Answer, ReviewRequest, shorten
from imggate.admission.workload_json import workload_images
from imggate.admission.workloads import WorkloadImage, pod_spec
from imggate.errors import Error, InvalidReference
from imggate.models import Decision, ImageRef
from imggate.policy.rules import OnUndecided
from imggate.registry.deadline import Deadline
from imggate.registry.limits import review_share

#: Subresources through which a container image can change.
_IMAGE_SUBRESOURCES = frozenset({"", "ephemeralcontainers"})
#: Subresources that cannot change an image (anything else unknown is denied: fail closed).
_NONE: frozenset[str] = frozenset()
_NO_IMAGE_SUBRESOURCES = frozenset({"status", "scale", "binding", "eviction", "attach", "exec",
                                    "portforward", "proxy", "log", "resize"})
#: The share of the deadline reading a pod's pull secrets may take (the images need the rest).
_SECRETS_SHARE = 0.5
#: How long before the answer is due the review's registry requests are cut off: the time
#: left to decide on what was found (evaluating and verifying take milliseconds).
_DECIDE_MARGIN = 0.3
#: How much of a denial message each image may take.
_PER_IMAGE_CHARS = 400


class Outcome(NamedTuple):
    """The answer and what the log line says about it (a named tuple: made for every review,
    see :class:`~imggate.admission.review.ReviewRequest`)."""

    answer: Answer
    env: str | None = None
    images: tuple[ImageOutcome, ...] = ()
    note: str | None = None
    deadline_hit: bool = False
    #: The pull secrets (names, in the request's namespace) the images were read with.
    pull_secrets: tuple[str, ...] = ()
    #: How the namespace got ``env`` (``namespaces.map[6] '*'``, ``default from --env dev``).
    env_by: str | None = None
    #: Images admitted although they could not be decided (``on_undecided: warn``).
    undecided: tuple[str, ...] = ()
    #: Until when (``time.monotonic()``) the same request, under the same rules, gets this
    #: answer without I/O (:class:`~imggate.admission.answers.AnswerCache`); 0: not to be
    #: remembered (the registry or Redis was read, or it is not an answer about images).
    until: float = 0.0

    @property
    def decision(self) -> str:
        """``allow``, ``deny`` or ``undecided`` (admitted by ``on_undecided: warn``
        although an image could not be decided), for logs and metrics."""
        if not self.answer.allowed:
            return "deny"
        return "undecided" if self.undecided else "allow"

    @property
    def cache(self) -> str:
        """The slowest cache layer any image needed: miss, redis, local, or none."""
        found = "none"
        for image in self.images:
            layer = image.cache
            if layer == "miss":
                return layer
            if layer == "redis" or (layer == "local" and found == "none"):
                found = layer
        return found


class Prepared(NamedTuple):
    """A review read up to the judging of its images (:meth:`Reviewer.prepare`)."""

    req: ReviewRequest
    found: tuple[WorkloadImage, ...]
    env: str
    #: How the namespace got ``env``.
    by: str
    #: ``namespace/name`` for messages.
    where: str
    #: The registry access the images are read with; ``None`` without pull secrets.
    access: RegistryAccess | None
    #: When the review's deadline started (``time.monotonic()``).
    start: float

    @property
    def credentials(self) -> tuple[str, tuple[str, ...]]:
        """Whose credentials the review reads with: the fingerprint of the pod's credential
        set (an HMAC, ``""`` for none) and the names of the secrets read. A remembered
        answer made with them is given only to a review that read the same."""
        access = self.access
        if access is None:
            return ("", ())
        read = access.secrets.read if access.secrets is not None else ()
        return (access.key, tuple(read))


@functools.lru_cache(maxsize=4096)
def _parse_reference(text: str) -> ImageRef:
    # Pure and frozen: the same few references arrive again and again (a failure is not
    # cached: it raises every time).
    from imggate.registry.reference import parse_reference

    return parse_reference(text)


def _deny(message: str, env: str | None = None) -> Outcome:
    return Outcome(Answer(False, f"imggate: {message}"), env, note=message)


def _describe(outcome: ImageOutcome) -> str:
    if outcome.decision is Decision.ERROR:
        return f"{outcome.reference}: could not be checked: {outcome.error}"
    listed = "; ".join(f"{rule}: {msg}" for rule, msg in outcome.violations)
    return f"{outcome.reference}: {listed}"


def denial_message(kind: str, where: str, env: str, denied: Sequence[ImageOutcome],
                   by: str = "") -> str:
    """``imggate denied Deployment ns/app (environment prod by namespaces.map[2] '*-prod'):
    IMAGE: rule: why | IMAGE: ...``: ``by`` says how the namespace got its environment."""
    parts = [shorten(_describe(o), _PER_IMAGE_CHARS) for o in denied]
    how = f" by {by}" if by else ""
    return f"imggate denied {kind} {where} (environment {env}{how}): " + " | ".join(parts)


class Reviewer:
    """Answers AdmissionReviews with the current rules (re-read by the caller's store)."""

    def __init__(self, judge: Judge, metrics: Metrics, deadline: float = 8.0,
                 access: AccessPool | None = None, review_requests: int = 8) -> None:
        """``access`` gives each review its pod's registry client (``None``: the judge's
        client for every review); a review has at most ``review_requests`` registry
        requests in flight at once."""
        self.judge = judge
        self.metrics = metrics
        self.deadline = deadline
        self.access = access
        self.review_requests = review_requests

    async def review(self, req: ReviewRequest, policies: PolicySet, *,
                     mutate: bool, received: float | None = None) -> Outcome:
        """Decide ``req``; never raises for anything the request contains. The deadline
        counts from ``received`` (``time.monotonic()`` when the request began to arrive),
        else from now."""
        step = await self.prepare(req, policies, received=received)
        if isinstance(step, Outcome):
            return step
        return await self.decide(step, policies, mutate=mutate)

    async def prepare(self, req: ReviewRequest, policies: PolicySet, *,
                      received: float | None = None) -> Outcome | Prepared:
        """Everything before the images are judged: the request's images, its environment,
        and the registry access it is read with (the pod's pull secrets read, when
        ``imggate serve`` reads them); an :class:`Outcome` when that already decides (an
        exempt namespace, a request with nothing to check, secrets that cannot be read)."""
        start = received if received is not None else time.monotonic()
        if req.operation in ("DELETE", "CONNECT"):
            return Outcome(Answer(True), note=f"{req.operation}: nothing will run")
        if req.sub_resource in _NO_IMAGE_SUBRESOURCES:
            return Outcome(Answer(True), note=f"subresource {req.sub_resource!r} changes no image")
        if req.sub_resource not in _IMAGE_SUBRESOURCES:
            return _deny(f"unknown subresource {req.sub_resource[:60]!r}: imggate cannot tell "
                         "whether it changes an image")
        if req.object is None:
            return _deny("the request has no object to check")
        try:
            found = workload_images(req.object, namespace=req.namespace or None,
                                    name=req.name or None)
        except Error as e:
            return _deny(f"cannot read the images of this {req.kind.kind}: {e.message}")
        mapping = policies.env_for_namespace(req.namespace)
        if mapping.exempt:
            return Outcome(Answer(True, audit={"decision": "exempt",
                                               "reason": mapping.describe()}),
                           note=mapping.describe())
        if mapping.env is None:
            return _deny(f"{mapping.describe()}: map it in the rules' namespaces.map or an "
                         "environment alias, or run imggate serve --env ENV")
        env = mapping.env
        where = f"{req.namespace}/{req.name}" if req.name else (req.namespace or "(cluster)")
        access: RegistryAccess | None = None
        if self.access is not None and self.access.reader is not None:
            try:
                access = await self.access.for_pod(req.namespace, pod_spec(req.object),
                                                   self.deadline * _SECRETS_SHARE)
            except Error as e:
                self.metrics.child(self.metrics.pull_secrets, "error").inc()
                hint = f" ({e.hint})" if e.hint else ""
                return _deny(f"cannot read the pull secrets of {req.kind.kind} {where}: "
                             f"{e.message}{hint}", env)
            except TimeoutError:
                self.metrics.child(self.metrics.pull_secrets, "timeout").inc()
                return _deny(f"reading the pull secrets of {req.kind.kind} {where} from the "
                             f"Kubernetes API took longer than "
                             f"{self.deadline * _SECRETS_SHARE:g}s", env)
            if self.access.reader is not None:
                self.metrics.child(self.metrics.pull_secrets, "ok").inc()
        return Prepared(req, tuple(found), env, mapping.by, where, access, start)

    async def decide(self, step: Prepared, policies: PolicySet, *, mutate: bool) -> Outcome:
        """Judge the images of a prepared review and word its answer."""
        req = step.req
        by_image: dict[str, list[WorkloadImage]] = {}
        for w in step.found:
            by_image.setdefault(w.image, []).append(w)
        outcomes = await self._judge_all(list(by_image), policies, step.env, mutate=mutate,
                                         dry_run=req.dry_run, access=step.access,
                                         left=self.deadline - (time.monotonic() - step.start))
        # Read with a pod's own credentials, the answer is remembered only under a key that
        # names them (Prepared.credentials): the caller's to add.
        until = min((o.until for o in outcomes), default=0.0)
        outcome = self._answer(req.kind.kind, step.where, step.env, outcomes, by_image, mutate,
                               by=step.by, lenient=self._lenient(outcomes, policies, step.env),
                               until=until)
        access = step.access
        if access is not None and access.secrets is not None and access.secrets.read:
            outcome = outcome._replace(pull_secrets=access.secrets.read)
        return outcome

    async def _judge_all(self, texts: Sequence[str], policies: PolicySet, env: str, *,
                         mutate: bool, dry_run: bool, access: RegistryAccess | None = None,
                         left: float | None = None) -> list[ImageOutcome]:
        outcomes: dict[str, ImageOutcome] = {}
        progress: dict[str, Progress] = {}
        tasks: dict[asyncio.Task[ImageOutcome], str] = {}
        budget = self.deadline if left is None else max(left, 0.0)
        # Made when the first image needs the registry: most reviews are answered from the
        # cache, and these two are a fifth of such a review's work in the app.
        registry_by: Deadline | None = None
        share: review_share | None = None
        for text in texts:
            try:
                ref = _parse_reference(text)
                if ref.source != "registry":
                    raise InvalidReference(f"{text[:200]!r} is not a registry image")
            except InvalidReference as e:
                # Certain: no retry makes the reference valid (and no on_undecided admits it).
                outcomes[text] = ImageOutcome(
                    text, Decision.DENY,
                    violations=(("reference", f"invalid image reference: {e.message}"),))
                continue
            # Reference rules and local cache hits need no I/O: answered without a task.
            quick = self.judge.quick(text, ref, policies, env, mutate=mutate)
            if quick is not None:
                outcomes[text] = quick
                continue
            progress[text] = Progress()
            if registry_by is None or share is None:
                registry_by = Deadline(
                    time.monotonic() + budget - min(_DECIDE_MARGIN, budget / 10),
                    self.deadline)
                share = review_share(self.review_requests)
            # The task (and the shared lookups it starts) inherits this context: its
            # registry requests end a moment before the answer is due, so it can still
            # decide on what it found (see Judge._registry_deadline), and draw on the
            # review's share of registry requests.
            with registry_by.applied(), share:
                task = asyncio.ensure_future(self.judge.judge(
                    text, ref, policies, env, mutate=mutate, dry_run=dry_run,
                    progress=progress[text], access=access))
            tasks[task] = text
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=budget)
            for task in done:
                text = tasks[task]
                try:
                    found = task.result()
                except Exception as e:  # a bug must deny, never allow or crash the server
                    found = ImageOutcome(text, Decision.ERROR,
                                         error=f"internal error ({type(e).__name__})")
                if found.decision is Decision.ERROR and registry_by is not None \
                        and registry_by.expired:
                    # Undecided because its requests were cut off for the answer: the
                    # deadline is why, said and counted as such.
                    self.metrics.deadline_hits.inc()
                    found = found._replace(
                        error=f"timed out after {self.deadline:g}s: {found.error}")
                outcomes[text] = found
            for task in pending:
                task.cancel()
                text = tasks[task]
                self.metrics.deadline_hits.inc()
                outcomes[text] = ImageOutcome(
                    text, Decision.ERROR, error=f"timed out after {self.deadline:g}s while "
                                                f"{progress[text].stage}")
        return [outcomes[t] for t in texts]

    @staticmethod
    def _lenient(outcomes: Sequence[ImageOutcome], policies: PolicySet, env: str
                 ) -> frozenset[str]:
        """The undecided images whose rules say ``on_undecided: warn``: admitted, warned."""
        undecided = [o.reference for o in outcomes if o.decision is Decision.ERROR]
        if not undecided:
            return _NONE
        rules = policies.environments[env].rules
        return frozenset(
            text for text in undecided
            if rules.for_image(_parse_reference(text)).rules.undecided is OnUndecided.WARN)

    def _answer(self, kind: str, where: str, env: str, outcomes: Sequence[ImageOutcome],
                images: Mapping[str, Sequence[WorkloadImage]], mutate: bool,
                by: str = "", lenient: frozenset[str] = frozenset(),
                until: float = 0.0) -> Outcome:
        # One pass over the images (a warm review's answer is made from its few images;
        # four list comprehensions over them cost more than the work they did).
        denied: list[ImageOutcome] = []
        warnings: list[str] = []
        admitted: list[str] = []
        shown: list[dict[str, str | None]] = []
        for o in outcomes:
            if o.decision is not Decision.ALLOW:
                if o.reference in lenient:
                    admitted.append(f"{o.reference}: not checked, admitted by on_undecided: "
                                    f"warn: {o.error}")
                else:
                    denied.append(o)
            for rule, msg in o.warnings:
                warnings.append(f"{o.reference}: {rule}: {msg}")
            entry = {"image": o.reference, "digest": o.digest, "decision": o.decision.value}
            if o.exempt:
                entry["exempt"] = o.exempt
            shown.append(entry)
        warnings += admitted
        audit = {"environment": env}
        if by:  # how the namespace got it (namespaces.map[i] 'glob', an alias, --env)
            audit["environment_by"] = by
        audit["images"] = orjson.dumps(shown).decode()
        if denied:
            timed_out = any(o.error and o.error.startswith("timed out") for o in denied)
            return Outcome(Answer(False, denial_message(kind, where, env, denied, by),
                                  tuple(warnings), audit), env, tuple(outcomes),
                           deadline_hit=timed_out, env_by=by or None, until=until)
        patch: list[Mapping[str, Any]] = []
        if mutate:
            for o in outcomes:
                if o.pin and o.digest:
                    patch += [{"op": "replace", "path": w.pointer,
                               "value": f"{o.reference}@{o.digest}"} for w in images[o.reference]]
        return Outcome(Answer(True, None, tuple(warnings), audit, tuple(patch)), env,
                       tuple(outcomes), undecided=tuple(sorted(lenient)), env_by=by or None,
                       until=until)


def elapsed_ms(start: float) -> float:
    """Milliseconds since ``start`` (a ``time.perf_counter()``), to two decimals, for logs."""
    # round() to an integer of hundredths, not round(ms, 2): that rounds through a decimal
    # string, ~0.5 µs of a remembered answer's few µs (every review calls this once).
    return round((time.perf_counter() - start) * 100_000) / 100
