"""How the registry client talks to registries: credentials, TLS, timeouts, retries, limits.

Apart from the client (:mod:`imggate.registry.client`) so that what only describes a
run (a command's options, a check request) does not import the HTTP stack: a check of
an OCI layout never opens a registry connection, and importing httpx and httpcore
was ~60-80 ms of its start-up.
"""

from __future__ import annotations

from msgspec import Struct, field

from imggate.registry.breaker import BreakerSettings
from imggate.registry.credentials import CredentialStore
from imggate.registry.limits import RequestLimits


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class RegistryOptions(Struct, frozen=True):
    """How to talk to registries."""

    credentials: CredentialStore = field(default_factory=CredentialStore)
    insecure_registries: frozenset[str] = frozenset()
    ca_file: str | None = None
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5
    #: Idle connections kept for reuse.
    max_connections: int = 16
    #: Requests in flight at once, in all and per host (see :mod:`imggate.registry.limits`).
    limits: RequestLimits = field(default_factory=RequestLimits)
    #: When a host that keeps failing is refused at once (see :mod:`imggate.registry.breaker`).
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    #: After ``timeout`` seconds a response body must keep coming at this rate (bytes/s).
    min_rate: float = 32 * 1024
