"""Remembered answers: the same answer for the same request but its uid, never longer or
further than the caches it was decided from, never across rules, namespaces or endpoints."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from admission.serve_harness import pod, review
from imggate.admission.answers import (
    MAX_KEPT_BYTES,
    MAX_KEYED_OBJECT,
    AnswerCache,
    Remembered,
    answer_key,
    review_line,
    split_body,
)
from imggate.admission.cache import CachedVerdict, CacheTimes, tag_key, verdict_key
from imggate.admission.policies import load_policy_set
from imggate.admission.review import (
    Answer,
    ReviewRequest,
    parse_review,
    read_fields,
    response_body,
)
from imggate.admission.reviewlog import ReviewLog
from imggate.admission.server import AdmissionApp, ServeOptions
from imggate.registry.credentials import Credentials
from imggate.registry.pod_secrets import PodPullSecrets
from imggate.registry.pull_secrets import PullSecretError, PullSecretReader
from imggate.registry.reference import parse_reference

HOST = "registry.answers.invalid:5000"
IMAGE = f"{HOST}/shop/web:1"
DIGEST = "sha256:" + "ab" * 32


def _rules(tmp: Path) -> Path:
    key = tmp / "release.pub"
    key.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    rules = tmp / "rules.yaml"
    rules.write_text(json.dumps({"version": 1, "environments": {"prod": {
        "aliases": ["prod-*"], "tags": {"deny": ["latest"]},
        "registries": {"allowed": [HOST]}, "signatures": {"keys": [str(key)]}}}}))
    return rules


# ------------------------------------------------------------------ the pieces


def test_a_body_split_at_its_uid_makes_the_body_of_any_uid() -> None:
    answer = Answer(False, "imggate denied Pod ns/app: \"quoted\" …", ("a warning",),
                    {"environment": "prod"})
    for api in ("admission.k8s.io/v1", "admission.k8s.io/v1beta1"):
        split = split_body(api, response_body(api, "", answer))
        assert split is not None
        head, tail = split
        for uid in ("u-1", 'a "quoted" uid', "ünïcödé\u2028", "x" * 128):
            assert head + orjson.dumps(uid) + tail == response_body(api, uid, answer)
    assert split_body("admission.k8s.io/v1", b'{"kind":"AdmissionReview"}') is None


def test_a_review_line_is_json_with_its_uid_and_time() -> None:
    fields = orjson.dumps({"endpoint": "validate", "decision": "allow"})[1:]
    line = review_line(orjson.dumps('u "1"'), 0.25, fields)
    assert line.endswith("\n")
    assert json.loads(line) == {"uid": 'u "1"', "ms": 0.25, "endpoint": "validate",
                                "decision": "allow"}


def _req(**changes: Any) -> ReviewRequest:
    doc = review(pod([IMAGE]), namespace="prod-shop", uid="u-1")
    request_changes = {k: v for k, v in changes.items() if k != "image"}
    doc["request"].update(request_changes)
    if "image" in changes:
        doc["request"]["object"]["spec"]["containers"][0]["image"] = changes["image"]
    return parse_review(orjson.dumps(doc))


def test_the_key_is_the_request_but_its_uid() -> None:
    req = _req()
    key = answer_key(req, False)
    assert key is not None
    assert answer_key(_req(uid="u-2"), False) == key
    assert answer_key(req, True) != key  # /mutate answers with a patch
    for change in ({"namespace": "prod-other"}, {"name": "other"}, {"operation": "UPDATE"},
                   {"dryRun": True}, {"subResource": "ephemeralcontainers"},
                   {"image": f"{HOST}/shop/web:2"}, {"kind": {"group": "", "version": "v1",
                                                              "kind": "Pod2"}},
                   {"resource": {"resource": "other"}}):
        assert answer_key(_req(**change), False) != key, change


def test_no_key_without_an_object_read_as_json_or_past_the_size_bound() -> None:
    assert answer_key(_req(object=None), False) is None
    big = review(pod([IMAGE]), namespace="prod-shop")
    big["request"]["object"]["metadata"]["annotations"] = {"a": "x" * MAX_KEYED_OBJECT}
    assert answer_key(parse_review(orjson.dumps(big)), False) is None
    # The field-by-field reader's object (a body the typed decoder deferred) is a dict.
    slow = read_fields(orjson.dumps(review(pod([IMAGE]))))
    assert answer_key(slow, False) is None


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _kept(policies: Any, until: float, head: bytes = b"{", tail: bytes = b"}") -> Remembered:
    return Remembered(policies, until, head, tail, b'"decision":"allow"}',
                      ("validate", "allow", "Pod", "false"))


def test_an_answer_is_kept_until_its_first_entry_expires(tmp_path: Path) -> None:
    policies = load_policy_set(_rules(tmp_path))
    clock = _Clock()
    cache = AnswerCache(clock=clock)
    cache.put(("k",), _kept(policies, 130.0))
    assert cache.get(("k",), policies) is not None
    clock.now = 129.9
    assert cache.get(("k",), policies) is not None
    clock.now = 130.0
    assert cache.get(("k",), policies) is None
    assert len(cache) == 0
    cache.put(("k",), _kept(policies, 130.0))  # already expired: not kept
    assert len(cache) == 0


def test_an_answer_is_used_only_under_the_rules_it_was_made_with(tmp_path: Path) -> None:
    rules = _rules(tmp_path)
    before, after = load_policy_set(rules), load_policy_set(rules)
    cache = AnswerCache(clock=_Clock())
    cache.put(("k",), _kept(before, 200.0))
    assert cache.get(("k",), after) is None  # the same file reloaded: another PolicySet
    assert cache.get(("k",), before) is None  # and the entry is gone


def test_bounds(tmp_path: Path) -> None:
    policies = load_policy_set(_rules(tmp_path))
    cache = AnswerCache(max_entries=2, clock=_Clock())
    cache.put(("big",), _kept(policies, 200.0, head=b"x" * 20_000))
    assert len(cache) == 0
    for i in range(3):
        cache.put((i,), _kept(policies, 200.0))
    assert len(cache) == 1  # full: started over
    # Bytes too: distinct large objects grow the cache by no more than MAX_KEPT_BYTES.
    cache = AnswerCache(clock=_Clock())
    for i in range(2 * MAX_KEPT_BYTES // MAX_KEYED_OBJECT):
        cache.put((i, b"o" * MAX_KEYED_OBJECT), _kept(policies, 200.0))
        assert cache.kept_bytes <= MAX_KEPT_BYTES
    assert len(cache) < MAX_KEPT_BYTES // MAX_KEYED_OBJECT
    cache.clear()
    assert cache.kept_bytes == 0


# ------------------------------------------------------------------ in the app


class _App:
    """``imggate serve``'s app in process, the image's tag and an allow for its digest in
    the local cache (no registry: a review that needs one cannot be answered)."""

    def __init__(self, tmp: Path, times: CacheTimes | None = None, *,
                 pull_secrets: bool = False) -> None:
        self.app = AdmissionApp(ServeOptions(rules=_rules(tmp), deadline=1.0,
                                             cache_times=times or CacheTimes(),
                                             pull_secrets=pull_secrets))
        self.log = io.StringIO()
        self.app.review_log = ReviewLog(self.log)

    async def start(self) -> Callable[[], Awaitable[None]]:
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        task = asyncio.ensure_future(self.app.app({"type": "lifespan"}, inbox.get,
                                                  outbox.put))
        await inbox.put({"type": "lifespan.startup"})
        assert (await outbox.get())["type"] == "lifespan.startup.complete"
        assert self.app.reviewer is not None
        assert self.app.store.current is not None
        ref = parse_reference(IMAGE)
        await self.app.cache.put_tag(tag_key(ref.name, "1"), DIGEST)
        await self.app.cache.put_verdict(
            verdict_key(DIGEST, ref.name, self.app.store.current.hash, "prod",
                        self.app.reviewer.judge.trust), CachedVerdict("allow", DIGEST))

        async def stop() -> None:
            await inbox.put({"type": "lifespan.shutdown"})
            await outbox.get()
            await task

        return stop

    async def ask(self, doc: dict[str, Any], *, mutate: bool = False) -> dict[str, Any]:
        status, body = await self.app.answer(orjson.dumps(doc), mutate=mutate, start=0.0)
        assert status == 200
        answer: dict[str, Any] = orjson.loads(body)
        assert answer["response"]["uid"] == doc["request"]["uid"]
        return answer

    def hits(self) -> int:
        return self.app.metrics.cache.value("answer", "local", "hit")

    def lines(self) -> list[dict[str, Any]]:
        self.app.review_log.flush()
        return [json.loads(line) for line in self.log.getvalue().splitlines()]


def _run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def test_the_same_request_with_another_uid_gets_the_same_answer(tmp_path: Path) -> None:
    app = _App(tmp_path)

    async def run() -> None:
        stop = await app.start()
        first = await app.ask(review(pod([IMAGE]), namespace="prod-shop", uid="u-1"))
        assert first["response"]["allowed"] is True
        assert app.hits() == 0
        again = await app.ask(review(pod([IMAGE]), namespace="prod-shop", uid="u-2"))
        assert app.hits() == 1
        again["response"]["uid"] = "u-1"
        assert again == first
        # Another namespace, endpoint or image is another request.
        await app.ask(review(pod([IMAGE]), namespace="prod-other", uid="u-3"))
        mutated = await app.ask(review(pod([IMAGE]), namespace="prod-shop", uid="u-4"),
                                mutate=True)
        assert "patch" in mutated["response"]
        denied = await app.ask(review(pod([f"{HOST}/shop/web:latest"]), namespace="prod-shop",
                                      uid="u-5"))
        assert denied["response"]["allowed"] is False
        assert app.hits() == 1
        await stop()

    _run(run)
    lines = app.lines()
    assert [line["uid"] for line in lines] == ["u-1", "u-2", "u-3", "u-4", "u-5"]
    first, again = lines[0], lines[1]
    assert {k: v for k, v in again.items() if k not in ("uid", "ms")} == \
        {k: v for k, v in first.items() if k not in ("uid", "ms")}
    assert again["cache"] == "local" and again["decision"] == "allow"
    assert app.app.metrics.reviews.value("validate", "allow", "Pod", "false") == 3
    assert app.app.metrics.latency.count("validate") == 4


def test_no_allow_outlives_the_verdict_it_was_made_from(tmp_path: Path) -> None:
    app = _App(tmp_path, CacheTimes(allow=0.3))

    async def run() -> None:
        stop = await app.start()
        for uid in ("u-1", "u-2"):
            assert (await app.ask(review(pod([IMAGE]), namespace="prod-shop",
                                         uid=uid)))["response"]["allowed"] is True
        assert app.hits() == 1
        await asyncio.sleep(0.4)
        # The verdict expired: the registry must be asked, and it cannot be reached.
        late = await app.ask(review(pod([IMAGE]), namespace="prod-shop", uid="u-3"))
        assert late["response"]["allowed"] is False
        assert app.hits() == 1
        await stop()

    _run(run)


def test_a_rules_reload_forgets_every_answer(tmp_path: Path) -> None:
    app = _App(tmp_path)

    async def run() -> None:
        stop = await app.start()
        await app.ask(review(pod([IMAGE]), namespace="prod-shop", uid="u-1"))
        assert len(app.app.answers) == 1
        assert app.app.reload_rules()
        assert len(app.app.answers) == 0
        await stop()

    _run(run)


def test_answers_that_needed_io_are_not_kept(tmp_path: Path) -> None:
    app = _App(tmp_path)

    async def run() -> None:
        stop = await app.start()
        # Not in the cache: the registry is asked (and cannot be reached): a denial, not kept.
        other = f"{HOST}/shop/other:1"
        for uid in ("u-1", "u-2"):
            denied = await app.ask(review(pod([other]), namespace="prod-shop", uid=uid))
            assert denied["response"]["allowed"] is False
        assert app.hits() == 0
        assert len(app.app.answers) == 0
        await stop()

    _run(run)


@pytest.mark.parametrize("api", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
def test_a_remembered_answer_keeps_the_requests_api_version(tmp_path: Path, api: str) -> None:
    app = _App(tmp_path)

    async def run() -> None:
        stop = await app.start()
        for uid in ("u-1", "u-2"):
            answer = await app.ask(review(pod([IMAGE]), namespace="prod-shop", uid=uid,
                                          api_version=api))
            assert answer["apiVersion"] == api
        assert app.hits() == 1
        await stop()

    _run(run)



# ------------------------------------------------------------------ with pull secrets


class _Secrets(PullSecretReader):
    """A stand-in for the Kubernetes API's pull secrets (no apiserver runs in process):
    each read answers ``regcred`` holding ``password``, or fails as a 403 would."""

    def __init__(self) -> None:
        super().__init__()
        self.password = "pw-one"
        self.refuse = False
        self.reads = 0

    async def read_pod(self, namespace: str, pod_spec: Any) -> PodPullSecrets:
        self.reads += 1
        if self.refuse:
            raise PullSecretError(f"secret {namespace}/regcred: the API server refused (403)")
        found = {HOST: Credentials("robot", self.password, False, "secret regcred")}
        return PodPullSecrets(namespace, found, ("regcred",))


async def _with_secrets(app: _App) -> tuple[Callable[[], Awaitable[None]], _Secrets]:
    stop = await app.start()
    assert app.app.reviewer is not None and app.app.reviewer.access is not None
    secrets = _Secrets()
    app.app.reviewer.access.reader = secrets
    return stop, secrets


def test_with_pull_secrets_an_answer_is_remembered_once_they_are_read(tmp_path: Path) -> None:
    app = _App(tmp_path, pull_secrets=True)

    async def run() -> None:
        stop, secrets = await _with_secrets(app)
        for uid in ("u-1", "u-2"):
            answer = await app.ask(review(pod([IMAGE]), namespace="prod-shop", uid=uid))
            assert answer["response"]["allowed"] is True
        assert app.hits() == 1
        assert secrets.reads == 2  # read for the remembered answer too
        await stop()

    _run(run)
    assert [line.get("pull_secrets") for line in app.lines()] == [["regcred"], ["regcred"]]


def test_secrets_that_cannot_be_read_deny_though_an_answer_is_remembered(
        tmp_path: Path) -> None:
    app = _App(tmp_path, pull_secrets=True)

    async def run() -> None:
        stop, secrets = await _with_secrets(app)
        await app.ask(review(pod([IMAGE]), namespace="prod-shop", uid="u-1"))
        secrets.refuse = True
        denied = await app.ask(review(pod([IMAGE]), namespace="prod-shop", uid="u-2"))
        assert denied["response"]["allowed"] is False
        assert denied["response"]["status"]["message"] == (
            "imggate: cannot read the pull secrets of Pod prod-shop/app: secret "
            "prod-shop/regcred: the API server refused (403)")
        assert app.hits() == 0
        await stop()

    _run(run)


def test_an_answer_made_with_other_credentials_is_not_given(tmp_path: Path) -> None:
    app = _App(tmp_path, pull_secrets=True)

    async def run() -> None:
        stop, secrets = await _with_secrets(app)
        await app.ask(review(pod([IMAGE]), namespace="prod-shop", uid="u-1"))
        secrets.password = "pw-two"  # the secret was rotated: another credential set
        await app.ask(review(pod([IMAGE]), namespace="prod-shop", uid="u-2"))
        assert app.hits() == 0
        await app.ask(review(pod([IMAGE]), namespace="prod-shop", uid="u-3"))
        assert app.hits() == 1
        await stop()

    _run(run)
