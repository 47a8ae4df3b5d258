"""What one pod's pull secrets came to, and telling credential sets apart.

:class:`PodPullSecrets` is the frozen value :class:`~imggate.registry.pull_secrets.PullSecretReader`
returns for a pod spec: the credentials per registry host, in the order the
kubelet tries them, which secrets were read and which do not exist.
:func:`fingerprint` tells credential sets apart without holding them: an HMAC
under a key that lives only in this process, so a fingerprint that leaked
could not be checked against a guessed password.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from imggate.registry.credentials import Credentials, normalise_host
from imggate.values import replace

_FINGERPRINT_KEY = secrets.token_bytes(32)


def fingerprint(found: Mapping[str, Credentials]) -> str:
    """Tells credential sets apart (equal sets, equal fingerprints) without revealing them."""
    if not found:
        return ""
    return _fingerprint(tuple(sorted((normalise_host(h), c.username, c.secret,
                                      c.identity_token) for h, c in found.items())))


@functools.lru_cache(maxsize=1024)
def _fingerprint(items: tuple[tuple[str, str, str, bool], ...]) -> str:
    # Asked on every review with the same few sets: remembered (by value, never by identity).
    canonical = json.dumps(items)
    return hmac.new(_FINGERPRINT_KEY, canonical.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class PodPullSecrets:
    """The pull credentials of one pod spec in one namespace, as read from the API.

    ``found`` maps registry hosts to the first credentials for them (the pod's
    secrets in order, then its service account's); ``read`` names the secrets
    that were read, ``missing`` those that do not exist (skipped, as the kubelet
    skips them); ``account`` is the service account whose secrets were added.
    """

    namespace: str
    found: Mapping[str, Credentials] = field(default_factory=dict)
    read: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    account: str | None = None
    #: Every secret's credentials per host, in the order the kubelet tries them.
    candidates: Mapping[str, tuple[Credentials, ...]] = field(default_factory=dict)
    #: :func:`fingerprint` of ``found`` (``""``: no pull secret holds credentials).
    fingerprint: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", fingerprint(self.found))

    def after(self, host: str, sent: Credentials | None) -> PodPullSecrets | None:
        """These secrets with ``host``'s next credentials after ``sent`` (refused), as the
        kubelet tries each in turn; ``None`` when no other pod secret has any."""
        key = normalise_host(host)
        tried = self.candidates.get(key, ())
        if sent is None:
            return None
        same = (sent.username, sent.secret)
        for i, cred in enumerate(tried):
            if (cred.username, cred.secret) == same:
                rest = [c for c in tried[i + 1:] if (c.username, c.secret) != same]
                return replace(self, found={**self.found, key: rest[0]}) if rest else None
        return None

    def describe(self, host: str, sent: Credentials | None) -> str:
        """What was sent to ``host`` (``sent``: the credentials used, from these secrets or
        the mounted file) and which secrets were missing: for an access-denied message."""
        ns = self.namespace
        if sent is not None:
            said = f"sent credentials for {host} from {sent.origin.rsplit(': auths[', 1)[0]}"
        elif self.read:
            said = (f"no pull secret of the pod holds credentials for {host} (read: "
                    + ", ".join(f"{ns}/{n}" for n in self.read) + ")")
        elif not self.missing:
            said = "the pod has no pull secrets"
        else:
            said = f"no credentials for {host}"
        if self.missing:
            said += "; pull secret(s) not found, skipped as the kubelet skips them: " + \
                ", ".join(f"{ns}/{n}" for n in self.missing)
        return said
