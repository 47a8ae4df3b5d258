"""A review's ``request.object``, kept as JSON and read only as far as the review needs.

Decoding the whole object into Python dicts and walking them
(:func:`~imggate.admission.workloads.extract_images`) was the costliest part of a
warm review in the app: ~30,000 instructions of ~210,000 for a one-container pod
(counted with ``bench/webhook_instructions.py``), and more for real pods, whose
``metadata.managedFields`` alone is often larger than their spec. Here msgspec
decodes the JSON with structs that hold only the fields an image comes from,
per kind, checking every type and bound in C and never building the rest:
~8,000 instructions for the same pod.

The walker stays the authority. Whatever the structs refuse (a field of the
wrong type, an unknown kind, a bound passed, a ``null`` the walker tolerates)
is decoded in full and walked, which accepts it or says why not, naming the
path. So the structs only ever accept a subset of what the walker accepts, and
then read the same images (a property test holds them to that).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any

import msgspec

from imggate.admission.workloads import (
    API_GROUPS,
    MAX_CONTAINERS,
    MAX_IMAGE_LENGTH,
    MAX_NAME_LENGTH,
    MAX_VOLUMES,
    POD_SPEC_PATHS,
    ContainerType,
    WorkloadImage,
    api_group,
    extract_images,
)

_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
_Image = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_IMAGE_LENGTH)]


class _Container(msgspec.Struct):
    name: _Name
    image: _Image


_Containers = Annotated[list[_Container], msgspec.Meta(max_length=MAX_CONTAINERS)]


class _ImageSource(msgspec.Struct):
    reference: _Image


class _Volume(msgspec.Struct):
    image: _ImageSource | None = None
    # The walker reads a volume's name only when it has an image (then it is required).
    name: _Name | None = None


class _PodSpec(msgspec.Struct, rename="camel"):
    containers: Annotated[list[_Container], msgspec.Meta(min_length=1,
                                                         max_length=MAX_CONTAINERS)]
    init_containers: _Containers | None = None
    ephemeral_containers: _Containers | None = None
    volumes: Annotated[list[_Volume], msgspec.Meta(max_length=MAX_VOLUMES)] | None = None


class _Template(msgspec.Struct):
    spec: _PodSpec


class _WithTemplate(msgspec.Struct):
    template: _Template


class _JobTemplate(msgspec.Struct):
    spec: _WithTemplate


class _CronJobSpec(msgspec.Struct, rename="camel"):
    job_template: _JobTemplate


class _Metadata(msgspec.Struct):
    name: _Name | None = None
    namespace: _Name | None = None


class _Object(msgspec.Struct, tag_field="kind", rename="camel", kw_only=True):
    api_version: _Name
    metadata: _Metadata | None = None


class _Pod(_Object, tag="Pod"):
    spec: _PodSpec


class _PodTemplate(_Object, tag="PodTemplate"):
    template: _Template


class _EphemeralContainers(_Object, tag="EphemeralContainers", rename="camel"):
    ephemeral_containers: Annotated[list[_Container], msgspec.Meta(min_length=1,
                                                                   max_length=MAX_CONTAINERS)]


class _CronJob(_Object, tag="CronJob"):
    spec: _CronJobSpec


def _templated(kind: str) -> type[_Object]:
    """The struct of a kind whose pod spec is at ``spec.template.spec``."""
    made: type[_Object] = msgspec.defstruct(kind, [("spec", _WithTemplate)], bases=(_Object,),
                                            tag=kind)  # type: ignore[assignment]
    return made


_KINDS: tuple[type[_Object], ...] = (
    _Pod, _PodTemplate, _EphemeralContainers, _CronJob,
    *(_templated(k) for k in ("ReplicationController", "Deployment", "ReplicaSet",
                              "StatefulSet", "DaemonSet", "Job")))
_DECODER = msgspec.json.Decoder(functools.reduce(operator.or_, _KINDS))
_VALUE = msgspec.json.Decoder(dict[str, Any])


class ObjectJSON(Mapping[str, Any]):
    """``request.object`` as its JSON, a mapping decoded only when read as one.

    :meth:`images` reads the images without decoding the rest; the mapping (the pull
    secrets' pod spec, the walker's fallback) is decoded on first use. Equal to any
    mapping with the same content.
    """

    __slots__ = ("_value", "json")

    def __init__(self, json: bytes | msgspec.Raw) -> None:
        #: The object's JSON, as the request carried it (one JSON object).
        self.json = json
        self._value: dict[str, Any] | None = None

    def _decoded(self) -> dict[str, Any]:
        if self._value is None:
            # The envelope decoder read these bytes within the same depth limit: a value.
            self._value = _VALUE.decode(self.json)
        return self._value

    def __getitem__(self, key: str) -> Any:
        return self._decoded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())

    def images(self, *, namespace: str | None = None,
               name: str | None = None) -> tuple[WorkloadImage, ...]:
        """:func:`~imggate.admission.workloads.extract_images` of this object, the same
        images and the same errors, without decoding it when the structs can read it."""
        found = typed_images(self.json, namespace=namespace, name=name)
        if found is not None:
            return found
        return extract_images(self._decoded(), namespace=namespace, name=name)


def workload_images(obj: Mapping[str, Any], *, namespace: str | None = None,
                    name: str | None = None) -> tuple[WorkloadImage, ...]:
    """The images of ``obj`` (read from its JSON when it is an :class:`ObjectJSON`)."""
    if isinstance(obj, ObjectJSON):
        return obj.images(namespace=namespace, name=name)
    return extract_images(obj, namespace=namespace, name=name)


def typed_images(data: bytes | msgspec.Raw, *, namespace: str | None = None,
                 name: str | None = None) -> tuple[WorkloadImage, ...] | None:
    """The images of the workload object in ``data`` as :func:`extract_images` reads them,
    or ``None`` when the structs cannot read it (then the walker decides: never an error
    here)."""
    try:
        obj = _DECODER.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return None
    kind, path, spec_of = _READ[type(obj)]
    if api_group(obj.api_version) not in API_GROUPS[kind]:
        return None
    meta = obj.metadata
    if meta is not None:
        namespace = namespace or meta.namespace
        name = name or meta.name
    found: list[WorkloadImage] = []
    if spec_of is None:
        lists: tuple[tuple[str, ContainerType, list[_Container] | None], ...] = (
            ("ephemeralContainers", _EPHEMERAL, obj.ephemeral_containers),)  # type: ignore[attr-defined]
        volumes: list[_Volume] | None = None
    else:
        spec = spec_of(obj)
        lists = (("initContainers", _INIT, spec.init_containers),
                 ("containers", _CONTAINER, spec.containers),
                 ("ephemeralContainers", _EPHEMERAL, spec.ephemeral_containers))
        volumes = spec.volumes
    for key, ctype, items in lists:
        if items:
            found += [WorkloadImage(kind, namespace, name, c.name, ctype, c.image,
                                    (*path, key, i, "image")) for i, c in enumerate(items)]
    if volumes:
        for i, v in enumerate(volumes):
            if v.image is None:
                continue
            if v.name is None:
                return None  # the walker names the missing name
            found.append(WorkloadImage(kind, namespace, name, v.name, _VOLUME,
                                       v.image.reference,
                                       (*path, "volumes", i, "image", "reference")))
    if len(found) > MAX_CONTAINERS:
        return None  # the walker says how many are too many
    return tuple(found)


# Read once: an enum member looked up on its class costs a few times a global's lookup.
_INIT, _CONTAINER = ContainerType.INIT, ContainerType.CONTAINER
_EPHEMERAL, _VOLUME = ContainerType.EPHEMERAL, ContainerType.VOLUME

#: Per struct: its kind, where its pod spec is, and how to reach it (``None``: the bare
#: ``EphemeralContainers`` object, which has none).
_READ: dict[type[_Object], tuple[str, tuple[str, ...], Callable[[Any], _PodSpec] | None]] = {
    _Pod: ("Pod", POD_SPEC_PATHS["Pod"], lambda o: o.spec),
    _PodTemplate: ("PodTemplate", POD_SPEC_PATHS["PodTemplate"], lambda o: o.template.spec),
    _CronJob: ("CronJob", POD_SPEC_PATHS["CronJob"],
               lambda o: o.spec.job_template.spec.template.spec),
    _EphemeralContainers: ("EphemeralContainers", (), None),
    **{cls: (cls.__name__, POD_SPEC_PATHS[cls.__name__], lambda o: o.spec.template.spec)
       for cls in _KINDS[4:]},
}
