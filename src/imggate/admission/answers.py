"""Answers remembered: a request that differs from one answered before only in its uid
gets the same answer, its uid put in.

The API server asks about the same pod spec again and again (every replica of a
Deployment, every restart, every ``kubectl apply`` of an unchanged object), and a warm
review's answer is a pure function of what it remembers: the request less its uid,
the object's images, the rules, and the cache entries it was decided from. Making that
answer again (the decision, the answer's wording, the response body, the log line's
fields) was half of a warm review's instructions in the app
(``bench/webhook_instructions.py``); putting a uid into a kept answer is a few per cent.

What is kept, and for how long, follows from what the answer was made of:

- the key is every field of the request a review reads but the uid, the object's JSON
  as sent (byte for byte: the same bytes are the same object) and the endpoint;
- an entry is used only under the very rules it was made with (the
  :class:`~imggate.admission.policies.PolicySet` itself, which a reload replaces;
  the trust roots are fixed for the process) and only until the first of the cache
  entries it was decided from expires (:attr:`~imggate.admission.reviewer.Outcome.until`):
  never longer than the verdict and tag caches would have given the same answer;
- only answers made without I/O are kept: none that needed the registry or Redis, and
  none that were cut short by the deadline;
- with ``--pull-secrets`` every review still reads its pod's secrets (a read that fails
  denies, as ever), and the answer is looked up only then, under a key that adds the
  fingerprint of the credentials read and the secrets' names
  (:attr:`~imggate.admission.reviewer.Prepared.credentials`): an answer is never given
  for credentials other than those it was made with.

A remembered answer is logged and counted like any other review (its own uid and
time, the ``imggate_admission_reviews_total`` series), and counted as a lookup of the
``answer`` cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, NamedTuple

import orjson

from imggate.admission.policies import PolicySet
from imggate.admission.review import ReviewRequest
from imggate.admission.workload_json import ObjectJSON

#: Answers kept at most (a cluster has few distinct pod specs; past this, start over).
MAX_ANSWERS: Final = 1024
#: The largest response body kept (a denial naming many images is a few KiB).
MAX_ANSWER_BYTES: Final = 16 * 1024
#: The largest object whose answer is kept (its JSON is part of the key). A pod spec is a
#: few KiB.
MAX_KEYED_OBJECT: Final = 32 * 1024
#: The most bytes of keys and answers kept in all (past this, start over): a client sending
#: distinct large objects grows the process by no more than this.
MAX_KEPT_BYTES: Final = 8 * 1024 * 1024

AnswerKey = tuple[object, ...]


class Remembered(NamedTuple):
    """One answer, ready to send again with another uid."""

    #: The rules it was made under (used only while they are the rules in use).
    policies: PolicySet
    #: ``time.monotonic()`` after which it is not used.
    until: float
    #: The response body before and after the uid's JSON string.
    head: bytes
    tail: bytes
    #: The review log line's fields but ``uid`` and ``ms``: a JSON object without its ``{``.
    log: bytes
    #: The labels of ``imggate_admission_reviews_total`` (endpoint, decision, kind, dry run).
    labels: tuple[str, str, str, str]


def answer_key(req: ReviewRequest, mutate: bool) -> AnswerKey | None:
    """What a review's answer depends on in the request: all of it but the uid, with the
    object as the JSON it was sent as; ``None`` for a request not to be looked up (no
    object, or one larger than :data:`MAX_KEYED_OBJECT`, or one read by the field-by-field
    reader)."""
    obj = req.object
    if not isinstance(obj, ObjectJSON):
        return None
    # The bytes themselves, not the images read from them: the same bytes are the same
    # object, and they are compared without reading them (reading a pod's images costs
    # as much as the rest of a remembered answer). Replicas of one ReplicaSet send the
    # same bytes.
    data = bytes(obj.json)
    if len(data) > MAX_KEYED_OBJECT:
        return None
    return (mutate, req.api_version, req.kind, req.resource, req.sub_resource, req.namespace,
            req.name, req.operation, req.dry_run, data)


def split_body(api_version: str, body: bytes) -> tuple[bytes, bytes] | None:
    """``(head, tail)`` of a response made with the uid ``""``: the body for uid ``u`` is
    ``head + orjson.dumps(u) + tail``. ``None`` when the body does not start as
    :func:`~imggate.admission.review.response_body` writes it."""
    head = (b'{"apiVersion":' + orjson.dumps(api_version)
            + b',"kind":"AdmissionReview","response":{"uid":')
    if not body.startswith(head + b'""'):
        return None
    return head, body[len(head) + 2:]


class AnswerCache:
    """Remembered answers by :func:`answer_key`; see the module docstring for what is kept."""

    def __init__(self, max_entries: int = MAX_ANSWERS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[AnswerKey, Remembered] = {}
        self._max = max_entries
        self._clock = clock
        self._bytes = 0

    def get(self, key: AnswerKey, policies: PolicySet) -> Remembered | None:
        """The answer for ``key`` under ``policies``, while it holds; else ``None``."""
        found = self._entries.get(key)
        if found is None:
            return None
        if found.policies is not policies or found.until <= self._clock():
            del self._entries[key]
            self._bytes -= _size(key, found)
            return None
        return found

    def put(self, key: AnswerKey, answer: Remembered) -> None:
        """Keep ``answer`` (not when it has already expired or is too large)."""
        if answer.until <= self._clock() or len(answer.head) + len(answer.tail) \
                > MAX_ANSWER_BYTES:
            return
        size = _size(key, answer)
        if len(self._entries) >= self._max or self._bytes + size > MAX_KEPT_BYTES:
            self.clear()  # many distinct requests: start over rather than grow
        old = self._entries.get(key)
        if old is not None:
            self._bytes -= _size(key, old)
        self._entries[key] = answer
        self._bytes += size

    def clear(self) -> None:
        """Forget every answer (the rules were reloaded)."""
        self._entries.clear()
        self._bytes = 0

    @property
    def kept_bytes(self) -> int:
        """The bytes of keys and answers kept (bounded by :data:`MAX_KEPT_BYTES`)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)


def _size(key: AnswerKey, answer: Remembered) -> int:
    obj = key[-1]
    return (len(obj) if isinstance(obj, bytes) else 0) + len(answer.head) + len(answer.tail) \
        + len(answer.log)


def review_line(uid: bytes, ms: float, fields: bytes) -> str:
    """One review log line: ``uid`` (its JSON string) and ``ms`` first, then ``fields`` (a
    JSON object without its ``{``), as :class:`~imggate.admission.reviewlog.ReviewLog`
    writes it."""
    return (b'{"uid":' + uid + b',"ms":' + orjson.dumps(ms) + b"," + fields
            + b"\n").decode()
