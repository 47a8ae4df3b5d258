"""``imggate audit --cluster --cache``: the webhook's sealed Redis verdict cache, shared both
ways, against the kube-apiserver STAND-IN (tests/audit/cluster_world.py), a real
Distribution registry with its access log on (registry requests are counted), a real
``imggate serve`` and a real redis-server on loopback.

The story, in the fixture: the webhook admits a pod running d0 (its verdict goes to Redis);
someone who can write to Redis forges an allow for the unsigned d3; the audit runs warm,
then a second webhook reads what the audit wrote, then the audit runs ``--fresh``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from admission.serve_harness import RedisServer, ServeProcess, review, start_redis, start_serve
from audit.cluster_world import World, build_world, pod
from imggate.admission.cache import CachedVerdict, verdict_key, verdict_payload
from imggate.admission.judge import served_trust
from imggate.admission.policies import load_policy_set
from imggate.admission.seal import parse_cache_keys
from imggate.registry.reference import parse_reference
from registry_harness import (
    CliResult,
    MissingComponentError,
    Registry,
    missing_component,
    registry_requests,
    run_imggate,
    start_registry,
)

pytestmark = pytest.mark.registry

# prod: signed by cosign.pub; the rules about the reference only warn, so that a cached
# verdict is used (an enforced one denies before any cache is asked) and its warnings seen.
RULES = """\
version: 1
default_env: dev
namespaces:
  exempt: [kube-system]
  map:
    - {match: "shop-*", env: prod}
    - {match: "dev-*", env: dev}
environments:
  dev:
    severity: {fail_on: Critical}
  prod:
    extends: dev
    tags: {deny: [latest], require_digest: true, mode: warn}
    signatures: {keys: [cosign.pub], require_tlog: false}
"""


@dataclass
class Story:
    """What the fixture did and saw."""

    world: World
    registry: Registry
    redis: RedisServer
    key_file: Path
    rules: Path
    admitted: dict[str, Any]
    warm: CliResult
    warm_reports: dict[str, list[dict[str, Any]]]
    warm_requests: dict[str, int]
    webhook_reads: dict[str, Any]
    fresh: CliResult
    fresh_reports: dict[str, list[dict[str, Any]]]
    fresh_requests: dict[str, int]


def _manifest_requests(reg: Registry, digest: str) -> dict[str, int]:
    """Requests so far for ``digest``'s manifest, and for its cosign signature tag."""
    hexpart = digest.split(":")[1]
    return {"manifest": registry_requests(reg, rf'"(?:GET|HEAD) /v2/\S+/manifests/{digest}'),
            "signature": registry_requests(reg, rf'"(?:GET|HEAD) /v2/\S+/manifests/'
                                                rf'sha256-{hexpart}\.sig')}


def _reports(w: World) -> dict[str, list[dict[str, Any]]]:
    """Every namespace's results, copied (the next run replaces them)."""
    return {ns: json.loads(json.dumps(r["results"]))
            for (_, ns, _), r in w.standin.reports.items()}


def _audit(s: dict[str, Any], out: Path, *extra: str) -> CliResult:
    return run_imggate(["audit", "--cluster", "--kubeconfig", str(s["kubeconfig"]),
                        "--rules", str(s["rules"]), "--cache-key-file", str(s["key_file"]),
                        "-o", str(out), *extra], env={"IMGGATE_CACHE_URL": s["redis"].url})


def _serve(s: dict[str, Any], where: Path) -> ServeProcess:
    return start_serve(where, ["--rules", str(s["rules"]), "--no-pull-secrets",
                               "--cache", s["redis"].url, "--cache-key-file",
                               str(s["key_file"])])


def _admit(server: ServeProcess, image: str) -> dict[str, Any]:
    doc = review({"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "web", "namespace": "shop-a"},
                  "spec": {"containers": [{"name": "app", "image": image}]}},
                 namespace="shop-a")
    with server.client() as c:
        answer = c.post("/validate", json=doc).json()["response"]
    (line,) = [r for r in server.reviews() if r["uid"] == doc["request"]["uid"]]
    return {"allowed": answer["allowed"], "cache": line["cache"]}


@pytest.fixture(scope="module")
def story(basic_registry: Registry, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Story]:
    work = tmp_path_factory.mktemp("cluster-cache")
    reg = start_registry(work / "registry", access_log=True)
    try:
        redis_server = start_redis(work / "redis")
    except MissingComponentError as e:
        reg.stop()
        missing_component(str(e))
    w = build_world(reg, basic_registry, work)
    d = w.digests
    try:
        rules = work / "rules-cache.yaml"  # beside cosign.pub, which the rules name
        rules.write_text(RULES)
        # The same digest as the signed pod's, pinned by its spec: the same cache entry,
        # other reference rules (pinned: no digest-pinning warning).
        w.standin.add_pod(pod("shop-e", "pinned", [("app", w.ref(digest=d[0]),
                                                    w.ref(digest=d[0]))]))
        key_file = work / "cache.key"
        key_file.write_text(f"# the webhook's key\n{secrets.token_hex(32)}\n")
        s: dict[str, Any] = {"kubeconfig": w.standin.kubeconfig(work / "kubeconfig"),
                             "rules": rules, "key_file": key_file, "redis": redis_server}
        # 1. The webhook admits a pod running d0: its verdict is sealed into Redis.
        webhook = _serve(s, work / "serve-a")
        try:
            admitted = _admit(webhook, w.ref(digest=d[0]))
        finally:
            webhook.stop()
        # 2. Whoever can write to Redis writes an allow for the unsigned d3, sealed with
        # another key: never believed.
        policies = load_policy_set(rules)
        name = parse_reference(w.ref(digest=d[3])).name
        key = verdict_key(d[3], name, policies.hash, "prod", served_trust(None))
        forger = parse_cache_keys(secrets.token_hex(32), "forger")
        with redis.Redis.from_url(redis_server.url) as raw:
            raw.set(key.id, forger.seal(key.id, verdict_payload(
                key, CachedVerdict("allow", d[3]))))
        # 3. The audit, warm: what the webhook judged is not asked of the registry again.
        before = _manifest_requests(reg, d[0])
        warm = _audit(s, work / "warm")
        after = _manifest_requests(reg, d[0])
        warm_requests = {k: after[k] - before[k] for k in after}
        warm_reports = _reports(w)
        # 4. Another webhook replica reads what the audit wrote (d1, signed: allowed).
        webhook = _serve(s, work / "serve-b")
        try:
            reads = _admit(webhook, w.ref(digest=d[1]))
        finally:
            webhook.stop()
        # 5. --fresh: everything asked of the registry again, and written again.
        before = _manifest_requests(reg, d[0])
        fresh = _audit(s, work / "fresh", "--fresh")
        after = _manifest_requests(reg, d[0])
        yield Story(w, reg, redis_server, key_file, rules, admitted, warm, warm_reports,
                    warm_requests, reads, fresh, _reports(w),
                    {k: after[k] - before[k] for k in after})
    finally:
        w.standin.stop()
        redis_server.stop()
        reg.stop()


def _cluster_doc(s: Story, run: str) -> dict[str, Any]:
    doc = json.loads((s.world.work / run / "imggate-cluster.json").read_text())
    assert isinstance(doc, dict)
    return doc


def _container(reports: dict[str, list[dict[str, Any]]], ns: str, pod_name: str
               ) -> dict[str, str]:
    return {r["rule"]: r["result"] for r in reports[ns]
            if r["resources"][0]["name"] == pod_name and r["properties"]["container"] == "app"}


def test_a_verdict_the_webhook_wrote_is_a_hit_for_the_audit(story: Story) -> None:
    s = story
    assert s.admitted == {"allowed": True, "cache": "miss"}
    assert s.warm.code == 1, s.warm.output  # the unsigned pod and the drift are denied
    cache = _cluster_doc(s, "warm")["verdict_cache"]
    # d0 runs under two judged references in prod (the signed pod's tag, the pinned and
    # drifted pods' digest): both found the webhook's entry.
    assert cache["hits"] >= 2, cache
    assert cache["fresh"] is False
    # Neither d0's manifest nor its signature was asked of the registry.
    assert s.warm_requests == {"manifest": 0, "signature": 0}, s.warm_requests
    props = [r["properties"] for r in s.warm_reports["shop-a"]
             if r["resources"][0]["name"] == "signed" and r["properties"]["container"] == "app"]
    assert props and all(p["digest"] == s.world.digests[0] for p in props)
    assert "verdict cache at 127.0.0.1:" in s.warm.stdout
    assert s.redis.url.split("//")[1].split("/")[0] in s.warm.stdout  # host:port, no secret


def test_a_verdict_the_audit_wrote_is_a_hit_for_the_webhook(story: Story) -> None:
    assert story.webhook_reads == {"allowed": True, "cache": "redis"}
    assert _cluster_doc(story, "warm")["verdict_cache"]["written"] >= 1


def test_a_forged_entry_is_never_believed(story: Story) -> None:
    s = story
    cache = _cluster_doc(s, "warm")["verdict_cache"]
    assert cache["rejected"] == {"mac": 1}, cache
    unsigned = _container(s.warm_reports, "shop-a", "unsigned")
    assert unsigned["signatures"] == "fail", unsigned
    row = next(r for r in _cluster_doc(s, "warm")["rows"] if r["pod"] == "unsigned")
    assert row["decision"] == "deny"
    assert "refused" in s.warm.stdout and "mac 1" in s.warm.stdout


def test_reference_rules_are_applied_again_on_a_hit(story: Story) -> None:
    """One cache entry (d0 in prod), two specs: the tag-only one warns that it is not
    pinned, the pinned one passes; the rules that need the image come from the entry."""
    s = story
    tagged = _container(s.warm_reports, "shop-a", "signed")
    pinned = _container(s.warm_reports, "shop-e", "pinned")
    assert tagged["tags.digest-pinning"] == "warn", tagged
    assert pinned["tags.digest-pinning"] == "pass", pinned
    assert tagged["signatures"] == pinned["signatures"] == "pass"


def test_fresh_reads_no_verdict_and_asks_the_registry_again(story: Story) -> None:
    s = story
    assert s.fresh.code == 1, s.fresh.output
    cache = _cluster_doc(s, "fresh")["verdict_cache"]
    assert cache["fresh"] is True and cache["hits"] == 0 and cache["rejected"] == {}
    assert cache["written"] >= 3  # signed d0, d1, the unsigned d3's denial...
    assert s.fresh_requests["manifest"] >= 1 and s.fresh_requests["signature"] >= 1, \
        s.fresh_requests
    assert "not read (--fresh)" in s.fresh.stdout


def test_a_hit_reports_what_a_fresh_run_reports(story: Story) -> None:
    """Every container's results (rule -> pass/fail/warn/error/skip) are the same whether
    its image came from the shared cache or was judged again."""
    s = story

    def results(reports: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, ...], str]:
        return {(ns, r["resources"][0]["name"], r["properties"]["container"], r["rule"]):
                r["result"] for ns, items in reports.items() for r in items}

    assert results(s.warm_reports) == results(s.fresh_reports)


def test_verdicts_made_with_weaker_verification_are_never_shared(story: Story) -> None:
    """--insecure-ignore-tlog is part of the key: what the audit judged that way is no hit
    for a door verifying the transparency log (the webhook here), nor the other way."""
    s = story
    s_env = {"kubeconfig": s.world.work / "kubeconfig", "rules": s.rules,
             "key_file": s.key_file, "redis": s.redis}
    # Redis holds the --fresh run's entries, made verifying the log: no hits with the flag.
    flagged = _audit(s_env, s.world.work / "tlog-1", "--insecure-ignore-tlog")
    assert flagged.code == 1, flagged.output
    cache = _cluster_doc(s, "tlog-1")["verdict_cache"]
    assert cache["hits"] == 0 and cache["written"] >= 3, cache
    # Only the flagged run's entries left: no hits without the flag, hits with it.
    with redis.Redis.from_url(s.redis.url) as raw:
        for key in raw.scan_iter("imggate:v2:verdict:*"):
            raw.delete(key)
    for run, flags, hit in (("tlog-2", ["--insecure-ignore-tlog"], False),
                            ("tlog-3", [], False), ("tlog-4", ["--insecure-ignore-tlog"], True)):
        result = _audit(s_env, s.world.work / run, *flags)
        assert result.code == 1, result.output
        cache = _cluster_doc(s, run)["verdict_cache"]
        assert (cache["hits"] >= 3) if hit else (cache["hits"] == 0), (run, cache)


def test_redis_down_is_a_miss_for_every_image_never_a_failed_audit(story: Story) -> None:
    s = story
    down = run_imggate(["audit", "--cluster", "--kubeconfig", str(s.world.work / "kubeconfig"),
                        "--rules", str(s.rules), "--cache-key-file", str(s.key_file),
                        "-o", str(s.world.work / "down")],
                       env={"IMGGATE_CACHE_URL": "redis://127.0.0.1:1/0"})
    assert down.code == 1, down.output  # the same decisions as with a cache
    cache = _cluster_doc(s, "down")["verdict_cache"]
    assert cache["hits"] == 0 and cache["written"] == 0 and cache["errors"] >= 1, cache
    assert "Redis errors" in down.stdout
    rows = {r["pod"]: r["decision"] for r in _cluster_doc(s, "down")["rows"]}
    assert rows == {r["pod"]: r["decision"] for r in _cluster_doc(s, "fresh")["rows"]}


def test_cache_flags_are_checked(tmp_path: Path) -> None:
    cases = [
        (["--cluster", "--cache", "redis://127.0.0.1:1/0"], "--cache-key-file"),
        (["--cluster", "--fresh"], "--fresh"),
        (["--cluster", "--cache-key-file", str(tmp_path / "k")], "--cache-key-file"),
        (["--cluster", "--cache", "http://x/0", "--cache-key-file", str(tmp_path / "k")],
         "--cache must be a redis://"),
        (["example.com/app", "--cache", "redis://127.0.0.1:1/0"], "--cache only applies"),
    ]
    for args, said in cases:
        result = run_imggate(["audit", *args, "-o", str(tmp_path / "out")])
        assert result.code == 2, (args, result.output)
        assert said in result.stderr, (args, result.stderr)
    # IMGGATE_CACHE_URL exported for the cluster audit is not "--cache" for a repository's.
    result = run_imggate(["audit", "127.0.0.1:1/app", "-o", str(tmp_path / "out"),
                          "--deadline", "2"], env={"IMGGATE_CACHE_URL": "redis://127.0.0.1:1/0"})
    assert "--cache" not in result.stderr, result.stderr
    assert result.code == 3, result.output  # the registry is not there: undecided
