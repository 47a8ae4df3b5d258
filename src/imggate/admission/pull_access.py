"""Which registry client reads a review's images: the pod's own pull credentials first.

As the kubelet pulls with the pod's ``imagePullSecrets`` (for a workload, its
pod template's) and its service account's, the webhook reads the images of a
review with the same credentials, read through the Kubernetes API
(:class:`~imggate.registry.pull_secrets.PullSecretReader`, cached for a short
TTL). For a registry host that none of them covers, the mounted
``--registry-auth-file`` answers, as the node's own credentials do after the
pod's for the kubelet. Per host, pod secrets come first, then the service
account's, then the mounted file. When the registry refuses the credentials
sent, the next pod secret's for that host are tried, then the mounted file's
when they are others, as the kubelet tries each pod secret and then the node's
credentials.

One client per credential set. Every set gets its own
:class:`~imggate.registry.client.RegistryClient` derived from the shared one
(:meth:`~imggate.registry.client.RegistryClient.with_credentials`: same
connection pool, own token cache), kept in a bounded LRU keyed by the set's
fingerprint (an HMAC, never the secret). A token obtained with one pod's
credentials is therefore never sent for a pod that lacks them, and the
single-flight keys of the judge carry the fingerprint too, so a pod never
joins a registry lookup made with another pod's credentials.

The verdict and tag caches are shared across pods on purpose: a verdict is
about the image's content (digest + repository + rules + environment), the
same whoever asked. A pod without credentials can be admitted on a verdict
that was reached with another pod's credentials; admission is not where
pulling is authorized: the kubelet still pulls with the pod's own
credentials and fails without them (for images already on a node, that is
the ``AlwaysPullImages`` admission plugin's or the kubelet's
``KubeletEnsureSecretPulledImages`` business, not imggate's).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imggate import values
from imggate.registry.client import RegistryClient
from imggate.registry.credentials import CredentialStore
from imggate.registry.pod_secrets import PodPullSecrets
from imggate.registry.pull_secrets import PullSecretCredentials, PullSecretReader

log = logging.getLogger(__name__)

#: How many credential sets keep their own client (and token cache) at a time.
MAX_CLIENTS = 64


@dataclass(frozen=True, slots=True)
class RegistryAccess:
    """The client one review's images are read with, and whose credentials it holds.

    ``key`` is ``""`` for the shared client (the mounted file only), else the
    fingerprint of the pod's credential set: in-flight work is shared only
    between reviews with the same key.
    """

    client: RegistryClient
    key: str = ""
    secrets: PodPullSecrets | None = None
    #: The shared client (mounted credentials), tried when the registry refuses the pod's.
    fallback: RegistryClient | None = None
    #: What was sent before, and refused, when this access is what is tried next.
    refused: str | None = None
    #: Where the client for the pod's next credentials comes from.
    pool: AccessPool | None = None

    def explain(self, host: str) -> str:
        """Which credentials were sent to ``host`` and which pull secrets were missing, for
        an access-denied message; ``""`` when pull secrets are not read."""
        if self.secrets is None:
            return ""
        said = self.secrets.describe(host, self.client.options.credentials.get(host))
        return f"{self.refused}, refused; then {said}" if self.refused else said

    def fallback_for(self, host: str) -> RegistryAccess | None:
        """The access to try when ``host`` refused the credentials sent: the next pod
        secret's for ``host``, then the mounted ones when they are others (the kubelet
        tries each pod secret, then the node's credentials); ``None`` when nothing is left."""
        if self.secrets is None:
            return None
        sent = self.client.options.credentials.get(host)
        refused = self.secrets.describe(host, sent).split("; ", 1)[0]
        if self.refused:
            refused = f"{self.refused}, refused; then {refused}"
        following = self.secrets.after(host, sent) if self.pool is not None else None
        if following is not None and self.pool is not None:
            return values.replace(self.pool.access(following), refused=refused)
        if self.fallback is None:
            return None
        other = self.fallback.options.credentials.get(host)
        if other is None or (sent is not None and (sent.username, sent.secret) ==
                             (other.username, other.secret)):
            return None
        return RegistryAccess(self.fallback, "", self.secrets, refused=refused)


class AccessPool:
    """Gives each review the registry client its pod's pull credentials call for."""

    def __init__(self, base: RegistryClient, reader: PullSecretReader | None = None, *,
                 max_clients: int = MAX_CLIENTS) -> None:
        """``base`` reads with the mounted credentials (its ``options.credentials``) and
        is the fallback of every derived client; ``reader`` is ``None`` when pull secrets
        are not read (every review then uses ``base``)."""
        self.base = base
        self.reader = reader
        self.max_clients = max_clients
        self._fallback: CredentialStore = base.options.credentials
        self._clients: OrderedDict[str, RegistryClient] = OrderedDict()

    async def for_pod(self, namespace: str, spec: Mapping[str, Any] | None,
                      timeout: float) -> RegistryAccess:
        """The access for a pod spec in ``namespace`` (``None``: a spec without pull secrets
        or service account). Raises :class:`~imggate.registry.pull_secrets.PullSecretError`
        naming the secret or service account that could not be read; :class:`TimeoutError`
        after ``timeout`` seconds."""
        if self.reader is None:
            return RegistryAccess(self.base)
        if spec is None:
            return RegistryAccess(self.base, secrets=PodPullSecrets(namespace))
        async with asyncio.timeout(timeout):
            secrets = await self.reader.read_pod(namespace, spec)
        return self.access(secrets)

    def access(self, secrets: PodPullSecrets) -> RegistryAccess:
        """The access for credentials already read (a client of their own, when any)."""
        key = secrets.fingerprint
        if not key:
            return RegistryAccess(self.base, secrets=secrets)
        return RegistryAccess(self._client(key, secrets), key, secrets, fallback=self.base,
                              pool=self)

    def _client(self, key: str, secrets: PodPullSecrets) -> RegistryClient:
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        client = self.base.with_credentials(PullSecretCredentials(secrets.found, self._fallback))
        self._clients[key] = client
        if len(self._clients) > self.max_clients:
            # Derived clients own no connections: dropping one forgets its tokens, nothing
            # else (a review still using it finishes with it).
            self._clients.popitem(last=False)
        return client

    def __len__(self) -> int:
        return len(self._clients)

    async def aclose(self) -> None:
        """Forget every derived client and close the API client."""
        self._clients.clear()
        if self.reader is not None:
            await self.reader.aclose()
