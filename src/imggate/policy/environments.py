"""Which environment a name means, and which environment a run applies (and why).

A value (``--env``, ``CI_ENVIRONMENT_TIER``, ``CI_ENVIRONMENT_NAME``, a
Kubernetes namespace...) is matched against the environment names, then
against each environment's ``aliases`` (globs, case-insensitive, in file
order). :func:`match_env` is that match, for any caller; :func:`select_env`
is the choice a run makes, which never falls back silently: a value that
matches nothing is a :class:`~imggate.errors.UsageError` (exit 2) naming the
value, where it came from and every known name, unless the rules name a
``fallback_env`` (then the choice says so).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import Enum
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from msgspec import Struct

from imggate.errors import UsageError

if TYPE_CHECKING:
    from imggate.policy.loader import RulesFile

#: The CI variables read, in order, when ``--env`` is not given (GitLab's).
CI_VARIABLES = ("CI_ENVIRONMENT_TIER", "CI_ENVIRONMENT_NAME")


class MatchKind(str, Enum):
    """How a value led to an environment."""

    NAME = "name"            # the value is the environment's name
    ALIAS = "alias"          # the value matched one of its aliases
    DEFAULT = "default"      # no value given: the rules' default_env
    FALLBACK = "fallback"    # the value matched nothing: the rules' fallback_env


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class EnvMatch(Struct, frozen=True):
    """An environment found for a value: ``pattern`` is the alias glob that matched."""

    name: str
    value: str
    kind: MatchKind
    pattern: str | None = None

    def describe(self) -> str:
        """``'production' is an alias ('production*') of prod`` and the like."""
        if self.kind is MatchKind.ALIAS:
            return f"{self.value!r} matches alias {self.pattern!r} of {self.name}"
        return f"{self.value!r} is environment {self.name}"


def match_env(rules: RulesFile, value: str) -> EnvMatch | None:
    """The environment ``value`` names: an exact name, a name in another case, then the
    first alias glob (case-insensitive) in file order; ``None`` when nothing matches."""
    if value in rules.environments:
        return EnvMatch(value, value, MatchKind.NAME)
    folded = value.lower()
    for name in rules.names:
        if name.lower() == folded:
            return EnvMatch(name, value, MatchKind.NAME)
    for name in rules.names:
        for alias in rules.aliases(name):
            if fnmatchcase(folded, alias.lower()):
                return EnvMatch(name, value, MatchKind.ALIAS, alias)
    return None


class EnvChoice(Struct, frozen=True):
    """The environment a run applies and how it was chosen.

    ``origin`` is where the deciding value came from: ``--env``, a CI
    variable name, ``default_env`` or ``fallback_env``; ``value`` is that
    value (``None`` for the default); ``unmatched`` lists the values that
    matched nothing before a fallback, as ``(origin, value)``.
    """

    name: str
    origin: str
    value: str | None = None
    kind: MatchKind = MatchKind.DEFAULT
    pattern: str | None = None
    unmatched: tuple[tuple[str, str], ...] = ()

    @property
    def source(self) -> str:
        """One line for a person: where the environment came from."""
        if self.kind is MatchKind.DEFAULT:
            return "default_env (no --env, CI_ENVIRONMENT_TIER or CI_ENVIRONMENT_NAME)"
        if self.kind is MatchKind.FALLBACK:
            missed = ", ".join(f"{o}={v!r}" for o, v in self.unmatched)
            return f"fallback_env ({missed} matched no environment)"
        how = f" (alias {self.pattern!r})" if self.kind is MatchKind.ALIAS else ""
        sep = " " if self.origin == "--env" else "="
        return f"{self.origin}{sep}{self.value}{how}"

    def as_dict(self) -> dict[str, object]:
        """Plain data for reports (verdict JSON, JUnit properties)."""
        return {"name": self.name, "origin": self.origin, "value": self.value,
                "match": self.kind.value, "alias": self.pattern,
                "unmatched": [{"origin": o, "value": v} for o, v in self.unmatched],
                "description": self.source}


def known_names(rules: RulesFile) -> str:
    """Every environment with its aliases, for an error message."""
    parts = []
    for name in rules.names:
        aliases = rules.aliases(name)
        parts.append(f"{name} (aliases: {', '.join(aliases)})" if aliases else name)
    return "; ".join(parts)


def select_env(rules: RulesFile, explicit: str | None = None,
               environ: Mapping[str, str] | None = None) -> EnvChoice:
    """``--env``, else the first of ``CI_ENVIRONMENT_TIER`` / ``CI_ENVIRONMENT_NAME`` that
    matches, else ``default_env`` when neither is set.

    An explicit ``--env`` must match. When a CI variable is set and none
    matches, the rules' ``fallback_env`` applies if they name one; otherwise
    it is a :class:`UsageError` (exit 2): a typo or a new environment never
    runs silently under weaker rules.
    """
    if explicit:
        found = match_env(rules, explicit)
        if found is None:
            raise UsageError(f"unknown environment {explicit!r} (from --env) in {rules.source}",
                             hint=f"known environments: {known_names(rules)}")
        return EnvChoice(found.name, "--env", explicit, found.kind, found.pattern)
    env = os.environ if environ is None else environ
    missed: list[tuple[str, str]] = []
    for var in CI_VARIABLES:
        value = env.get(var, "").strip()
        if not value:
            continue
        found = match_env(rules, value)
        if found is not None:
            return EnvChoice(found.name, var, value, found.kind, found.pattern)
        missed.append((var, value))
    if not missed:
        return EnvChoice(rules.default_env, "default_env")
    if rules.fallback_env is not None:
        return EnvChoice(rules.fallback_env, "fallback_env", None, MatchKind.FALLBACK,
                         unmatched=tuple(missed))
    said = " and ".join(f"{var}={value!r}" for var, value in missed)
    raise UsageError(
        f"{said} matches no environment in {rules.source}",
        hint=f"known environments: {known_names(rules)}. Add an alias, set fallback_env "
             "in the rules, or pass --env")
