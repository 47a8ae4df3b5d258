"""``imggate serve`` over real TLS, against the real registry: decisions, cache, mutate, bad input.

One server (module fixture) runs the rules of ``conftest.rules_text``:
``prod-*`` namespaces need a signature by the test key, images from the
local registry only and no ``latest``; ``scanned-*`` namespaces need a
scanner report from ``--reports-dir``; anything else matches no environment.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from admission.conftest import Images, Webhook, trivy_report_for
from admission.serve_harness import pod, review
from fixture_paths import FIXTURES


def apply_replace(obj: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply JSONPatch ``replace`` operations (all /mutate emits) as the API server would."""
    out = copy.deepcopy(obj)
    for op in patch:
        assert op["op"] == "replace"
        *parents, last = [p.replace("~1", "/").replace("~0", "~")
                          for p in op["path"].split("/")[1:]]
        node: Any = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        assert last in node  # replace needs the value to exist
        node[last] = op["value"]
    return out


def post(webhook: Webhook, doc: dict[str, Any] | bytes, path: str = "/validate",
         **kw: Any) -> httpx.Response:
    with webhook.server.client() as c:
        if isinstance(doc, bytes):
            return c.post(path, content=doc, headers={"content-type": "application/json"},
                          **kw)
        return c.post(path, json=doc, **kw)


def answer(webhook: Webhook, doc: dict[str, Any], path: str = "/validate") -> dict[str, Any]:
    r = post(webhook, doc, path)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "AdmissionReview" and body["apiVersion"] == doc["apiVersion"]
    assert body["response"]["uid"] == doc["request"]["uid"]
    response: dict[str, Any] = body["response"]
    return response


def logged(webhook: Webhook, uid: str) -> dict[str, Any]:
    for _ in range(50):
        for line in webhook.server.reviews():
            if line.get("uid") == uid:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line for {uid}")


def metric(webhook: Webhook, name: str, **labels: str) -> float:
    with webhook.server.client() as c:
        text = c.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


@pytest.mark.parametrize("path", sorted((FIXTURES / "admission").glob("*.json")),
                         ids=lambda p: p.name)
def test_real_reviews_answered_in_kind_by_reference_rules_alone(webhook: Webhook,
                                                                path: Path) -> None:
    doc = json.loads(path.read_text())
    doc["request"]["namespace"] = "prod-fixtures"
    doc["request"]["operation"] = "CREATE"  # the round-trip fixture says "operationValue"
    before = metric(webhook, "imggate_admission_registry_operations_total")
    r = answer(webhook, doc)
    assert r["allowed"] is False
    assert r["status"]["code"] == 403
    message = r["status"]["message"]
    if doc["request"]["kind"]["kind"] == "kindValue":  # the round-trip placeholder fixture
        assert "unknown subresource" in message
    else:
        # docker.io images are outside the prod registries: decided without a registry call.
        assert "registries" in message
        assert logged(webhook, doc["request"]["uid"])["cache"] == "none"
    assert metric(webhook, "imggate_admission_registry_operations_total") == before


def test_signed_image_allowed_then_answered_from_cache(webhook: Webhook, images: Images
                                                       ) -> None:
    ref = images.ref("adm/signed")
    first = review(pod([ref]), namespace="prod-shop")
    r = answer(webhook, first)
    assert r["allowed"] is True, r
    audit = json.loads(r["auditAnnotations"]["images"])
    assert audit == [{"image": ref, "digest": str(images.signed["adm/signed"]),
                      "decision": "allow"}]
    assert r["auditAnnotations"]["environment"] == "prod"
    assert logged(webhook, first["request"]["uid"])["cache"] == "miss"
    again = review(pod([ref]), namespace="prod-shop")
    assert answer(webhook, again)["allowed"] is True
    line = logged(webhook, again["request"]["uid"])
    assert line["cache"] == "local" and line["decision"] == "allow"
    assert line["digests"] == [str(images.signed["adm/signed"])]


def test_unsigned_image_denied_naming_image_and_rule(webhook: Webhook, images: Images) -> None:
    ref = images.ref("adm/unsigned")
    r = answer(webhook, review(pod([ref]), namespace="prod-shop"))
    assert r["allowed"] is False
    assert ref in r["status"]["message"] and "signatures" in r["status"]["message"]


def test_a_cache_hit_never_skips_the_reference_rules(webhook: Webhook, images: Images) -> None:
    digest = images.signed["adm/signed"]
    pinned = f"{images.registry.host}/adm/signed@{digest}"
    assert answer(webhook, review(pod([pinned]), namespace="prod-shop"))["allowed"] is True
    # Same digest, now named by the denied tag: the cached allow must not answer.
    latest = f"{images.registry.host}/adm/signed:latest@{digest}"
    r = answer(webhook, review(pod([latest]), namespace="prod-shop"))
    assert r["allowed"] is False and "tags.denied" in r["status"]["message"]


def test_pod_of_an_admitted_replicaset_is_answered_from_the_cache(webhook: Webhook,
                                                                  images: Images) -> None:
    ref = images.ref("adm/rs")
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "web-5d9c", "namespace": "prod-web"},
          "spec": {"template": {"spec": {"containers": [{"name": "web", "image": ref}]}}}}
    rs_review = review(rs, namespace="prod-web")
    assert answer(webhook, rs_review)["allowed"] is True
    pod_review = review(pod([ref], name="web-5d9c-x1"), namespace="prod-web")
    assert answer(webhook, pod_review)["allowed"] is True
    assert logged(webhook, pod_review["request"]["uid"])["cache"] == "local"


def test_mutate_pins_tags_to_the_checked_digest_idempotently(webhook: Webhook,
                                                            images: Images) -> None:
    ref = images.ref("adm/mutate")
    obj = pod(["busybox-never-pulled:1"], init=[ref])
    obj["spec"]["containers"][0]["image"] = ref
    r = answer(webhook, review(obj, namespace="prod-m"), "/mutate")
    assert r["allowed"] is True and r["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(r["patch"]))
    pinned = f"{ref}@{images.signed['adm/mutate']}"
    assert sorted(p["path"] for p in patch) == ["/spec/containers/0/image",
                                                 "/spec/initContainers/0/image"]
    assert all(p == {"op": "replace", "path": p["path"], "value": pinned} for p in patch)
    patched = apply_replace(obj, patch)
    # Reinvocation (reinvocationPolicy: IfNeeded) sees the pinned object: no further patch.
    r2 = answer(webhook, review(patched, namespace="prod-m"), "/mutate")
    assert r2["allowed"] is True and "patch" not in r2
    assert answer(webhook, review(patched, namespace="prod-m"))["allowed"] is True


def test_mutation_switched_off_per_image_in_the_rules(webhook: Webhook, images: Images) -> None:
    r = answer(webhook, review(pod([images.ref("adm/nomutate")]), namespace="prod-m"), "/mutate")
    assert r["allowed"] is True and "patch" not in r


def test_namespaces_map_exempt_namespaces_and_exempt_images(webhook: Webhook,
                                                            images: Images) -> None:
    unsigned = images.ref("adm/unsigned")
    r = answer(webhook, review(pod([unsigned]), namespace="shop-eu"))  # namespaces.map -> prod
    assert r["allowed"] is False and "environment prod" in r["status"]["message"]
    r = answer(webhook, review(pod([unsigned]), namespace="kube-system"))
    assert r["allowed"] is True and r["auditAnnotations"]["decision"] == "exempt"
    before = metric(webhook, "imggate_admission_registry_operations_total")
    never_pushed = images.ref("adm/exempt-tool", "latest")
    r = answer(webhook, review(pod([never_pushed]), namespace="prod-shop"), "/mutate")
    assert r["allowed"] is True and "patch" not in r
    assert json.loads(r["auditAnnotations"]["images"])[0]["exempt"].endswith("adm/exempt-*")
    assert metric(webhook, "imggate_admission_registry_operations_total") == before


def test_unmapped_namespace_denied_saying_so(webhook: Webhook, images: Images) -> None:
    r = answer(webhook, review(pod([images.ref("adm/signed")]), namespace="kube-public"))
    assert r["allowed"] is False
    assert "'kube-public' maps to no environment" in r["status"]["message"]


def test_scanner_evidence_from_the_reports_dir(webhook: Webhook, images: Images) -> None:
    ref = images.ref("adm/scanned")
    r = answer(webhook, review(pod([ref]), namespace="scanned-a"))
    assert r["allowed"] is False and "NOT SCANNED" in r["status"]["message"]
    digest = images.signed["adm/scanned"]
    name = f"{images.registry.host}/adm/scanned"
    (webhook.reports / f"{digest.tag_form}.trivy.json").write_bytes(
        trivy_report_for(name, digest, "alpine-39-high-critical.json"))
    time.sleep(0.05)
    # The denial was cached briefly; a new rules-hash-free path: ask for the clean image.
    clean = images.signed["adm/clean"]
    (webhook.reports / f"{clean.tag_form}.json").write_bytes(
        trivy_report_for(f"{images.registry.host}/adm/clean", clean, "sl-micro-rancher5.4.json"))
    assert answer(webhook, review(pod([images.ref("adm/clean")]),
                                  namespace="scanned-a"))["allowed"] is True
    pinned = f"{name}:v2@{digest}"  # another tag, same digest: same cached denial
    r = answer(webhook, review(pod([pinned]), namespace="scanned-a"))
    assert r["allowed"] is False


def test_dry_run_gets_the_same_answer_and_changes_no_cache(webhook: Webhook,
                                                           images: Images) -> None:
    ref = images.ref("adm/dry")
    dry = review(pod([ref]), namespace="prod-d", dry_run=True)
    assert answer(webhook, dry)["allowed"] is True
    real = review(pod([ref]), namespace="prod-d")
    assert answer(webhook, real)["allowed"] is True
    assert logged(webhook, real["request"]["uid"])["cache"] == "miss"


def test_v1beta1_is_answered_in_kind(webhook: Webhook, images: Images) -> None:
    doc = review(pod([images.ref("adm/signed")]), namespace="prod-shop",
                 api_version="admission.k8s.io/v1beta1")
    assert answer(webhook, doc)["allowed"] is True


def test_warn_mode_results_become_warnings(webhook: Webhook, images: Images) -> None:
    ref = images.ref("adm/warned")  # the rules want a 'team' label, in warn mode
    for _ in range(2):  # computed, then from the cache: the same warnings
        r = answer(webhook, review(pod([ref]), namespace="prod-shop"))
        assert r["allowed"] is True
        assert r["warnings"][0].startswith(f"{ref}: severity: NOT SCANNED")  # no report
        assert all(len(w) <= 120 for w in r["warnings"])
        assert r["warnings"][1:] == [
            f"{ref}: age: the image config has no 'created' date: age cannot be checked",
            f"{ref}: labels: label 'team' is missing"]


def test_bad_input_gets_400_or_a_reasoned_denial_and_serving_goes_on(webhook: Webhook) -> None:
    assert post(webhook, b"not json").status_code == 400
    assert post(webhook, b'{"kind": "Pod"}').status_code == 400
    no_uid = review(pod(["a:1"]))
    del no_uid["request"]["uid"]
    r = post(webhook, no_uid)
    assert r.status_code == 400 and "uid" in r.json()["error"]
    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    assert post(webhook, deep).status_code == 400
    big = b'{"apiVersion": "admission.k8s.io/v1", "x": "' + b"a" * (50 * 1024 * 1024) + b'"}'
    # The server may close before the upload finishes: it did not read 50 MB.
    with contextlib.suppress(httpx.TransportError):
        assert post(webhook, big).status_code == 413
    bad_ref = answer(webhook, review(pod(["Not A/Valid::Ref"]), namespace="prod-x"))
    assert bad_ref["allowed"] is False and "invalid image reference" in bad_ref["status"]["message"]
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}}
    unknown = answer(webhook, review(cm, namespace="prod-x"))
    assert unknown["allowed"] is False and "unknown kind" in unknown["status"]["message"]
    with webhook.server.client() as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").json()["ready"] is True


def test_metrics_and_one_json_log_line_per_review(webhook: Webhook, images: Images) -> None:
    doc = review(pod([images.ref("adm/signed")]), namespace="prod-shop")
    answer(webhook, doc)
    answer(webhook, review(pod([images.ref("adm/signed")]), namespace="prod-shop"))  # a hit
    line = logged(webhook, doc["request"]["uid"])
    assert {"uid", "namespace", "kind", "images", "decision", "ms", "cache"} <= set(line)
    assert metric(webhook, "imggate_admission_reviews_total", decision="allow", kind="Pod") >= 1
    assert metric(webhook, "imggate_admission_review_seconds_count") >= 1
    assert metric(webhook, "imggate_admission_cache_lookups_total", cache="verdict",
                  result="hit") >= 1
    assert metric(webhook, "imggate_admission_registry_operations_total",
                  operation="resolve") >= 1
    with webhook.server.client() as c:
        assert re.search(r"^imggate_admission_deadline_exceeded_total ", c.get("/metrics").text,
                         re.M)
    # A kind the client names is a label only when imggate knows it: any other kind would
    # be a new series per request.
    before = metric(webhook, "imggate_admission_reviews_total", kind="other")
    for kind in ("ConfigMap", "Made-Up-1", "Made-Up-2"):
        obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}}
        assert answer(webhook, review(obj, namespace="prod-x"))["allowed"] is False
    assert metric(webhook, "imggate_admission_reviews_total", kind="other") == before + 3
    assert metric(webhook, "imggate_admission_reviews_total", kind="ConfigMap") == 0


def test_no_nagle_stall_on_keep_alive(webhook: Webhook, images: Images) -> None:
    doc = review(pod([images.ref("adm/signed")]), namespace="prod-shop")
    body = json.dumps(doc).encode()
    with webhook.server.client() as c:
        c.post("/validate", content=body)
        times = []
        for _ in range(15):
            t = time.perf_counter()
            assert c.post("/validate", content=body).status_code == 200
            times.append(time.perf_counter() - t)
    times.sort()
    # Nagle + delayed ACK adds ~40 ms to every request on a reused connection.
    assert times[len(times) // 2] < 0.035, times
