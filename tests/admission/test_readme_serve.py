"""The README's ``imggate serve`` line, as written, answers every fixture AdmissionReview.

Only what a laptop cannot have is replaced: the mounted files (a certificate, the repository's
``rules/``, cache keys, an empty registry credentials file) and Redis's address and password (a
real ``redis-server`` on loopback that requires the password). No ``--env``: the shipped ``namespaces:`` map alone gives every namespace its
environment, and each answer says which entry did.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from admission.serve_harness import ServeProcess, make_tls, start_redis, start_serve
from fixture_paths import FIXTURES
from registry_harness import MissingComponentError, missing_component

ROOT = Path(__file__).resolve().parents[2]
REVIEWS = sorted((FIXTURES / "admission").glob("*.json"))
#: The fixture whose request is not a valid review (every field holds a placeholder).
PLACEHOLDERS = "k8s-api-admission.k8s.io.v1.AdmissionReview.json"


def readme_serve_args() -> list[str]:
    """The flags of the README's ``imggate serve`` line (continuation lines joined)."""
    text = (ROOT / "README.md").read_text()
    found = re.search(r"^imggate serve (.*?[^\\])$", text.replace("\\\n", " "), re.MULTILINE)
    assert found, "README.md has no imggate serve line"
    return shlex.split(found[1])


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    work = tmp_path_factory.mktemp("readme-serve")
    args = readme_serve_args()
    values = dict(zip(args[::2], args[1::2], strict=True))
    # The README's flags, exactly these (a flag added there must be thought about here).
    assert list(values) == ["--tls-cert", "--tls-key", "--rules", "--cache",
                            "--cache-key-file", "--registry-auth-file"]
    assert values["--rules"] == "/rules/"
    cache = re.fullmatch(r"redis://:\$REDIS_PASSWORD@imggate-redis:6379/0", values["--cache"])
    assert cache, values["--cache"]
    password = secrets.token_hex(16)
    try:
        redis = start_redis(work / "redis", password=password)
    except MissingComponentError as e:
        missing_component(str(e))
    keys = work / "cache-keys"
    keys.write_text(secrets.token_hex(32) + "\n")
    auth = work / "dockerconfig.json"
    auth.write_text('{"auths": {}}')
    # start_serve passes the certificate and a loopback address and port itself.
    server = start_serve(work, [
        "--rules", str(ROOT / "rules") + "/",
        "--cache", f"redis://:{password}@127.0.0.1:{redis.port}/0",
        "--cache-key-file", str(keys), "--registry-auth-file", str(auth)],
        tls=make_tls(work / "tls"))
    yield server
    server.stop()
    redis.stop()


def _answer(server: ServeProcess, review: dict[str, Any]) -> dict[str, Any]:
    with server.client() as client:
        r = client.post("/validate", json=review)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["response"]["uid"] == review["request"]["uid"]
    response: dict[str, Any] = body["response"]
    return response


@pytest.mark.parametrize("path", REVIEWS, ids=[p.name for p in REVIEWS])
def test_every_fixture_review_is_decided_under_the_shipped_namespace_map(
        readme_server: ServeProcess, path: Path) -> None:
    review = json.loads(path.read_text())
    r = _answer(readme_server, review)
    assert isinstance(r["allowed"], bool)
    message = r.get("status", {}).get("message", "")
    assert "maps to no environment" not in message
    if path.name == PLACEHOLDERS:
        # Refused before any namespace is looked at: the answer says what is wrong.
        assert r["allowed"] is False and "request.operation 'operationValue'" in message
        return
    # None of these namespaces is exempt or named for prod or staging: the catch-all.
    assert r["auditAnnotations"]["environment"] == "dev"
    assert r["auditAnnotations"]["environment_by"] == "namespaces.map[6] '*'"
    if not r["allowed"]:
        assert "(environment dev by namespaces.map[6] '*')" in message


@pytest.mark.parametrize(("namespace", "env", "by"), [
    ("shop-prod", "prod", "namespaces.map[2] '*-prod'"),
    ("prod-eu", "prod", "namespaces.map[3] 'prod-*'"),
    ("shop-staging", "staging", "namespaces.map[5] '*-staging'"),
])
def test_a_fixture_review_moved_to_another_namespace_gets_that_environment(
        readme_server: ServeProcess, namespace: str, env: str, by: str) -> None:
    review = json.loads((FIXTURES / "admission" / "whorf-deployment-request.json").read_text())
    review["request"]["namespace"] = namespace
    r = _answer(readme_server, review)
    assert (r["auditAnnotations"]["environment"], r["auditAnnotations"]["environment_by"]) \
        == (env, by)
    if env == "prod":
        # nginx (no tag: latest) is refused by prod's reference rules, before any registry.
        assert r["allowed"] is False
        assert f"(environment prod by {by}): nginx: tags.denied: " in r["status"]["message"]


def test_system_namespaces_are_exempt(readme_server: ServeProcess) -> None:
    review = json.loads((FIXTURES / "admission" / "connaisseur-02_pod.json").read_text())
    review["request"]["namespace"] = "kube-system"
    review["request"]["uid"] = "exempt-" + review["request"]["uid"]
    r = _answer(readme_server, review)
    assert r["allowed"] is True
    assert r["auditAnnotations"]["decision"] == "exempt"
    assert "namespaces.exempt 'kube-system'" in r["auditAnnotations"]["reason"]
    line = next(doc for doc in readme_server.reviews()
                if doc["uid"] == review["request"]["uid"])
    assert line["decision"] == "allow"
