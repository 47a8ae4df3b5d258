"""The typed reader of a review's object: the walker's images, or it defers to the walker."""

from __future__ import annotations

import copy
import json
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from admission.test_workloads import (
    ADMISSION,
    DEPLOY,
    KINDS,
    POD_SPEC,
    S,
    json_values,
    mutate,
    wrap,
)
from imggate.admission.review import parse_review
from imggate.admission.workload_json import ObjectJSON, typed_images, workload_images
from imggate.admission.workloads import MAX_CONTAINERS, extract_images, pod_spec
from imggate.errors import ManifestError


def _both(obj: Any, namespace: str | None = None, name: str | None = None
          ) -> tuple[Any, Any]:
    """(the typed reader's answer, the walker's images or its error) for ``obj``."""
    data = json.dumps(obj).encode()  # not orjson: it refuses integers past 64 bits
    fast = typed_images(data, namespace=namespace, name=name)
    try:
        slow: Any = extract_images(json.loads(data), namespace=namespace, name=name)
    except ManifestError as e:
        slow = e
    return fast, slow


#: The real AdmissionReviews that carry an object (a DELETE's would have none to read).
WITH_OBJECT = [p for p in sorted(ADMISSION.glob("*.json"))
               if json.loads(p.read_text())["request"].get("object") is not None]


def test_the_real_reviews_are_read() -> None:
    assert len(WITH_OBJECT) >= 8  # the fixtures copied into tests/, none left out


@pytest.mark.parametrize("path", WITH_OBJECT, ids=lambda p: p.name)
def test_real_reviews_take_the_typed_path_with_the_walkers_images(path: Any) -> None:
    request = json.loads(path.read_text())["request"]
    ns, name = request.get("namespace") or None, request.get("name") or None
    fast, slow = _both(request["object"], ns, name)
    if isinstance(slow, ManifestError):
        assert fast is None
    else:
        assert fast == slow and fast


@pytest.mark.parametrize(("kind", "api_version", "base"), KINDS)
def test_every_kind_takes_the_typed_path(kind: str, api_version: str, base: str) -> None:
    spec = {**copy.deepcopy(POD_SPEC),
            "ephemeralContainers": [{"name": "dbg", "image": "busybox:1"}],
            "volumes": [{"name": "cfg", "configMap": {"name": "x"}},
                        {"name": "model", "image": {"reference": "registry.example/m:1"}}]}
    fast, slow = _both(wrap(kind, api_version, spec))
    assert fast == slow and len(fast) == 4
    assert fast[-1].pointer == f"{base}/volumes/1/image/reference"
    old = {"apiVersion": "v1", "kind": "EphemeralContainers", "metadata": {"name": "p"},
           "ephemeralContainers": [{"name": "dbg", "image": "busybox:1"}]}
    fast, slow = _both(old, "shop")
    assert fast == slow and fast[0].pointer == "/ephemeralContainers/0/image"


@pytest.mark.parametrize(("path", "value"), [
    (["spec"], KeyError), (["spec", "template"], None), (["spec", "template"], "x"),
    ([*S, "containers"], KeyError), ([*S, "containers"], []), ([*S, "containers"], "nginx"),
    ([*S, "containers", 0], 7), ([*S, "containers", 0, "image"], ""),
    ([*S, "containers", 0, "image"], 3), ([*S, "containers", 0, "name"], True),
    ([*S, "containers", 0, "image"], "x" * 5000), ([*S, "initContainers"], 1),
    ([*S, "volumes"], [{"name": "v", "image": {}}]),
    ([*S, "volumes"], [{"image": {"reference": "a:1"}}]),
    (["metadata"], []), (["metadata", "namespace"], 5), (["metadata", "namespace"], ""),
    (["kind"], KeyError), (["kind"], "Service"), (["apiVersion"], 1),
    (["apiVersion"], "example.com/v1"),
])
def test_what_the_walker_refuses_is_deferred_to_it(path: list[str | int], value: Any) -> None:
    obj = mutate(DEPLOY, path, value)
    fast, slow = _both(obj)
    assert fast is None and isinstance(slow, ManifestError)
    # Through the object, the walker's own words and path.
    with pytest.raises(ManifestError) as e:
        ObjectJSON(orjson.dumps(obj)).images()
    assert (e.value.path, e.value.message) == (slow.path, slow.message)


def test_what_the_walker_tolerates_but_the_structs_do_not_is_still_read() -> None:
    # A volume without an image is not read by the walker: its name may be anything.
    obj = mutate(DEPLOY, [*S, "volumes"], [{"name": 5, "emptyDir": {}}])
    assert typed_images(orjson.dumps(obj)) is None
    assert ObjectJSON(orjson.dumps(obj)).images() == extract_images(obj)
    # metadata.namespace is not read when the request names the namespace.
    obj = mutate(DEPLOY, ["metadata", "namespace"], "")
    assert ObjectJSON(orjson.dumps(obj)).images(namespace="ns") == extract_images(
        obj, namespace="ns")


def test_too_many_images_in_all_is_the_walkers_error() -> None:
    half = [{"name": f"c{i}", "image": "a:1"} for i in range(MAX_CONTAINERS // 2 + 1)]
    obj = wrap("Pod", "v1", {"containers": half, "initContainers": half})
    assert typed_images(orjson.dumps(obj)) is None
    with pytest.raises(ManifestError, match="more than 1024"):
        ObjectJSON(orjson.dumps(obj)).images()


def test_a_repeated_key_reads_as_the_walker_reads_it() -> None:
    body = (b'{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"name":"a",'
            b'"image":"first:1","image":"last:1"}]}}')
    fast = typed_images(body)
    assert fast is not None and fast == extract_images(json.loads(body))
    assert fast[0].image == "last:1"
    # The kind twice is not read by the structs at all.
    twice = body.replace(b'"kind":"Pod"', b'"kind":"Deployment","kind":"Pod"')
    assert typed_images(twice) is None


def test_the_object_is_a_mapping_decoded_only_when_read_as_one() -> None:
    body = orjson.dumps(DEPLOY)
    obj = ObjectJSON(body)
    assert obj.images() == extract_images(DEPLOY)
    assert obj._value is None  # the images did not need the mapping
    assert obj == DEPLOY
    assert DEPLOY == obj  # noqa: SIM300 (the dict's side of the comparison)
    assert len(obj) == len(DEPLOY)
    assert pod_spec(obj) == DEPLOY["spec"]["template"]["spec"]
    assert workload_images(DEPLOY) == workload_images(obj)


def test_the_envelope_keeps_the_object_as_json() -> None:
    doc = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
           "request": {"uid": "u", "kind": {"group": "apps", "version": "v1",
                                            "kind": "Deployment"},
                       "operation": "CREATE", "namespace": "ns", "object": DEPLOY}}
    req = parse_review(orjson.dumps(doc))
    assert isinstance(req.object, ObjectJSON)
    assert msgspec.json.decode(req.object.json) == DEPLOY
    doc["request"]["object"] = None
    assert parse_review(orjson.dumps(doc)).object is None


@given(body=json_values, kind=st.sampled_from([k for k, _, _ in KINDS] + ["Service"]),
       api_version=st.sampled_from(["v1", "apps/v1", "batch/v1", "x/v1"]),
       namespace=st.sampled_from([None, "ns"]))
@settings(max_examples=300, deadline=None)
def test_property_the_typed_reader_agrees_with_the_walker(body: Any, kind: str,
                                                          api_version: str,
                                                          namespace: str | None) -> None:
    obj = {**body, "kind": kind, "apiVersion": api_version} if isinstance(body, dict) else body
    fast, slow = _both(obj, namespace)
    if fast is not None:
        assert fast == slow


@given(kind=st.sampled_from(KINDS), path=st.sampled_from([
    ["containers"], ["containers", 0], ["containers", 0, "image"], ["containers", 0, "name"],
    ["initContainers"], ["initContainers", 0], ["volumes"], ["volumes", 0],
    ["volumes", 0, "image"], ["volumes", 0, "name"], ["volumes", 0, "image", "reference"]]),
    value=json_values)
@settings(max_examples=300, deadline=None)
def test_property_any_field_replaced_agrees_with_the_walker(kind: tuple[str, str, str],
                                                            path: list[str | int],
                                                            value: Any) -> None:
    spec = {**copy.deepcopy(POD_SPEC),
            "volumes": [{"name": "m", "image": {"reference": "registry.example/m:1"}}]}
    obj = wrap(kind[0], kind[1], spec)
    base = [p for p in kind[2].split("/") if p]
    obj = mutate(obj, [*base, *path], value)
    fast, slow = _both(obj)
    if fast is not None:
        assert fast == slow
