"""``imggate audit --cluster`` against the kube-apiserver STAND-IN and a real Distribution
registry (tests/audit/cluster_world.py): PolicyReports whose results match a per-pod
``imggate check`` of the running digest, updated in place by server-side apply."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from audit.cluster_world import World, build_world, pod
from registry_harness import CliResult, Registry, run_imggate

pytestmark = pytest.mark.registry

GATED = ("prod", "dev")


@pytest.fixture(scope="module")
def world(anon_registry: Registry, basic_registry: Registry,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, CliResult, str]]:
    work = tmp_path_factory.mktemp("cluster")
    w = build_world(anon_registry, basic_registry, work)
    rules = w.rules()
    # Admitted while signed: a check of the digest passed before its signature was removed.
    before = run_imggate(["check", w.ref("v1.0.2", w.digests[2]), "--rules", str(rules),
                          "--env", "prod", "-q", "-o", str(work / "before")])
    w.remove_signature(w.digests[2])
    kubeconfig = w.standin.kubeconfig(work / "kubeconfig")
    result = run_imggate(["audit", "--cluster", "--kubeconfig", str(kubeconfig), "--rules",
                          str(rules), "--page-size", "3", "-o", str(work / "out")])
    try:
        yield w, result, str(before.code)
    finally:
        w.standin.stop()


def _results(w: World, namespace: str) -> list[dict[str, Any]]:
    report = w.standin.reports[("policyreports", namespace, "imggate")]
    results = report["results"]
    assert isinstance(results, list)
    return results


def _container(w: World, namespace: str, pod_name: str, container: str = "app"
               ) -> list[dict[str, Any]]:
    return [r for r in _results(w, namespace) if r["resources"][0]["name"] == pod_name
            and r["properties"]["container"] == container]


def _rules(results: list[dict[str, Any]]) -> dict[str, str]:
    return {r["rule"]: r["result"] for r in results}


def test_every_namespace_gets_a_report_with_counted_results(world: tuple) -> None:
    w, result, _ = world
    assert result.code == 1, result.output + result.stderr  # denials in the cluster
    namespaces = {ns for (_, ns, _) in w.standin.reports}
    assert namespaces == {"shop-a", "shop-b", "shop-c", "shop-d", "dev-a", "nowhere",
                          "kube-system"}
    for (_, ns, _), report in w.standin.reports.items():
        assert report["apiVersion"] == "wgpolicyk8s.io/v1alpha2"
        assert report["kind"] == "PolicyReport"
        assert report["metadata"]["managedFields"][0]["manager"] == "imggate"
        counted = {k: sum(1 for r in report["results"] if r["result"] == k)
                   for k in ("pass", "fail", "warn", "error", "skip")}
        assert report["summary"] == counted, ns
        for r in report["results"]:
            assert r["source"] == "imggate"
            assert r["policy"] == "imggate"
            assert r["result"] in counted
            assert r["severity"] in ("critical", "high", "medium", "low", "info")
            assert isinstance(r["scored"], bool)
            assert r["resources"][0]["kind"] == "Pod"
            assert r["resources"][0]["namespace"] == ns


def test_pods_were_read_a_page_at_a_time(world: tuple) -> None:
    w, _, _ = world
    assert len(w.standin.page_sizes) >= 3
    assert max(w.standin.page_sizes) <= 3
    assert any("continue=" in p for p in w.standin.requests)
    # imggate's existing reports are listed a page at a time too (each holds its results).
    listed = [r for r in w.standin.requests if r.startswith("/apis/") and "/policyreports?" in r]
    assert listed and all("limit=50" in r for r in listed), listed


def test_results_match_a_check_of_each_running_digest(world: tuple, tmp_path: Path) -> None:
    """The Done-when: each gated container's results are what ``imggate check`` of the
    reference it runs says under its namespace's environment."""
    w, _, _ = world
    rules = w.work / "rules.yaml"
    compared = 0
    for (_, ns, _), report in sorted(w.standin.reports.items()):
        seen: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in report["results"]:
            seen.setdefault((r["resources"][0]["name"], r["properties"]["container"]),
                            []).append(r)
        for (pod_name, container), results in seen.items():
            props = results[0]["properties"]
            if props["environment"] not in GATED:
                continue
            if any(r["message"].startswith("pull secrets:") for r in results):
                continue  # could not be judged for want of its credentials: another test
            out = tmp_path / f"{ns}-{pod_name}-{container}"
            # The pod's pull secret opens the Basic-auth registry: check gets the same login.
            basic = w.registry_basic
            login = (["--username", basic.username, "--password-stdin"]
                     if pod_name == "private" else [])
            check = run_imggate(["check", props["judged"], "--rules", str(rules), "--env",
                                 props["environment"], "-q", "-o", str(out), *login],
                                stdin=f"{basic.password}\n" if login else "")
            verdict = json.loads((out / "imggate-verdict.json").read_text())
            (image,) = verdict["images"]
            drift = [r for r in results if r["rule"] == "image-drift"]
            gate = [r for r in results if r["rule"] not in ("image-drift", "evidence")]
            expected = {x["rule"]: ("pass" if x["passed"] else
                                    "fail" if x["mode"] == "enforce" else "warn")
                        for x in image["rules"]}
            assert _rules(gate) == expected, (ns, pod_name)
            assert bool([r for r in results if r["rule"] == "evidence"]) == bool(image["error"])
            decision = "deny" if drift else image["decision"]
            assert props["decision"] == decision, (ns, pod_name, check.output)
            if not drift:
                assert check.code == {"allow": 0, "deny": 1, "error": 3}[props["decision"]]
            assert props.get("digest") == image["digest"]
            compared += 1
    assert compared == 8  # signed (+ its init container), unsigned, removed, drift, pending,
    # refused, private


def test_each_case_says_what_it_is(world: tuple) -> None:
    w, _, before = world
    d = w.digests
    signed = _container(w, "shop-a", "signed")
    assert _rules(signed)["signatures"] == "pass"
    assert signed[0]["properties"]["judged"] == w.ref("v1.0.0", d[0])
    assert signed[0]["properties"]["decision"] == "allow"
    init = _container(w, "shop-a", "signed", "migrate")
    assert init[0]["properties"]["containerKind"] == "init"
    assert init[0]["properties"]["digest"] == d[1]
    assert _rules(_container(w, "shop-a", "unsigned"))["signatures"] == "fail"
    # Removed after admission: was allowed, is denied now.
    assert before == "0"
    removed = _container(w, "shop-b", "removed")
    assert _rules(removed)["signatures"] == "fail"
    assert removed[0]["properties"]["decision"] == "deny"
    drift = _container(w, "shop-b", "drift")
    (finding,) = [r for r in drift if r["rule"] == "image-drift"]
    assert finding["result"] == "fail"
    assert d[1] in finding["message"] and d[0] in finding["message"]
    assert drift[0]["properties"]["digest"] == d[0]  # the running digest is what is judged
    assert drift[0]["properties"]["image"] == w.ref(digest=d[1])
    pending = _container(w, "dev-a", "pending")
    assert pending[0]["properties"]["judged"] == w.ref("v1.0.4")  # judged by its spec
    assert pending[0]["properties"]["digest"] == d[4]
    lost = _container(w, "nowhere", "lost")
    assert _rules(lost) == {"namespace": "fail"}
    assert "maps to no environment" in lost[0]["message"]
    dns = _container(w, "kube-system", "dns", "dns")
    assert _rules(dns) == {"namespace": "skip"}
    refused = _container(w, "shop-c", "refused")
    assert _rules(refused)["evidence"] == "error"
    assert refused[0]["properties"]["decision"] == "error"
    assert "HTTP 401" in next(r for r in refused if r["rule"] == "evidence")["message"]


def test_pull_secrets_open_the_registry_as_for_the_kubelet(world: tuple) -> None:
    w, result, _ = world
    private = _container(w, "shop-d", "private")
    assert _rules(private)["signatures"] == "pass"
    assert private[0]["properties"]["decision"] == "allow"
    assert private[0]["properties"]["digest"] == w.private
    assert "/api/v1/namespaces/shop-d/secrets/regcred" in w.standin.requests
    assert w.registry_basic.password not in result.output
    locked = _container(w, "shop-d", "locked")
    (error,) = [r for r in locked if r["result"] == "error"]
    assert error["message"].startswith("pull secrets: Kubernetes API refused to read "
                                       "secret shop-d/locked: HTTP 403")
    assert locked[0]["properties"]["decision"] == "error"


def test_the_usual_reports_are_written(world: tuple) -> None:
    w, result, _ = world
    out = w.work / "out"
    doc = json.loads((out / "imggate-cluster.json").read_text())
    assert doc["pods"] == 10
    assert doc["containers"] == 11
    assert doc["registry_resolutions"] <= doc["distinct_images"]
    assert doc["verdict_cache"] is None  # no --cache
    assert set(doc["seconds"]) == {"list_pods", "judge"}
    assert all(0 <= v < 120 for v in doc["seconds"].values()), doc["seconds"]
    verdict = json.loads((out / "imggate-verdict.json").read_text())
    assert verdict["exit_code"] == 1
    assert (out / "imggate-junit.xml").is_file()
    assert (out / "imggate-report.html").is_file()
    assert "top reasons:" in result.stdout
    assert w.standin.token not in result.output + result.stderr


def test_a_second_run_updates_in_place_and_drops_pods_that_are_gone(world: tuple) -> None:
    w, _, _ = world
    before = {k: dict(v["metadata"]) for k, v in w.standin.reports.items()}
    w.standin.pods = [p for p in w.standin.pods
                      if p["metadata"]["name"] not in ("unsigned", "refused")]
    rules = w.rules(deny="v1\\.0\\.0")  # the rules change: prod now denies the v1.0.0 tag
    result = run_imggate(["audit", "--cluster", "--kubeconfig", str(w.work / "kubeconfig"),
                          "--rules", str(rules), "-o", str(w.work / "out2"), "-q"])
    assert result.code == 1, result.output + result.stderr
    key = ("policyreports", "shop-a", "imggate")
    after = w.standin.reports[key]["metadata"]
    assert after["uid"] == before[key]["uid"]
    assert after["resourceVersion"] != before[key]["resourceVersion"]
    assert not _container(w, "shop-a", "unsigned")
    assert _rules(_container(w, "shop-a", "signed"))["tags.denied"] == "fail"
    # shop-c has no pod left: its report is emptied, not left stale.
    emptied = w.standin.reports[("policyreports", "shop-c", "imggate")]
    assert emptied["results"] == []
    assert emptied["summary"]["error"] == 0


def test_dry_run_prints_reports_and_applies_nothing(world: tuple) -> None:
    import yaml

    w, _, _ = world
    applied = len(w.standin.applies)
    result = run_imggate(["audit", "--cluster", "--kubeconfig", str(w.work / "kubeconfig"),
                          "--rules", str(w.work / "rules.yaml"), "--dry-run",
                          "--report-format", "openreports", "-n", "shop-a",
                          "-o", str(w.work / "dry")])
    assert len(w.standin.applies) == applied
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["metadata"]["namespace"] for d in docs] == ["shop-a"]
    assert docs[0]["apiVersion"] == "openreports.io/v1alpha1"
    assert docs[0]["kind"] == "Report"


def test_the_reference_rules_judge_the_spec_as_written(world: tuple, tmp_path: Path) -> None:
    """A tag-only spec is not pinned because the kubelet reports the digest it pulled: with
    prod requiring digests, the signed pod (``repo:v1.0.0``, running d0) is denied by
    ``tags.digest-pinning`` exactly as ``check -f`` denies its manifest, while the drift pod's
    pinned spec passes it; the evidence is still the running digest's."""
    import yaml

    w, _, _ = world
    rules = w.work / "rules-pinning.yaml"  # beside cosign.pub, which the rules name
    rules.write_text(w.rules().read_text().replace(
        "tags: {deny: [latest]}", "tags: {deny: [latest], require_digest: true}"))
    assert "require_digest" in rules.read_text()
    result = run_imggate(["audit", "--cluster", "--kubeconfig", str(w.work / "kubeconfig"),
                          "--rules", str(rules), "--dry-run", "-n", "shop-a", "-n", "shop-b",
                          "-o", str(tmp_path / "audit")])
    assert result.code == 1, result.output
    reports = {d["metadata"]["namespace"]: d for d in yaml.safe_load_all(result.stdout)}

    def results(ns: str, pod_name: str, container: str = "app") -> dict[str, Any]:
        found = [r for r in reports[ns]["results"] if r["resources"][0]["name"] == pod_name
                 and r["properties"]["container"] == container]
        return {"rules": _rules(found), "decision": found[0]["properties"]["decision"],
                "judged": found[0]["properties"]["judged"]}

    signed = results("shop-a", "signed")
    assert signed["rules"]["tags.digest-pinning"] == "fail", signed
    assert signed["decision"] == "deny"
    assert signed["judged"] == w.ref("v1.0.0", w.digests[0])  # what runs, named
    assert results("shop-a", "signed", "migrate")["rules"]["tags.digest-pinning"] == "fail"
    drift = results("shop-b", "drift")
    assert drift["rules"]["tags.digest-pinning"] == "pass", drift
    assert drift["rules"]["image-drift"] == "fail"
    # check -f of the pod's manifest says the same about the spec as written.
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "signed", "namespace": "shop-a"},
        "spec": {"containers": [{"name": "app", "image": w.ref("v1.0.0")}]}}))
    check = run_imggate(["check", "-f", str(manifest), "--rules", str(rules), "-q",
                         "-o", str(tmp_path / "check")])
    assert check.code == 1, check.output
    verdict = json.loads((tmp_path / "check" / "imggate-verdict.json").read_text())
    (image,) = verdict["images"]
    by_check = {x["rule"]: ("pass" if x["passed"] else "fail" if x["mode"] == "enforce"
                            else "warn") for x in image["rules"]}
    assert by_check["tags.digest-pinning"] == "fail"
    assert image["decision"] == signed["decision"]


def test_openreports_are_applied_as_reports(world: tuple) -> None:
    w, _, _ = world
    result = run_imggate(["audit", "--cluster", "--kubeconfig", str(w.work / "kubeconfig"),
                          "--rules", str(w.work / "rules.yaml"), "--report-format",
                          "openreports", "-n", "dev-a", "-o", str(w.work / "or"), "-q"])
    assert result.code in (0, 1), result.stderr
    report = w.standin.reports[("reports", "dev-a", "imggate")]
    assert report["kind"] == "Report"
    assert report["results"]


def test_an_api_server_that_refuses_is_exit_3_and_writes_no_report(world: tuple) -> None:
    w, _, _ = world
    applied = len(w.standin.applies)
    w.standin.refuse_lists = True
    try:
        result = run_imggate(["audit", "--cluster", "--kubeconfig",
                              str(w.work / "kubeconfig"), "--rules",
                              str(w.work / "rules.yaml"), "-o", str(w.work / "refused")])
    finally:
        w.standin.refuse_lists = False
    assert result.code == 3
    assert "Kubernetes API refused listing pods: HTTP 403" in result.stderr
    assert "RBAC" in result.stderr
    assert len(w.standin.applies) == applied


def test_usage_errors_are_exit_2(tmp_path: Path) -> None:
    assert run_imggate(["audit", "--cluster", "registry.example/x"]).code == 2
    assert run_imggate(["audit", "--cluster", "-n", "Bad/Name"]).code == 2
    assert run_imggate(["audit", "--cluster", "--report-format", "xml"]).code == 2
    assert run_imggate(["audit", "--cluster", "--kubeconfig", str(tmp_path / "none")]).code == 2
    assert run_imggate(["audit", "registry.example/x", "--dry-run"]).code == 2
    assert run_imggate(["audit"]).code == 2


def test_a_pod_with_a_hostile_name_is_refused_in_imggates_words() -> None:
    from imggate.audit.pods import ApiServerError, pod_rows

    bad = pod("shop-a", "x", [("app", "a/b:1", None)])
    bad["metadata"]["name"] = "../../etc"
    with pytest.raises(ApiServerError, match="invalid pod name"):
        pod_rows(bad)


def test_image_ids_as_runtimes_write_them() -> None:
    from imggate.audit.pods import running_digest

    hexd = "a" * 64
    assert running_digest(f"docker-pullable://reg.example/app@sha256:{hexd}") == \
        f"reg.example/app@sha256:{hexd}"
    assert running_digest(f"docker.io/library/nginx@sha256:{hexd}") == \
        f"docker.io/library/nginx@sha256:{hexd}"
    assert running_digest(f"sha256:{hexd}") is None  # a config ID names no registry image
    assert running_digest("") is None


def test_the_standin_refuses_a_report_the_crd_would_not_keep() -> None:
    """The schema check that every applied report passed can fail."""
    from registry.k8s_apiserver_standin import report_problem

    good = {"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
            "metadata": {"name": "imggate"}, "summary": {"pass": 1},
            "results": [{"policy": "imggate", "result": "pass", "severity": "high"}]}
    assert report_problem(good) is None
    assert str(report_problem({**good, "results": [{"policy": "p", "result": "ok"}]})
               ).startswith("results.0.result:")
    assert report_problem({**good, "results": [{"policy": "p", "messages": ["x"]}]}) == \
        "results.[0].messages: unknown field"


def test_the_real_pod_fixture_reads_as_three_containers() -> None:
    """kubernetes/api's round-trip Pod (every field set): a container, an init and an
    ephemeral one; its imageID names no registry digest, so the spec is judged, saying so."""
    import yaml

    from fixture_paths import FIXTURES
    from imggate.audit.pods import pod_rows

    doc = yaml.safe_load((FIXTURES / "k8s" / "k8s-api-core.v1.Pod.yaml").read_text())
    rows = pod_rows(doc)
    assert sorted(r.kind for r in rows) == ["container", "ephemeral", "init"]
    assert all(r.image == "imageValue" and r.running is None for r in rows)
    assert all(r.note is not None and "judged by the spec" in r.note for r in rows
               if r.kind != "ephemeral" or r.note)
    assert rows[0].pull_secrets == ("nameValue",)
    assert rows[0].account == "serviceAccountNameValue"


def test_every_pod_served_is_a_valid_pod() -> None:
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    served = pod("shop-a", "x", [("app", "reg.example/app:1", "reg.example/app@sha256:"
                                  + "a" * 64)], init=[("i", "reg.example/i:1", None)],
                 pull_secrets=("regcred",))
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "Pod", **served}, version,
                                 strict=True)


def test_the_cluster_page_has_a_section_per_namespace_worst_first(world: tuple) -> None:
    w, _, _ = world
    page = (w.work / "out" / "imggate-cluster.html").read_text()
    sections = re.findall(r'<section id="ns-\d+"><h2>([^<]+)</h2>', page)
    assert set(sections) == {"shop-a", "shop-b", "shop-c", "shop-d", "dev-a", "nowhere",
                             "kube-system"}
    assert sections.index("shop-a") < sections.index("kube-system")  # denials first
    assert 'class="sortable"' in page
    assert "<script" not in page.split("<body>")[1].split("<script>")[0]  # one script only


def test_the_cluster_page_escapes_what_the_cluster_says(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from imggate.audit.cluster import ClusterResult, ContainerResult
    from imggate.audit.cluster_html import render
    from imggate.audit.cluster_results import ContainerResults
    from imggate.audit.pods import ContainerRow
    from imggate.models import Decision, ImageVerdict, Verdict

    row = ContainerRow("ns", "p", "u", "c", "container", "<img src=x onerror=alert(1)>",
                       None)
    iv = ImageVerdict(reference="r", env="prod", decision=Decision.ERROR,
                      error="<script>alert(2)</script>")
    result = ClusterResult(ContainerResults.listed([ContainerResult(row, "prod", "x", "r", iv)]),
                           Verdict(env="prod", images=(iv,), generated=datetime.now(UTC)),
                           ("ns",), 1, 0, 1)
    page = render(result)
    assert "<img src=x" not in page and "<script>alert" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_a_cluster_without_the_report_crd_says_so(world: tuple,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from registry import k8s_apiserver_standin

    w, _, _ = world
    monkeypatch.delitem(k8s_apiserver_standin.REPORT_APIS, "openreports.io/v1alpha1")
    result = run_imggate(["audit", "--cluster", "--kubeconfig", str(w.work / "kubeconfig"),
                          "--rules", str(w.work / "rules.yaml"), "--report-format",
                          "openreports", "-n", "dev-a", "-o", str(w.work / "nocrd"), "-q"])
    assert result.code == 3
    assert "Kubernetes API refused applying Report dev-a/imggate: HTTP 404" in result.stderr
    assert "CustomResourceDefinition installed" in result.stderr
