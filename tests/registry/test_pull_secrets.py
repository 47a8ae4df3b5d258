"""Pull secrets as the kubelet uses them, read from a STAND-IN API server over TLS.

The stand-in (tests/registry/k8s_apiserver_standin.py; no kube-apiserver can
run here) serves real Secret and ServiceAccount objects from tests/fixtures/k8s
with a bearer token, as in-cluster configuration expects. The credentials
found are then used against a real Basic-auth Distribution registry.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixture_paths import FIXTURES
from harness_images import PushedImage
from imggate.errors import AuthError
from imggate.models import ImageRef
from imggate.registry.client import RegistryClient
from imggate.registry.credentials import Credentials
from imggate.registry.options import RegistryOptions
from imggate.registry.pull_secrets import (
    PullSecretCredentials,
    PullSecretError,
    PullSecretReader,
    credentials_from_secret,
    load_auth_file,
)
from imggate.registry.resolve import open_repository, resolve_image
from registry.k8s_apiserver_standin import KubeApiStandIn
from registry_harness import Registry

pytestmark = pytest.mark.registry

K8S = FIXTURES / "k8s"


def _yaml(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


KYVERNO_SECRET = _yaml("kyverno-dockerconfigjson-secret.yaml")[1]
SERVICE_ACCOUNT = _yaml("k8s-api-core.v1.ServiceAccount.yaml")[0]
POD = _yaml("kyverno-pod-imagepullsecrets.yaml")[0]


def _secret_like_kyverno(name: str, namespace: str, config: dict[str, Any],
                         kind: str = "kubernetes.io/dockerconfigjson") -> dict[str, Any]:
    """The real kyverno Secret, renamed and holding ``config`` (what kubectl would store)."""
    secret = copy.deepcopy(KYVERNO_SECRET)
    secret["metadata"].update(name=name, namespace=namespace)
    secret["type"] = kind
    secret["data"] = {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()}
    return secret


def _auths(host: str, user: str, password: str) -> dict[str, Any]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"auths": {host: {"auth": token}}}


@pytest.fixture
def standin(tmp_path: Path, basic_registry: Registry, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[KubeApiStandIn]:
    assert basic_registry.username and basic_registry.password
    good = _auths(basic_registry.host, basic_registry.username, basic_registry.password)
    objects = [
        KYVERNO_SECRET,
        SERVICE_ACCOUNT,
        # The pod fixture's pull secret, holding the test registry's credentials.
        _secret_like_kyverno("my-registry-secret", "default", good),
        # The ServiceAccount fixture's pull secret (namespaceValue/nameValue).
        _secret_like_kyverno("nameValue", "namespaceValue", good),
        _secret_like_kyverno("opaque", "default", good, kind="Opaque"),
        _secret_like_kyverno("locked", "default", good),
    ]
    server = KubeApiStandIn(tmp_path / "apiserver", objects)
    server.forbidden.add(("secrets", "default", "locked"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
    try:
        yield server
    finally:
        server.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _reader(standin: KubeApiStandIn, tmp_path: Path, clock: Clock | None = None
            ) -> PullSecretReader:
    return PullSecretReader(service_account_dir=standin.service_account_dir(tmp_path / "sa"),
                            clock=clock or Clock())


def _resolve(image: PushedImage, credentials: PullSecretCredentials) -> str:
    async def go() -> str:
        ref = ImageRef(image.registry.host, image.repository, image.tag)
        async with RegistryClient(RegistryOptions(credentials=credentials)) as client:
            resolved = await resolve_image(open_repository(ref, client), ref, None)
        return str(resolved.digest)

    return asyncio.run(go())


def test_the_pods_image_pull_secret_opens_the_registry(standin: KubeApiStandIn, tmp_path: Path,
                                                       basic_image: PushedImage) -> None:
    reader = _reader(standin, tmp_path)
    found = asyncio.run(reader.for_pod("default", POD["spec"]))
    assert list(found) == [basic_image.registry.host]
    assert _resolve(basic_image, PullSecretCredentials(found)) == basic_image.digest
    with pytest.raises(AuthError):
        _resolve(basic_image, PullSecretCredentials({}))


def test_the_service_accounts_pull_secrets_count_after_the_pods(standin: KubeApiStandIn,
                                                                 tmp_path: Path,
                                                                 basic_registry: Registry) -> None:
    reader = _reader(standin, tmp_path)
    spec = {"serviceAccountName": "nameValue", "containers": [{"image": "x"}]}
    found = asyncio.run(reader.for_pod("namespaceValue", spec))
    assert basic_registry.host in found
    assert "/api/v1/namespaces/namespaceValue/serviceaccounts/nameValue" in standin.requests


def test_a_real_docker_desktop_secret_has_no_usable_credentials(standin: KubeApiStandIn,
                                                                tmp_path: Path) -> None:
    reader = _reader(standin, tmp_path)
    spec = {"imagePullSecrets": [{"name": "harbor-external"}]}
    assert asyncio.run(reader.for_pod("platform", spec)) == {}


def test_a_secret_that_is_not_dockerconfigjson_is_a_clear_error(standin: KubeApiStandIn,
                                                                tmp_path: Path) -> None:
    reader = _reader(standin, tmp_path)
    with pytest.raises(PullSecretError, match=r"not kubernetes\.io/dockerconfigjson") as e:
        asyncio.run(reader.for_pod("default", {"imagePullSecrets": [{"name": "opaque"}]}))
    assert e.value.exit_code == 3


def test_an_api_server_403_is_a_clear_error_naming_rbac(standin: KubeApiStandIn,
                                                        tmp_path: Path) -> None:
    reader = _reader(standin, tmp_path)
    with pytest.raises(PullSecretError, match="HTTP 403") as e:
        asyncio.run(reader.for_pod("default", {"imagePullSecrets": [{"name": "locked"}]}))
    assert e.value.hint is not None and "get on secrets" in e.value.hint
    assert standin.token not in e.value.message


def test_a_wrong_token_is_refused(standin: KubeApiStandIn, tmp_path: Path) -> None:
    account = standin.service_account_dir(tmp_path / "sa")
    (account / "token").write_text("stolen")
    reader = PullSecretReader(service_account_dir=account)
    with pytest.raises(PullSecretError, match="HTTP 401"):
        asyncio.run(reader.for_pod("default", POD["spec"]))


def test_missing_secrets_are_skipped_and_reads_are_cached_for_the_ttl(standin: KubeApiStandIn,
                                                                      tmp_path: Path) -> None:
    clock = Clock()
    reader = _reader(standin, tmp_path, clock)
    spec = {**POD["spec"], "imagePullSecrets": [{"name": "gone"},
                                                {"name": "my-registry-secret"}]}
    first = asyncio.run(reader.for_pod("default", spec))
    count = len(standin.requests)
    assert asyncio.run(reader.for_pod("default", spec)) == first
    assert len(standin.requests) == count  # all from the cache
    clock.now += 61
    asyncio.run(reader.for_pod("default", spec))
    assert len(standin.requests) == 2 * count


def test_no_in_cluster_configuration_is_a_clear_error(tmp_path: Path) -> None:
    reader = PullSecretReader(service_account_dir=tmp_path / "nothing")
    with pytest.raises(PullSecretError, match="in-cluster"):
        asyncio.run(reader.for_pod("default", POD["spec"]))


def test_mounted_secret_file_reads_auths_only(tmp_path: Path) -> None:
    mounted = tmp_path / ".dockerconfigjson"
    mounted.write_bytes(base64.b64decode(KYVERNO_SECRET["data"][".dockerconfigjson"]))
    assert load_auth_file(mounted) == {}
    mounted.write_text(json.dumps(_auths("reg.example:5000", "u", "pw-9f3k")))
    found = load_auth_file(mounted)
    assert found["reg.example:5000"].username == "u" and "pw-9f3k" not in repr(found)


def test_legacy_dockercfg_secret_and_fallback_store() -> None:
    secret = {"type": "kubernetes.io/dockercfg",
              "data": {".dockercfg": base64.b64encode(json.dumps(
                  {"r.example": {"auth": base64.b64encode(b"a:b").decode()}}).encode()).decode()}}
    found = credentials_from_secret(secret, "secret ns/x")
    assert found["r.example"].secret == "b"
    store = PullSecretCredentials(found)
    assert store.get("r.example") == Credentials("a", "b", False, "secret ns/x: auths['r.example']")
    assert store.get("other.example") is None


class _NoApi:
    """An API client that must not be called: names are checked before any read."""

    async def get(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the API was asked")


@pytest.mark.parametrize("spec", [
    {"imagePullSecrets": [{"name": "../../configmaps/x"}]},
    {"imagePullSecrets": [{"name": "a/b"}]},
    {"serviceAccountName": "x?watch=1"},
])
def test_names_that_are_not_object_names_are_refused_before_any_read(
        spec: dict[str, Any]) -> None:
    reader = PullSecretReader(client=_NoApi())
    with pytest.raises(PullSecretError, match="is not a valid object name"):
        asyncio.run(reader.read_pod("default", spec))


def test_too_many_pull_secrets_are_refused(standin: KubeApiStandIn, tmp_path: Path) -> None:
    reader = _reader(standin, tmp_path)
    spec = {"imagePullSecrets": [{"name": f"s{i}"} for i in range(200)]}
    with pytest.raises(PullSecretError, match="more than 64"):
        asyncio.run(reader.read_pod("default", spec))
    assert not any("/secrets/" in p for p in standin.requests)


def test_read_pod_says_what_was_read_and_what_is_missing(standin: KubeApiStandIn,
                                                         tmp_path: Path,
                                                         basic_registry: Registry) -> None:
    reader = _reader(standin, tmp_path)
    spec = {**POD["spec"], "imagePullSecrets": [{"name": "gone"},
                                                {"name": "my-registry-secret"}]}
    found = asyncio.run(reader.read_pod("default", spec))
    assert found.read == ("my-registry-secret",) and found.missing == ("gone",)
    said = found.describe(basic_registry.host, found.found[basic_registry.host])
    assert said.startswith(f"sent credentials for {basic_registry.host} from secret "
                           "default/my-registry-secret;")
    assert "skipped as the kubelet skips them: default/gone" in said
    assert basic_registry.password and basic_registry.password not in said
    assert found.fingerprint and basic_registry.password not in found.fingerprint


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from imggate.registry import pull_secrets

    monkeypatch.setattr(pull_secrets, "MAX_CACHED", 3)
    clock = Clock()
    cache = pull_secrets._Cache(60.0, clock)
    cache.put(("secret", "ns", "old"), {"a": 1})
    clock.now += 61  # expired: dropped first
    for name in ("a", "b", "c", "d"):
        cache.put(("secret", "ns", name), {"n": name})
    assert list(cache.items) == [("secret", "ns", n) for n in ("b", "c", "d")]
    assert cache.get(("secret", "ns", "d")) == {"n": "d"}


def test_auto_reads_pull_secrets_only_in_a_pod_with_a_token(tmp_path: Path) -> None:
    from imggate.registry.pull_secrets import wanted

    in_pod = {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    assert wanted(None, in_pod, tmp_path) is False  # no token mounted
    (tmp_path / "token").write_text("t")
    assert wanted(None, in_pod, tmp_path) is True
    assert wanted(None, {}, tmp_path) is False
    assert wanted(False, in_pod, tmp_path) is False
    assert wanted(True, {}, tmp_path / "none") is True  # checked when serve starts: exit 2


def test_a_bad_secret_is_refused_every_time_from_one_read(standin: KubeApiStandIn,
                                                          tmp_path: Path) -> None:
    reader = _reader(standin, tmp_path)
    spec = {"imagePullSecrets": [{"name": "opaque"}]}
    for _ in range(3):
        with pytest.raises(PullSecretError, match=r"secret default/opaque is of type 'Opaque'"):
            asyncio.run(reader.read_pod("default", spec))
    assert standin.requests.count("/api/v1/namespaces/default/secrets/opaque") == 1
