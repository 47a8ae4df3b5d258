"""``serve --trusted-root`` is part of every verdict's cache key: a verdict made under one
set of roots is never served under another, even through a Redis both replicas share.

Two private Sigstore instances made for the test (CA, CT log, Rekor key, each written as a
real ``trusted_root.json``); an image in the real Distribution registry keyless-signed by
the first in cosign's format. Three ``imggate serve`` processes over TLS share one real
``redis-server`` and the same rules: the first trusts instance A and admits the image (its
verdict goes to Redis); the second trusts instance B only and must decide afresh and deny;
the third trusts A again and is answered from Redis.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from admission.serve_harness import RedisServer, ServeProcess, review, start_serve
from registry_harness import Registry
from signatures.cosign_format_signer import make_image, push_repository
from signatures.inmemory import InMemoryRepository
from signatures.private_sigstore import PrivateSigstore, keyless_sign

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]

EMAIL = "dev@private.example"
ISSUER = "https://oidc.private.example"


def _ask_once(workdir: Path, args: list[str], ref: str
              ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start a replica with ``args``, ask it about ``ref`` once, stop it."""
    server = start_serve(workdir, args)
    try:
        return _ask(server, ref)
    finally:
        server.stop()


def _ask(server: ServeProcess, ref: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The admission response, and the server's review-log line for it."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"},
           "spec": {"containers": [{"name": "app", "image": ref}]}}
    doc = review(pod, namespace="shop")
    with server.client() as c:
        r = c.post("/validate", json=doc)
    assert r.status_code == 200, r.text
    line = next(x for x in server.reviews() if x.get("uid") == doc["request"]["uid"])
    response: dict[str, Any] = r.json()["response"]
    return response, line


def test_other_trust_roots_never_reuse_a_cached_verdict(
        tmp_path: Path, anon_registry: Registry, redis_server: RedisServer) -> None:
    a, b = PrivateSigstore(), PrivateSigstore()
    root_a, root_b = a.write(tmp_path / "a.json"), b.write(tmp_path / "b.json")
    name = f"trust/app-{secrets.token_hex(4)}"
    repo = InMemoryRepository(f"{anon_registry.host}/{name}")
    digest = make_image(repo, tag="v1")
    keyless_sign(a, repo, digest)
    push_repository(repo, anon_registry.url, name)
    ref = f"{anon_registry.host}/{name}@{digest}"

    rules = tmp_path / "rules.yaml"
    rules.write_text(json.dumps({"version": 1, "environments": {"prod": {
        "signatures": {"identities": [{"identity": EMAIL, "issuer": ISSUER}]}}}}))
    keys = tmp_path / "cache-keys"
    keys.write_text(secrets.token_hex(32) + "\n")
    common = ["--rules", str(rules), "--env", "prod", "--cache", redis_server.url,
              "--cache-key-file", str(keys)]

    response, line = _ask_once(tmp_path / "a", [*common, "--trusted-root", str(root_a)], ref)
    assert response["allowed"] is True, response
    assert line["cache"] == "miss", line

    response, line = _ask_once(tmp_path / "b", [*common, "--trusted-root", str(root_b)], ref)
    # Decided afresh under B's roots (the allow made under A's sits in Redis): denied.
    assert line["cache"] == "miss", line
    assert response["allowed"] is False, response
    assert f"{ref}: signatures: " in response["status"]["message"], response

    response, line = _ask_once(tmp_path / "a2", [*common, "--trusted-root", str(root_a)], ref)
    # The same roots as the first replica: its verdict is shared through Redis.
    assert response["allowed"] is True, response
    assert line["cache"] == "redis", line
