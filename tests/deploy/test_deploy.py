"""deploy/: built with the real ``kubectl kustomize``, validated against a current Kubernetes
schema (kubernetes-validate), and the webhook's safety-relevant settings asserted."""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import celpy
import kubernetes_validate
import pytest
import yaml

from fixture_paths import FIXTURES
from imggate.admission.manifests import parse_manifests
from imggate.admission.workloads import WORKLOAD_KINDS
from imggate.policy.loader import parse_rules
from imggate.policy.namespaces import namespace_env
from registry_harness import require_tool

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
WEBHOOK_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
# cert-manager's resources: no schema in Kubernetes' own; asserted field by field below.
CERT_MANAGER = {"Issuer", "Certificate"}
POD_LABELS = {"app.kubernetes.io/name": "imggate", "app.kubernetes.io/component": "webhook"}


def kubectl() -> str:
    return require_tool("kubectl", "to build deploy/")


@pytest.fixture(scope="module")
def deploy_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/ as an operator has it after the documented step: secrets generated."""
    target = tmp_path_factory.mktemp("deploy") / "deploy"
    shutil.copytree(DEPLOY, target, ignore=shutil.ignore_patterns("redis-password",
                                                                   "cache-keys"))
    subprocess.run(["sh", str(target / "generate-secrets.sh")], check=True,
                   capture_output=True, timeout=60)
    return target


def build(directory: Path) -> list[dict[str, Any]]:
    """The documents ``kubectl kustomize`` makes of ``directory``."""
    out = subprocess.run([kubectl(), "kustomize", str(directory)], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def with_component(tmp_path: Path, deploy_copy: Path, component: str) -> list[dict[str, Any]]:
    """deploy/ built through an overlay that adds one of its components, as documented."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        # kustomize takes relative paths only
        "resources": [os.path.relpath(deploy_copy, overlay)],
        "components": [os.path.relpath(deploy_copy / component, overlay)]}))
    return build(overlay)


@pytest.fixture(scope="module")
def built(deploy_copy: Path) -> str:
    return subprocess.run([kubectl(), "kustomize", str(deploy_copy)], check=True,
                          capture_output=True, text=True, timeout=120).stdout


@pytest.fixture(scope="module")
def docs(built: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(built) if d]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind
             and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name}: {len(found)}"
    return found[0]


def test_every_object_valid_against_current_kubernetes(docs: list[dict[str, Any]]) -> None:
    version = kubernetes_validate.latest_version()
    checked = set()
    for doc in docs:
        if doc["kind"] in CERT_MANAGER:
            assert doc["apiVersion"] == "cert-manager.io/v1"
            continue
        kubernetes_validate.validate(doc, version, strict=True)
        checked.add(doc["kind"])
    assert checked >= {"Namespace", "ServiceAccount", "Deployment", "PodDisruptionBudget",
                       "Service", "NetworkPolicy", "ClusterRole", "ClusterRoleBinding",
                       "ConfigMap", *WEBHOOK_KINDS}
    # The validator does reject what is wrong (strict: unknown fields too).
    bad = copy.deepcopy(one(docs, "Deployment", "imggate"))
    bad["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, version, strict=True)
    bad = copy.deepcopy(one(docs, "ValidatingWebhookConfiguration"))
    bad["webhooks"][0]["failurePolicyy"] = "Fail"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, version, strict=True)


def test_everything_in_the_imggate_namespace(docs: list[dict[str, Any]]) -> None:
    assert one(docs, "Namespace")["metadata"]["name"] == "imggate"
    for doc in docs:
        if doc["kind"] not in {"Namespace", "ClusterRole", "ClusterRoleBinding", *WEBHOOK_KINDS}:
            assert doc["metadata"]["namespace"] == "imggate", doc["kind"]


def test_deployment(docs: list[dict[str, Any]]) -> None:
    deploy = one(docs, "Deployment", "imggate")
    spec = deploy["spec"]
    assert spec["replicas"] == 3
    assert spec["selector"]["matchLabels"] == POD_LABELS
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "imggate"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert all(c["labelSelector"]["matchLabels"] == POD_LABELS
               for c in pod["topologySpreadConstraints"])
    (container,) = pod["containers"]
    assert container["image"] == "registry.example.com/imggate/imggate:0.1.0"
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "https",
                                                      "scheme": "HTTPS"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert "memory" in container["resources"]["limits"]
    args = container["args"]
    assert args[0] == "serve"
    flags = dict(a.removeprefix("--").partition("=")[::2] for a in args[1:])
    assert flags["tls-cert"] == "/tls/tls.crt" and flags["tls-key"] == "/tls/tls.key"
    assert flags["rules"] == "/rules/default.yaml"
    assert flags["cache"] == "redis://:$(REDIS_PASSWORD)@imggate-redis.imggate.svc:6379/0"
    assert flags["cache-key-file"] == "/cache-keys/keys"
    (password,) = container["env"]
    assert password["name"] == "REDIS_PASSWORD"
    assert password["valueFrom"]["secretKeyRef"]["name"].startswith("imggate-redis-auth-")
    assert flags["registry-auth-file"] == "/registry-auth/.dockerconfigjson"
    # The pod's own pull secrets are read (the RBAC below allows exactly that).
    assert "pull-secrets" in flags and "no-pull-secrets" not in flags
    assert flags["port"] == "8443" and container["ports"][0]["containerPort"] == 8443
    # Every review is answered before the API server gives up on the webhook.
    timeouts = {w["timeoutSeconds"] for k in WEBHOOK_KINDS for w in one(docs, k)["webhooks"]}
    assert float(flags["deadline"]) < min(timeouts)
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/tls"]["name"]]["secret"]["secretName"] == "imggate-tls"
    assert volumes[mounts["/rules"]["name"]]["configMap"]["name"] == "imggate-rules"
    assert volumes[mounts["/registry-auth"]["name"]]["secret"]["secretName"] == \
        "imggate-registry-auth"
    assert volumes[mounts["/cache-keys"]["name"]]["secret"]["secretName"].startswith(
        "imggate-cache-keys-")
    assert all(m.get("readOnly") for p, m in mounts.items() if p != "/tmp")


def test_every_container_runs_restricted(docs: list[dict[str, Any]]) -> None:
    for deploy in (d for d in docs if d["kind"] == "Deployment"):
        pod = deploy["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert "limits" in c["resources"]
    assert one(docs, "Namespace")["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"] == "restricted"


def test_pdb_service_and_network_policy(docs: list[dict[str, Any]]) -> None:
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == POD_LABELS
    assert pdb["spec"]["maxUnavailable"] == 1
    svc = one(docs, "Service", "imggate")
    assert svc["spec"]["selector"] == POD_LABELS
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https",
                                     "protocol": "TCP"}]
    policy = one(docs, "NetworkPolicy", "imggate")
    assert policy["spec"]["podSelector"]["matchLabels"] == POD_LABELS
    assert policy["spec"]["ingress"] == [{"ports": [{"port": 8443, "protocol": "TCP"}]}]
    redis_policy = one(docs, "NetworkPolicy", "imggate-redis")
    assert redis_policy["spec"]["ingress"][0]["from"] == [{"podSelector": {
        "matchLabels": POD_LABELS}}]
    assert redis_policy["spec"]["egress"] == []


def test_redis_cache(docs: list[dict[str, Any]]) -> None:
    redis = one(docs, "Deployment", "imggate-redis")
    labels = redis["spec"]["template"]["metadata"]["labels"]
    svc = one(docs, "Service", "imggate-redis")
    assert svc["spec"]["selector"] == labels
    assert svc["spec"]["ports"][0]["port"] == 6379
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--save") + 1] == ""  # a cache: nothing written to disk
    # Clients must AUTH with the generated password (the probe's redis-cli too).
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    env = {e["name"]: e["valueFrom"]["secretKeyRef"]
           for e in redis["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert set(env) == {"REDIS_PASSWORD", "REDISCLI_AUTH"}
    auth = next(d for d in docs if d["kind"] == "Secret"
                and d["metadata"]["name"] == env["REDIS_PASSWORD"]["name"])
    password = base64.b64decode(auth["data"][env["REDIS_PASSWORD"]["key"]]).decode()
    assert len(password) == 64 and int(password, 16) >= 0


def test_secrets_are_generated_never_shipped(deploy_copy: Path, built: str) -> None:
    from imggate.admission.seal import load_cache_keys

    docs = [d for d in yaml.safe_load_all(built) if d]
    keys = next(d for d in docs if d["kind"] == "Secret"
                and d["metadata"]["name"].startswith("imggate-cache-keys-"))
    (deploy_copy.parent / "keys").write_bytes(base64.b64decode(keys["data"]["keys"]))
    assert len(load_cache_keys(deploy_copy.parent / "keys").keys) == 1
    # The script keeps what exists (rotation is by hand), and another run elsewhere
    # generates other values: nothing is a default.
    before = (deploy_copy / "secrets" / "cache-keys").read_bytes()
    subprocess.run(["sh", str(deploy_copy / "generate-secrets.sh")], check=True, timeout=60)
    assert (deploy_copy / "secrets" / "cache-keys").read_bytes() == before
    assert not any((DEPLOY / "secrets").glob("[!.]*")) or \
        subprocess.run(["git", "-C", str(DEPLOY), "ls-files", "secrets"], capture_output=True,
                       text=True).stdout.strip() == "secrets/.gitignore"
    bare = deploy_copy.parent / "bare"
    shutil.copytree(DEPLOY, bare, ignore=shutil.ignore_patterns("redis-password",
                                                                "cache-keys"))
    failed = subprocess.run([kubectl(), "kustomize", str(bare)], capture_output=True,
                            timeout=120)
    assert failed.returncode != 0  # no secrets generated: no build, no default password


def test_rbac_only_get_on_secrets_and_serviceaccounts(docs: list[dict[str, Any]]) -> None:
    (role,) = [d for d in docs if d["kind"] in ("Role", "ClusterRole")]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets", "serviceaccounts"],
                              "verbs": ["get"]}]
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io",
                                  "kind": "ClusterRole", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "imggate",
                                    "namespace": "imggate"}]
    assert one(docs, "ServiceAccount")["metadata"]["name"] == "imggate"


def test_tls_from_cert_manager(docs: list[dict[str, Any]]) -> None:
    cert = one(docs, "Certificate")
    assert cert["spec"]["secretName"] == "imggate-tls"
    assert "imggate.imggate.svc" in cert["spec"]["dnsNames"]
    assert cert["spec"]["issuerRef"]["name"] == one(docs, "Issuer")["metadata"]["name"]
    for kind in WEBHOOK_KINDS:
        annotations = one(docs, kind)["metadata"]["annotations"]
        assert annotations["cert-manager.io/inject-ca-from"] == \
            f"imggate/{cert['metadata']['name']}"


# The API resource of each kind imggate reads images of (EphemeralContainers is the
# pods/ephemeralcontainers subresource): the webhooks must send every one of them.
RESOURCE_OF = {"Pod": ("", "pods"), "EphemeralContainers": ("", "pods/ephemeralcontainers"),
               "ReplicationController": ("", "replicationcontrollers"),
               "PodTemplate": ("", "podtemplates"), "Deployment": ("apps", "deployments"),
               "ReplicaSet": ("apps", "replicasets"), "StatefulSet": ("apps", "statefulsets"),
               "DaemonSet": ("apps", "daemonsets"), "Job": ("batch", "jobs"),
               "CronJob": ("batch", "cronjobs")}
RESOURCES = set(RESOURCE_OF.values())


def test_webhooks_cover_every_kind_imggate_reads() -> None:
    assert set(RESOURCE_OF) == WORKLOAD_KINDS


@pytest.mark.parametrize(("kind", "path"), [("ValidatingWebhookConfiguration", "/validate"),
                                            ("MutatingWebhookConfiguration", "/mutate")])
def test_webhook_configuration(docs: list[dict[str, Any]], kind: str, path: str) -> None:
    (hook,) = one(docs, kind)["webhooks"]
    assert hook["failurePolicy"] == "Fail"
    assert hook["sideEffects"] == "None"
    assert hook["timeoutSeconds"] == 10
    assert hook["admissionReviewVersions"] == ["v1"]
    assert hook["clientConfig"]["service"] == {"name": "imggate", "namespace": "imggate",
                                               "path": path, "port": 443}
    assert hook["namespaceSelector"] == {"matchExpressions": [{
        "key": "kubernetes.io/metadata.name", "operator": "NotIn",
        "values": ["kube-system", "imggate"]}]}
    covered = {(g, r) for rule in hook["rules"] for g in rule["apiGroups"]
               for r in rule["resources"]}
    assert covered == RESOURCES
    assert all(set(rule["operations"]) == {"CREATE", "UPDATE"} for rule in hook["rules"])
    (condition,) = hook["matchConditions"]
    assert condition["name"] == "images-changed"
    if kind == "MutatingWebhookConfiguration":
        assert hook["reinvocationPolicy"] == "IfNeeded"


# --- the matchConditions expression, evaluated by a CEL implementation --------------------------

def condition(docs: list[dict[str, Any]]) -> celpy.Runner:
    exprs = {one(docs, k)["webhooks"][0]["matchConditions"][0]["expression"]
             for k in WEBHOOK_KINDS}
    assert len(exprs) == 1
    env = celpy.Environment()
    return env.program(env.compile(exprs.pop()))


def matches(program: celpy.Runner, request: dict[str, Any]) -> bool:
    # The API server gives CEL a typed AdmissionRequest: unset strings read as "".
    typed = {"subResource": "", "operation": "", **request}
    result = program.evaluate({"request": celpy.json_to_cel(typed),
                               "object": celpy.json_to_cel(request.get("object")),
                               "oldObject": celpy.json_to_cel(request.get("oldObject"))})
    assert isinstance(result, celpy.celtypes.BoolType), result
    return bool(result)


def review(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / "admission" / name).read_text())["request"]


def test_condition_on_real_reviews(docs: list[dict[str, Any]]) -> None:
    program = condition(docs)
    for name in ("connaisseur-02_pod.json", "connaisseur-19_pod_initcontainer.json",
                 "connaisseur-07_statefulset.json", "whorf-deployment-request.json"):
        assert matches(program, review(name)), name  # CREATE: always reviewed
    # UPDATEs whose images did not change (a ReplicaSet's, a Deployment losing a finalizer).
    assert not matches(program, review("connaisseur-10_update.json"))
    assert not matches(program, review("connaisseur-28_deleted_deployment_updated.json"))


def update(kind: str, api_version: str, spec: dict[str, Any]) -> dict[str, Any]:
    if kind == "Pod":
        obj: dict[str, Any] = {"spec": spec}
    elif kind == "PodTemplate":
        obj = {"template": {"spec": spec}}
    elif kind == "CronJob":
        obj = {"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}
    else:
        obj = {"spec": {"replicas": 2, "template": {"spec": spec}}}
    obj.update(apiVersion=api_version, kind=kind, metadata={"name": "w", "namespace": "n"})
    return obj


SPEC = {"initContainers": [{"name": "i", "image": "r.example/init:1"}],
        "containers": [{"name": "a", "image": "r.example/app:1"}],
        "volumes": [{"name": "v", "image": {"reference": "r.example/data:1"}},
                    {"name": "e", "emptyDir": {}}]}


@pytest.mark.parametrize(("kind", "api_version"), [
    ("Pod", "v1"), ("PodTemplate", "v1"), ("ReplicationController", "v1"),
    ("Deployment", "apps/v1"), ("ReplicaSet", "apps/v1"), ("StatefulSet", "apps/v1"),
    ("DaemonSet", "apps/v1"), ("Job", "batch/v1"), ("CronJob", "batch/v1")])
def test_condition_skips_only_updates_that_change_no_image(docs: list[dict[str, Any]], kind: str,
                                                           api_version: str) -> None:
    program = condition(docs)
    old = update(kind, api_version, copy.deepcopy(SPEC))

    def req(new_spec: dict[str, Any], operation: str = "UPDATE") -> dict[str, Any]:
        new = update(kind, api_version, new_spec)
        new["metadata"]["labels"] = {"changed": "yes"}
        return {"operation": operation, "kind": {"kind": kind}, "object": new,
                "oldObject": old if operation == "UPDATE" else None}

    assert not matches(program, req(copy.deepcopy(SPEC)))  # labels only
    for path, value in ((("containers", 0, "image"), "r.example/app:2"),
                        (("initContainers", 0, "image"), "r.example/init:2"),
                        (("volumes", 0, "image", "reference"), "r.example/data:2")):
        changed = copy.deepcopy(SPEC)
        node: Any = changed
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
        assert matches(program, req(changed)), path
    added = copy.deepcopy(SPEC)
    added["ephemeralContainers"] = [{"name": "debug", "image": "busybox"}]
    assert matches(program, req(added))
    assert matches(program, req(copy.deepcopy(SPEC), "CREATE"))


def test_condition_reviews_the_ephemeral_containers_subresource(docs: list[dict[str, Any]]
                                                                ) -> None:
    program = condition(docs)
    pod = update("Pod", "v1", copy.deepcopy(SPEC))
    assert matches(program, {"operation": "UPDATE", "subResource": "ephemeralcontainers",
                             "kind": {"kind": "Pod"}, "object": pod, "oldObject": pod})


# --- the rules it serves ---------------------------------------------------------------------

def test_rules_config_map(docs: list[dict[str, Any]]) -> None:
    config = one(docs, "ConfigMap", "imggate-rules")
    rules = parse_rules(config["data"]["default.yaml"], "imggate-rules")
    assert set(rules.names) >= {"dev", "prod"}
    for name in rules.names:  # the roll-out starts in warn mode everywhere
        assert rules.effective(name).rules.mode is not None
        assert rules.effective(name).rules.mode.value == "warn"
    assert namespace_env(rules, "shop-prod").env == "prod"
    assert namespace_env(rules, "imggate").exempt
    assert namespace_env(rules, "kube-system").exempt


def test_check_f_reads_the_built_manifests(built: str) -> None:
    scan = parse_manifests(built, "deploy")
    assert sorted((i.image.name, i.image.image) for i in scan.images) == [
        ("imggate", "registry.example.com/imggate/imggate:0.1.0"),
        ("imggate-redis", "redis:7.4-alpine")]
