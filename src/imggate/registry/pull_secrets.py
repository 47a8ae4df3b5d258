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
kubelet skips it. No secret value ever appears in a message or a log.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imggate.errors import ConfigError, Error
from imggate.registry.credentials import Credentials, CredentialStore, _parse_config, normalise_host

log = logging.getLogger(__name__)

DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
DOCKERCFG = "kubernetes.io/dockercfg"
_MAX_AUTH_FILE = 1024 * 1024
#: How long a pull secret or service account read from the API is reused.
DEFAULT_TTL = 60.0


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
        self.items[key] = (self.clock() + self.ttl, value)


class PullSecretReader:
    """Reads pull secrets of a pod through the Kubernetes API, with a short TTL cache.

    ``client`` is a lightkube ``AsyncClient`` (default: in-cluster
    configuration from ``service_account_dir``, the kubelet's mount point
    unless given, made on first use). Use :meth:`for_pod` from the webhook.
    """

    def __init__(self, client: Any | None = None, *, ttl: float = DEFAULT_TTL,
                 clock: Callable[[], float] = time.monotonic,
                 service_account_dir: Path | None = None) -> None:
        self._client = client
        self._account_dir = service_account_dir
        self._cache = _Cache(ttl, clock)
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    def _api(self) -> Any:
        if self._client is None:
            from lightkube import AsyncClient, KubeConfig
            from lightkube import ConfigError as KubeConfigError

            try:
                config = KubeConfig.from_service_account(self._account_dir) \
                    if self._account_dir is not None else KubeConfig.from_service_account()
                self._client = AsyncClient(config)
            except (KubeConfigError, KeyError, OSError) as e:
                raise PullSecretError(f"no in-cluster Kubernetes configuration ({e!s:.200})",
                                      hint="run in a pod with a service account token, or "
                                           "use --registry-auth-file") from None
        return self._client

    async def _read(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as JSON data; ``None`` when it does not exist."""
        key = (kind, namespace, name)
        cached = self._cache.get(key)
        if cached is not None:
            return dict(cached) if cached else None
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._cache.get(key)
            if cached is not None:
                return dict(cached) if cached else None
            value = await self._fetch(kind, namespace, name)
            # A missing object is cached too ({}): the kubelet would skip it just the same.
            self._cache.put(key, value or {})
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
        names = _secret_names(pod_spec.get("imagePullSecrets"))
        account = pod_spec.get("serviceAccountName") or pod_spec.get("serviceAccount") \
            or "default"
        if isinstance(account, str):
            sa = await self._read("serviceaccount", namespace, account)
            if sa is not None:
                names += [n for n in _secret_names(sa.get("imagePullSecrets"))
                          if n not in names]
        found: dict[str, Credentials] = {}
        for name in names:
            secret = await self._read("secret", namespace, name)
            if secret is None:
                log.debug("pull secret %s/%s does not exist: skipped", namespace, name)
                continue
            for host, creds in credentials_from_secret(
                    secret, f"secret {namespace}/{name}").items():
                found.setdefault(host, creds)
        return found


def _secret_names(refs: object) -> list[str]:
    if not isinstance(refs, Sequence) or isinstance(refs, str):
        return []
    return [r["name"] for r in refs if isinstance(r, dict) and isinstance(r.get("name"), str)
            and r["name"]]
