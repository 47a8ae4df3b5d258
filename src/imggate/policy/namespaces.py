"""Which environment's rules apply in a Kubernetes namespace.

The webhook (``imggate serve``) and ``imggate check -f`` both ask it. In order:

1. an ``exempt`` namespace (glob) is not gated at all;
2. an explicit environment (``check -f --env``) overrides the mapping;
3. the ``namespaces.map`` entries of the rules, first match wins;
4. the environments' names and aliases, matched as ``CI_ENVIRONMENT_NAME`` is;
5. the caller's default (``serve --env``; a deploy job's ``CI_ENVIRONMENT_*``);
6. otherwise the namespace is *unmapped*: the caller denies and says so.
   There is no silent fallback to the rules' ``default_env``: a namespace
   nobody mapped must not quietly get the laxest rules.

The answer is a frozen :class:`NamespaceEnv` saying which environment and how.
``exempt_images`` globs are answered by :func:`exempt_image`.
"""

from __future__ import annotations

from enum import Enum
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from msgspec import Struct

from imggate.policy.patterns import glob_matches

if TYPE_CHECKING:
    from imggate.models import ImageRef
    from imggate.policy.environments import EnvChoice
    from imggate.policy.loader import RulesFile
    from imggate.policy.rules import RulesDocument


class NamespaceMatch(str, Enum):
    """How a namespace got (or did not get) its environment."""

    EXEMPT = "exempt"
    EXPLICIT = "explicit"
    PATTERN = "pattern"
    ENVIRONMENT = "environment"
    DEFAULT = "default"
    UNMAPPED = "unmapped"


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class NamespaceEnv(Struct, frozen=True):
    """The environment for one namespace, and why.

    ``env`` is ``None`` exactly when the namespace is exempt or unmapped.
    ``by`` says what matched: ``namespaces.map[0] 'shop-*'``, ``alias 'production'``,
    ``--env``...
    """

    namespace: str | None
    env: str | None
    how: NamespaceMatch
    by: str

    @property
    def exempt(self) -> bool:
        """Whether the namespace is not gated."""
        return self.how is NamespaceMatch.EXEMPT

    @property
    def unmapped(self) -> bool:
        """Whether no environment applies: the caller must deny."""
        return self.how is NamespaceMatch.UNMAPPED

    def describe(self) -> str:
        """One line for logs, reports and denial messages."""
        ns = f"namespace {self.namespace!r}" if self.namespace is not None else "no namespace"
        if self.how is NamespaceMatch.EXEMPT:
            return f"{ns} is exempt ({self.by})"
        if self.how is NamespaceMatch.UNMAPPED:
            return f"{ns} maps to no environment ({self.by})"
        return f"{ns} -> environment {self.env!r} ({self.by})"


def namespace_env(rules: RulesFile, namespace: str | None, *,
                  explicit: EnvChoice | None = None,
                  default: EnvChoice | None = None) -> NamespaceEnv:
    """The environment whose rules apply in ``namespace`` (``None``: the object has none).

    ``explicit`` (``check -f --env``) overrides the mapping but not an
    exemption; ``default`` (``serve --env``) applies to a namespace that
    nothing else maps. Both are already-validated choices (see
    :func:`~imggate.policy.environments.select_env`).
    """
    spec = rules.document.namespaces
    if namespace is not None:
        for pattern in spec.exempt:
            if fnmatchcase(namespace, pattern):
                return NamespaceEnv(namespace, None, NamespaceMatch.EXEMPT,
                                    f"namespaces.exempt {pattern!r}")
    if explicit is not None:
        return NamespaceEnv(namespace, explicit.name, NamespaceMatch.EXPLICIT, explicit.source)
    if namespace is not None:
        for i, entry in enumerate(spec.map):
            if fnmatchcase(namespace, entry.match):
                return NamespaceEnv(namespace, entry.env, NamespaceMatch.PATTERN,
                                    f"namespaces.map[{i}] {entry.match!r}")
        found = environment_named(rules, namespace)
        if found is not None:
            return NamespaceEnv(namespace, found[0], NamespaceMatch.ENVIRONMENT, found[1])
    if default is not None:
        return NamespaceEnv(namespace, default.name, NamespaceMatch.DEFAULT,
                            f"default from {default.source}")
    # Say why default_env did not apply: the file names one, and a reader expects it to.
    unused = (f", and default_env {rules.default_env!r} is never used for a namespace"
              if rules.default_env else "")
    where = (f"matches no namespaces.map entry, environment name or alias in {rules.source}"
             f"{unused}: add it to namespaces.map, or run serve with --env"
             if namespace is not None else
             f"and no --env for unmapped namespaces was given{unused}")
    return NamespaceEnv(namespace, None, NamespaceMatch.UNMAPPED, where)


def environment_named(rules: RulesFile, value: str) -> tuple[str, str] | None:
    """The environment whose name or alias is ``value``, and which one matched.

    The one place namespace mapping asks "which environment answers to this
    name", so that it stays the rule ``CI_ENVIRONMENT_NAME`` is matched by.
    """
    from imggate.policy.environments import MatchKind, match_env

    found = match_env(rules, value)
    if found is None:
        return None
    if found.kind is MatchKind.ALIAS:
        return found.name, f"alias {found.pattern!r} of {found.name!r}"
    return found.name, f"environment name {found.name!r}"


def exempt_image(rules: RulesFile, ref: ImageRef) -> str | None:
    """The ``namespaces.exempt_images`` glob that exempts ``ref``, if any."""
    for pattern in rules.document.namespaces.exempt_images:
        if glob_matches(pattern, ref):
            return pattern
    return None


def check_mapping(document: RulesDocument) -> list[tuple[tuple[str | int, ...], str, str]]:
    """Problems in ``namespaces.map``: ``(location, message, hint)`` for each entry whose
    ``env`` is not an environment of the file (the loader turns them into errors)."""
    known = ", ".join(document.environments)
    return [(("namespaces", "map", i, "env"), f"names unknown environment {entry.env!r}",
             f"known environments: {known}")
            for i, entry in enumerate(document.namespaces.map)
            if entry.env not in document.environments]


def explain_namespaces(rules: RulesFile, env: str) -> dict[str, object]:
    """The namespace map as ``rules explain`` prints it: the order it is read in, every
    entry, and which globs lead to ``env``."""
    spec = rules.document.namespaces
    return {
        "order": ("exempt, then map (first match wins), then environment names and "
                  "aliases, then serve --env; any other namespace is denied "
                  "(default_env is never used)"),
        "exempt": list(spec.exempt),
        "map": [f"{entry.match} -> {entry.env}" for entry in spec.map],
        "exempt_images": list(spec.exempt_images),
        f"mapped_to_{env}": [entry.match for entry in spec.map if entry.env == env],
    }
