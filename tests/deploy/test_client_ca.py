"""deploy/'s client-ca component: one line in a kustomization turns on authenticated callers,
and the result is still a valid Deployment that serves with ``--client-ca``."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate

from deploy.test_deploy import DEPLOY, build, deploy_copy, one, with_component

__all__ = ["deploy_copy"]  # the fixture: deploy/ with its secrets generated, as documented



def test_the_client_ca_component_requires_the_api_servers_certificate(
        tmp_path: Path, deploy_copy: Path) -> None:
    docs = with_component(tmp_path, deploy_copy, "client-ca")
    deploy = one(docs, "Deployment", "imggate")
    kubernetes_validate.validate(deploy, kubernetes_validate.latest_version(), strict=True)
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--client-ca=/client-ca/ca.crt" in container["args"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["/client-ca"]["readOnly"] is True
    secret = volumes[mounts["/client-ca"]["name"]]["secret"]
    assert secret["secretName"] == "imggate-client-ca"
    assert secret["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    # Everything else is deploy/ as it is.
    plain = one(build(deploy_copy), "Deployment", "imggate")["spec"]["template"]["spec"]
    assert [a for a in container["args"] if not a.startswith("--client-ca")] == \
        plain["containers"][0]["args"]
    # Off by default, and deploy/ says how to turn it on.
    assert not any(a.startswith("--client-ca") for a in plain["containers"][0]["args"])
    assert "#   - client-ca" in (DEPLOY / "kustomization.yaml").read_text()


def test_the_admission_guide_says_what_an_unauthenticated_caller_can_learn() -> None:
    text = (DEPLOY.parent / "docs" / "admission.md").read_text(encoding="utf-8")
    section = text.split("## Security: who may call", 1)[1].split("\n## ", 1)[0]
    for needed in ("--client-ca", "callers not authenticated", "pull secrets of the namespace",
                   "/mutate", "ipBlock", "AdmissionConfiguration", "kubeadm",
                   "components: [client-ca]", "imggate-client-ca"):
        assert needed in section, needed
