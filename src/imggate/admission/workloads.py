"""Every image a Kubernetes workload object asks the cluster to run.

Shared by the webhook (``imggate serve``) and ``imggate check -f``: given one
object already parsed from JSON or YAML, :func:`extract_images` returns one
frozen :class:`WorkloadImage` per image, in document order, each with the
RFC 6901 JSON pointer of its field so the mutating webhook can emit a
JSONPatch ``replace`` at exactly that place.

Where the pod spec sits, per kind::

    Pod                                           spec
    Deployment, ReplicaSet, StatefulSet,
    DaemonSet, Job, ReplicationController         spec.template.spec
    CronJob                                       spec.jobTemplate.spec.template.spec
    PodTemplate                                   template.spec
    EphemeralContainers (pods/ephemeralcontainers
      before Kubernetes 1.23)                     ephemeralContainers (top level)

In a pod spec, images come from ``initContainers``, ``containers``,
``ephemeralContainers`` and image volumes (``volumes[].image.reference``,
Kubernetes 1.31+: the kubelet pulls those too, so they are gated as well).

The object comes from an untrusted client: it is validated here, at the edge.
The walk follows fixed paths only (no recursion into the object, whatever its
depth), every list and string is bounded, and anything missing or of the
wrong type is a :class:`~imggate.errors.ManifestError` naming the path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, Final, NamedTuple

from imggate.errors import ManifestError

#: API groups each workload kind lives in ("" is the core group). Any version is accepted:
#: extensions/v1beta1 Deployments and batch/v1beta1 CronJobs have the same shape.
API_GROUPS: Final[Mapping[str, frozenset[str]]] = {
    "Pod": frozenset({""}),
    "PodTemplate": frozenset({""}),
    "ReplicationController": frozenset({""}),
    "EphemeralContainers": frozenset({""}),
    "Deployment": frozenset({"apps", "extensions"}),
    "ReplicaSet": frozenset({"apps", "extensions"}),
    "StatefulSet": frozenset({"apps"}),
    "DaemonSet": frozenset({"apps", "extensions"}),
    "Job": frozenset({"batch"}),
    "CronJob": frozenset({"batch"}),
}

#: Where each kind keeps its pod spec (the bare ``EphemeralContainers`` object has none).
POD_SPEC_PATHS: Final[Mapping[str, tuple[str, ...]]] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}

#: The kinds :func:`extract_images` reads.
WORKLOAD_KINDS: Final[frozenset[str]] = frozenset(API_GROUPS)

# Bounds. The API server caps a request at 3 MiB; these keep one object's work and the
# size of anything echoed in a message small whatever a client sends.
MAX_CONTAINERS: Final = 1024
MAX_VOLUMES: Final = 4096
MAX_IMAGE_LENGTH: Final = 4096
MAX_NAME_LENGTH: Final = 253
_SHOWN = 80  # characters of a client's value quoted in an error


class ContainerType(str, Enum):
    """Where in the pod spec an image was found (the field's name, as Kubernetes spells it)."""

    INIT = "initContainer"
    CONTAINER = "container"
    EPHEMERAL = "ephemeralContainer"
    VOLUME = "imageVolume"


# Field of the pod spec for each type, in the order images are reported (the kubelet's
# start order: init containers first).
_LISTS: Final = (
    ("initContainers", ContainerType.INIT),
    ("containers", ContainerType.CONTAINER),
    ("ephemeralContainers", ContainerType.EPHEMERAL),
)


class WorkloadImage(NamedTuple):
    """One image of one workload object (a named tuple: made for every image of every
    review, see :class:`~imggate.admission.review.ReviewRequest`).

    ``container`` is the container's name (the volume's name for an image
    volume); ``path`` the keys and list indexes of the image string in the
    object, e.g. ``("spec", "template", "spec", "containers", 0, "image")``.
    """

    kind: str
    namespace: str | None
    name: str | None
    container: str
    container_type: ContainerType
    image: str
    path: tuple[str | int, ...]

    @property
    def pointer(self) -> str:
        """The RFC 6901 JSON pointer of the image, ``/spec/template/spec/containers/0/image``
        (made when asked: only ``/mutate`` patches and ``check -f`` use it)."""
        return pointer(self.path)

    def describe(self) -> str:
        """``Deployment ns/name container app`` for messages."""
        where = f"{self.namespace}/{self.name}" if self.namespace else (self.name or "(unnamed)")
        return f"{self.kind} {where} {self.container_type.value} {self.container}"


def escape(token: str | int) -> str:
    """One RFC 6901 reference token: ``~`` as ``~0``, ``/`` as ``~1``."""
    text = str(token)
    if "~" not in text and "/" not in text:
        return text  # nearly every token: the field names and list indexes of a pod spec
    return text.replace("~", "~0").replace("/", "~1")


def unescape(token: str) -> str:
    """The inverse of :func:`escape`."""
    return token.replace("~1", "/").replace("~0", "~")


def pointer(path: Sequence[str | int]) -> str:
    """The RFC 6901 JSON pointer of ``path`` (``""`` for the whole document)."""
    return "".join("/" + escape(p) for p in path)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, Sequence):
        return "a list"
    return type(value).__name__


def _error(path: Sequence[str | int], message: str) -> ManifestError:
    return ManifestError(message, path=pointer(path) or "/")


def _mapping(value: object, path: Sequence[str | int]) -> Mapping[str, Any]:
    if type(value) is dict:  # parsed JSON and YAML: skips the slower ABC check
        return value
    if not isinstance(value, Mapping):
        raise _error(path, f"must be an object, not {_type_name(value)}")
    return value


def _list(value: object, path: Sequence[str | int], limit: int) -> Sequence[Any]:
    # A str is a Sequence too; a YAML scalar where a list belongs is a mistake to name.
    if type(value) is not list and (isinstance(value, str | bytes)
                                    or not isinstance(value, Sequence)):
        raise _error(path, f"must be a list, not {_type_name(value)}")
    if len(value) > limit:
        raise _error(path, f"has {len(value)} entries; at most {limit} are read")
    return value


def _string(value: object, path: Sequence[str | int], limit: int) -> str:
    if type(value) is str and 0 < len(value) <= limit:
        return value  # the common case, checked first
    if value is None:
        raise _error(path, "is missing")
    if not isinstance(value, str):
        raise _error(path, f"must be a string, not {_type_name(value)}")
    if not value:
        raise _error(path, "must not be empty")
    if len(value) > limit:
        raise _error(path, f"is {len(value)} characters long; at most {limit} are allowed")
    return value


def _field(obj: Mapping[str, Any], key: str, path: Sequence[str | int], limit: int) -> str:
    """``obj[key]``, a string of 1 to ``limit`` characters (its path made only for an error)."""
    value = obj.get(key)
    if type(value) is str and 0 < len(value) <= limit:
        return value
    return _string(value, (*path, key), limit)


def _optional_string(obj: Mapping[str, Any], key: str, path: Sequence[str | int],
                     limit: int) -> str | None:
    value = obj.get(key)
    return None if value is None else _string(value, (*path, key), limit)


def api_group(api_version: str) -> str:
    """The group of an ``apiVersion`` (``apps/v1`` -> ``apps``; ``v1`` -> the core group ``""``)."""
    return api_version.rpartition("/")[0]


def kind_of(obj: object) -> tuple[str, str]:
    """An object's validated ``(apiVersion, kind)``."""
    doc = _mapping(obj, ())
    return (_string(doc.get("apiVersion"), ("apiVersion",), MAX_NAME_LENGTH),
            _string(doc.get("kind"), ("kind",), MAX_NAME_LENGTH))


def is_workload(obj: object) -> bool:
    """Whether ``obj`` is an object of a kind whose images :func:`extract_images` reads.

    A kind of that name in another API group (a custom resource's ``Job``)
    is not a workload; neither is anything without a string kind.
    """
    if not isinstance(obj, Mapping):
        return False
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return False
    return api_group(api_version) in API_GROUPS.get(kind, frozenset())


def extract_images(obj: object, *, namespace: str | None = None,
                   name: str | None = None) -> tuple[WorkloadImage, ...]:
    """Every image of the workload ``obj``, init containers first.

    ``namespace`` and ``name`` override the object's own metadata (an
    AdmissionReview's ``request.namespace`` is authoritative; a pod created
    with ``generateName`` has no name yet). Raises
    :class:`~imggate.errors.ManifestError` for an object that is not a
    workload this module knows or does not have the shape of one.
    """
    api_version, kind = kind_of(obj)
    doc = _mapping(obj, ())
    groups = API_GROUPS.get(kind)
    if groups is None:
        raise _error(("kind",), f"unknown kind {_shown(kind)}: imggate reads images of "
                                + ", ".join(sorted(WORKLOAD_KINDS)))
    if api_group(api_version) not in groups:
        raise _error(("apiVersion",), f"{kind} is not in API group "
                                      f"{_shown(api_group(api_version))}: expected "
                                      + " or ".join(repr(g) for g in sorted(groups)))
    meta_value = doc.get("metadata")
    meta = {} if meta_value is None else _mapping(meta_value, ("metadata",))
    if namespace is None:
        namespace = _optional_string(meta, "namespace", ("metadata",), MAX_NAME_LENGTH)
    if name is None:
        name = _optional_string(meta, "name", ("metadata",), MAX_NAME_LENGTH)
    found: list[WorkloadImage] = []
    where = (kind, namespace, name)
    if kind == "EphemeralContainers":
        # The subresource object of Kubernetes 1.16-1.22: the list alone, at the top.
        _containers(doc, (), "ephemeralContainers", ContainerType.EPHEMERAL, where, found,
                    required=True)
    else:
        spec_path = POD_SPEC_PATHS[kind]
        spec = _descend(doc, spec_path)
        for key, ctype in _LISTS:
            _containers(spec, spec_path, key, ctype, where, found,
                        required=key == "containers")
        _volumes(spec, spec_path, where, found)
    return tuple(found)


def pod_spec(obj: object) -> Mapping[str, Any] | None:
    """The pod spec of a workload (a Pod's ``spec``, a Deployment's template's...), whose
    ``imagePullSecrets`` and ``serviceAccountName`` the kubelet will use; ``None`` for the
    bare ``EphemeralContainers`` object, which carries none. Call after :func:`extract_images`
    accepted ``obj``."""
    _, kind = kind_of(obj)
    path = POD_SPEC_PATHS.get(kind)
    if path is None:
        return None
    return _descend(_mapping(obj, ()), path)


def _descend(doc: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any]:
    node: Mapping[str, Any] = doc
    for depth, key in enumerate(path):
        value = node.get(key)
        if type(value) is dict:  # the common case: no path made
            node = value
            continue
        here = path[: depth + 1]
        if value is None:
            raise _error(here, "is missing")
        node = _mapping(value, here)
    return node


#: (kind, namespace, name) of the object whose images are being read.
_Where = tuple[str, str | None, str | None]


def _containers(spec: Mapping[str, Any], base: tuple[str | int, ...], key: str,
                ctype: ContainerType, where: _Where, found: list[WorkloadImage], *,
                required: bool) -> None:
    value = spec.get(key)
    if value is None:
        if required:
            raise _error((*base, key), "is missing")
        return
    path = (*base, key)
    items = _list(value, path, MAX_CONTAINERS)
    if required and not items:
        raise _error(path, "must not be empty")
    if len(found) + len(items) > MAX_CONTAINERS:
        raise _error(path, f"more than {MAX_CONTAINERS} containers in one object")
    kind, namespace, name = where
    for i, item in enumerate(items):
        here = (*path, i)
        container = _mapping(item, here)
        cname = _field(container, "name", here, MAX_NAME_LENGTH)
        image = _field(container, "image", here, MAX_IMAGE_LENGTH)
        found.append(WorkloadImage(kind, namespace, name, cname, ctype, image,
                                   (*here, "image")))


def _volumes(spec: Mapping[str, Any], base: tuple[str | int, ...], where: _Where,
             found: list[WorkloadImage]) -> None:
    value = spec.get("volumes")
    if value is None:
        return
    path = (*base, "volumes")
    kind, namespace, name = where
    for i, item in enumerate(_list(value, path, MAX_VOLUMES)):
        here = (*path, i)
        volume = _mapping(item, here)
        source = volume.get("image")
        if source is None:
            continue
        vname = _string(volume.get("name"), (*here, "name"), MAX_NAME_LENGTH)
        ref_path = (*here, "image", "reference")
        image = _string(_mapping(source, (*here, "image")).get("reference"), ref_path,
                        MAX_IMAGE_LENGTH)
        if len(found) >= MAX_CONTAINERS:
            raise _error(path, f"more than {MAX_CONTAINERS} images in one object")
        found.append(WorkloadImage(kind, namespace, name, vname, ContainerType.VOLUME, image,
                                   ref_path))
