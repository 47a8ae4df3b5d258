"""The real-component harness works before anything is tested with it.

If these fail, integration-test failures say nothing about imggate.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from harness_images import APP_SPEC, ARM_SPEC, LayoutBuilder, PushedImage, Skopeo
from harness_token import libtrust_key_id
from registry_harness import (
    MissingComponentError,
    Registry,
    http_get,
    may_skip_missing,
    missing_component,
    require_binaries,
    tamper_bytes,
    tampered,
)

pytestmark = pytest.mark.registry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = {"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _token(registry: Registry, scope: str, headers: dict[str, str] | None = None
           ) -> tuple[int, str | None]:
    assert registry.token_server is not None
    query = urllib.parse.urlencode({"service": registry.token_server.service, "scope": scope})
    status, _, body = http_get(f"{registry.token_server.realm}?{query}", headers)
    return status, json.loads(body).get("token") if status == 200 else None


def test_missing_binary_is_an_error() -> None:
    with pytest.raises(MissingComponentError, match="no-such-imggate-tool"):
        require_binaries("no-such-imggate-tool")


def test_ci_never_allows_skipping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGGATE_SKIP_MISSING", "1")
    monkeypatch.setenv("CI", "true")
    assert may_skip_missing() is False
    monkeypatch.delenv("CI")
    assert may_skip_missing() is True
    monkeypatch.delenv("IMGGATE_SKIP_MISSING")
    assert may_skip_missing() is False


def test_a_missing_component_fails_in_ci_even_when_skipping_is_asked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGGATE_SKIP_MISSING", "1")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="redis-server is not installed"):
        missing_component("redis-server is not installed")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="not in CI"):
        missing_component("redis-server is not installed")


def test_libtrust_kid_shape() -> None:
    kid = libtrust_key_id(b"any public key der")
    assert re.fullmatch(r"([A-Z2-7]{4}:){11}[A-Z2-7]{4}", kid)


def test_tamper_bytes_keeps_length_and_json_validity() -> None:
    doc = json.dumps({"config": {"digest": "sha256:" + "a" * 64}}).encode()
    bad = tamper_bytes(doc)
    assert bad != doc
    assert len(bad) == len(doc)
    json.loads(bad)
    binary = bytes(range(40))
    assert tamper_bytes(binary) != binary
    assert len(tamper_bytes(binary)) == 40


def test_anonymous_registry_answers(anon_registry: Registry) -> None:
    status, headers, _ = http_get(f"{anon_registry.url}/v2/")
    assert status == 200
    assert headers["Docker-Distribution-Api-Version"] == "registry/2.0"


def test_basic_registry_challenges_and_checks_password(basic_registry: Registry) -> None:
    assert basic_registry.username
    assert basic_registry.password
    status, headers, _ = http_get(f"{basic_registry.url}/v2/")
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic ")
    assert http_get(f"{basic_registry.url}/v2/",
                    _basic(basic_registry.username, basic_registry.password))[0] == 200
    assert http_get(f"{basic_registry.url}/v2/", _basic(basic_registry.username, "wrong"))[0] == 401


def test_token_registry_challenge_points_at_token_server(token_registry: Registry) -> None:
    assert token_registry.token_server is not None
    status, headers, _ = http_get(f"{token_registry.url}/v2/")
    assert status == 401
    challenge = headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'realm="{token_registry.token_server.realm}"' in challenge
    assert f'service="{token_registry.token_server.service}"' in challenge


def test_registry_accepts_token_server_jwt(token_registry: Registry, token_image: PushedImage
                                          ) -> None:
    """Our JWTs (ES256, libtrust kid) are what Distribution verifies: pull works with one."""
    assert token_registry.username
    assert token_registry.password
    scope = f"repository:{token_image.repository}:pull"
    url = f"{token_registry.url}/v2/{token_image.repository}/manifests/{token_image.tag}"
    status, token = _token(token_registry, scope,
                           _basic(token_registry.username, token_registry.password))
    assert status == 200
    assert token
    status, headers, body = http_get(url, {**ACCEPT, "Authorization": f"Bearer {token}"})
    assert status == 200
    assert _sha(body) == token_image.digest == headers["Docker-Content-Digest"]

    # Anonymous: a token without access, which the registry refuses.
    status, anon_token = _token(token_registry, scope)
    assert status == 200
    assert anon_token
    assert http_get(url, {**ACCEPT, "Authorization": f"Bearer {anon_token}"})[0] == 401
    # Wrong password: the token server refuses.
    assert _token(token_registry, scope, _basic(token_registry.username, "wrong"))[0] == 401
    # A token for another repository does not open this one.
    _, other = _token(token_registry, "repository:group/other:pull",
                      _basic(token_registry.username, token_registry.password))
    assert http_get(url, {**ACCEPT, "Authorization": f"Bearer {other}"})[0] == 401


@pytest.mark.parametrize("fixture", ["anon_image", "basic_image", "token_image"])
def test_pushed_digest_is_what_skopeo_inspects(request: pytest.FixtureRequest, skopeo: Skopeo,
                                               fixture: str) -> None:
    image: PushedImage = request.getfixturevalue(fixture)
    assert skopeo.digest(image.ref, image.registry) == image.digest
    raw = skopeo.raw(image.ref, image.registry)
    assert _sha(raw) == image.digest
    manifest = json.loads(raw)
    # umoci omits the optional mediaType field: clients must go by Content-Type.
    assert "mediaType" not in manifest
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"


def test_config_blob_carries_the_spec(skopeo: Skopeo, anon_image: PushedImage) -> None:
    config = skopeo.config(anon_image.ref, anon_image.registry)
    assert config["architecture"] == "amd64"
    assert config["os"] == "linux"
    assert config["created"] == "2024-01-02T03:04:05Z"
    inner = config["config"]
    assert isinstance(inner, dict)
    assert inner["Labels"] == dict(APP_SPEC.labels)
    assert inner["User"] == APP_SPEC.user
    rootfs = config["rootfs"]
    assert isinstance(rootfs, dict)
    assert len(rootfs["diff_ids"]) == 1


def test_multiarch_index_lists_both_platforms(skopeo: Skopeo, image_layout: LayoutBuilder,
                                              anon_multiarch: PushedImage) -> None:
    raw = skopeo.raw(anon_multiarch.ref, anon_multiarch.registry)
    assert _sha(raw) == anon_multiarch.digest
    assert skopeo.digest(anon_multiarch.ref, anon_multiarch.registry) == anon_multiarch.digest
    index = json.loads(raw)
    assert index["mediaType"] == OCI_INDEX
    children = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
                for m in index["manifests"]}
    assert children == {"linux/amd64": image_layout.digest(APP_SPEC.tag),
                        "linux/arm64": image_layout.digest(ARM_SPEC.tag)}
    arm_ref = anon_multiarch.registry.ref(anon_multiarch.repository,
                                          digest=children["linux/arm64"])
    assert skopeo.config(arm_ref, anon_multiarch.registry)["architecture"] == "arm64"


def test_tampered_blob_is_served_then_restored(skopeo: Skopeo, fresh_image: PushedImage) -> None:
    reg = fresh_image.registry
    manifest = json.loads(skopeo.raw(fresh_image.ref, reg))
    config_digest = manifest["config"]["digest"]
    url = f"{reg.url}/v2/{fresh_image.repository}/blobs/{config_digest}"
    with tampered(reg, config_digest):
        status, _, body = http_get(url)
        assert status == 200  # the registry does not notice: only a client can
        assert _sha(body) != config_digest
    assert _sha(http_get(url)[2]) == config_digest


def test_tampered_manifest_keeps_its_digest_header(fresh_image: PushedImage) -> None:
    reg = fresh_image.registry
    url = f"{reg.url}/v2/{fresh_image.repository}/manifests/{fresh_image.tag}"
    with tampered(reg, fresh_image.digest):
        status, headers, body = http_get(url, ACCEPT)
        assert status == 200
        assert headers["Docker-Content-Digest"] == fresh_image.digest
        assert _sha(body) != fresh_image.digest
        json.loads(body)  # still a parseable manifest: only hashing catches it
    assert _sha(http_get(url, ACCEPT)[2]) == fresh_image.digest


def _inner_pytest(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run one registry test in a child pytest whose PATH has none of the binaries."""
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "IMGGATE_SKIP_MISSING", "PYTEST_ADDOPTS")}
    env["PATH"] = str(Path(sys.executable).parent)
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rsE",
         "tests/test_harness_selfcheck.py::test_anonymous_registry_answers"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=120)


def test_missing_binaries_fail_the_run_in_ci_even_when_asked_to_skip() -> None:
    proc = _inner_pytest({"CI": "true", "IMGGATE_SKIP_MISSING": "1"})
    assert proc.returncode != 0, proc.stdout
    assert "1 error" in proc.stdout
    assert "skipped" not in proc.stdout
    assert "docker-registry" in proc.stdout


def test_local_run_may_skip_only_when_asked() -> None:
    proc = _inner_pytest({"IMGGATE_SKIP_MISSING": "1"})
    assert proc.returncode == 0, proc.stdout
    assert "1 skipped" in proc.stdout
