"""The ASGI app of ``imggate serve``: thin endpoints over the reviewer.

Endpoints::

    POST /validate   ValidatingAdmissionWebhook
    POST /mutate     MutatingAdmissionWebhook: the same decision, plus a JSONPatch
                     pinning each checked tag to its digest
    GET  /healthz    the process answers, and registry requests still get through
                     (503 after 2 x stall_after seconds without: restart me)
    GET  /readyz     rules loaded, (with --cache redis://) Redis answered once, and
                     registry requests still get through (the progress watchdog);
                     a later Redis outage is reported here, not made fatal
    GET  /metrics    Prometheus text format (prometheus-client)

Every review writes one JSON log line (uid, namespace, kind, images, the pull secrets used,
decision, ms, cache layer; never a secret or the object itself). A body
that is not a usable AdmissionReview gets HTTP 400 (413 when too large), or
a denial in kind when its uid was read; nothing a client sends crashes the
server or turns into an allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from imggate.admission.answers import (
    AnswerCache,
    Remembered,
    answer_key,
    review_line,
    split_body,
)
from imggate.admission.cache import AdmissionCache, CacheTimes, RedisLayer
from imggate.admission.connections import ConnectionCounts
from imggate.admission.endpoint import WebhookEndpoint, WebhookFirst
from imggate.admission.evidence import sources_from_options
from imggate.admission.judge import Judge, JudgeSettings
from imggate.admission.metrics import CONTENT_TYPE, Metrics
from imggate.admission.policies import RulesStore
from imggate.admission.preload import freeze_startup_heap, import_cold_path
from imggate.admission.pull_access import AccessPool
from imggate.admission.review import (
    MAX_BODY_BYTES,
    Answer,
    BadReview,
    bad_request_body,
    parse_review,
    response_body,
)
from imggate.admission.reviewer import Outcome, Prepared, Reviewer, elapsed_ms
from imggate.admission.reviewlog import ReviewLog
from imggate.admission.seal import CacheKeys
from imggate.admission.workloads import WORKLOAD_KINDS
from imggate.errors import UsageError
from imggate.models import Platform, SignatureOptions
from imggate.registry.client import RegistryClient
from imggate.registry.options import RegistryOptions

if TYPE_CHECKING:
    from imggate.registry.pull_secrets import PullSecretReader

log = logging.getLogger("imggate.admission")
_JSON = "application/json"


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """Everything ``imggate serve`` needs besides TLS and the listening address."""

    rules: Path | None = None
    env: str | None = None
    deadline: float = 8.0
    cache_url: str | None = None
    #: The keys sealing Redis entries (``--cache-key-file``); required with ``cache_url``.
    cache_keys: CacheKeys | None = None
    cache_times: CacheTimes = field(default_factory=CacheTimes)
    reports_dir: Path | None = None
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    signatures: SignatureOptions = field(default_factory=SignatureOptions)
    platform: Platform | None = None
    #: A loaded Sigstore trusted root (``--trusted-root``); ``None``: the production one.
    trusted_root: object | None = None
    watch_interval: float = 1.0
    max_body_bytes: int = MAX_BODY_BYTES
    #: Read each pod's imagePullSecrets and its service account's through the Kubernetes
    #: API (in-cluster configuration) and read its images with them.
    pull_secrets: bool = False
    #: Where the service account token, CA and namespace are (default: the kubelet's mount).
    service_account_dir: Path | None = None
    #: Registry requests one review may have in flight at once.
    review_requests: int = 8
    #: Seconds registry requests may wait without any getting a connection before
    #: /readyz fails (and /healthz, after twice as long): registry access is wedged.
    stall_after: float = 30.0


class AdmissionApp:
    """The app's state: rules, caches, metrics, registry client, and the reviewer."""

    def __init__(self, options: ServeOptions) -> None:
        self.options = options
        self.metrics = Metrics()
        #: What the server's connections hold now (runner.py's protocol counts into it).
        self.connections = ConnectionCounts()
        #: Where review lines go: ``imggate serve`` points it at standard error.
        self.review_log = ReviewLog()
        self.store = RulesStore(options.rules, options.env)
        self.redis = None
        if options.cache_url:
            if options.cache_keys is None:
                raise UsageError("--cache needs --cache-key-file: entries in Redis are sealed")
            self.redis = RedisLayer.from_url(options.cache_url, options.cache_keys)
        self.redis_answered = False
        self.cache = AdmissionCache(options.cache_times, self.redis,
                                    on_reject=self.metrics.cache_rejected.inc)
        #: Whole answers of warm reviews (with pull secrets: looked up once they are read).
        self.answers = AnswerCache()
        self.client: RegistryClient | None = None
        self.reviewer: Reviewer | None = None
        validate = WebhookEndpoint(self, mutate=False)
        mutate = WebhookEndpoint(self, mutate=True)
        #: Everything but a webhook POST: the probes, /metrics, the lifespan, and the
        #: answers to wrong methods and unknown paths.
        self.starlette = Starlette(routes=[
            Route("/validate", validate, methods=["POST"]),
            Route("/mutate", mutate, methods=["POST"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.metrics_endpoint, methods=["GET"]),
        ], lifespan=self._lifespan)
        #: The ASGI app served.
        self.app = WebhookFirst({"/validate": validate, "/mutate": mutate}, self.starlette)

    def reload_rules(self) -> bool:
        """Reload the rules now (SIGHUP, file change); a broken file keeps the old rules."""
        ok = self.store.load()
        self.metrics.rules_reloads.labels("ok" if ok else "error").inc()
        if ok and self.store.current is not None:
            self.metrics.rules_loaded.set(self.store.current.loaded_at)
            self.cache.clear_local()
            self.answers.clear()
        return ok

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        if self.store.current is None:
            self.reload_rules()
        await import_cold_path()
        async with RegistryClient(self.options.registry) as client:
            self.client = client
            judge = Judge(client, self.cache, self.metrics,
                          sources_from_options(self.options.reports_dir),
                          JudgeSettings(self.options.signatures, self.options.platform,
                                        self.options.deadline, self.options.trusted_root))
            access = AccessPool(client, self._pull_secret_reader())
            self.reviewer = Reviewer(judge, self.metrics, self.options.deadline, access,
                                     self.options.review_requests)
            tasks = [asyncio.create_task(self._watch_rules())]
            if self.redis is not None:
                tasks.append(asyncio.create_task(self._watch_redis()))
            loop = asyncio.get_running_loop()
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
            freeze_startup_heap()
            try:
                yield
            finally:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(signal.SIGHUP)
                for t in tasks:
                    t.cancel()
                await access.aclose()
                if self.redis is not None:
                    await self.redis.close()

    def _pull_secret_reader(self) -> PullSecretReader | None:
        if not self.options.pull_secrets:
            return None
        from imggate.registry.pull_secrets import PullSecretReader

        log.warning("pull secrets: each pod's imagePullSecrets and its service account's are "
                    "read through the Kubernetes API")
        # The reviewer gives the reads a share of the deadline (and says so when it runs
        # out); the client's own timeout is only the backstop.
        return PullSecretReader(service_account_dir=self.options.service_account_dir,
                                timeout=self.options.deadline)

    def _on_sighup(self) -> None:
        log.warning("SIGHUP: reloading the rules")
        self.reload_rules()

    async def _watch_rules(self) -> None:
        while True:
            await asyncio.sleep(self.options.watch_interval)
            if self.store.changed():
                log.warning("rules file changed: reloading")
                self.reload_rules()

    async def _watch_redis(self) -> None:
        assert self.redis is not None
        while True:
            up = await self.redis.ping()
            self.redis_answered |= up
            self.metrics.redis_up.set(1 if up else 0)
            await asyncio.sleep(1.0 if up else 0.5)

    # ------------------------------------------------------------------ endpoints

    def refuse(self, error: BadReview, *, mutate: bool, start: float) -> tuple[int, bytes]:
        """(HTTP status, body) for a body that is not a usable AdmissionReview, counted and
        logged."""
        self.metrics.bad_requests.inc()
        self._log({"endpoint": "mutate" if mutate else "validate", "uid": error.uid,
                   "decision": "bad-request", "reason": error.message,
                   "ms": elapsed_ms(start)})
        return bad_request_body(error)

    async def answer(self, body: bytes, *, mutate: bool, start: float,
                     received: float | None = None) -> tuple[int, bytes]:
        """(HTTP status, response body) for one AdmissionReview request body whose reading
        began at ``start`` (a ``time.perf_counter()``); the review's deadline counts from
        ``received`` (``time.monotonic()`` when the request began to arrive) when given."""
        endpoint = "mutate" if mutate else "validate"
        try:
            req = parse_review(body)
        except BadReview as e:
            return self.refuse(e, mutate=mutate, start=start)
        policies = self.store.current
        answers = self.answers
        key = answer_key(req, mutate)
        # With pull secrets, every review reads its pod's secrets (one that cannot be read
        # denies): the answer is looked up after that, under a key naming them.
        secrets = self.options.pull_secrets
        if key is not None and policies is not None and not secrets:
            kept = answers.get(key, policies)
            if kept is not None:
                return 200, self._again(kept, req.uid, endpoint, start)
        if policies is None or self.reviewer is None:
            outcome = Outcome(Answer(False, "imggate: no rules loaded (see the imggate log)"))
        else:
            try:
                step = await self.reviewer.prepare(req, policies, received=received)
                if isinstance(step, Outcome):
                    outcome = step
                else:
                    if key is not None and secrets:
                        key = (*key, *step.credentials)
                        kept = answers.get(key, policies)
                        if kept is not None:
                            return 200, self._again(kept, req.uid, endpoint, start)
                    outcome = await self.reviewer.decide(step, policies, mutate=mutate)
            except Exception as e:  # fail closed: a bug denies, the server keeps serving
                log.exception("review %s failed", req.uid)
                outcome = Outcome(Answer(False, f"imggate: internal error ({type(e).__name__})"))
            else:
                if secrets and not isinstance(step, Prepared):
                    key = None  # decided before the secrets were read: not remembered
        ms = elapsed_ms(start)
        m = self.metrics
        # Any kind a client names would be a new series: unknown ones are counted as one.
        kind = req.kind.kind if req.kind.kind in WORKLOAD_KINDS else "other"
        decision = outcome.decision
        labels = (endpoint, decision, kind, "true" if req.dry_run else "false")
        m.reviews.inc(*labels)
        if not req.dry_run:
            m.latency.observe(endpoint, ms / 1000)
        answer = outcome.answer
        fields = orjson.dumps({
            "endpoint": endpoint, "namespace": req.namespace,
            "kind": req.kind.kind, "name": req.name, "operation": req.operation,
            "env": outcome.env, **({"env_by": outcome.env_by} if outcome.env_by else {}),
            "images": [i.reference for i in outcome.images],
            "digests": [i.digest for i in outcome.images], "decision": decision,
            "cache": outcome.cache, "dry_run": req.dry_run,
            "reason": outcome.note if answer.allowed else answer.message,
            "patched": len(answer.patch),
            **({"pull_secrets": list(outcome.pull_secrets)} if outcome.pull_secrets else {}),
        })[1:]
        self.review_log.write_line(review_line(orjson.dumps(req.uid), ms, fields))
        response = response_body(req.api_version, req.uid, answer)
        if key is not None and policies is not None and outcome.until:
            split = split_body(req.api_version, response_body(req.api_version, "", answer))
            if split is not None:
                answers.put(key, Remembered(policies, outcome.until, *split, fields, labels))
        return 200, response

    def _again(self, kept: Remembered, uid: str, endpoint: str, start: float) -> bytes:
        """The response for ``uid`` from a remembered answer, logged and counted."""
        m = self.metrics
        m.cache.inc("answer", "local", "hit")
        m.reviews.inc(*kept.labels)
        ms = elapsed_ms(start)
        if kept.labels[3] == "false":  # not a dry run
            m.latency.observe(endpoint, ms / 1000)
        quoted = orjson.dumps(uid)
        self.review_log.write_line(review_line(quoted, ms, kept.log))
        return kept.head + quoted + kept.tail

    def _log(self, fields: dict[str, Any]) -> None:
        self.review_log.write(fields)

    def stalled_for(self) -> float:
        """Seconds registry requests have waited without any getting a connection."""
        guard = self.client.guard if self.client is not None else None
        return guard.progress.stalled_for() if guard is not None else 0.0

    async def healthz(self, _request: Request) -> Response:
        """Liveness: the event loop answers and registry access is not wedged."""
        stalled = self.stalled_for()
        if stalled > 2 * self.options.stall_after:
            return Response(orjson.dumps({"status": f"registry requests stalled for "
                                                    f"{stalled:.0f} s"}), 503,
                            media_type=_JSON)
        return Response(b'{"status":"ok"}', media_type=_JSON)

    async def readyz(self, _request: Request) -> Response:
        """Readiness: rules loaded and, with Redis, Redis answered at least once."""
        rules_ok = self.store.current is not None
        body: dict[str, Any] = {
            "rules": "loaded" if rules_ok else "not loaded",
            # Not the rules hash itself (it is part of every verdict's cache key): a hash
            # of it keyed with the cache key, equal on the replicas that share it.
            "rules_id": self._rules_id(),
            "rules_error": self.store.last_error,
        }
        ready = rules_ok
        stalled = self.stalled_for()
        if stalled > self.options.stall_after:
            body["registry"] = f"stalled: no request got a connection for {stalled:.0f} s"
            ready = False
        if self.redis is not None:
            if self.redis.up:
                body["redis"] = "up"
            elif self.redis_answered:
                # Serving on: the local cache works, and a webhook that went unready
                # with Redis would block every deploy in the cluster.
                body["redis"] = "down: serving from the local cache"
            else:
                body["redis"] = "not answered yet"
                ready = False
        body["ready"] = ready
        return Response(orjson.dumps(body), 200 if ready else 503, media_type=_JSON)

    def _rules_id(self) -> str | None:
        current = self.store.current
        if current is None:
            return None
        keys = self.options.cache_keys
        if keys is not None:
            return keys.label(current.hash)
        # No shared cache: nothing to forge with the hash; still only a digest of it.
        return hashlib.sha256(b"imggate rules id\0" + current.hash.encode()).hexdigest()[:16]

    async def metrics_endpoint(self, _request: Request) -> Response:
        """Prometheus metrics."""
        if self.redis is not None:
            self.metrics.redis_up.set(1 if self.redis.up else 0)
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)


def build_app(options: ServeOptions) -> AdmissionApp:
    """The app for ``options`` (rules are loaded when it starts)."""
    return AdmissionApp(options)
