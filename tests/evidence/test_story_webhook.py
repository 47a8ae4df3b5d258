"""The deploy half of the evidence story through the webhook (``imggate serve`` over TLS).

CI attests with ``imggate check --attest`` (as in test_story.py), then real
AdmissionReviews go to a running webhook whose rules require scanner evidence
and trust the CI's key: it admits on the attestation alone, denies once the
exception has expired (a webhook started with today's rules), and denies as
NOT SCANNED a tampered attestation, one signed by another key, or none.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from admission.serve_harness import ServeProcess, pod, review, start_serve
from evidence.test_story import CRITICAL_CVE, Story, _today
from imggate.models import Digest
from registry_harness import Registry

pytestmark = [pytest.mark.registry, pytest.mark.usefixtures("isolated_auth_env")]


def _webhook_rules(story: Story, expires: str, name: str) -> Path:
    """The story's rules, with the shop namespace mapped to prod (the webhook picks by
    namespace)."""
    path = story.rules(_today() + timedelta(days=30), name)
    text = path.read_text().replace("expires: " + (_today() + timedelta(days=30)).isoformat(),
                                    "expires: " + expires)
    path.write_text(text + "namespaces:\n  map:\n    - match: shop\n      env: prod\n")
    return path


@pytest.fixture(scope="module")
def scene(anon_registry: Registry, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Story, ServeProcess, ServeProcess]]:
    story = Story(anon_registry, tmp_path_factory.mktemp("webhook-story"))
    valid = _webhook_rules(story, (_today() + timedelta(days=30)).isoformat(), "valid.yaml")
    expired = _webhook_rules(story, (_today() - timedelta(days=1)).isoformat(), "expired.yaml")
    work = story.tmp
    args = ["--insecure-ignore-tlog", "--deadline", "9.5"]
    today = start_serve(work / "valid", ["--rules", str(valid), *args])
    try:
        later = start_serve(work / "expired", ["--rules", str(expired), *args])
    except BaseException:
        today.stop()
        raise
    try:
        yield story, today, later
    finally:
        today.stop()
        later.stop()


def _admit(server: ServeProcess, image: str) -> dict[str, Any]:
    with server.client() as c:
        r = c.post("/validate", json=review(pod([image], namespace="shop"), namespace="shop"))
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()["response"]
    return answer


def _ci(story: Story, name: str, *, key: Path | None = None, password: str | None = None
        ) -> tuple[str, Digest]:
    repository, digest = story.image(name)
    rules = story.rules(_today() + timedelta(days=30), f"ci-{name}.yaml")
    kw: dict[str, Any] = {"key": key} if key else {}
    if password is not None:
        kw["password"] = password
    result = story.ci_check(repository, digest, rules, **kw)
    assert result.code == 0, result.output
    return repository, digest


def test_the_webhook_admits_on_the_attestation_and_denies_once_the_exception_expired(
        scene: tuple[Story, ServeProcess, ServeProcess]) -> None:
    story, today, later = scene
    repository, digest = _ci(story, "hooked")
    image = story.ref(repository, digest)
    admitted = _admit(today, image)
    assert admitted["allowed"] is True, admitted
    denied = _admit(later, image)
    assert denied["allowed"] is False, denied
    assert f"counted again: {CRITICAL_CVE} (exception expired on" in denied["status"]["message"]


def test_the_webhook_denies_tampered_foreign_and_missing_evidence_as_not_scanned(
        scene: tuple[Story, ServeProcess, ServeProcess]) -> None:
    story, today, _ = scene
    # Tampered: the findings dropped from the signed statement, the signature kept.
    repository, digest = _ci(story, "hooked-tampered")
    story.forge_attestation(repository, digest)
    # Signed by a key the rules do not trust.
    foreign = _ci(story, "hooked-foreign", key=story.stranger_key, password="")
    # Never attested.
    bare = story.image("hooked-bare")
    for repo, dg in ((repository, digest), foreign, bare):
        answer = _admit(today, story.ref(repo, dg))
        assert answer["allowed"] is False, answer
        assert "NOT SCANNED" in json.dumps(answer), answer


def test_a_mounted_docker_desktop_pull_secret_starts_the_webhook(tmp_path: Path) -> None:
    """The real kyverno Secret's .dockerconfigjson names credsStore "desktop": the kubelet
    ignores it (only auths count), so must the webhook, instead of refusing to start."""
    import yaml

    from fixture_paths import FIXTURES

    secret = list(yaml.safe_load_all((FIXTURES / "k8s" / "kyverno-dockerconfigjson-secret.yaml")
                                     .read_text()))[1]
    mounted = tmp_path / ".dockerconfigjson"
    mounted.write_bytes(base64.b64decode(secret["data"][".dockerconfigjson"]))
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\nenvironments:\n  dev: {}\n")
    server = start_serve(tmp_path / "serve", ["--rules", str(rules),
                                              "--registry-auth-file", str(mounted)])
    try:
        with server.client() as c:
            assert c.get("/healthz").status_code == 200
    finally:
        server.stop()
