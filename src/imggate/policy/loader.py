"""Load a rules file (or the built-in defaults), resolve inheritance, choose the environment.

Every problem is a :class:`~imggate.errors.ConfigError` whose location is
``file:line`` and whose message names the key, so ``imggate`` exits 2 with
something a person can fix.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from msgspec import Struct
from pydantic import ValidationError

from imggate.errors import ConfigError, UsageError
from imggate.policy import _yaml
from imggate.policy.allowlists import discover_allowlists, load_allowlists
from imggate.policy.effective import CommandLine, EffectiveRules
from imggate.policy.environments import EnvChoice, MatchKind, select_env
from imggate.policy.exceptions import ExceptionSet, from_models
from imggate.policy.kev import KevCatalog, load_kev
from imggate.policy.namespaces import check_mapping
from imggate.policy.rules import (
    NO_EXCEPTION_POLICY,
    NO_RULES,
    Identity,
    ImageOverride,
    RulesDocument,
    RuleSet,
    overlay,
)

BUILTIN_SOURCE = "<built-in defaults>"

#: The rules used when no rules file is given (``rules/default.yaml`` is a superset).
BUILTIN_RULES = """\
version: 1
default_env: dev
environments:
  dev:
    description: Development and review apps. Fail on Critical vulnerabilities.
    aliases: [development, testing, "review/*"]
    severity:
      fail_on: Critical
  staging:
    extends: dev
    description: Like production, but violations are reported as warnings.
    aliases: ["staging/*"]
    mode: warn
    severity:
      fail_on: High
      require_report: true
    tags:
      deny: ["latest"]
      require_digest: true
  prod:
    extends: dev
    description: Production. Pinned by digest, never latest, nothing High or above.
    aliases: [production, "production/*"]
    severity:
      fail_on: High
      require_report: true
      max_report_age: 7d
    tags:
      deny: ["latest"]
      require_digest: true
    report_binding:
      allow_unbound: false
    exception_policy:
      require_expiry: true
      max_days: 90
namespaces:
  exempt: [kube-system, kube-public, kube-node-lease, imggate]
  map:
    - {match: prod, env: prod}
    - {match: production, env: prod}
    - {match: "*-prod", env: prod}
    - {match: "prod-*", env: prod}
    - {match: staging, env: staging}
    - {match: "*-staging", env: staging}
    - {match: "*", env: dev}
"""


# BUILTIN_RULES as data, so the defaults need no YAML parser (a test keeps them equal).
_BUILTIN_DATA: dict[str, Any] = {
    "version": 1,
    "default_env": "dev",
    "environments": {
        "dev": {
            "description": "Development and review apps. Fail on Critical vulnerabilities.",
            "aliases": ["development", "testing", "review/*"],
            "severity": {"fail_on": "Critical"},
        },
        "staging": {
            "extends": "dev",
            "description": "Like production, but violations are reported as warnings.",
            "aliases": ["staging/*"],
            "mode": "warn",
            "severity": {"fail_on": "High", "require_report": True},
            "tags": {"deny": ["latest"], "require_digest": True},
        },
        "prod": {
            "extends": "dev",
            "description": "Production. Pinned by digest, never latest, nothing High or above.",
            "aliases": ["production", "production/*"],
            "severity": {"fail_on": "High", "require_report": True, "max_report_age": "7d"},
            "tags": {"deny": ["latest"], "require_digest": True},
            "report_binding": {"allow_unbound": False},
            "exception_policy": {"require_expiry": True, "max_days": 90},
        },
    },
    # The same namespace map as rules/default.yaml (a test keeps them equal).
    "namespaces": {
        "exempt": ["kube-system", "kube-public", "kube-node-lease", "imggate"],
        "map": [{"match": match, "env": env} for match, env in (
            ("prod", "prod"), ("production", "prod"), ("*-prod", "prod"), ("prod-*", "prod"),
            ("staging", "staging"), ("*-staging", "staging"), ("*", "dev"))],
    },
}

#: What reports record as the built-in rules' sha256 (of :data:`BUILTIN_RULES`).
BUILTIN_SHA256 = hashlib.sha256(BUILTIN_RULES.encode("utf-8")).hexdigest()

__all__ = ["BUILTIN_RULES", "BUILTIN_SOURCE", "EnvChoice", "Policy", "RulesFile",
           "identity_from_flags", "load_exceptions", "load_policy", "load_rules",
           "locate_rules", "parse_rules", "select_env"]


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class RulesFile(Struct, frozen=True):
    """A validated rules file with every environment resolved."""

    source: str
    document: RulesDocument
    environments: Mapping[str, EffectiveRules]
    default_env: str
    exceptions: ExceptionSet
    allowlists: tuple[Path, ...]
    fallback_env: str | None = None
    sha256: str | None = None
    found_by: str = "built-in"

    @property
    def names(self) -> tuple[str, ...]:
        """Environment names in file order."""
        return tuple(self.environments)

    def effective(self, env: str) -> EffectiveRules:
        """The rules of ``env``; an unknown name is a :class:`UsageError` listing the known ones."""
        try:
            return self.environments[env]
        except KeyError:
            raise UsageError(f"unknown environment {env!r} in {self.source}",
                             hint=f"known environments: {', '.join(self.names)}") from None

    def aliases(self, env: str) -> tuple[str, ...]:
        """The alias globs an environment answers to."""
        return self.document.environments[env].aliases


def _chain(doc: RulesDocument, ydoc: _yaml.YamlDoc, name: str) -> tuple[str, ...]:
    chain = [name]
    current = name
    while (parent := doc.environments[current].extends) is not None:
        loc = ("environments", current, "extends")
        if parent not in doc.environments:
            raise ydoc.error(loc, f"extends unknown environment {parent!r}",
                             hint=f"known environments: {', '.join(doc.environments)}")
        if parent in chain:
            raise ydoc.error(loc, "inheritance cycle: " + " -> ".join([*chain, parent]))
        chain.append(parent)
        current = parent
    return tuple(reversed(chain))


def _check_threshold(rules: RuleSet, ydoc: _yaml.YamlDoc, loc: tuple[str, ...]) -> None:
    sig = rules.signatures
    if sig.anchors and sig.threshold > sig.anchors:
        raise ydoc.error((*loc, "signatures", "threshold"),
                         f"threshold {sig.threshold} is more than the {sig.anchors} "
                         "keys and identities given")


def resolve_environment(doc: RulesDocument, ydoc: _yaml.YamlDoc, name: str) -> EffectiveRules:
    """``name``'s rules after inheritance; a :class:`ConfigError` at the key that is wrong."""
    chain = _chain(doc, ydoc, name)
    rules = NO_RULES
    images: dict[str, ImageOverride] = {}
    exception_policy = NO_EXCEPTION_POLICY
    for env in chain:
        spec = doc.environments[env]
        rules = overlay(rules, spec)
        if "exception_policy" in spec.model_fields_set:
            exception_policy = overlay(exception_policy, spec.exception_policy)
        for o in spec.images:
            images[o.match] = overlay(images[o.match], o) if o.match in images else o
    loc = ("environments", name)
    _check_threshold(rules, ydoc, loc)
    for o in images.values():
        _check_threshold(overlay(rules, o), ydoc, (*loc, "images"))
    return EffectiveRules(env=name, rules=rules, images=tuple(images.values()),
                          source=ydoc.source, chain=chain, exception_policy=exception_policy)


def parse_rules(text: str, source: str, base_dir: Path | None = None) -> RulesFile:
    """Validate rules text; paths in it are relative to ``base_dir``."""
    rules = _parse_doc(_yaml.parse_yaml(text, source), base_dir)
    return _stamped(rules, hashlib.sha256(text.encode("utf-8")).hexdigest(), "text")


def _stamped(rules: RulesFile, sha256: str, found_by: str) -> RulesFile:
    return RulesFile(rules.source, rules.document, rules.environments, rules.default_env,
                     rules.exceptions, rules.allowlists, rules.fallback_env, sha256, found_by)


def _parse_doc(ydoc: _yaml.YamlDoc, base_dir: Path | None) -> RulesFile:
    source = ydoc.source
    if not isinstance(ydoc.data, dict):
        raise ConfigError("a rules file must be a mapping with an 'environments' key",
                          location=f"{source}:1")
    context = {"base_dir": base_dir} if base_dir is not None else {}
    doc = _yaml.validate(RulesDocument, ydoc, context=context)
    default = doc.default_env
    if default is None:
        default = "dev" if "dev" in doc.environments else next(iter(doc.environments))
    elif default not in doc.environments:
        raise ydoc.error(("default_env",), f"names unknown environment {default!r}",
                         hint=f"known environments: {', '.join(doc.environments)}")
    if doc.fallback_env is not None and doc.fallback_env not in doc.environments:
        raise ydoc.error(("fallback_env",), f"names unknown environment {doc.fallback_env!r}",
                         hint=f"known environments: {', '.join(doc.environments)}")
    for loc, message, hint in check_mapping(doc):
        raise ydoc.error(loc, message, hint=hint)
    envs = {name: resolve_environment(doc, ydoc, name) for name in doc.environments}
    mapped = isinstance(ydoc.data.get("exceptions"), dict)
    where = [ydoc.where(("exceptions", "entries", i) if mapped else ("exceptions", i))
             for i in range(len(doc.exceptions))]
    return RulesFile(source=source, document=doc, environments=envs, default_env=default,
                     exceptions=from_models(doc.exceptions, where),
                     allowlists=tuple(doc.allowlists), fallback_env=doc.fallback_env)


#: How :func:`locate_rules` found the rules (recorded in every report).
FOUND_BY_FLAG = "--rules"
FOUND_BY_CWD = "./rules/"
FOUND_BY_BUILTIN = "built-in"


class RulesLocation(Struct, frozen=True):
    """Where a command's rules come from: ``path`` (``None``: built-in) and how it was found."""

    path: Path | None
    found_by: str


def locate_rules(explicit: Path | None, cwd: Path | None = None) -> RulesLocation:
    """The one lookup every command uses: ``--rules``, else ``./rules/default.yaml``,
    else the built-in defaults."""
    if explicit is not None:
        return RulesLocation(explicit, FOUND_BY_FLAG)
    candidate = (Path.cwd() if cwd is None else cwd) / "rules" / "default.yaml"
    if candidate.is_file():
        return RulesLocation(Path("rules") / "default.yaml" if cwd is None else candidate,
                             FOUND_BY_CWD)
    return RulesLocation(None, FOUND_BY_BUILTIN)


def load_rules(path: Path | None = None, *, found_by: str | None = None) -> RulesFile:
    """Load ``path`` (a file, or a directory holding ``default.yaml``); ``None``: built-ins.

    ``found_by`` records how the caller found ``path`` (default: ``--rules``,
    or ``built-in`` for ``None``); the file's sha256 is kept for reports.
    """
    if path is None:
        rules = _parse_doc(_yaml.YamlDoc(copy.deepcopy(_BUILTIN_DATA), BUILTIN_SOURCE, {}), None)
        return _stamped(rules, BUILTIN_SHA256, FOUND_BY_BUILTIN)
    with contextlib.suppress(OSError):  # a name too long is reported by read_text
        if path.is_dir():
            path = path / "default.yaml"
    text = _yaml.read_text(path, _yaml.MAX_YAML_BYTES, what="rules file")
    rules = _parse_doc(_yaml.parse_yaml(text, str(path)), path.resolve().parent)
    # Valid UTF-8 decodes and encodes back to the same bytes: this is the file's hash.
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return _stamped(rules, digest, found_by or FOUND_BY_FLAG)


def load_exceptions(rules: RulesFile, extra: Sequence[Path] = (), *,
                    discover: Path | None = None) -> ExceptionSet:
    """Every exception for a run: the rules file's entries, its ``allowlists``, ``extra``
    files, and (when ``discover`` is a directory) the allowlists found there."""
    paths = [*rules.allowlists, *extra]
    if discover is not None:
        paths += discover_allowlists(discover)
    resolved = list(dict.fromkeys(p.resolve() for p in paths))
    return rules.exceptions + load_allowlists(resolved)


def identity_from_flags(identity: str | None = None, identity_regexp: str | None = None,
                        issuer: str | None = None,
                        issuer_regexp: str | None = None) -> Identity | None:
    """cosign's ``--certificate-identity[-regexp]`` / ``--certificate-oidc-issuer[-regexp]``.

    ``None`` when no flag is given; a :class:`UsageError` when they don't make one identity.
    """
    if not any((identity, identity_regexp, issuer, issuer_regexp)):
        return None
    try:
        return Identity(identity=identity, identity_regexp=identity_regexp, issuer=issuer,
                        issuer_regexp=issuer_regexp)
    except ValueError as e:
        # pydantic's ValidationError is a ValueError; say it in flag terms.
        msg = str(e.errors()[0]["msg"]) if isinstance(e, ValidationError) else str(e)
        raise UsageError(
            "keyless verification needs --certificate-identity or "
            "--certificate-identity-regexp, and --certificate-oidc-issuer or "
            f"--certificate-oidc-issuer-regexp ({msg.removeprefix('Value error, ')})") from None


class Policy(Struct, frozen=True):
    """Everything :func:`~imggate.policy.engine.evaluate` needs for one run.

    ``notes`` are things a person should know about how the policy was put
    together (an allowlist in the working directory that was not read, say):
    every report prints them.
    """

    rules_file: RulesFile
    env: EnvChoice
    rules: EffectiveRules
    exceptions: ExceptionSet
    kev: KevCatalog | None
    notes: tuple[str, ...] = ()


def load_policy(rules_path: Path | None = None, env: str | None = None, *,
                keys: Sequence[Path] = (), identities: Sequence[Identity] = (),
                allowlists: Sequence[Path] = (), discover: Path | None = None,
                environ: Mapping[str, str] | None = None,
                found_by: str | None = None, cli: CommandLine | None = None,
                today: date | None = None) -> Policy:
    """Load rules, choose the environment, add command-line signers, read exceptions and KEV.

    ``keys``/``identities`` from the command line make a verified signature
    required; ``cli`` carries every other flag that adds to or overrides the rules.
    ``discover`` is the working directory: its ``.trivyignore`` &c.
    are read only when the environment's ``exception_policy.discover`` is on,
    and said to be ignored otherwise. Every exception is then held to the
    environment's ``exception_policy`` (``today`` decides ``max_days``).
    Raises :class:`ConfigError` / :class:`UsageError` (exit 2).
    """
    rules_file = load_rules(rules_path, found_by=found_by)
    choice = select_env(rules_file, env, environ)
    effective = rules_file.effective(choice.name)
    if cli is not None:
        effective = effective.with_cli(cli)
    if keys or identities:
        effective = effective.with_signers(tuple(keys), tuple(identities))
    ep = effective.exception_policy
    notes: list[str] = []
    if choice.kind is MatchKind.FALLBACK:
        notes.append(f"environment {choice.name} is the rules' fallback_env: {choice.source}")
    found = discover_allowlists(discover) if discover is not None else ()
    named = {p.resolve() for p in (*rules_file.allowlists, *allowlists)}
    unread = [p for p in found if p.resolve() not in named]
    if unread and ep.discover:
        notes.append(f"read {', '.join(p.name for p in unread)} from the working directory "
                     f"(exception_policy.discover in {choice.name})")
    elif unread:
        notes.append(f"ignored {', '.join(p.name for p in unread)} in the working directory: "
                     f"exception_policy.discover is off in {choice.name} (name a file with "
                     "--allowlist to use it)")
    exceptions = load_exceptions(rules_file, allowlists,
                                 discover=discover if ep.discover else None)
    exceptions = exceptions.vetted(require_expiry=ep.require_expiry, max_days=ep.max_days,
                                   today=today or date.today())
    if exceptions.refused:
        notes.append(f"{len(exceptions.refused)} exception(s) refused by the exception policy "
                     f"of {choice.name} (not applied): "
                     + "; ".join(f"{e.vulnerability} ({e.source}): {why}"
                                 for e, why in exceptions.refused[:5])
                     + (" ..." if len(exceptions.refused) > 5 else ""))
    kev_paths = effective.kev_paths()
    kev = load_kev(kev_paths) if kev_paths else None
    return Policy(rules_file, choice, effective, exceptions, kev, tuple(notes))
