"""deploy/audit/: the hourly ``imggate audit --cluster`` CronJob and its RBAC, built with the
real ``kubectl kustomize`` (beside deploy/, whose rules and credentials it uses) and validated
against a current Kubernetes schema."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from registry_harness import require_tool, run_imggate

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
AUDIT_LABELS = {"app.kubernetes.io/name": "imggate", "app.kubernetes.io/component": "audit"}


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    target = tmp_path_factory.mktemp("deploy") / "deploy"
    shutil.copytree(DEPLOY, target, ignore=shutil.ignore_patterns("redis-password",
                                                                   "cache-keys"))
    subprocess.run(["sh", str(target / "generate-secrets.sh")], check=True,
                   capture_output=True, timeout=60)
    kubectl = require_tool("kubectl", "to build deploy/")
    docs = []
    for path in (target, target / "audit"):
        built = subprocess.run([kubectl, "kustomize", str(path)], check=True,
                               capture_output=True, text=True, timeout=120).stdout
        docs += [d for d in yaml.safe_load_all(built) if d]
    return docs


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)}"
    return found[0]


def test_the_cronjob_and_its_rbac_are_valid_kubernetes(docs: list[dict[str, Any]]) -> None:
    version = kubernetes_validate.latest_version()
    for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "CronJob",
                 "NetworkPolicy"):
        kubernetes_validate.validate(_one(docs, kind, "imggate-audit"), version, strict=True)


def test_the_cronjob_runs_hourly_once_at_a_time_restricted(docs: list[dict[str, Any]]) -> None:
    job = _one(docs, "CronJob", "imggate-audit")
    assert job["metadata"]["namespace"] == "imggate"
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("ConfigMap", "imggate-rules") in names  # what it mounts, deploy/ makes
    spec = job["spec"]
    assert spec["schedule"].split()[1:] == ["*", "*", "*", "*"]  # every hour
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]
    assert pod["metadata"]["labels"] == AUDIT_LABELS
    assert pod["spec"]["serviceAccountName"] == "imggate-audit"
    (container,) = pod["spec"]["containers"]
    webhook = _one(docs, "Deployment", "imggate")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == webhook["image"]  # the same image as the webhook
    assert container["args"][:2] == ["audit", "--cluster"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    rules = {v["name"]: v for v in pod["spec"]["volumes"]}["rules"]
    assert rules["configMap"]["name"] == "imggate-rules"  # the webhook's rules
    # The run's own bound ends before the Job's.
    total = next(a for a in container["args"] if a.startswith("--total-deadline="))
    assert int(total.split("=")[1]) < job["spec"]["jobTemplate"]["spec"][
        "activeDeadlineSeconds"]


def test_rbac_grants_what_the_audit_asks_and_nothing_more(docs: list[dict[str, Any]]) -> None:
    role = _one(docs, "ClusterRole", "imggate-audit")
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}
    assert granted == {
        ("", "pods", "list"),
        ("", "secrets", "get"), ("", "serviceaccounts", "get"),
        *{("wgpolicyk8s.io", "policyreports", v) for v in ("get", "list", "create", "patch")},
        *{("openreports.io", "reports", v) for v in ("get", "list", "create", "patch")},
    }
    binding = _one(docs, "ClusterRoleBinding", "imggate-audit")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "imggate-audit",
                                    "namespace": "imggate"}]


def test_imggate_accepts_the_cronjobs_arguments(docs: list[dict[str, Any]],
                                                tmp_path: Path) -> None:
    """Every flag of the CronJob is one imggate knows: run outside a cluster, it stops at
    the missing Kubernetes configuration (exit 2), past the flag parsing and the rules."""
    job = _one(docs, "CronJob", "imggate-audit")
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    args = [a.replace("/rules/default.yaml", str(DEPLOY / "rules.yaml"))
             .replace("/tmp/reports", str(tmp_path / "reports")) for a in container["args"]]
    result = run_imggate(args, env={"KUBECONFIG": str(tmp_path / "absent"),
                                    "KUBERNETES_SERVICE_HOST": None})
    assert result.code == 2, result.output
    assert "no usable Kubernetes configuration" in result.stderr
