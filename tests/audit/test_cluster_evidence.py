"""``imggate audit --cluster`` judges the evidence of what runs as of today: signed vuln
attestations (``check --attest`` in "CI") fresh and stale under ``max_report_age``, and a
signature removed after the first audit noticed by the next one. The pods are served by the
kube-apiserver STAND-IN, the images and attestations live in a real Distribution registry;
each container's results are compared with ``imggate check`` of the digest it runs.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from admission.serve_harness import RedisServer, start_redis
from audit.cluster_world import pod
from fixture_paths import FIXTURES
from imggate.evidence.signing_keys import SigningKey, encrypt_cosign_key
from imggate.models import Digest
from registry.k8s_apiserver_standin import KubeApiStandIn
from registry_harness import (
    CliResult,
    MissingComponentError,
    Registry,
    missing_component,
    run_imggate,
)
from signatures.cosign_format_signer import CosignFormatSigner, make_image, push_repository
from signatures.inmemory import InMemoryRepository

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]

CRITICAL_CVE = "CVE-2019-18224"  # debian-buster.json's one finding over High: excepted
PASSWORD = "audit cluster evidence"
# shop-*: scanner evidence from signed vuln attestations, at most 7 days old;
# sec-*: a signature by signer.pub required.
RULES = """\
version: 1
namespaces:
  map:
    - {{match: "shop-*", env: prod}}
    - {{match: "sec-*", env: signed}}
environments:
  prod:
    severity:
      fail_on: High
      require_report: true
      evidence: [reports, attestations]
      max_report_age: 7d
    signatures: {{keys: [ci.pub], required: false}}
  signed:
    signatures: {{keys: [signer.pub], require_tlog: false}}
exceptions:
  - id: {cve}
    reason: fix scheduled, not reachable in this service
    expires: {expires}
"""


@dataclass
class Cluster:
    """The registry, the images, the stand-in and the rules."""

    registry: Registry
    work: Path
    standin: KubeApiStandIn
    rules: Path
    images: dict[str, tuple[str, Digest]]
    redis: RedisServer
    key_file: Path

    def ref(self, name: str) -> str:
        repository, digest = self.images[name]
        return self.registry.ref(repository, None, str(digest))

    def audit(self, out: str, *extra: str) -> tuple[CliResult, dict[str, list[dict[str, Any]]]]:
        result = run_imggate(["audit", "--cluster", "--kubeconfig",
                              str(self.work / "kubeconfig"), "--rules", str(self.rules),
                              "--insecure-ignore-tlog", "-o", str(self.work / out), *extra])
        reports = {ns: json.loads(json.dumps(r["results"]))
                   for (_, ns, _), r in self.standin.reports.items()}
        return result, reports

    def remove_signature(self, name: str) -> None:
        repository, digest = self.images[name]
        base = f"{self.registry.url}/v2/{repository}/manifests"
        head = urllib.request.Request(f"{base}/{digest.tag_form}.sig", method="HEAD", headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json"})
        with urllib.request.urlopen(head, timeout=10) as r:
            sig = r.headers["Docker-Content-Digest"]
        with urllib.request.urlopen(urllib.request.Request(f"{base}/{sig}", method="DELETE"),
                                    timeout=10):
            pass


def _report(c: Cluster, name: str, created: datetime) -> Path:
    """Trivy's real debian-buster report, as Trivy would write it for the image then."""
    repository, digest = c.images[name]
    doc = json.loads((FIXTURES / "trivy" / "debian-buster.json").read_text())
    full = f"{c.registry.host}/{repository}"
    doc["ArtifactName"] = f"{full}@{digest}"
    doc["Metadata"]["RepoDigests"] = [f"{full}@{digest}"]
    doc["Metadata"].pop("ImageID", None)
    doc["CreatedAt"] = created.isoformat().replace("+00:00", "Z")
    out = c.work / f"{name}-trivy.json"
    out.write_text(json.dumps(doc))
    return out


@pytest.fixture(scope="module")
def cluster(anon_registry: Registry, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("cluster-evidence")
    try:
        redis = start_redis(work / "redis")
    except MissingComponentError as e:
        missing_component(str(e))
    ci = SigningKey("ci", ec.generate_private_key(ec.SECP256R1()))
    (work / "ci.key").write_bytes(encrypt_cosign_key(ci.private, PASSWORD.encode(), n=16384))
    (work / "ci.pub").write_bytes(ci.public_pem)
    signer = CosignFormatSigner()
    (work / "signer.pub").write_bytes(signer.public_pem)
    images: dict[str, tuple[str, Digest]] = {}
    prefix = f"evidence-{secrets.token_hex(3)}"
    for name in ("fresh", "stale", "signed"):
        repository = f"{prefix}/{name}"
        repo = InMemoryRepository(f"{anon_registry.host}/{repository}")
        digest = make_image(repo, "1.0.0")
        if name == "signed":
            signer.sign_image(repo, digest)
        push_repository(repo, anon_registry.url, repository)
        images[name] = (repository, digest)
    rules = work / "rules.yaml"
    expires = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    rules.write_text(RULES.format(cve=CRITICAL_CVE, expires=expires))
    # CI's own rules: no age limit (the scan was fine when it ran).
    ci_rules = work / "ci-rules.yaml"
    ci_rules.write_text(RULES.format(cve=CRITICAL_CVE, expires=expires).replace(
        "      max_report_age: 7d\n", ""))
    standin = KubeApiStandIn(work / "apiserver", [])
    c = Cluster(anon_registry, work, standin, rules, images, redis, work / "cache.key")
    c.key_file.write_text(secrets.token_hex(32) + "\n")
    now = datetime.now(UTC)
    for name, created in (("fresh", now - timedelta(hours=1)),
                          ("stale", now - timedelta(days=10))):
        attest = run_imggate(
            ["check", c.ref(name), "--rules", str(ci_rules), "--env", "prod",
             "--trivy-report", str(_report(c, name, created)), "--attest",
             "--attest-key", str(work / "ci.key"), "-o", str(work / f"ci-{name}"), "-q"],
            env={"COSIGN_PASSWORD": PASSWORD})
        assert attest.code == 0, attest.output
    spec = {"fresh": "1.0.0", "stale": "1.0.0", "signed": "1.0.0"}
    for name, ns in (("fresh", "shop-a"), ("stale", "shop-a"), ("signed", "sec-a")):
        repository, digest = images[name]
        standin.add_pod(pod(ns, name, [("app", anon_registry.ref(repository, spec[name]),
                                        anon_registry.ref(repository, None, str(digest)))]))
    standin.kubeconfig(work / "kubeconfig")
    try:
        yield c
    finally:
        standin.stop()
        redis.stop()


def _container(reports: dict[str, list[dict[str, Any]]], ns: str, name: str
               ) -> dict[str, dict[str, Any]]:
    return {r["rule"]: r for r in reports[ns] if r["resources"][0]["name"] == name}


def _check(c: Cluster, name: str, env: str, out: str) -> dict[str, str]:
    result = run_imggate(["check", c.ref(name), "--rules", str(c.rules), "--env", env,
                          "--insecure-ignore-tlog", "-q", "-o", str(c.work / out)])
    assert result.code in (0, 1), result.output
    verdict = json.loads((c.work / out / "imggate-verdict.json").read_text())
    (image,) = verdict["images"]
    return {x["rule"]: ("pass" if x["passed"] else "fail" if x["mode"] == "enforce"
                        else "warn") for x in image["rules"]}


def test_fresh_and_stale_signed_attestations_are_judged_as_of_today(cluster: Cluster) -> None:
    c = cluster
    result, reports = c.audit("first")
    assert result.code == 1, result.output  # the stale attestation denies
    fresh = _container(reports, "shop-a", "fresh")
    stale = _container(reports, "shop-a", "stale")
    assert fresh["report-age"]["result"] == "pass", fresh
    assert fresh["severity"]["result"] == "pass"
    assert fresh["report-age"]["properties"]["decision"] == "allow"
    assert stale["report-age"]["result"] == "fail", stale
    assert "older than max_report_age 7d" in stale["report-age"]["message"]
    assert stale["report-age"]["properties"]["decision"] == "deny"
    # Each is what imggate check of the running digest says today.
    for name, found in (("fresh", fresh), ("stale", stale)):
        assert {k: v["result"] for k, v in found.items()} == _check(c, name, "prod",
                                                                   f"check-{name}")


def test_a_signature_removed_after_an_audit_is_noticed_by_the_next(cluster: Cluster) -> None:
    """First audit: signed, allowed (and written to the shared cache). The signature is
    removed; the next audit without the cache, and one with the cache and --fresh, deny it;
    one reading the cache repeats the cached allow until the entry expires (as the webhook
    would), which is what --fresh is for."""
    c = cluster
    cache = ["--cache-key-file", str(c.key_file)]

    def audit(out: str, *extra: str) -> dict[str, dict[str, Any]]:
        result = run_imggate(["audit", "--cluster", "--kubeconfig",
                              str(c.work / "kubeconfig"), "--rules", str(c.rules),
                              "--insecure-ignore-tlog", "-n", "sec-a", "-o",
                              str(c.work / out), *extra],
                             env={"IMGGATE_CACHE_URL": c.redis.url if extra else None})
        assert result.code in (0, 1), result.output
        reports = {ns: r["results"] for (_, ns, _), r in c.standin.reports.items()}
        return _container(reports, "sec-a", "signed")

    before = audit("sig-1", *cache)
    assert before["signatures"]["result"] == "pass", before
    c.remove_signature("signed")
    cached = audit("sig-2", *cache)
    assert cached["signatures"]["result"] == "pass"  # the webhook's cache TTL, shared
    for out, extra in (("sig-3", ()), ("sig-4", (*cache, "--fresh"))):
        after = audit(out, *extra)
        assert after["signatures"]["result"] == "fail", (out, after)
        assert after["signatures"]["properties"]["decision"] == "deny"
    assert _check(c, "signed", "signed", "check-signed")["signatures"] == "fail"
    # What --fresh wrote replaced the cached allow: the cache now says deny too.
    assert audit("sig-5", *cache)["signatures"]["result"] == "fail"
