"""Registry credentials as the kubelet uses them: pull secrets, for the admission webhook.

Two sources, both in the ``kubernetes.io/dockerconfigjson`` format (docker's
``config.json``; only ``auths`` counts, as for the kubelet: no credential
helper or ``credsStore`` can run inside a cluster):

* a mounted secret file (``imggate serve --registry-auth-file``):
  :func:`load_auth_file`;
* the pod's ``imagePullSecrets`` and its service account's, read through the
  Kubernetes API: :class:`PullSecretReader`, pod secrets first, then the
  service account's (the order the kubelet tries them), cached for a short
  TTL so a burst of admissions costs one read per secret.

The API client is **lightkube** (``AsyncClient``), chosen over
kubernetes-asyncio because it is small and typed (``py.typed``, models per
resource), reads in-cluster configuration (service-account token, CA,
``KUBERNETES_SERVICE_HOST``) the way the official client does, and is built
on an httpx-style async client rather than a second HTTP stack (aiohttp) and
a generated client of several hundred modules loaded into the webhook.

The RBAC this needs is ``get`` on ``secrets`` and ``serviceaccounts``.
A secret of another type, an API error (403: RBAC missing) or an unreachable
API server is a :class:`PullSecretError` (exit 3: could not decide), never
anonymous access silently; a secret that does not exist is skipped, as the
kubelet skips it, and :class:`PodPullSecrets` remembers it so that a later 401
can say which secret was missing. No secret value ever appears in a message or
a log; :class:`~imggate.registry.pod_secrets.PodPullSecrets` is what one pod's
secrets came to.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from imggate.errors import ConfigError, Error
from imggate.redact import register
from imggate.registry.credentials import Credentials, CredentialStore, _parse_config, normalise_host
from imggate.registry.pod_secrets import PodPullSecrets

log = logging.getLogger(__name__)
T = TypeVar("T")

DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
DOCKERCFG = "kubernetes.io/dockercfg"
_MAX_AUTH_FILE = 1024 * 1024
#: How long a pull secret or service account read from the API is reused.
DEFAULT_TTL = 60.0
#: How many secrets and service accounts the reader keeps (each for at most the TTL).
MAX_CACHED = 4096
#: The most pull secrets one pod spec (with its service account's) may name: each is a read.
MAX_PULL_SECRETS = 64
#: Where the kubelet mounts a pod's service account token, CA and namespace.
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Object names as they may go into an API path: DNS labels and subdomains (and the
# mixed-case names some fixtures use), never "/", "..", or anything to escape.
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?")


class PullSecretError(Error):
    """Pull secrets could not be read or are not usable: the image cannot be judged (exit 3)."""


def parse_dockerconfigjson(data: bytes | str, where: str) -> dict[str, Credentials]:
    """Credentials per registry host from ``.dockerconfigjson`` content (``auths`` only).

    :class:`ConfigError` when the JSON is malformed; entries with no
    credentials (``{}``, as Docker Desktop writes beside ``credsStore``) are skipped.
    """
    config = _parse_config(data, where)
    if config.store or config.helpers:
        log.debug("%s: credsStore/credHelpers cannot run in a cluster; ignored", where)
    return dict(config.auths)


def load_auth_file(path: str | Path) -> dict[str, Credentials]:
    """A mounted ``kubernetes.io/dockerconfigjson`` secret (``--registry-auth-file``)."""
    from imggate._files import read_config_file

    p = Path(path)
    data = read_config_file(p, _MAX_AUTH_FILE, what="the auth file",
                            label=f"--registry-auth-file {p}")
    return parse_dockerconfigjson(data, str(p))


def credentials_from_secret(secret: Mapping[str, Any], where: str) -> dict[str, Credentials]:
    """Credentials from a Secret object (API JSON): it must be a docker config secret."""
    kind = secret.get("type")
    data = secret.get("data") if isinstance(secret.get("data"), dict) else {}
    assert isinstance(data, dict)
    if kind == DOCKERCONFIGJSON:
        key = ".dockerconfigjson"
    elif kind == DOCKERCFG:
        key = ".dockercfg"
    else:
        raise PullSecretError(f"{where} is of type {str(kind)[:60]!r}, not {DOCKERCONFIGJSON}: "
                              "it cannot be a pull secret")
    encoded = data.get(key)
    if not isinstance(encoded, str):
        raise PullSecretError(f"{where} has no {key} data")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise PullSecretError(f"{where}: {key} is not base64") from None
    if kind == DOCKERCFG:
        # The legacy format is the bare ``auths`` map.
        raw = b'{"auths":' + raw + b"}"
    try:
        return parse_dockerconfigjson(raw, where)
    except ConfigError as e:
        raise PullSecretError(e.message) from None


def wanted(flag: bool | None, environ: Mapping[str, str] | None = None,
           service_account_dir: Path | None = None) -> bool:
    """Whether ``imggate serve`` reads pull secrets: ``flag``, else (auto) when running in
    a pod with a service account token: ``KUBERNETES_SERVICE_HOST`` (set by the kubelet in
    every pod) and the token file are there."""
    if flag is not None:
        return flag
    env = os.environ if environ is None else environ
    token = (service_account_dir or SERVICE_ACCOUNT_DIR) / "token"
    return bool(env.get("KUBERNETES_SERVICE_HOST")) and token.is_file()


def check_in_cluster(service_account_dir: Path | None = None) -> None:
    """:class:`ConfigError` (exit 2) when there is no in-cluster configuration to read
    pull secrets with: said when ``imggate serve`` starts, not at every review."""
    from lightkube import ConfigError as KubeConfigError
    from lightkube import KubeConfig

    where = service_account_dir or SERVICE_ACCOUNT_DIR
    try:
        KubeConfig.from_service_account(where)
    except (KubeConfigError, KeyError, OSError) as e:
        what = f"{e.args[0]} is not set" if isinstance(e, KeyError) else f"{e!s:.200}"
        raise ConfigError(f"--pull-secrets: no in-cluster Kubernetes configuration ({what}; "
                          f"service account files in {where})",
                          hint="run in a pod with a service account token, or "
                               "pass --no-pull-secrets") from None


class PullSecretCredentials(CredentialStore):
    """A :class:`CredentialStore` that answers from pull secrets first, then ``fallback``."""

    def __init__(self, found: Mapping[str, Credentials],
                 fallback: CredentialStore | None = None) -> None:
        super().__init__(environ={})
        self._found = {normalise_host(h): c for h, c in found.items()}
        self._fallback = fallback

    def get(self, host: str) -> Credentials | None:
        """The pull secret's credentials for ``host``, else the fallback's."""
        hit = self._found.get(normalise_host(host))
        if hit is not None:
            return hit
        return self._fallback.get(host) if self._fallback is not None else None


@dataclass(frozen=True, slots=True)
class _Parsed:
    """One object as read and parsed: the value (``None``: no such object) or why not."""

    value: Any
    error: str | None = None
    hint: str | None = None


@dataclass
class _Cache:
    ttl: float
    clock: Callable[[], float]
    items: dict[tuple[str, str, str], tuple[float, Any]] = field(default_factory=dict)

    def get(self, key: tuple[str, str, str]) -> Any:
        hit = self.items.get(key)
        if hit is None or hit[0] <= self.clock():
            return None
        return hit[1]

    def put(self, key: tuple[str, str, str], value: Any) -> None:
        now = self.clock()
        if len(self.items) >= MAX_CACHED and key not in self.items:
            # Bounded whatever the cluster holds: expired entries first, then the oldest.
            self.items = {k: v for k, v in self.items.items() if v[0] > now}
            while len(self.items) >= MAX_CACHED:
                del self.items[next(iter(self.items))]
        self.items.pop(key, None)
        self.items[key] = (now + self.ttl, value)


class PullSecretReader:
    """Reads pull secrets of a pod through the Kubernetes API, with a short TTL cache.

    ``client`` is a lightkube ``AsyncClient`` (default: in-cluster
    configuration from ``service_account_dir``, the kubelet's mount point
    unless given, made on first use). Use :meth:`for_pod` from the webhook.
    """

    def __init__(self, client: Any | None = None, *, ttl: float = DEFAULT_TTL,
                 clock: Callable[[], float] = time.monotonic,
                 service_account_dir: Path | None = None, timeout: float = 10.0) -> None:
        self._client = client
        self._account_dir = service_account_dir
        self._timeout = timeout
        self._cache = _Cache(ttl, clock)
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    def _api(self) -> Any:
        if self._client is None:
            from lightkube import AsyncClient, KubeConfig
            from lightkube import ConfigError as KubeConfigError

            try:
                config = KubeConfig.from_service_account(self._account_dir) \
                    if self._account_dir is not None else KubeConfig.from_service_account()
                import httpx2

                self._client = AsyncClient(config, timeout=httpx2.Timeout(self._timeout))
                # The API token is a secret of this run: redacted wherever it could surface.
                single = config.get()
                user = single.user if single is not None else None
                if user is not None and user.token:
                    register(user.token.strip())
            except (KubeConfigError, KeyError, OSError) as e:
                raise PullSecretError(f"no in-cluster Kubernetes configuration ({e!s:.200})",
                                      hint="run in a pod with a service account token, or "
                                           "use --registry-auth-file") from None
        return self._client

    async def aclose(self) -> None:
        """Close the API client (when this reader made it)."""
        client, self._client = self._client, None
        if client is not None and hasattr(client, "close"):
            await client.close()

    async def _read(self, kind: str, namespace: str, name: str,
                    parse: Callable[[dict[str, Any]], T]) -> T | None:
        """``parse`` of the object; ``None`` when it does not exist. What ``parse`` makes of
        it (or the :class:`PullSecretError` it raised) is what is cached: a warm review
        neither re-reads nor re-parses a secret."""
        key = (kind, namespace, name)
        hit: _Parsed | None = self._cache.get(key)
        if hit is None:
            if len(self._locks) >= MAX_CACHED:
                # Bounded: forgetting a lock costs at most one duplicate read.
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            lock = self._locks.setdefault(key, asyncio.Lock())
            async with lock:
                hit = self._cache.get(key)
                if hit is None:
                    raw = await self._fetch(kind, namespace, name)
                    try:
                        # A missing object is cached too: the kubelet would skip it just the same.
                        hit = _Parsed(parse(raw) if raw is not None else None)
                    except PullSecretError as e:
                        hit = _Parsed(None, e.message, e.hint)
                    self._cache.put(key, hit)
        if hit.error is not None:
            raise PullSecretError(hit.error, hint=hit.hint)
        value: T | None = hit.value
        return value

    async def _fetch(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        import httpx2
        from lightkube import ApiError
        from lightkube.resources.core_v1 import Secret, ServiceAccount

        resource = Secret if kind == "secret" else ServiceAccount
        where = f"{kind} {namespace}/{name}"
        try:
            obj = await self._api().get(resource, name=name, namespace=namespace)
        except ApiError as e:
            code = e.status.code if e.status is not None else None
            if code == 404:
                return None
            reason = e.status.reason if e.status is not None else None
            hint = "the webhook's RBAC needs get on secrets and serviceaccounts" \
                if code in (401, 403) else None
            raise PullSecretError(f"Kubernetes API refused to read {where}: HTTP {code} "
                                  f"{str(reason or '')[:40]}".rstrip(), hint=hint) from None
        except httpx2.HTTPError as e:
            raise PullSecretError(f"Kubernetes API unreachable reading {where} "
                                  f"({type(e).__name__})") from None
        data: dict[str, Any] = obj.to_dict()
        return data

    async def for_pod(self, namespace: str, pod_spec: Mapping[str, Any]
                      ) -> dict[str, Credentials]:
        """Credentials per host from the pod's pull secrets, then its service account's.

        The first secret that has credentials for a host wins, as the kubelet
        tries them in order.
        """
        return dict((await self.read_pod(namespace, pod_spec)).found)

    async def read_pod(self, namespace: str, pod_spec: Mapping[str, Any]) -> PodPullSecrets:
        """:meth:`for_pod`, with which secrets were read and which do not exist."""
        _check_name(namespace, "namespace", namespace)
        names = _secret_names(pod_spec.get("imagePullSecrets"), namespace)
        account = pod_spec.get("serviceAccountName") or pod_spec.get("serviceAccount") \
            or "default"
        if not isinstance(account, str):
            account = "default"
        _check_name(account, "service account", namespace)
        listed = await self._read("serviceaccount", namespace, account,
                                  lambda sa: _secret_names(sa.get("imagePullSecrets"),
                                                           namespace))
        if listed is not None:
            names += [n for n in listed if n not in names]
        if len(names) > MAX_PULL_SECRETS:
            raise PullSecretError(f"the pod and service account {namespace}/{account} name "
                                  f"{len(names)} pull secrets, more than {MAX_PULL_SECRETS}")
        found: dict[str, Credentials] = {}
        candidates: dict[str, list[Credentials]] = {}
        read: list[str] = []
        missing: list[str] = []
        for name in names:
            creds = await self._read("secret", namespace, name, functools.partial(
                credentials_from_secret, where=f"secret {namespace}/{name}"))
            if creds is None:
                log.debug("pull secret %s/%s does not exist: skipped", namespace, name)
                missing.append(name)
                continue
            read.append(name)
            for host, cred in creds.items():
                found.setdefault(host, cred)
                candidates.setdefault(host, []).append(cred)
        return PodPullSecrets(namespace, found, tuple(read), tuple(missing),
                              account if listed is not None else None,
                              {h: tuple(c) for h, c in candidates.items()})


def _check_name(name: str, what: str, namespace: str) -> None:
    if not _NAME.fullmatch(name):
        where = "" if what == "namespace" else f" in namespace {namespace}"
        raise PullSecretError(f"{what} name {name[:80]!r}{where} is not a valid object name")


def _secret_names(refs: object, namespace: str) -> list[str]:
    if not isinstance(refs, Sequence) or isinstance(refs, str):
        return []
    names = [r["name"] for r in refs[:MAX_PULL_SECRETS + 1] if isinstance(r, dict)
             and isinstance(r.get("name"), str) and r["name"]]
    for n in names:
        _check_name(n, "pull secret", namespace)
    return list(dict.fromkeys(names))
