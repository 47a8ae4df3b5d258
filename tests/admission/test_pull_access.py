"""The webhook reads each pod's images with the pod's own pull credentials, as the kubelet does.

Real components: a Distribution registry with htpasswd Basic auth, images pushed
there by skopeo, ``imggate serve`` over TLS in its own process, and a STAND-IN
for kube-apiserver (tests/registry/k8s_apiserver_standin.py; no apiserver binary
runs here) serving real Secret and ServiceAccount JSON (from tests/fixtures/k8s)
over TLS to the service account token that ``serve`` is given, as in a pod.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from admission.serve_harness import ServeProcess, make_tls, pod, review, start_serve
from fixture_paths import FIXTURES
from harness_images import LayoutBuilder, Skopeo
from imggate.admission.pull_access import AccessPool
from imggate.registry.client import RegistryClient
from imggate.registry.credentials import Credentials
from imggate.registry.pod_secrets import PodPullSecrets, fingerprint
from imggate.registry.pull_secrets import PullSecretReader
from registry.k8s_apiserver_standin import KubeApiStandIn
from registry_harness import Registry, run_imggate

pytestmark = pytest.mark.registry

K8S = FIXTURES / "k8s"
SECRET = next(d for d in yaml.safe_load_all(
    (K8S / "kyverno-dockerconfigjson-secret.yaml").read_text()) if d and d["kind"] == "Secret")
ACCOUNT = next(d for d in yaml.safe_load_all(
    (K8S / "k8s-api-core.v1.ServiceAccount.yaml").read_text()) if d)
#: One repository per case: a case never rides on another's cached tag or verdict.
REPOS = ("pull/pod", "pull/none", "pull/sa", "pull/gone", "pull/locked", "pull/opaque",
         "pull/a", "pull/b", "pull/mounted", "pull/fallback", "pull/deploy", "pull/flight",
         "pull/slow", "pull/debug", "pull/shared", "pull/refused", "pull/node",
         "pull/second")


def _config(host: str, user: str, password: str) -> dict[str, Any]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"auths": {host: {"auth": token}}}


def _secret(name: str, namespace: str, config: dict[str, Any],
            kind: str = "kubernetes.io/dockerconfigjson") -> dict[str, Any]:
    """The real kyverno Secret renamed, holding ``config`` (what kubectl would store)."""
    secret = copy.deepcopy(SECRET)
    secret["metadata"].update(name=name, namespace=namespace)
    secret["type"] = kind
    key = ".dockerconfigjson" if kind == "kubernetes.io/dockerconfigjson" else "config"
    secret["data"] = {key: base64.b64encode(json.dumps(config).encode()).decode()}
    return secret


def _account(name: str, namespace: str, secrets: list[str]) -> dict[str, Any]:
    account = copy.deepcopy(ACCOUNT)
    account["metadata"].update(name=name, namespace=namespace)
    account["imagePullSecrets"] = [{"name": s} for s in secrets]
    return account


@dataclass
class Cluster:
    registry: Registry
    apiserver: KubeApiStandIn
    server: ServeProcess

    def ask(self, images: list[str], *, secrets: list[str] = (),  # type: ignore[assignment]
            account: str | None = None, namespace: str = "team") -> dict[str, Any]:
        obj = pod(images, namespace=namespace)
        if secrets:
            obj["spec"]["imagePullSecrets"] = [{"name": s} for s in secrets]
        if account:
            obj["spec"]["serviceAccountName"] = account
        return ask(self.server, review(obj, namespace=namespace))


def ask(server: ServeProcess, doc: dict[str, Any]) -> dict[str, Any]:
    with server.client() as c:
        r = c.post("/validate", json=doc)
    assert r.status_code == 200, r.text
    response: dict[str, Any] = r.json()["response"]
    return response


@pytest.fixture(scope="module")
def pushed(skopeo: Skopeo, image_layout: LayoutBuilder, basic_registry: Registry
           ) -> dict[str, str]:
    """The same image under each of :data:`REPOS` in the Basic-auth registry: repo -> digest."""
    return {repo: skopeo.push(image_layout.path, "app", basic_registry, repo, "v1")
            for repo in REPOS}


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory, basic_registry: Registry
              ) -> Iterator[KubeApiStandIn]:
    assert basic_registry.username and basic_registry.password
    good = _config(basic_registry.host, basic_registry.username, basic_registry.password)
    objects = [
        _secret("regcred", "team", good),
        _secret("sa-regcred", "team", good),
        _account("builder", "team", ["sa-regcred"]),
        _secret("opaque", "team", good, kind="Opaque"),
        _secret("locked", "team", good),
        _secret("slow", "team", good),
        _secret("badcred", "team", _config(basic_registry.host, basic_registry.username,
                                           "a-stale-password")),
    ]
    server = KubeApiStandIn(tmp_path_factory.mktemp("apiserver"), objects)
    server.forbidden.add(("secrets", "team", "locked"))
    server.slow[("secrets", "team", "slow")] = 5.0
    yield server
    server.stop()


def _serve(work: Path, apiserver: KubeApiStandIn, *args: str) -> ServeProcess:
    account = apiserver.service_account_dir(work / "serviceaccount")
    return start_serve(work, ["--env", "dev", "--deadline", "6", "--pull-secrets",
                              "--service-account-dir", str(account), *args],
                       env={"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                            "KUBERNETES_SERVICE_PORT": str(apiserver.port)})


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, basic_registry: Registry,
            apiserver: KubeApiStandIn, pushed: dict[str, str]) -> Iterator[Cluster]:
    """``imggate serve --pull-secrets`` with no mounted credentials at all."""
    server = _serve(tmp_path_factory.mktemp("serve-pull"), apiserver)
    yield Cluster(basic_registry, apiserver, server)
    server.stop()


def _digest(response: dict[str, Any]) -> str:
    return str(json.loads(response["auditAnnotations"]["images"])[0]["digest"])


def test_the_pods_image_pull_secret_admits_its_private_image(cluster: Cluster,
                                                             pushed: dict[str, str]) -> None:
    r = cluster.ask([cluster.registry.ref("pull/pod", "v1")], secrets=["regcred"])
    assert r["allowed"] is True, r
    assert _digest(r) == pushed["pull/pod"]  # resolved and read with the secret's credentials
    assert "/api/v1/namespaces/team/secrets/regcred" in cluster.apiserver.requests


def test_without_pull_secrets_the_registrys_401_denies(cluster: Cluster) -> None:
    r = cluster.ask([cluster.registry.ref("pull/none", "v1")])
    assert r["allowed"] is False
    message = r["status"]["message"]
    assert "HTTP 401" in message and "access denied" in message
    assert "the pod has no pull secrets" in message


def test_the_service_accounts_pull_secrets_count_when_the_pod_has_none(cluster: Cluster,
                                                                       pushed: dict[str, str]
                                                                       ) -> None:
    r = cluster.ask([cluster.registry.ref("pull/sa", "v1")], account="builder")
    assert r["allowed"] is True, r
    assert _digest(r) == pushed["pull/sa"]
    assert "/api/v1/namespaces/team/serviceaccounts/builder" in cluster.apiserver.requests


def test_a_workload_template_s_pull_secrets_are_used(cluster: Cluster) -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "web", "namespace": "team"},
                  "spec": {"template": {"spec": {
                      "imagePullSecrets": [{"name": "regcred"}],
                      "containers": [{"name": "web",
                                      "image": cluster.registry.ref("pull/deploy", "v1")}]}}}}
    r = ask(cluster.server, review(deployment, namespace="team"))
    assert r["allowed"] is True, r


def test_an_ephemeral_container_is_read_with_the_pods_secrets(cluster: Cluster) -> None:
    # kubectl debug: the pods/ephemeralcontainers subresource carries the whole Pod.
    obj = pod([cluster.registry.ref("pull/pod", "v1")], namespace="team")
    obj["spec"]["imagePullSecrets"] = [{"name": "regcred"}]
    obj["spec"]["ephemeralContainers"] = [{"name": "debug",
                                           "image": cluster.registry.ref("pull/debug", "v1")}]
    r = ask(cluster.server, review(obj, namespace="team", operation="UPDATE",
                                   sub_resource="ephemeralcontainers"))
    assert r["allowed"] is True, r


def test_a_verdict_is_about_the_image_and_shared_by_pods_without_credentials(
        cluster: Cluster) -> None:
    """As documented (imggate.admission.pull_access): within the cache TTL, a pod without
    credentials is admitted on the verdict another pod's credentials reached for the same
    image; pulling it is still the kubelet's to authorize, with this pod's credentials."""
    image = cluster.registry.ref("pull/shared", "v1")
    assert cluster.ask([image], secrets=["regcred"])["allowed"] is True
    r = cluster.ask([image])
    assert r["allowed"] is True, r


def test_a_refused_pod_secret_is_followed_by_the_next_one_for_the_registry(
        cluster: Cluster, pushed: dict[str, str]) -> None:
    # The kubelet tries each of the pod's secrets for a registry in turn.
    r = cluster.ask([cluster.registry.ref("pull/second", "v1")],
                    secrets=["badcred", "regcred"])
    assert r["allowed"] is True, r
    assert _digest(r) == pushed["pull/second"]


def test_a_missing_secret_is_skipped_and_named_when_the_registry_refuses(cluster: Cluster
                                                                         ) -> None:
    r = cluster.ask([cluster.registry.ref("pull/gone", "v1")], secrets=["gone"])
    assert r["allowed"] is False
    message = r["status"]["message"]
    assert "HTTP 401" in message
    assert "no credentials for" in message
    assert "not found, skipped as the kubelet skips them: team/gone" in message


def test_an_api_server_403_denies_naming_the_secret(cluster: Cluster) -> None:
    r = cluster.ask([cluster.registry.ref("pull/locked", "v1")], secrets=["locked"])
    assert r["allowed"] is False
    message = r["status"]["message"]
    assert "cannot read the pull secrets of Pod team/app" in message
    assert "secret team/locked: HTTP 403" in message
    assert "get on secrets and serviceaccounts" in message
    assert "internal error" not in message


def test_a_secret_that_is_not_dockerconfigjson_denies_naming_it(cluster: Cluster) -> None:
    r = cluster.ask([cluster.registry.ref("pull/opaque", "v1")], secrets=["opaque"])
    assert r["allowed"] is False
    message = r["status"]["message"]
    assert "secret team/opaque is of type 'Opaque', not kubernetes.io/dockerconfigjson" in message


def test_an_api_server_that_does_not_answer_in_time_denies_within_the_deadline(
        cluster: Cluster) -> None:
    start = time.monotonic()
    r = cluster.ask([cluster.registry.ref("pull/slow", "v1")], secrets=["slow"])
    assert time.monotonic() - start < 5.0  # --deadline 6: half of it for the secrets
    assert r["allowed"] is False
    assert ("reading the pull secrets of Pod team/app from the Kubernetes API took longer "
            "than 3s") in r["status"]["message"]


def test_pod_a_s_credentials_are_not_used_for_pod_b(cluster: Cluster) -> None:
    first = cluster.ask([cluster.registry.ref("pull/a", "v1")], secrets=["regcred"])
    assert first["allowed"] is True, first
    # Same registry, same server, a tag and verdict nobody cached: B has no credentials
    # of its own, and the client (and tokens) that read for A are not B's.
    second = cluster.ask([cluster.registry.ref("pull/b", "v1")])
    assert second["allowed"] is False
    assert "HTTP 401" in second["status"]["message"]


def test_no_secret_reaches_the_log(cluster: Cluster) -> None:
    # A secret read and used, one the API server refuses, one it is too slow to give:
    # asked here (the cases above may run in another worker, or not at all).
    assert cluster.ask([cluster.registry.ref("pull/pod", "v1")],
                       secrets=["regcred"])["allowed"] is True
    assert cluster.ask([cluster.registry.ref("pull/locked", "v1")],
                       secrets=["locked"])["allowed"] is False
    assert cluster.ask([cluster.registry.ref("pull/slow", "v1")],
                       secrets=["slow"])["allowed"] is False
    registry = cluster.registry
    assert registry.password
    text = cluster.server.log_text()
    assert '"decision"' in text  # the review log is there
    # Which secrets were used is logged, by name.
    assert any(r.get("pull_secrets") == ["regcred"] for r in cluster.server.reviews())
    with cluster.server.client() as c:
        metrics = c.get("/metrics").text
    for result in ("ok", "error", "timeout"):
        assert f'imggate_admission_pull_secret_reads_total{{result="{result}"}}' in metrics
    basic = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    for secret in (registry.password, basic, cluster.apiserver.token):
        assert secret not in text


def test_pod_secrets_come_before_the_mounted_file(tmp_path: Path, basic_registry: Registry,
                                                  apiserver: KubeApiStandIn,
                                                  pushed: dict[str, str]) -> None:
    assert basic_registry.username
    mounted = tmp_path / ".dockerconfigjson"
    mounted.write_text(json.dumps(_config(basic_registry.host, basic_registry.username,
                                          "not-the-password")))
    server = _serve(tmp_path / "serve", apiserver, "--registry-auth-file", str(mounted))
    try:
        obj = pod([basic_registry.ref("pull/mounted", "v1")], namespace="team")
        obj["spec"]["imagePullSecrets"] = [{"name": "regcred"}]
        r = ask(server, review(obj, namespace="team"))
        assert r["allowed"] is True, r  # the pod's secret, not the mounted (wrong) one
        r = ask(server, review(pod([basic_registry.ref("pull/fallback", "v1")],
                                   namespace="team"), namespace="team"))
        assert r["allowed"] is False  # no pod secret: the mounted file's, refused
        assert "HTTP 401" in r["status"]["message"]
        assert f"sent credentials for {basic_registry.host} from {mounted}" in \
            r["status"]["message"]
        # A refused pod secret, then the (also refused) mounted file: both named.
        obj = pod([basic_registry.ref("pull/refused", "v1")], namespace="team")
        obj["spec"]["imagePullSecrets"] = [{"name": "badcred"}]
        r = ask(server, review(obj, namespace="team"))
        assert r["allowed"] is False
        assert (f"sent credentials for {basic_registry.host} from secret team/badcred, "
                f"refused; then sent credentials for {basic_registry.host} from {mounted}"
                ) in r["status"]["message"]
        log = server.log_text()
        assert "not-the-password" not in log and "a-stale-password" not in log
    finally:
        server.stop()


def test_refused_pod_credentials_fall_back_to_the_mounted_ones(
        tmp_path: Path, basic_registry: Registry, apiserver: KubeApiStandIn,
        pushed: dict[str, str]) -> None:
    """As the kubelet tries the node's credentials when the pod's are refused."""
    assert basic_registry.username and basic_registry.password
    mounted = tmp_path / ".dockerconfigjson"
    mounted.write_text(json.dumps(_config(basic_registry.host, basic_registry.username,
                                          basic_registry.password)))
    server = _serve(tmp_path / "serve", apiserver, "--registry-auth-file", str(mounted))
    try:
        obj = pod([basic_registry.ref("pull/node", "v1")], namespace="team")
        obj["spec"]["imagePullSecrets"] = [{"name": "badcred"}]
        r = ask(server, review(obj, namespace="team"))
        assert r["allowed"] is True, r
        assert _digest(r) == pushed["pull/node"]
    finally:
        server.stop()


def test_pull_secrets_flag_without_in_cluster_configuration_is_exit_2(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    result = run_imggate(["serve", "--tls-cert", str(tls.cert), "--tls-key", str(tls.key),
                          "--env", "dev", "--pull-secrets",
                          "--service-account-dir", str(tmp_path / "none")],
                         env={"KUBERNETES_SERVICE_HOST": None}, subprocess_mode=True)
    assert result.code == 2, result.output
    assert "no in-cluster Kubernetes configuration" in result.output


def _creds(user: str, secret: str) -> Credentials:
    return Credentials(user, secret, False, "secret ns/x: auths['r.example']")


def test_fingerprints_tell_credential_sets_apart_without_holding_them() -> None:
    one = {"r.example": _creds("u", "pw-one")}
    assert fingerprint(one) == fingerprint({"r.example": _creds("u", "pw-one")})
    assert fingerprint(one) != fingerprint({"r.example": _creds("u", "pw-two")})
    assert fingerprint({}) == ""
    assert "pw-one" not in fingerprint(one)


def test_one_client_per_credential_set_bounded_and_sharing_the_pool() -> None:
    class Reader(PullSecretReader):
        async def read_pod(self, namespace: str, pod_spec: Any) -> PodPullSecrets:
            secret = pod_spec["imagePullSecrets"][0]["name"]
            found = {"r.example": _creds("u", secret)} if secret != "none" else {}
            return PodPullSecrets(namespace, found, (secret,))

    async def go() -> None:
        async with RegistryClient() as base:
            pool = AccessPool(base, Reader(), max_clients=2)
            spec = lambda name: {"imagePullSecrets": [{"name": name}]}  # noqa: E731
            a = await pool.for_pod("ns", spec("a"), 1)
            assert a.client is not base and a.key
            assert (await pool.for_pod("ns", spec("a"), 1)).client is a.client
            b = await pool.for_pod("ns", spec("b"), 1)
            assert b.client is not a.client and b.key != a.key
            assert b.client.options.credentials.get("r.example") == _creds("u", "b")
            assert (await pool.for_pod("ns", spec("none"), 1)).client is base
            await pool.for_pod("ns", spec("c"), 1)
            assert len(pool) == 2  # a, the least recently used, was dropped
            assert (await pool.for_pod("ns", spec("a"), 1)).client is not a.client
            assert a.client._http is base._http  # one connection pool for all
        assert base._http is None

    asyncio.run(go())


@pytest.mark.parametrize("first", ["without", "with"])
def test_in_flight_lookups_are_shared_only_between_the_same_credentials(
        first: str, basic_registry: Registry, pushed: dict[str, str]) -> None:
    """Two reviews of one uncached image at once, one pod with credentials and one without:
    neither joins the other's registry lookup (the one with credentials is admitted whichever
    started first; the one without is refused by the registry)."""
    from imggate.admission.cache import AdmissionCache, CacheTimes
    from imggate.admission.judge import Judge, JudgeSettings, Progress
    from imggate.admission.metrics import Metrics
    from imggate.admission.policies import RulesStore
    from imggate.admission.pull_access import RegistryAccess
    from imggate.models import Decision
    from imggate.registry.pull_secrets import PullSecretCredentials
    from imggate.registry.reference import parse_reference

    assert basic_registry.username and basic_registry.password
    store = RulesStore(None, "dev")
    assert store.load() and store.current is not None
    policies = store.current
    text = basic_registry.ref("pull/flight", "v1")
    found = {basic_registry.host: Credentials(basic_registry.username, basic_registry.password,
                                              False, "secret team/regcred: auths['x']")}
    secrets = PodPullSecrets("team", found, ("regcred",))

    async def go() -> dict[str, Any]:
        async with RegistryClient() as base:
            judge = Judge(base, AdmissionCache(CacheTimes()), Metrics(), (),
                          JudgeSettings(deadline=6))
            accesses = {
                "with": RegistryAccess(base.with_credentials(PullSecretCredentials(found)),
                                       secrets.fingerprint, secrets),
                "without": RegistryAccess(base, secrets=PodPullSecrets("team"))}
            order = [first, "with" if first == "without" else "without"]
            outcomes = await asyncio.gather(*(
                judge.judge(text, parse_reference(text), policies, "dev", mutate=False,
                            dry_run=False, progress=Progress(), access=accesses[who])
                for who in order))
            return dict(zip(order, outcomes, strict=True))

    outcomes = asyncio.run(go())
    assert outcomes["with"].decision is Decision.ALLOW, outcomes["with"]
    assert outcomes["with"].digest == pushed["pull/flight"]
    assert outcomes["without"].decision is Decision.ERROR
    assert "HTTP 401" in str(outcomes["without"].error)
    assert "the pod has no pull secrets" in str(outcomes["without"].error)


def test_after_gives_the_next_distinct_credentials_for_a_host() -> None:
    a, b, c = _creds("u", "pw-a"), _creds("u", "pw-b"), _creds("v", "pw-c")
    secrets = PodPullSecrets("ns", {"r.example": a}, ("s1", "s2", "s3"),
                             candidates={"r.example": (a, a, b, c)})
    second = secrets.after("r.example", a)
    assert second is not None and second.found["r.example"] == b
    assert second.fingerprint != secrets.fingerprint
    third = second.after("r.example", b)
    assert third is not None and third.found["r.example"] == c
    assert third.after("r.example", c) is None
    assert secrets.after("other.example", a) is None
    assert secrets.after("r.example", None) is None
