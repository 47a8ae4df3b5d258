"""Images of Kubernetes workload objects: real fixtures, every kind, bad shapes, properties."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from fixture_paths import FIXTURES
from imggate.admission.workloads import (
    MAX_CONTAINERS,
    WORKLOAD_KINDS,
    ContainerType,
    WorkloadImage,
    escape,
    extract_images,
    is_workload,
    pointer,
    unescape,
)
from imggate.errors import Error, ManifestError

ADMISSION = FIXTURES / "admission"


def resolve_pointer(doc: Any, ptr: str) -> Any:
    """RFC 6901 evaluation, written independently of the module under test."""
    node = doc
    for token in ptr.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def review(name: str) -> dict[str, Any]:
    return json.loads((ADMISSION / name).read_text())["request"]


@pytest.mark.parametrize(("fixture", "expected"), [
    ("connaisseur-02_pod.json", [
        ("Pod", "test-connaisseur", ContainerType.CONTAINER, "/spec/containers/0/image",
         "securesystemsengineering/charlie-image@sha256:"
         "91ac9b26df583762234c1cdb2fc930364754ccc59bc752a2bfe298d2ea68f9ff")]),
    ("connaisseur-19_pod_initcontainer.json", [
        ("Pod", "test-connaisseur", ContainerType.INIT, "/spec/initContainers/0/image", "nginx"),
        ("Pod", "test-connaisseur", ContainerType.CONTAINER, "/spec/containers/0/image",
         "securesystemsengineering/charlie-image@sha256:"
         "91ac9b26df583762234c1cdb2fc930364754ccc59bc752a2bfe298d2ea68f9ff")]),
    ("connaisseur-04_cronjob.json", [
        ("CronJob", "connaisseur", ContainerType.CONTAINER,
         "/spec/jobTemplate/spec/template/spec/containers/0/image", "busybox")]),
    ("connaisseur-07_statefulset.json", [
        ("StatefulSet", "connaisseur", ContainerType.CONTAINER,
         "/spec/template/spec/containers/0/image", "registry.k8s.io/nginx-slim:0.8")]),
    ("connaisseur-10_update.json", [
        ("ReplicaSet", "default", ContainerType.CONTAINER,
         "/spec/template/spec/containers/0/image",
         "docker.io/library/redis:latest@sha256:" + "1" * 64)]),
    ("connaisseur-28_deleted_deployment_updated.json", [
        ("Deployment", "test-connaisseur", ContainerType.CONTAINER,
         "/spec/template/spec/containers/0/image", "busybox")]),
    ("whorf-deployment-request.json", [
        ("Deployment", "nginx", ContainerType.CONTAINER,
         "/spec/template/spec/containers/0/image", "nginx")]),
])
def test_real_admission_requests(fixture: str, expected: list[tuple[Any, ...]]) -> None:
    request = review(fixture)
    obj = request["object"]
    images = extract_images(obj, namespace=request.get("namespace"))
    got = [(i.kind, i.namespace, i.container_type, i.pointer, i.image) for i in images]
    assert got == expected
    for image in images:
        assert resolve_pointer(obj, image.pointer) == image.image
        assert resolve_pointer(obj, pointer(image.path)) == image.image


def test_request_namespace_overrides_missing_metadata() -> None:
    # The CronJob capture's object has no metadata.namespace: only the request says where.
    obj = review("connaisseur-04_cronjob.json")["object"]
    assert extract_images(obj)[0].namespace is None
    assert extract_images(obj, namespace="connaisseur")[0].namespace == "connaisseur"
    assert extract_images(obj, name="other")[0].name == "other"


def test_round_trip_pod_fixture_every_source() -> None:
    pod = yaml.safe_load((FIXTURES / "k8s" / "k8s-api-core.v1.Pod.yaml").read_text())
    images = extract_images(pod)
    assert [(i.container_type, i.pointer) for i in images] == [
        (ContainerType.INIT, "/spec/initContainers/0/image"),
        (ContainerType.CONTAINER, "/spec/containers/0/image"),
        (ContainerType.EPHEMERAL, "/spec/ephemeralContainers/0/image"),
        (ContainerType.VOLUME, "/spec/volumes/0/image/reference"),
    ]
    assert [i.image for i in images] == ["imageValue"] * 3 + ["referenceValue"]
    assert {(i.namespace, i.name) for i in images} == {("namespaceValue", "nameValue")}
    for image in images:
        assert resolve_pointer(pod, image.pointer) == image.image


def test_kyverno_pod_bare_short_name() -> None:
    pod = yaml.safe_load((FIXTURES / "k8s" / "kyverno-pod-imagepullsecrets.yaml").read_text())
    (image,) = extract_images(pod)
    assert (image.kind, image.namespace, image.name, image.image) == (
        "Pod", "default", "pod-with-nginx-allowed-registry", "someimagename")


def test_custom_resource_review_is_not_a_workload() -> None:
    obj = review("k8s-api-admission.k8s.io.v1.AdmissionReview.json")["object"]
    assert not is_workload(obj)
    with pytest.raises(ManifestError, match="unknown kind 'CustomType'") as e:
        extract_images(obj)
    assert e.value.path == "/kind"
    assert e.value.exit_code == 2


POD_SPEC = {"containers": [{"name": "app", "image": "registry.example/app:1"}],
            "initContainers": [{"name": "init", "image": "registry.example/init:1"}]}


def wrap(kind: str, api_version: str, spec: dict[str, Any]) -> dict[str, Any]:
    template = {"metadata": {"labels": {"a": "b"}}, "spec": spec}
    body: dict[str, Any]
    if kind == "Pod":
        body = {"spec": spec}
    elif kind == "PodTemplate":
        body = {"template": template}
    elif kind == "CronJob":
        body = {"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}
    else:
        body = {"spec": {"template": template}}
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": "w", "namespace": "ns"}, **body}


KINDS = [
    ("Pod", "v1", "/spec"),
    ("PodTemplate", "v1", "/template/spec"),
    ("ReplicationController", "v1", "/spec/template/spec"),
    ("Deployment", "apps/v1", "/spec/template/spec"),
    ("Deployment", "extensions/v1beta1", "/spec/template/spec"),
    ("ReplicaSet", "apps/v1", "/spec/template/spec"),
    ("StatefulSet", "apps/v1", "/spec/template/spec"),
    ("DaemonSet", "apps/v1", "/spec/template/spec"),
    ("Job", "batch/v1", "/spec/template/spec"),
    ("CronJob", "batch/v1", "/spec/jobTemplate/spec/template/spec"),
    ("CronJob", "batch/v1beta1", "/spec/jobTemplate/spec/template/spec"),
]


@pytest.mark.parametrize(("kind", "api_version", "base"), KINDS)
def test_every_workload_kind(kind: str, api_version: str, base: str) -> None:
    obj = wrap(kind, api_version, copy.deepcopy(POD_SPEC))
    assert is_workload(obj)
    images = extract_images(obj)
    assert [(i.container, i.container_type, i.pointer) for i in images] == [
        ("init", ContainerType.INIT, f"{base}/initContainers/0/image"),
        ("app", ContainerType.CONTAINER, f"{base}/containers/0/image"),
    ]
    assert all(i.kind == kind and i.namespace == "ns" and i.name == "w" for i in images)


def test_all_kinds_covered() -> None:
    assert {k for k, _, _ in KINDS} | {"EphemeralContainers"} == WORKLOAD_KINDS


def test_ephemeral_containers_subresource_objects() -> None:
    # Kubernetes 1.16-1.22: kind EphemeralContainers holding the list at the top.
    old = {"apiVersion": "v1", "kind": "EphemeralContainers",
           "metadata": {"name": "web-0", "namespace": "shop"},
           "ephemeralContainers": [{"name": "debugger", "image": "busybox:1.36",
                                    "targetContainerName": "app"}]}
    (image,) = extract_images(old)
    assert (image.container_type, image.pointer, image.container) == (
        ContainerType.EPHEMERAL, "/ephemeralContainers/0/image", "debugger")
    # Since 1.23 the pods/ephemeralcontainers subresource carries the whole Pod.
    pod = wrap("Pod", "v1", {**POD_SPEC, "ephemeralContainers": [
        {"name": "debugger", "image": "busybox:1.36"}]})
    assert extract_images(pod)[-1].pointer == "/spec/ephemeralContainers/0/image"
    with pytest.raises(ManifestError) as e:
        extract_images({"apiVersion": "v1", "kind": "EphemeralContainers"})
    assert e.value.path == "/ephemeralContainers"


@pytest.mark.parametrize(("api_version", "kind"), [
    ("batch.volcano.sh/v1alpha1", "Job"), ("example.com/v1", "Deployment"), ("apps/v1", "Pod"),
])
def test_kind_in_another_group_is_not_a_workload(api_version: str, kind: str) -> None:
    obj = wrap(kind, api_version, copy.deepcopy(POD_SPEC))
    assert not is_workload(obj)
    with pytest.raises(ManifestError, match="not in API group") as e:
        extract_images(obj)
    assert e.value.path == "/apiVersion"


def mutate(obj: dict[str, Any], path: list[str | int], value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    node: Any = obj
    for p in path[:-1]:
        node = node[p]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return obj


DEPLOY = wrap("Deployment", "apps/v1", copy.deepcopy(POD_SPEC))
S = ["spec", "template", "spec"]


@pytest.mark.parametrize(("path", "value", "where", "says"), [
    (["spec"], KeyError, "/spec", "is missing"),
    (["spec", "template"], None, "/spec/template", "is missing"),
    (["spec", "template"], "x", "/spec/template", "must be an object, not a string"),
    ([*S, "containers"], KeyError, "/spec/template/spec/containers", "is missing"),
    ([*S, "containers"], [], "/spec/template/spec/containers", "must not be empty"),
    ([*S, "containers"], "nginx", "/spec/template/spec/containers", "must be a list"),
    ([*S, "containers"], {"name": "a"}, "/spec/template/spec/containers", "must be a list"),
    ([*S, "containers", 0], 7, "/spec/template/spec/containers/0", "must be an object"),
    ([*S, "containers", 0, "image"], KeyError, "/spec/template/spec/containers/0/image",
     "is missing"),
    ([*S, "containers", 0, "image"], "", "/spec/template/spec/containers/0/image",
     "must not be empty"),
    ([*S, "containers", 0, "image"], 3, "/spec/template/spec/containers/0/image",
     "must be a string, not a number"),
    ([*S, "containers", 0, "image"], ["a"], "/spec/template/spec/containers/0/image",
     "must be a string, not a list"),
    ([*S, "containers", 0, "name"], True, "/spec/template/spec/containers/0/name",
     "not a boolean"),
    ([*S, "initContainers"], 1, "/spec/template/spec/initContainers", "must be a list"),
    ([*S, "volumes"], [{"name": "v", "image": {}}], "/spec/template/spec/volumes/0/image/reference",
     "is missing"),
    (["metadata"], [], "/metadata", "must be an object"),
    (["metadata", "namespace"], 5, "/metadata/namespace", "must be a string"),
    (["kind"], KeyError, "/kind", "is missing"),
    (["apiVersion"], 1, "/apiVersion", "must be a string"),
])
def test_bad_shapes_name_the_path(path: list[str | int], value: Any, where: str,
                                  says: str) -> None:
    with pytest.raises(ManifestError) as e:
        extract_images(mutate(DEPLOY, path, value))
    assert e.value.path == where
    assert says in e.value.message
    assert e.value.message.startswith(where + ": ")


def test_not_an_object() -> None:
    for value in ([], "Pod", None, 3):
        with pytest.raises(ManifestError, match="must be an object") as e:
            extract_images(value)
        assert e.value.path == "/"
        assert not is_workload(value)


def test_null_optional_lists_are_absent() -> None:
    obj = mutate(DEPLOY, [*S, "initContainers"], None)
    obj = mutate(obj, [*S, "volumes"], None)
    obj = mutate(obj, ["metadata"], None)
    (image,) = extract_images(obj)
    assert (image.namespace, image.name) == (None, None)


def test_bounds() -> None:
    many = [{"name": f"c{i}", "image": "a"} for i in range(MAX_CONTAINERS + 1)]
    with pytest.raises(ManifestError, match="at most 1024"):
        extract_images(wrap("Pod", "v1", {"containers": many}))
    # The bound is on the whole object, not per list.
    half = many[: MAX_CONTAINERS // 2 + 1]
    with pytest.raises(ManifestError, match="more than 1024"):
        extract_images(wrap("Pod", "v1", {"containers": half, "initContainers": half}))
    with pytest.raises(ManifestError, match="at most 4096") as e:
        extract_images(wrap("Pod", "v1", {"containers": [{"name": "a", "image": "x" * 5000}]}))
    assert "xxxxx" not in e.value.message  # a client's huge value is not echoed
    with pytest.raises(ManifestError, match=r"unknown kind 'KKKK") as e:
        extract_images({"apiVersion": "v1", "kind": "K" * 200})
    assert len(e.value.message) < 400


def test_deep_nesting_elsewhere_is_not_walked() -> None:
    deep: Any = "leaf"
    for _ in range(100_000):
        deep = {"a": [deep]}
    obj = wrap("Pod", "v1", {**copy.deepcopy(POD_SPEC), "affinity": deep})
    obj["metadata"]["annotations"] = {"x": deep}
    assert len(extract_images(obj)) == 2


def test_values_are_frozen() -> None:
    image = extract_images(DEPLOY)[0]
    with pytest.raises(AttributeError):
        image.image = "evil"  # type: ignore[misc]
    assert hash(image) == hash(image._replace())
    assert image.describe() == "Deployment ns/w initContainer init"


# --- properties -------------------------------------------------------------------------------

names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)
containers = st.lists(st.fixed_dictionaries({"name": names, "image": names}), max_size=4)


@given(kind=st.sampled_from(KINDS), init=containers,
       main=containers.filter(bool), ephemeral=containers,
       volumes=st.lists(st.tuples(names, st.one_of(st.none(), names)), max_size=3))
@settings(max_examples=150, deadline=None)
def test_property_every_image_found_at_its_pointer(
        kind: tuple[str, str, str], init: list[dict[str, str]], main: list[dict[str, str]],
        ephemeral: list[dict[str, str]], volumes: list[tuple[str, str | None]]) -> None:
    spec: dict[str, Any] = {"containers": main, "initContainers": init,
                            "ephemeralContainers": ephemeral,
                            "volumes": [{"name": n, **({"image": {"reference": r}} if r else
                                                       {"emptyDir": {}})} for n, r in volumes]}
    obj = wrap(kind[0], kind[1], spec)
    images = extract_images(obj)
    expected = ([c["image"] for c in init + main + ephemeral] + [r for _, r in volumes if r])
    assert [i.image for i in images] == expected
    for image in images:
        assert isinstance(image, WorkloadImage)
        assert image.pointer.startswith(kind[2] + "/")
        assert resolve_pointer(obj, image.pointer) == image.image


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["apiVersion", "kind", "metadata", "spec", "template", "jobTemplate",
                         "containers", "initContainers", "ephemeralContainers", "volumes",
                         "image", "name", "reference", "x"]), inner, max_size=5),
    max_leaves=30)


@given(body=json_values, kind=st.sampled_from([*sorted(WORKLOAD_KINDS), "Service", 1, None]),
       api_version=st.sampled_from(["v1", "apps/v1", "batch/v1", "x/v1", None]))
@settings(max_examples=150, deadline=None)
def test_property_arbitrary_input_is_images_or_a_manifest_error(
        body: Any, kind: Any, api_version: Any) -> None:
    obj = {**body, "kind": kind, "apiVersion": api_version} if isinstance(body, dict) else body
    error: ManifestError | None = None
    try:
        images = extract_images(obj)
    except ManifestError as e:
        error = e
    if error is not None:
        assert error.path.startswith("/")
        assert isinstance(error, Error)
        return
    assert is_workload(obj)
    for image in images:
        assert resolve_pointer(obj, image.pointer) == image.image


@given(st.text())
def test_property_pointer_tokens_round_trip(token: str) -> None:
    assert unescape(escape(token)) == token
    assert "/" not in escape(token)
