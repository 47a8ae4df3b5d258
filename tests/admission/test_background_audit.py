"""``imggate serve --audit-every``: the cluster audit in the background (a child process), its
gauges on /metrics, one replica at a time by a Redis lock, and reviews answered meanwhile.
The cluster is the kube-apiserver STAND-IN of tests/audit/cluster_world.py over the real
loopback registry; Redis is a real redis-server."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from admission.serve_harness import RedisServer, ServeProcess, review, start_serve
from audit.cluster_world import RULES, World, build_world
from imggate.admission.background_audit import LEADER_KEY, RedisLeader, parse_every
from imggate.errors import UsageError
from registry_harness import Registry

pytestmark = pytest.mark.registry


def test_audit_every_is_a_duration() -> None:
    assert parse_every("90s") == 90
    assert parse_every("30m") == 1800
    assert parse_every("1h") == 3600
    for bad in ("1", "0h", "-1h", "1d", "h", "1.5h"):
        with pytest.raises(UsageError, match="--audit-every"):
            parse_every(bad)


def test_one_replica_leads_until_its_lock_expires(redis_server: RedisServer) -> None:
    async def scenario() -> list[bool]:
        a, b = RedisLeader(redis_server.url), RedisLeader(redis_server.url)
        try:
            seen = [await a.acquire(1.0), await b.acquire(1.0), await a.acquire(1.0)]
            await asyncio.sleep(1.3)  # a stops renewing: its lock expires
            seen += [await b.acquire(1.0), await a.acquire(1.0)]
            await a._redis.delete(LEADER_KEY)
            return seen
        finally:
            await a.aclose()
            await b.aclose()

    assert asyncio.run(scenario()) == [True, False, True, True, False]


def test_an_unreachable_redis_is_no_leader() -> None:
    async def scenario() -> bool:
        leader = RedisLeader("redis://127.0.0.1:1/0")
        try:
            return await leader.acquire(1.0)
        finally:
            await leader.aclose()

    assert asyncio.run(scenario()) is False


@pytest.fixture(scope="module")
def auditing(anon_registry: Registry, basic_registry: Registry,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, ServeProcess]]:
    work = tmp_path_factory.mktemp("background")
    w = build_world(anon_registry, basic_registry, work)
    kubeconfig = w.standin.kubeconfig(work / "kubeconfig")
    server = start_serve(work / "serve", ["--rules", str(w.rules()), "--audit-every", "15s",
                                          "--no-pull-secrets"],
                         env={"KUBECONFIG": str(kubeconfig)})
    try:
        yield w, server
    finally:
        server.stop()
        w.standin.stop()


def _metrics(server: ServeProcess) -> str:
    with server.client() as c:
        return c.get("/metrics").text


def _runs(text: str) -> float:
    m = re.search(r'^imggate_cluster_audits_total\{result="ok"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def _wait_for_runs(server: ServeProcess, n: float, timeout: float = 150) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _metrics(server)
        if _runs(text) >= n:
            return text
        time.sleep(0.5)
    raise AssertionError(f"no {n} cluster audits in {timeout}s:\n{server.log_text()[-3000:]}")


def test_the_gauges_say_what_runs(auditing: tuple[World, ServeProcess]) -> None:
    w, server = auditing
    text = _wait_for_runs(server, 1)
    assert 'imggate_running_images{decision="deny",namespace="shop-a"} 1.0' in text
    assert 'imggate_running_images{decision="allow",namespace="shop-a"} 2.0' in text  # + init
    assert 'imggate_running_images{decision="error",namespace="shop-c"} 1.0' in text
    # Only the unsigned image lacks a signature (no signature was removed in this world).
    assert 'imggate_running_violations{rule="signatures"} 1.0' in text
    assert 'imggate_running_images{decision="deny",namespace="nowhere"} 1.0' in text
    assert 'imggate_running_violations{rule="image-drift"} 1.0' in text
    assert 'imggate_running_violations{rule="namespace"} 1.0' in text
    assert re.search(r"^imggate_cluster_audit_duration_seconds [0-9.]+", text, re.M)
    # The child applied the PolicyReports too.
    assert ("policyreports", "shop-a", "imggate") in w.standin.reports


def test_reviews_are_answered_while_the_cluster_is_audited(
        auditing: tuple[World, ServeProcess]) -> None:
    """Warm reviews during audits: the audit is a child process, so the review loop is not
    its CPU; p99 stays far under the review deadline while at least one audit runs."""
    w, server = auditing
    before = _runs(_wait_for_runs(server, 1))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop-a"},
           "spec": {"containers": [{"name": "app", "image": w.ref("v1.0.0", w.digests[0])}]}}
    latencies = []
    with server.client() as c:
        assert c.post("/validate", json=review(pod, namespace="shop-a")).status_code == 200
        end = time.monotonic() + 120
        while time.monotonic() < end:
            t0 = time.perf_counter()
            r = c.post("/validate", json=review(pod, namespace="shop-a"))
            latencies.append(time.perf_counter() - t0)
            assert r.status_code == 200
            assert r.json()["response"]["allowed"] is True
            if len(latencies) >= 200 and _runs(_metrics(server)) >= before + 1:
                break
    assert _runs(_metrics(server)) >= before + 1, "no audit ran while reviews were sent"
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    assert p99 < 1.0, f"warm review p99 {p99 * 1000:.0f} ms during the audit"


def test_a_rules_reload_starts_an_audit_before_the_interval(
        auditing: tuple[World, ServeProcess], tmp_path: Path) -> None:
    """With an interval of an hour, the first audit runs soon after start and the next one
    as soon as the rules change (the PolicyReports then follow the new rules)."""
    w, _ = auditing
    rules = w.work / "rules-reload.yaml"  # beside cosign.pub, which the rules name
    rules.write_text((w.work / "rules.yaml").read_text())
    server = start_serve(tmp_path / "serve", ["--rules", str(rules), "--audit-every", "1h",
                                              "--no-pull-secrets"],
                         env={"KUBECONFIG": str(w.work / "kubeconfig")})
    try:
        _wait_for_runs(server, 1)
        assert 'imggate_running_violations{rule="tags.denied"}' not in _metrics(server)
        rules.write_text(RULES.format(deny="v1\\.0\\.0"))  # prod now denies the v1.0.0 tag
        text = _wait_for_runs(server, 2, timeout=120)
        # The signed pod's app container runs v1.0.0 in prod: now denied by its tag.
        assert re.search(r'^imggate_running_violations\{rule="tags.denied"\} [1-9]', text,
                         re.M), text[-2000:]
    finally:
        server.stop()


def test_the_background_audit_shares_the_webhooks_verdict_cache(
        auditing: tuple[World, ServeProcess], redis_server: RedisServer, tmp_path: Path) -> None:
    """With --cache the child audit writes the webhook's sealed verdicts to Redis (and reads
    them): the URL reaches it in its environment, the key file by name."""
    import redis as redis_client

    w, _ = auditing
    key_file = tmp_path / "cache.key"
    key_file.write_text("0123456789abcdef" * 4 + "\n")
    with redis_client.Redis.from_url(redis_server.url) as raw:
        raw.flushdb()
        server = start_serve(tmp_path / "serve", [
            "--rules", str(w.work / "rules.yaml"), "--audit-every", "1h", "--no-pull-secrets",
            "--cache", redis_server.url, "--cache-key-file", str(key_file)],
            env={"KUBECONFIG": str(w.work / "kubeconfig")})
        try:
            _wait_for_runs(server, 1)
            written = list(raw.scan_iter("imggate:v2:verdict:*"))
        finally:
            server.stop()
    assert len(written) >= 2, server.log_text()[-2000:]  # the signed image, its init image...


def test_one_replica_leads_by_a_lease_until_it_stops_renewing(tmp_path: Path) -> None:
    """The Lease as client-go keeps it, on the stand-in API server: the holder renews, the
    other waits until renewTime + leaseDurationSeconds, then takes it over (a transition);
    two replicas racing for an expired lease cannot both win (409 on the version read)."""
    from imggate.admission.background_audit import LeaseLeader
    from imggate.audit.pods import KubeSource, open_client
    from registry.k8s_apiserver_standin import KubeApiStandIn

    standin = KubeApiStandIn(tmp_path / "api", [])
    kubeconfig = standin.kubeconfig(tmp_path / "kubeconfig")

    def leader(identity: str) -> LeaseLeader:
        return LeaseLeader("imggate", "imggate-cluster-audit",
                           open_client(KubeSource(kubeconfig=kubeconfig)), identity)

    async def scenario() -> tuple[list[bool], list[bool]]:
        a, b, c = leader("a"), leader("b"), leader("c")
        try:
            seen = [await a.acquire(1.0), await b.acquire(1.0), await a.acquire(1.0)]
            await asyncio.sleep(2.2)  # a stops renewing: its lease expires
            seen += [await b.acquire(1.0), await a.acquire(1.0)]
            await asyncio.sleep(2.2)
            race = list(await asyncio.gather(a.acquire(1.0), c.acquire(1.0)))
            return seen, race
        finally:
            for x in (a, b, c):
                await x.aclose()

    try:
        seen, race = asyncio.run(scenario())
        lease = standin.leases[("imggate", "imggate-cluster-audit")]
    finally:
        standin.stop()
    assert seen == [True, False, True, True, False]
    assert sorted(race) == [False, True], race
    assert lease["spec"]["holderIdentity"] in ("a", "c")
    assert lease["spec"]["leaseTransitions"] == 2
    assert lease["spec"]["leaseDurationSeconds"] == 1


def test_serve_audits_in_the_replica_holding_the_lease(
        auditing: tuple[World, ServeProcess], tmp_path: Path) -> None:
    w, _ = auditing
    before = len(w.standin.lease_writes)
    server = start_serve(tmp_path / "serve", [
        "--rules", str(w.work / "rules.yaml"), "--audit-every", "1h", "--no-pull-secrets",
        "--audit-lease", "imggate/imggate-cluster-audit"],
        env={"KUBECONFIG": str(w.work / "kubeconfig")})
    try:
        _wait_for_runs(server, 1)
    finally:
        server.stop()
    lease = w.standin.leases[("imggate", "imggate-cluster-audit")]
    assert lease["spec"]["leaseDurationSeconds"] == 5400  # 1.5 intervals
    assert len(w.standin.lease_writes) > before


def test_audit_lease_is_checked(tmp_path: Path) -> None:
    from imggate.admission.background_audit import parse_lease

    assert parse_lease("imggate/imggate-cluster-audit") == ("imggate", "imggate-cluster-audit")
    for bad in ("imggate", "Imggate/x", "a/b/c", "/x", "a/", "a/-x"):
        with pytest.raises(UsageError, match="--audit-lease"):
            parse_lease(bad)


def test_the_standin_refuses_a_lease_the_schema_would_not_keep() -> None:
    """The schema check every Lease write passed can fail."""
    from registry.k8s_apiserver_standin import lease_problem

    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "imggate-cluster-audit", "namespace": "imggate"},
             "spec": {"holderIdentity": "a", "leaseDurationSeconds": 5,
                      "renewTime": "2026-12-07T00:00:00.000000Z"}}
    assert lease_problem(lease) is None
    assert lease_problem({**lease, "spec": {"holder": "a"}}) is not None
    assert lease_problem({**lease, "spec": {"leaseDurationSeconds": "5"}}) is not None
