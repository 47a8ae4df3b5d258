"""AdmissionReview envelopes: read a request at the edge, write a response in kind.

The API server sends ``admission.k8s.io/v1`` or ``v1beta1``; the answer
carries the same ``apiVersion`` and the request's ``uid``. Everything a
client sends is untrusted: :func:`parse_review` bounds the body's size and
nesting, checks every field it uses, and raises :class:`BadReview` (HTTP
400, or a denial when the ``uid`` is known) naming what is wrong. It never
raises anything else, whatever the body (a property test holds it to that).

A review is read twice over only when it is not well-formed. First a typed
msgspec decoder reads the envelope, checking every field in C and never
building the parts imggate does not read (``oldObject``, ``userInfo``,
``options``): measured on a warm review in the running server, that is ~8 µs of
the ~13 µs reading took with orjson and checks in Python. Whatever it refuses
(a body that is not JSON, a field of the wrong type, a ``null`` the checks
tolerate) is read again by the field-by-field reader, which alone decides what
is refused and says why, with the ``uid`` when it has one. So the decoder only
ever accepts a subset of what the reader accepts, with the same result (a
property test holds it to that; one difference is left, where nothing looks: an
integer past 64 bits inside the object is an int to msgspec, a float to orjson).

The response side keeps to the API server's limits: each warning at most
120 characters and all of them at most 4 KiB; the status message is kept
short, naming each denied image and its violations.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, NamedTuple

import msgspec
import orjson

from imggate.admission.workload_json import ObjectJSON
from imggate.nesting import MAX_DEPTH, json_depth

#: The envelopes the API server may send; the answer uses the same one.
API_VERSIONS: Final = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
#: Largest request body read (the API server caps an object at 3 MiB; a review holds two).
MAX_BODY_BYTES: Final = 8 * 1024 * 1024
#: The API server's limits on warnings (apiserver: 120 characters each, 4 KiB in all).
MAX_WARNING_CHARS: Final = 120
MAX_WARNINGS_BYTES: Final = 4096
#: A denial message is read by a person in ``kubectl`` output: keep it short.
MAX_MESSAGE_CHARS: Final = 1500
MAX_AUDIT_VALUE_CHARS: Final = 4000
_MAX_UID = 128
_MORE_RESERVE = 64
_MAX_NAME = 253
_OPERATIONS: Final = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})


class BadReview(Exception):
    """A body that is not an AdmissionReview imggate can answer.

    ``uid`` and ``api_version`` are set when they were read before the
    problem was found: the answer is then a denial in kind, else HTTP 400.
    """

    def __init__(self, message: str, *, uid: str | None = None,
                 api_version: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.uid = uid
        self.api_version = api_version
        self.status = status


class GroupVersionKind(NamedTuple):
    """``request.kind``: the kind of ``object``."""

    group: str
    version: str
    kind: str

    def __str__(self) -> str:
        gv = f"{self.group}/{self.version}" if self.group else self.version
        return f"{gv} {self.kind}"


class ReviewRequest(NamedTuple):
    """The parts of an AdmissionReview request that a decision uses.

    ``object`` is the client's JSON value, unvalidated beyond being an object; the
    workload reader validates what it walks. (``oldObject`` is not read: no decision
    uses it.)

    A named tuple, not a frozen dataclass, like the other values made for every
    review: as immutable, and built in a fifth of the time (a frozen dataclass sets
    each field through ``object.__setattr__``; measured 3.8 µs against 0.5 µs here,
    on a warm review of ~100 µs).
    """

    api_version: str
    uid: str
    kind: GroupVersionKind
    resource: str
    sub_resource: str
    namespace: str
    name: str
    operation: str
    dry_run: bool
    object: Mapping[str, Any] | None


def _text(doc: Mapping[str, Any], key: str, where: str, *, limit: int = _MAX_NAME,
          required: bool = False, uid: str | None = None, api: str | None = None) -> str:
    value = doc.get(key)
    if type(value) is str and 0 < len(value) <= limit:
        return value  # the common case, checked first
    if value is None or value == "":
        if required:
            raise BadReview(f"{where}.{key} is missing", uid=uid, api_version=api)
        return ""
    if not isinstance(value, str):
        raise BadReview(f"{where}.{key} must be a string", uid=uid, api_version=api)
    if len(value) > limit:
        raise BadReview(f"{where}.{key} is longer than {limit} characters", uid=uid,
                        api_version=api)
    return value


_Text = Annotated[str, msgspec.Meta(max_length=_MAX_NAME)]
_Required = Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_NAME)]


_NULL = msgspec.Raw(b"null")


class _Kind(msgspec.Struct):
    group: _Text = ""
    version: _Text = ""
    kind: _Required = ""  # an empty or missing kind is refused by the reader


class _Resource(msgspec.Struct):
    resource: _Text = ""


class _Request(msgspec.Struct, rename="camel"):
    uid: Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_UID)]
    kind: _Kind
    operation: Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
    resource: _Resource | None = None
    sub_resource: _Text = ""
    namespace: _Text = ""
    name: _Text = ""
    dry_run: bool = False
    # Kept as JSON: the workload reader reads only the fields images come from.
    object: msgspec.Raw = _NULL


class _Review(msgspec.Struct, rename="camel"):
    api_version: Literal["admission.k8s.io/v1", "admission.k8s.io/v1beta1"]
    kind: Literal["AdmissionReview"]
    request: _Request


_DECODER = msgspec.json.Decoder(_Review)


def parse_review(body: bytes) -> ReviewRequest:
    """Read an AdmissionReview request; :class:`BadReview` says why one is unusable."""
    if len(body) > MAX_BODY_BYTES:
        raise BadReview(f"request body is larger than {MAX_BODY_BYTES} bytes", status=413)
    found = decode_well_formed(body)
    # Not well-formed: the field-by-field reader says why, or accepts it.
    return found if found is not None else read_fields(body)


def decode_well_formed(body: bytes) -> ReviewRequest | None:
    """The request of a well-formed review, read by the typed decoder; ``None`` for
    anything else (never an error: :func:`read_fields` decides)."""
    try:
        review = _DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    request = review.request
    if not request.kind.kind:
        return None
    raw = request.object
    first = bytes(memoryview(raw)[:1])
    obj: ObjectJSON | None = None
    if first == b"{":
        obj = ObjectJSON(raw)
    elif first != b"n":  # null (msgspec read a JSON value): anything else is not an object
        return None  # the reader says why
    return ReviewRequest(
        review.api_version, request.uid,
        GroupVersionKind(request.kind.group, request.kind.version, request.kind.kind),
        request.resource.resource if request.resource is not None else "",
        request.sub_resource, request.namespace, request.name, request.operation,
        request.dry_run, obj)


def read_fields(body: bytes) -> ReviewRequest:
    """The field-by-field reader: the authority on what is refused, and why."""
    # Depth is measured here, before orjson (which stops at 1,024 levels in words that
    # change between releases; 3.8 crashed the process on a few hundred thousand
    # brackets). Nothing below walks the object recursively (the workload reader
    # follows fixed paths).
    if json_depth(body) > MAX_DEPTH:
        raise BadReview(f"body nests too deeply (more than {MAX_DEPTH} levels)")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadReview("body is not JSON") from None
    if not isinstance(doc, dict):
        raise BadReview("body is not an AdmissionReview (not a JSON object)")
    api = doc.get("apiVersion")
    if doc.get("kind") != "AdmissionReview" or api not in API_VERSIONS:
        raise BadReview("body is not an AdmissionReview (apiVersion must be one of "
                        f"{', '.join(API_VERSIONS)} and kind AdmissionReview)")
    assert isinstance(api, str)
    request = doc.get("request")
    if not isinstance(request, dict):
        raise BadReview("AdmissionReview has no request object")
    uid = _text(request, "uid", "request", limit=_MAX_UID, required=True)
    kind_doc = request.get("kind")
    if not isinstance(kind_doc, dict):
        raise BadReview("request.kind is missing", uid=uid, api_version=api)
    kind = GroupVersionKind(
        _text(kind_doc, "group", "request.kind", uid=uid, api=api),
        _text(kind_doc, "version", "request.kind", uid=uid, api=api),
        _text(kind_doc, "kind", "request.kind", required=True, uid=uid, api=api))
    resource_doc = request.get("resource")
    resource = ""
    if isinstance(resource_doc, dict):
        resource = _text(resource_doc, "resource", "request.resource", uid=uid, api=api)
    operation = _text(request, "operation", "request", required=True, uid=uid, api=api)
    if operation not in _OPERATIONS:
        raise BadReview(f"request.operation {operation[:40]!r} is not one of "
                        f"{', '.join(sorted(_OPERATIONS))}", uid=uid, api_version=api)
    dry_run = request.get("dryRun", False)
    if dry_run is None:
        dry_run = False
    if not isinstance(dry_run, bool):
        raise BadReview("request.dryRun must be a boolean", uid=uid, api_version=api)
    obj = request.get("object")
    if obj is not None and not isinstance(obj, dict):
        raise BadReview("request.object must be an object", uid=uid, api_version=api)
    return ReviewRequest(
        api_version=api, uid=uid, kind=kind, resource=resource,
        sub_resource=_text(request, "subResource", "request", uid=uid, api=api),
        namespace=_text(request, "namespace", "request", uid=uid, api=api),
        name=_text(request, "name", "request", uid=uid, api=api),
        operation=operation, dry_run=dry_run, object=obj)


class Answer(NamedTuple):
    """What to tell the API server about one request (a named tuple: made for every review,
    see :class:`ReviewRequest`)."""

    allowed: bool
    message: str | None = None
    warnings: tuple[str, ...] = ()
    audit: Mapping[str, str] = MappingProxyType({})
    patch: Sequence[Mapping[str, Any]] = ()


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut.

    The cut falls between words ("give the…", never "give the d…") unless the last word
    that fits started in the first half (a digest, a long path): then in it.
    """
    if len(text) <= limit:
        return text
    kept = text[: limit - 1]
    space = kept.rfind(" ")
    if kept[-1].isalnum() and text[limit - 1].isalnum() and space >= limit // 2:
        kept = kept[:space]
    return kept.rstrip(" ,;:") + "…"


def bounded_warnings(warnings: Sequence[str]) -> list[str]:
    """Warnings within the API server's limits: each shortened, all within 4 KiB.

    When they do not all fit, the last kept one says how many were left out.
    """
    out: list[str] = []
    used = 0
    for i, w in enumerate(warnings):
        text = shorten(" ".join(w.split()), MAX_WARNING_CHARS)
        size = len(text.encode())
        # Keep room for the closing "... N more" line unless this is the last warning.
        budget = MAX_WARNINGS_BYTES - (_MORE_RESERVE if i < len(warnings) - 1 else 0)
        if used + size > budget:
            out.append(f"... {len(warnings) - i} more warnings (see the imggate log)")
            break
        out.append(text)
        used += size
    return out


def response_body(api_version: str, uid: str, answer: Answer) -> bytes:
    """The AdmissionReview response, as bytes, in the request's own ``apiVersion``."""
    response: dict[str, Any] = {"uid": uid, "allowed": answer.allowed}
    if not answer.allowed:
        response["status"] = {"code": 403, "reason": "Forbidden",
                              "message": shorten(answer.message or "denied by imggate",
                                                 MAX_MESSAGE_CHARS)}
    warnings = bounded_warnings(answer.warnings)
    if warnings:
        response["warnings"] = warnings
    if answer.audit:
        response["auditAnnotations"] = {k: shorten(v, MAX_AUDIT_VALUE_CHARS)
                                        for k, v in answer.audit.items()}
    if answer.patch and answer.allowed:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(orjson.dumps(list(answer.patch))).decode()
    return orjson.dumps({"apiVersion": api_version, "kind": "AdmissionReview",
                         "response": response})


def bad_request_body(error: BadReview) -> tuple[int, bytes]:
    """(HTTP status, body) for a request that cannot be answered in kind.

    With a known ``uid`` the answer is a denial in kind (the API server shows
    the reason); without one, only an HTTP error is possible.
    """
    if error.uid is not None and error.api_version is not None:
        return 200, response_body(error.api_version, error.uid,
                                  Answer(False, f"imggate: {error.message}"))
    return error.status, orjson.dumps({"error": error.message})
