"""Where registry credentials come from, in docker's and GitLab's conventions.

Precedence, first hit wins for a given registry host:

1. ``--username`` + ``--password-stdin`` (for the registries named on the command line),
2. ``DOCKER_AUTH_CONFIG`` (the GitLab runner variable: config.json content),
3. ``REGISTRY_AUTH_FILE`` (podman/skopeo auth.json),
4. ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json`` — ``credHelpers``,
   then ``auths``, then ``credsStore``,
5. ``CI_REGISTRY_USER`` / ``CI_REGISTRY_PASSWORD`` for ``CI_REGISTRY``.

No secret is ever logged or put into an error message; :class:`Credentials`
hides the secret from ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from msgspec import Struct

from imggate.errors import ConfigError
from imggate.redact import register

log = logging.getLogger(__name__)

_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")
_HELPER_TIMEOUT = 15.0


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class Credentials(Struct, frozen=True):
    """A username and a secret (password, token). The secret never prints.

    Building one registers the secret with the run's redactor
    (:mod:`imggate.redact`), whether or not it is ever sent.
    """

    username: str
    secret: str
    identity_token: bool = False
    origin: str = ""

    def __post_init__(self) -> None:
        register(self.secret, username=self.username)

    def __repr__(self) -> str:
        # Every field but the secret.
        return (f"Credentials(username={self.username!r}, "
                f"identity_token={self.identity_token!r}, origin={self.origin!r})")

    def __str__(self) -> str:
        return f"credentials for {self.username!r} from {self.origin}"


def normalise_host(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``http://h:5000/x`` -> ``h:5000``."""
    host = key.strip()
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme):]
    host = host.split("/", 1)[0].lower()
    return "docker.io" if host in _HUB_ALIASES else host


class _DockerConfig(Struct, frozen=True):
    path: str
    auths: Mapping[str, Credentials]
    helpers: Mapping[str, str]
    store: str | None


def _parse_config(text: str | bytes, where: str) -> _DockerConfig:
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"{where}: not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: must be a JSON object")
    auths: dict[str, Credentials] = {}
    raw_auths = doc.get("auths", {})
    if not isinstance(raw_auths, dict):
        raise ConfigError(f"{where}: 'auths' must be an object")
    for key, entry in raw_auths.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: auths[{key!r}] must be an object")
        cred = _entry_credentials(entry, f"{where}: auths[{key!r}]")
        if cred is not None:
            auths[normalise_host(key)] = cred
    helpers = doc.get("credHelpers", {})
    if not isinstance(helpers, dict) or not all(isinstance(v, str) for v in helpers.values()):
        raise ConfigError(f"{where}: 'credHelpers' must map hosts to helper names")
    store = doc.get("credsStore")
    if store is not None and not isinstance(store, str):
        raise ConfigError(f"{where}: 'credsStore' must be a string")
    return _DockerConfig(where, auths, {normalise_host(k): v for k, v in helpers.items()},
                         store or None)


def _entry_credentials(entry: Mapping[str, Any], where: str) -> Credentials | None:
    if isinstance(entry.get("identitytoken"), str) and entry["identitytoken"]:
        user = entry.get("username") if isinstance(entry.get("username"), str) else "<token>"
        return Credentials(str(user), entry["identitytoken"], True, where)
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, ValueError):
            # ValueError: non-ASCII text is not base64 (and UnicodeDecodeError is one).
            raise ConfigError(f"{where}: 'auth' is not base64 of user:password") from None
        user, sep, secret = decoded.partition(":")
        if not sep:
            raise ConfigError(f"{where}: 'auth' is not base64 of user:password")
        return Credentials(user, secret, False, where)
    name, password = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(password, str) and name:
        return Credentials(name, password, False, where)
    return None


def _run_helper(helper: str, host: str) -> Credentials | None:
    program = f"docker-credential-{helper}"
    exe = shutil.which(program)
    if exe is None:
        raise ConfigError(f"credential helper {program} for {host} is not on PATH")
    server = "https://index.docker.io/v1/" if host == "docker.io" else host
    try:
        out = subprocess.run(  # fixed argv, no shell
            [exe, "get"], input=server.encode(), capture_output=True, timeout=_HELPER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{program} timed out after {_HELPER_TIMEOUT:.0f}s for {host}") from None
    if out.returncode != 0:
        # Helpers say "credentials not found in native keychain" for unknown hosts.
        if b"not found" in out.stdout.lower() + out.stderr.lower():
            return None
        raise ConfigError(f"{program} failed for {host} (exit {out.returncode})")
    try:
        doc = json.loads(out.stdout)
        user, secret = doc["Username"], doc["Secret"]
        if not isinstance(user, str) or not isinstance(secret, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{program} printed something that is not credentials JSON") from None
    return Credentials(user, secret, user == "<token>", program)


class CredentialStore:
    """Looks up credentials per registry host, once per host."""

    def __init__(
        self,
        *,
        explicit: Credentials | None = None,
        explicit_hosts: frozenset[str] = frozenset(),
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._explicit = explicit
        self._explicit_hosts = frozenset(normalise_host(h) for h in explicit_hosts)
        self._env = dict(os.environ if environ is None else environ)
        self._configs: list[_DockerConfig] | None = None
        self._cache: dict[str, Credentials | None] = {}

    def _load_configs(self) -> list[_DockerConfig]:
        configs = []
        if self._env.get("DOCKER_AUTH_CONFIG"):
            configs.append(_parse_config(self._env["DOCKER_AUTH_CONFIG"], "$DOCKER_AUTH_CONFIG"))
        for path in self._config_paths():
            try:
                text = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as e:
                raise ConfigError(f"{path}: unreadable ({e.strerror})") from None
            configs.append(_parse_config(text, str(path)))
        return configs

    def _config_paths(self) -> list[Path]:
        paths = []
        if self._env.get("REGISTRY_AUTH_FILE"):
            paths.append(Path(self._env["REGISTRY_AUTH_FILE"]))
        if self._env.get("DOCKER_CONFIG"):
            paths.append(Path(self._env["DOCKER_CONFIG"]) / "config.json")
        elif self._env.get("HOME"):
            paths.append(Path(self._env["HOME"]) / ".docker" / "config.json")
        return paths

    def get(self, host: str) -> Credentials | None:
        """Credentials for ``host`` (``docker.io``, ``host:port``), or ``None``: anonymous."""
        key = normalise_host(host)
        if key not in self._cache:
            self._cache[key] = self._lookup(key)
            found = self._cache[key]
            log.debug("registry %s: %s", key, found if found else "anonymous")
        return self._cache[key]

    def _lookup(self, host: str) -> Credentials | None:
        if self._explicit is not None and (not self._explicit_hosts or host in
                                           self._explicit_hosts):
            return self._explicit
        if self._configs is None:
            self._configs = self._load_configs()
        for cfg in self._configs:
            if host in cfg.helpers:
                return _run_helper(cfg.helpers[host], host)
            if host in cfg.auths:
                return cfg.auths[host]
            if cfg.store:
                found = _run_helper(cfg.store, host)
                if found:
                    return found
        ci = self._env.get("CI_REGISTRY")
        if ci and normalise_host(ci) == host:
            user, secret = self._env.get("CI_REGISTRY_USER"), self._env.get("CI_REGISTRY_PASSWORD")
            if user and secret:
                return Credentials(user, secret, False, "$CI_REGISTRY_USER")
        return None
