"""deploy/'s audit-in-webhook component: one line in a kustomization runs the cluster audit in
the webhook (``serve --audit-every``), elected with a Lease, with the RBAC the audit needs
bound to the webhook's own service account; built with the real ``kubectl kustomize`` and
validated against a current Kubernetes schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from deploy.test_deploy import DEPLOY, build, deploy_copy, one, with_component

__all__ = ["deploy_copy"]  # the fixture: deploy/ with its secrets generated, as documented



def _rules(role: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {(g, r, v, n) for rule in role["rules"] for g in rule["apiGroups"]
            for r in rule["resources"] for v in rule["verbs"]
            for n in rule.get("resourceNames", ["*"])}


def test_the_component_audits_in_the_webhook_with_the_audits_rbac(
        tmp_path: Path, deploy_copy: Path) -> None:
    docs = with_component(tmp_path, deploy_copy, "audit-in-webhook")
    version = kubernetes_validate.latest_version()
    deploy = one(docs, "Deployment", "imggate")
    for doc in (deploy, one(docs, "ClusterRole", "imggate-webhook-audit"),
                one(docs, "ClusterRoleBinding", "imggate-webhook-audit"),
                one(docs, "Role", "imggate-audit-lease"),
                one(docs, "RoleBinding", "imggate-audit-lease")):
        kubernetes_validate.validate(doc, version, strict=True)
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--audit-every=1h" in container["args"]
    lease_ns, lease_name = next(a.split("=", 1)[1] for a in container["args"]
                                if a.startswith("--audit-lease=")).split("/")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tmp"]["emptyDir"]["sizeLimit"] == "256Mi"
    # The RBAC is bound to the webhook's own service account...
    account = pod["serviceAccountName"]
    for kind, name in (("ClusterRoleBinding", "imggate-webhook-audit"),
                       ("RoleBinding", "imggate-audit-lease")):
        (subject,) = one(docs, kind, name)["subjects"]
        assert (subject["kind"], subject["name"], subject["namespace"]) == \
            ("ServiceAccount", account, deploy["metadata"]["namespace"])
    # ...it is what the CronJob's service account may do (pull secrets come from
    # deploy/rbac-pull-secrets.yaml), and the Lease is the one named on the command line.
    audit = yaml.safe_load_all((DEPLOY / "audit" / "cronjob.yaml").read_text())
    cron_role = next(d for d in audit if d["kind"] == "ClusterRole")
    pulls = one(docs, "ClusterRole", "imggate-pull-secrets")
    assert _rules(one(docs, "ClusterRole", "imggate-webhook-audit")) | _rules(pulls) == \
        _rules(cron_role)
    lease = one(docs, "Role", "imggate-audit-lease")
    assert lease["metadata"]["namespace"] == lease_ns
    assert ("coordination.k8s.io", "leases", "update", lease_name) in _rules(lease)
    assert ("coordination.k8s.io", "leases", "get", lease_name) in _rules(lease)
    # Off by default, and deploy/ says how to turn it on.
    plain = one(build(deploy_copy), "Deployment", "imggate")["spec"]["template"]["spec"]
    assert not any(a.startswith("--audit-") for a in plain["containers"][0]["args"])
    assert "#   - audit-in-webhook" in (DEPLOY / "kustomization.yaml").read_text()
