"""Reading rendered manifests: Helm output, real ``kubectl kustomize`` output, Lists, JSON,
hostile YAML; each image at its file:line."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fixture_paths import FIXTURES
from imggate.admission.manifests import (
    MAX_MANIFEST_BYTES,
    parse_manifests,
    read_manifests,
)
from imggate.admission.workloads import ContainerType
from imggate.errors import ManifestError, UsageError
from registry_harness import require_tool

HELM = textwrap.dedent("""\
    ---
    # Source: shop/templates/serviceaccount.yaml
    apiVersion: v1
    kind: ServiceAccount
    metadata:
      name: shop
    ---
    # Source: shop/templates/deployment.yaml
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: shop-web
      labels:
        helm.sh/chart: shop-0.1.0
    spec:
      replicas: 1
      template:
        spec:
          initContainers:
            - name: migrate
              image: "registry.example.com/shop/migrate:1.2.0"
          containers:
            - name: web
              image: "registry.example.com/shop/web:1.2.0"
              ports:
                - containerPort: 80
    ---
    # Source: shop/templates/tests/test-connection.yaml
    apiVersion: v1
    kind: Pod
    metadata:
      name: "shop-test-connection"
      annotations:
        "helm.sh/hook": test
    spec:
      containers:
        - name: wget
          image: busybox
          command: ['wget']
    """)


def line_at(text: str, line: int) -> str:
    return text.splitlines()[line - 1]


def test_helm_template_output() -> None:
    scan = parse_manifests(HELM, "rendered.yaml")
    got = [(i.location, i.image.kind, i.image.name, i.image.container, i.image.image, i.template)
           for i in scan.images]
    assert got == [
        ("rendered.yaml:21", "Deployment", "shop-web", "migrate",
         "registry.example.com/shop/migrate:1.2.0", "shop/templates/deployment.yaml"),
        ("rendered.yaml:24", "Deployment", "shop-web", "web",
         "registry.example.com/shop/web:1.2.0", "shop/templates/deployment.yaml"),
        ("rendered.yaml:38", "Pod", "shop-test-connection", "wget", "busybox",
         "shop/templates/tests/test-connection.yaml"),
    ]
    for image in scan.images:
        assert image.image.image in line_at(HELM, image.line)
    assert [(o.kind, o.name, o.line) for o in scan.others] == [("ServiceAccount", "shop", 3)]
    assert scan.objects == 3
    assert scan.images[0].describe() == (
        "rendered.yaml:21 Deployment shop-web initContainer migrate "
        "(shop/templates/deployment.yaml)")


def test_list_kinds_and_json() -> None:
    pods = {"apiVersion": "v1", "kind": "PodList", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "ns"},
         "spec": {"containers": [{"name": "c", "image": f"img{i}"}]}} for i in range(3)]}
    text = json.dumps(pods, indent=2)  # JSON is YAML: `kubectl get -o json` output reads too
    scan = parse_manifests(text, "pods.json")
    assert [(i.image.image, i.image.name) for i in scan.images] == [
        ("img0", "p0"), ("img1", "p1"), ("img2", "p2")]
    for image in scan.images:
        assert f'"image": "{image.image.image}"' in line_at(text, image.line)
    listed = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
         "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
             {"name": "job", "image": "registry.example.com/jobs/nightly:7"}]}}}}}}]})
    scan = parse_manifests(listed, "list.yaml")
    (image,) = scan.images
    assert image.image.pointer == "/spec/jobTemplate/spec/template/spec/containers/0/image"
    assert "registry.example.com/jobs/nightly:7" in line_at(listed, image.line)
    assert [o.kind for o in scan.others] == ["ConfigMap"]
    assert parse_manifests("apiVersion: v1\nkind: List\nitems: null\n", "x").objects == 0


def test_real_fixtures() -> None:
    pod = (FIXTURES / "k8s" / "k8s-api-core.v1.Pod.yaml").read_text()
    scan = parse_manifests(pod, "pod.yaml")
    assert [i.image.container_type for i in scan.images] == [
        ContainerType.INIT, ContainerType.CONTAINER, ContainerType.EPHEMERAL,
        ContainerType.VOLUME]
    for image in scan.images:
        assert image.image.image in line_at(pod, image.line)
    secret = parse_manifests((FIXTURES / "k8s" / "kyverno-dockerconfigjson-secret.yaml")
                             .read_text(), "s.yaml")
    assert secret.images == ()
    assert [o.kind for o in secret.others] == ["Namespace", "Secret"]


KUSTOMIZATION = {
    "base/kustomization.yaml": """\
        resources: [deployment.yaml, cronjob.yaml, service.yaml]
        """,
    "base/deployment.yaml": """\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec:
              containers:
                - name: web
                  image: registry.example.com/shop/web
                - name: sidecar
                  image: registry.example.com/mesh/proxy:1.0
        """,
    "base/cronjob.yaml": """\
        apiVersion: batch/v1
        kind: CronJob
        metadata: {name: report}
        spec:
          schedule: "0 3 * * *"
          jobTemplate:
            spec:
              template:
                spec:
                  restartPolicy: OnFailure
                  containers:
                    - {name: report, image: registry.example.com/shop/report:2.0}
        """,
    "base/service.yaml": """\
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec: {selector: {app: web}, ports: [{port: 80}]}
        """,
    "prod/kustomization.yaml": """\
        namespace: shop-prod
        namePrefix: prod-
        resources: [../base]
        images:
          - name: registry.example.com/shop/web
            newTag: "1.4.2"
        """,
}


def kubectl() -> str:
    return require_tool("kubectl", "for kustomize tests")


def test_real_kubectl_kustomize_output(tmp_path: Path) -> None:
    for name, body in KUSTOMIZATION.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(body))
    out = subprocess.run([kubectl(), "kustomize", str(tmp_path / "prod")], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(out)
    scan = read_manifests(str(rendered))
    got = sorted((i.image.kind, i.image.namespace, i.image.name, i.image.container,
                  i.image.image) for i in scan.images)
    assert got == [
        ("CronJob", "shop-prod", "prod-report", "report", "registry.example.com/shop/report:2.0"),
        ("Deployment", "shop-prod", "prod-web", "sidecar", "registry.example.com/mesh/proxy:1.0"),
        ("Deployment", "shop-prod", "prod-web", "web", "registry.example.com/shop/web:1.4.2"),
    ]
    for image in scan.images:
        assert image.source == str(rendered)
        assert image.image.image in line_at(out, image.line)
        assert image.template is None
    assert [o.kind for o in scan.others] == ["Service"]


@pytest.mark.parametrize(("text", "where", "says"), [
    ("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    image: x\n    image: y\n",
     "m.yaml:7", "duplicate key 'image' (first at line 6)"),
    ("a: [\n", "m.yaml:2", "invalid YAML"),
    ("- just\n- a list\n", "m.yaml:1", "must be a Kubernetes object"),
    ("apiVersion: v1\nmetadata: {name: x}\n", "m.yaml:1", "string apiVersion and kind"),
    ("---\nkind: Pod\napiVersion: v1\nspec:\n  containers:\n  - name: a\n    image: 7\n",
     "m.yaml:7", "/spec/containers/0/image: must be a string, not a number"),
    ("kind: Deployment\napiVersion: apps/v1\nspec:\n  template: {}\n",
     "m.yaml:4", "/spec/template/spec: is missing"),
    ("kind: List\napiVersion: v1\nitems:\n- 3\n", "m.yaml:4", "List item"),
    ("kind: List\napiVersion: v1\nitems:\n- kind: Pod\n  apiVersion: v1\n  spec: {containers: 1}\n",
     "m.yaml:6", "/items/0/spec/containers: must be a list"),
])
def test_bad_manifests_name_file_and_line(text: str, where: str, says: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_manifests(text, "m.yaml")
    assert e.value.exit_code == 2
    assert where in e.value.message
    assert says in e.value.message


def test_manifest_error_keeps_the_pointer() -> None:
    with pytest.raises(ManifestError) as e:
        parse_manifests("kind: Pod\napiVersion: v1\nspec: {containers: [{name: a}]}\n", "m.yaml")
    assert (e.value.path, e.value.location) == ("/spec/containers/0/image", "m.yaml:3")


def test_alias_bomb_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb = "\n".join(lines) + "\nkind: Pod\napiVersion: v1\n"
    with pytest.raises(UsageError, match="aliases expand to more than 100,000"):
        parse_manifests(bomb, "bomb.yaml")
    with pytest.raises(UsageError, match="aliases expand"):
        parse_manifests("a: &a [*a]\nkind: Pod\n", "cycle.yaml")


def test_aliases_within_bounds_are_read() -> None:
    text = textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {name: p}
        spec:
          containers:
            - &c {name: a, image: registry.example.com/a:1}
          initContainers:
            - *c
        """)
    scan = parse_manifests(text, "a.yaml")
    assert [i.image.image for i in scan.images] == ["registry.example.com/a:1"] * 2


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    deep = "a: " + "[" * 50_000 + "]" * 50_000 + "\n"
    with pytest.raises(UsageError, match=r"^m\.yaml"):
        parse_manifests(deep, "m.yaml")


def test_file_bounds(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="Is a directory"):
        read_manifests(str(tmp_path))
    with pytest.raises(UsageError, match="/dev/zero: not a regular file"):
        read_manifests("/dev/zero")
    with pytest.raises(UsageError, match="cannot read it"):
        read_manifests(str(tmp_path / "missing.yaml"))
    big = tmp_path / "big.yaml"
    with big.open("wb") as f:
        f.truncate(MAX_MANIFEST_BYTES + 1)
    with pytest.raises(UsageError, match="larger than 32 MiB"):
        read_manifests(str(big))
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"kind: Pod\nname: \xe9\n")
    with pytest.raises(UsageError, match="not UTF-8"):
        read_manifests(str(latin))


def test_pipe_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"cat > {fifo}"], stdin=subprocess.PIPE)
    assert writer.stdin is not None
    writer.stdin.write(HELM.encode())
    writer.stdin.close()
    try:
        assert len(read_manifests(str(fifo)).images) == 3
    finally:
        writer.wait(timeout=10)


# --- properties -------------------------------------------------------------------------------

word = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
image_names = st.builds(lambda r, t: f"registry.example.com/{r}:{t}", word, word)


@st.composite
def objects(draw: st.DrawFn) -> dict[str, object]:
    kind = draw(st.sampled_from(["Pod", "Deployment", "ConfigMap", "Job"]))
    api = {"Pod": "v1", "Deployment": "apps/v1", "ConfigMap": "v1", "Job": "batch/v1"}[kind]
    obj: dict[str, object] = {"apiVersion": api, "kind": kind,
                              "metadata": {"name": draw(word), "namespace": draw(word)}}
    if kind == "ConfigMap":
        obj["data"] = {"image": draw(image_names)}  # not an image field: never reported
        return obj
    spec = {"containers": [{"name": draw(word), "image": draw(image_names)}
                           for _ in range(draw(st.integers(1, 3)))]}
    obj["spec"] = spec if kind == "Pod" else {"template": {"spec": spec}}
    return obj


@given(docs=st.lists(objects(), max_size=5), flow=st.booleans(), as_list=st.booleans())
@settings(max_examples=60, deadline=None)
def test_property_every_image_at_its_line(docs: list[dict[str, object]], flow: bool,
                                          as_list: bool) -> None:
    if as_list:
        text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": docs},
                              default_flow_style=flow, width=10_000)
    else:
        text = yaml.safe_dump_all(docs, default_flow_style=flow, width=10_000)
    scan = parse_manifests(text, "p.yaml")
    expected = []
    for d in docs:
        spec = d.get("spec")
        if isinstance(spec, dict):
            pod = spec if d["kind"] == "Pod" else spec["template"]["spec"]
            expected += [c["image"] for c in pod["containers"]]
    assert [i.image.image for i in scan.images] == expected
    assert scan.objects == len(docs)
    assert len(scan.others) == sum(1 for d in docs if d["kind"] == "ConfigMap")
    for image in scan.images:
        assert image.image.image in line_at(text, image.line)


@given(st.text(max_size=200))
@settings(max_examples=150, deadline=None)
def test_property_any_text_is_a_scan_or_a_usage_error(text: str) -> None:
    error: UsageError | None = None
    try:
        parse_manifests(text, "fuzz.yaml")
    except UsageError as e:
        error = e
    assert error is None or error.message.startswith("fuzz.yaml")


@pytest.mark.parametrize(("start", "opener"), [("x: ", "["), ("x: ", "{a: "), ("x:\n", "- ")])
def test_nesting_deeper_than_the_bound_is_refused_before_composing(start: str,
                                                                   opener: str) -> None:
    # libyaml's composer recurses in C: this depth would overflow the process's stack.
    deep = "apiVersion: v1\nkind: Pod\n" + start + opener * 200_000 + "a\n"
    with pytest.raises(UsageError, match=r"^deep\.yaml:\d+: invalid YAML: nested"):
        parse_manifests(deep, "deep.yaml")


def test_nesting_within_the_bound_is_read() -> None:
    text = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: "
            "[{name: a, image: x}]\n  affinity: " + "[" * 200 + "]" * 200 + "\n")
    assert [i.image.image for i in parse_manifests(text, "ok.yaml").images] == ["x"]
