"""The rules a webhook applies: every environment loaded at once, hashed, reloadable.

A :class:`PolicySet` is immutable; a reload builds a new one and swaps it in
only when the whole load succeeded, so a broken file keeps the old rules
(:class:`RulesStore`). Its ``hash`` covers the rules file and every file the
rules name (keys, KEV catalogs, allowlists): a verdict cached under one hash
is never used under another.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from imggate import __version__
from imggate.errors import ConfigError, Error
from imggate.gate import KeyCache
from imggate.models import ImageRef
from imggate.policy.effective import EffectiveRules
from imggate.policy.environments import EnvChoice, select_env
from imggate.policy.exceptions import ExceptionSet
from imggate.policy.kev import KevCatalog, load_kev
from imggate.policy.loader import Policy, RulesFile, load_exceptions, load_rules
from imggate.policy.namespaces import NamespaceEnv, exempt_image, namespace_env

log = logging.getLogger(__name__)
_MAX_NAMESPACES = 10_000


@dataclass(frozen=True, slots=True)
class EnvPolicy:
    """One environment's rules with the exceptions and KEV catalog they use."""

    rules: EffectiveRules
    exceptions: ExceptionSet
    kev: KevCatalog | None
    #: The same, as the gate takes it (``CheckRequest.policy``).
    policy: Policy


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Every environment of one rules file, ready to evaluate."""

    rules_file: RulesFile
    environments: Mapping[str, EnvPolicy]
    keys: KeyCache
    hash: str
    loaded_at: float
    default: EnvChoice | None = None
    _namespaces: dict[str, NamespaceEnv] = field(default_factory=dict, compare=False,
                                                 repr=False)

    def env_for_namespace(self, namespace: str) -> NamespaceEnv:
        """The environment for ``namespace``, as ``check -f`` maps it: exempt namespaces,
        ``namespaces.map``, environment names and aliases, then ``serve --env``; else
        unmapped (the review is denied saying so: no silent fallback).

        Answers are kept for the life of these rules (a cluster has few namespaces).
        """
        found = self._namespaces.get(namespace)
        if found is None:
            found = namespace_env(self.rules_file, namespace or None, default=self.default)
            if len(self._namespaces) < _MAX_NAMESPACES:
                self._namespaces[namespace] = found
        return found

    def exempt_image(self, ref: ImageRef) -> str | None:
        """The ``namespaces.exempt_images`` glob that exempts ``ref``, if any."""
        return exempt_image(self.rules_file, ref)


def _file_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None


def _rules_path(path: Path | None) -> Path | None:
    if path is not None and path.is_dir():
        return path / "default.yaml"
    return path


def load_policy_set(path: Path | None, default_env: str | None = None) -> PolicySet:
    """Load ``path`` (``None``: the built-in rules) and everything it names.

    Raises :class:`~imggate.errors.ConfigError` / ``UsageError`` like ``imggate check``.
    """
    rules_file = load_rules(path)
    # An unknown --env is a usage error now, naming the known environments.
    default = select_env(rules_file, default_env) if default_env is not None else None
    digest = hashlib.sha256(f"imggate {__version__}\0".encode())
    file = _rules_path(path)
    if file is not None:
        digest.update(_file_bytes(file))
    exceptions = load_exceptions(rules_file)
    keys = KeyCache()
    named: list[Path] = list(rules_file.allowlists)
    envs: dict[str, EnvPolicy] = {}
    for name in rules_file.names:
        effective = rules_file.effective(name)
        kev_paths = effective.kev_paths()
        kev = load_kev(kev_paths) if kev_paths else None
        named += kev_paths
        for rules in (effective.rules, *effective.images):
            for key in rules.signatures.keys:
                keys.get(Path(key))  # an unusable key file is a configuration error now
                named.append(Path(key))
            for root in rules.signatures.trusted_roots:
                keys.roots(Path(root))  # trust roots too: a verdict is only as good as them
                named.append(Path(root))
        choice = EnvChoice(name=name, origin="namespace")
        envs[name] = EnvPolicy(effective, exceptions, kev,
                               Policy(rules_file, choice, effective, exceptions, kev))
    vex = rules_file.document.vex_attestations
    for key in vex.keys if vex is not None else ():
        keys.get(Path(key))
        named.append(Path(key))
    for p in sorted(set(named), key=str):
        digest.update(str(p).encode() + b"\0" + _file_bytes(p))
    return PolicySet(rules_file, envs, keys, digest.hexdigest()[:32], time.time(), default)


class RulesStore:
    """The rules in use, and reloading them: on SIGHUP or when the file changes.

    A load that fails keeps the rules in use and logs why. ``current`` is
    ``None`` only until the first load succeeds (``/readyz`` is false then).
    """

    def __init__(self, path: Path | None, default_env: str | None = None) -> None:
        self.path = path
        self.default_env = default_env
        self.current: PolicySet | None = None
        self.last_error: str | None = None
        self._stamp: tuple[int, int, int] | None = None

    def _file_stamp(self) -> tuple[int, int, int] | None:
        file = _rules_path(self.path)
        if file is None:
            return None
        try:
            st = os.stat(file)  # follows the symlinks a mounted ConfigMap swaps
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def load(self) -> bool:
        """Load the rules now; ``False`` (old rules kept, error logged) when they are broken."""
        stamp = self._file_stamp()
        try:
            loaded = load_policy_set(self.path, self.default_env)
        except Error as e:
            self.last_error = e.message
            self._stamp = stamp  # do not retry the same broken file every poll
            log.error("rules not loaded, %s: %s", "keeping the rules in use"
                      if self.current else "no rules in use", e.message)
            return False
        self.current = loaded
        self.last_error = None
        self._stamp = stamp
        log.info("rules loaded from %s (hash %s)", loaded.rules_file.source, loaded.hash)
        return True

    def changed(self) -> bool:
        """Whether the rules file looks different from the one last read."""
        return self.path is not None and self._file_stamp() != self._stamp
