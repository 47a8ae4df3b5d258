"""``imggate serve --audit-every``: the cluster audit in the background, in one replica.

Every ``--audit-every`` (and after each rules reload) the webhook runs
``imggate audit --cluster`` with its own rules and ``--env``, and exports what
the cluster runs as gauges on ``/metrics``:

- ``imggate_running_images{namespace,decision}``: containers per namespace and decision;
- ``imggate_running_violations{rule}``: containers violating each enforced rule
  (``image-drift`` and ``namespace`` included);
- ``imggate_cluster_audit_duration_seconds`` and
  ``imggate_cluster_audit_last_success_timestamp_seconds``;
- ``imggate_cluster_audits_total{result}`` (``ok``, ``failed``, ``timeout``).

**Never in a review's way**: the audit runs in a child process (``python -m
imggate audit --cluster``), so its CPU work and memory are not the event loop's;
the loop only waits for the child and reads its small summary file.

**Same caches**: with ``--cache`` the child reads and writes the webhook's verdict cache
(``audit --cluster --cache``, the same ``--cache-key-file``): what the webhook judged is
not asked of the registry again, and what the audit judged answers the next review.

**One replica**: with ``--audit-lease NAMESPACE/NAME`` the replicas elect one with a
``coordination.k8s.io/v1`` Lease, as Kubernetes controllers do (:class:`LeaseLeader`);
else, with ``--cache``, with a Redis lock (``SET imggate:cluster-audit:leader <token> NX
PX``, renewed by its holder); without either every replica audits (run one replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: The Redis key of the audit's leader lock.
LEADER_KEY = "imggate:cluster-audit:leader"
#: The summary ``audit --cluster`` writes beside its reports.
SUMMARY = "imggate-cluster-summary.json"


@dataclass(frozen=True, slots=True)
class AuditSchedule:
    """How often, with which rules, and how to start the audit."""

    every: float
    rules: Path | None = None
    env: str | None = None
    #: The webhook's ``--registry-auth-file`` (the audit's ``REGISTRY_AUTH_FILE``).
    registry_auth_file: str | None = None
    #: Further ``audit --cluster`` arguments (``--kubeconfig`` outside a cluster).
    extra: tuple[str, ...] = ()
    #: The webhook's ``--cache`` and ``--cache-key-file``: the audit shares its verdicts
    #: (the URL goes to the child in its environment: it may hold a password).
    cache_url: str | None = None
    cache_key_file: str | None = None
    #: ``--audit-lease NAMESPACE/NAME``: the replicas elect the auditor with this Lease.
    lease: tuple[str, str] | None = None
    #: How often the loop looks whether an audit is due (or the rules were reloaded).
    poll: float = 5.0

    def command(self, out: Path) -> list[str]:
        """The child's command line."""
        cmd = [sys.executable, "-m", "imggate", "audit", "--cluster", "-q", "-o", str(out),
               "--total-deadline", f"{max(self.every * 0.9, 1.0):g}"]
        if self.rules is not None:
            cmd += ["--rules", str(self.rules)]
        if self.env is not None:
            cmd += ["--env", self.env]
        if self.cache_url is not None and self.cache_key_file is not None:
            cmd += ["--cache-key-file", self.cache_key_file]
        return [*cmd, *self.extra]


def parse_every(text: str) -> float:
    """``--audit-every``: ``90s``, ``30m``, ``1h`` (seconds, minutes, hours)."""
    from imggate.errors import UsageError

    units = {"s": 1, "m": 60, "h": 3600}
    value, unit = text[:-1], text[-1:]
    if unit not in units or not value.isdigit() or int(value) <= 0:
        raise UsageError(f"--audit-every {text!r}: expected a number and s, m or h, e.g. 1h")
    return float(int(value) * units[unit])


class Leader(Protocol):
    """Who audits: :meth:`acquire` is true in exactly one replica at a time."""

    async def acquire(self, ttl: float) -> bool:
        """Take (or keep) the lead for ``ttl`` seconds."""


class SoleLeader:
    """No shared store: this replica audits."""

    async def acquire(self, ttl: float) -> bool:
        """Always the leader."""
        return True


class RedisLeader:
    """A Redis lock: set if absent with a TTL, renewed only by the replica holding it."""

    def __init__(self, url: str) -> None:
        import redis.asyncio

        self._redis: Any = redis.asyncio.from_url(url)
        self.token = secrets.token_hex(16)

    async def acquire(self, ttl: float) -> bool:
        """Whether this replica leads for the next ``ttl`` seconds (``False`` when Redis
        cannot be asked: better no audit than two)."""
        ms = max(int(ttl * 1000), 1000)
        try:
            if await self._redis.set(LEADER_KEY, self.token, nx=True, px=ms):
                return True
            held = await self._redis.get(LEADER_KEY)
            if held is not None and held.decode() == self.token:
                await self._redis.pexpire(LEADER_KEY, ms)
                return True
        except Exception as e:
            log.warning("cluster audit: Redis leader lock not reachable (%s): not auditing",
                        type(e).__name__)
        return False

    async def aclose(self) -> None:
        """Close the Redis connection."""
        await self._redis.aclose()


class LeaseLeader:
    """A ``coordination.k8s.io/v1`` Lease, as client-go's leader election keeps one.

    The holder renews ``renewTime`` each time it asks; another replica takes the lease
    over only once ``renewTime + leaseDurationSeconds`` has passed. Every write is a
    create or a replace of the version read, so two replicas racing for it cannot both
    win (the API server answers the second 409). Any error is "not the leader": better
    no audit than two.
    """

    def __init__(self, namespace: str, name: str, client: Any, identity: str | None = None
                 ) -> None:
        import socket

        self.namespace = namespace
        self.name = name
        self._client = client
        self.identity = identity or f"{socket.gethostname()[:200]}_{secrets.token_hex(4)}"

    async def acquire(self, ttl: float) -> bool:
        """Whether this replica holds the lease for the next ``ttl`` seconds."""
        from datetime import UTC, datetime, timedelta

        import httpx2
        from lightkube import ApiError
        from lightkube.models.coordination_v1 import LeaseSpec
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.coordination_v1 import Lease

        now = datetime.now(UTC)
        seconds = max(int(ttl), 1)
        try:
            try:
                lease = await self._client.get(Lease, self.name, namespace=self.namespace)
            except ApiError as e:
                if e.status is None or e.status.code != 404:
                    raise
                await self._client.create(Lease(
                    metadata=ObjectMeta(name=self.name, namespace=self.namespace),
                    spec=LeaseSpec(holderIdentity=self.identity, leaseDurationSeconds=seconds,
                                   acquireTime=now, renewTime=now, leaseTransitions=0)))
                return True
            spec = lease.spec or LeaseSpec()
            held_by = spec.holderIdentity
            renewed = spec.renewTime or spec.acquireTime
            if held_by and held_by != self.identity and renewed is not None \
                    and spec.leaseDurationSeconds \
                    and renewed + timedelta(seconds=spec.leaseDurationSeconds) > now:
                return False  # another replica holds it and keeps renewing
            if held_by != self.identity:
                spec.acquireTime = now
                spec.leaseTransitions = (spec.leaseTransitions or 0) + (1 if held_by else 0)
            spec.holderIdentity = self.identity
            spec.renewTime = now
            spec.leaseDurationSeconds = seconds
            lease.spec = spec
            await self._client.replace(lease)  # of the version read: 409 if it moved
            return True
        except (ApiError, httpx2.HTTPError) as e:
            code = e.status.code if isinstance(e, ApiError) and e.status is not None else None
            if code != 409:  # 409: another replica won the race, nothing to say
                log.warning("cluster audit: lease %s/%s not taken (%s): not auditing",
                            self.namespace, self.name,
                            f"HTTP {code}" if code else type(e).__name__)
            return False

    async def aclose(self) -> None:
        """Close the API connection."""
        await self._client.close()


def parse_lease(text: str) -> tuple[str, str]:
    """``--audit-lease NAMESPACE/NAME``."""
    import re

    from imggate.errors import UsageError

    name = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
    m = re.fullmatch(rf"({name})/({name}(?:\.{name})*)", text)
    if not m or len(text) > 317:
        raise UsageError(f"--audit-lease {text[:80]!r}: expected NAMESPACE/NAME, e.g. "
                         "imggate/imggate-cluster-audit")
    return m.group(1), m.group(3)


class RunningGauges:
    """The audit's gauges, registered on the webhook's metrics registry."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge

        self.images = Gauge("imggate_running_images", "Containers running now, per "
                            "namespace and decision (imggate audit --cluster)",
                            ["namespace", "decision"], registry=registry)
        self.violations = Gauge("imggate_running_violations", "Containers running now that "
                                "violate an enforced rule, per rule", ["rule"],
                                registry=registry)
        self.duration = Gauge("imggate_cluster_audit_duration_seconds",
                              "How long the last cluster audit took", registry=registry)
        self.last_success = Gauge("imggate_cluster_audit_last_success_timestamp_seconds",
                                  "When the last cluster audit finished", registry=registry)
        self.runs = Counter("imggate_cluster_audits", "Cluster audits run, by result",
                            ["result"], registry=registry)

    def update(self, summary: dict[str, Any], seconds: float) -> None:
        """Replace the gauges with ``summary`` (``imggate-cluster-summary.json``)."""
        self.images.clear()
        for item in summary.get("images", []):
            self.images.labels(str(item["namespace"]), str(item["decision"])).set(
                int(item["count"]))
        self.violations.clear()
        for rule, n in dict(summary.get("violations", {})).items():
            self.violations.labels(str(rule)).set(int(n))
        self.duration.set(seconds)
        self.last_success.set(time.time())


async def run_once(schedule: AuditSchedule, gauges: RunningGauges) -> str:
    """One audit in a child process; the gauges updated from its summary. Returns the
    result counted (``ok``, ``failed``, ``timeout``)."""
    started = time.monotonic()
    env = dict(os.environ)
    if schedule.registry_auth_file:
        env["REGISTRY_AUTH_FILE"] = schedule.registry_auth_file
    env.pop("IMGGATE_CACHE_URL", None)
    if schedule.cache_url is not None and schedule.cache_key_file is not None:
        env["IMGGATE_CACHE_URL"] = schedule.cache_url
    with tempfile.TemporaryDirectory(prefix="imggate-cluster-audit-") as tmp:
        out = Path(tmp)
        err = (out / "stderr").open("wb")
        try:
            proc = await asyncio.create_subprocess_exec(
                *schedule.command(out / "reports"), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=err, env=env)
        finally:
            err.close()
        try:
            code = await asyncio.wait_for(proc.wait(), timeout=schedule.every)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            log.error("cluster audit: not finished after %gs: stopped", schedule.every)
            gauges.runs.labels("timeout").inc()
            return "timeout"
        summary_path = out / "reports" / SUMMARY
        if code not in (0, 1, 3) or not summary_path.is_file():
            tail = (out / "stderr").read_bytes()[-600:].decode(errors="replace")
            log.error("cluster audit failed (exit %s): %s", code, tail.strip().splitlines()[-1:]
                      or "no output")
            gauges.runs.labels("failed").inc()
            return "failed"
        summary = json.loads(summary_path.read_text())
    gauges.update(summary, time.monotonic() - started)
    gauges.runs.labels("ok").inc()
    log.info("cluster audit: %s containers, exit %s, %.1fs", summary.get("containers"), code,
             time.monotonic() - started)
    return "ok"


async def audit_loop(schedule: AuditSchedule, gauges: RunningGauges, leader: Leader,
                     rules_hash: Callable[[], str | None], *,
                     clock: Callable[[], float] = time.monotonic,
                     runs: Sequence[str] | None = None) -> None:
    """Audit every ``schedule.every`` seconds, and as soon as the rules hash changes, in
    the replica that holds the lead (until cancelled)."""
    due = clock() + min(schedule.every, 10.0)  # soon after start, once the rules are in
    seen: str | None = None
    while True:
        await asyncio.sleep(schedule.poll)
        current = rules_hash()
        if current is None:
            continue  # no rules loaded yet
        reloaded = seen is not None and current != seen
        if clock() < due and not reloaded:
            continue
        seen = current
        due = clock() + schedule.every
        if not await leader.acquire(schedule.every * 1.5):
            continue
        result = await run_once(schedule, gauges)
        if isinstance(runs, list):
            runs.append(result)
