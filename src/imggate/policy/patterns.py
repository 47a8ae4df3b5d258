"""Matching image names, registry prefixes and tags against user-written patterns.

Image patterns are shell-style globs over ``registry/repository``
(``*`` matches any run of characters, ``/`` included); Docker Hub images also
match by their familiar names (``nginx``, ``library/nginx``). When several
patterns match, the most specific wins: an exact name first, then the pattern
with the most literal characters, then the one with fewer wildcards.
Tag patterns are regular expressions that must match the whole tag.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

from imggate.models import ImageRef
from imggate.registry.reference import reads_as_hub_repository
from imggate.userregex import compile_user_regex, why_not_compiled

_WILDCARDS = frozenset("*?[")


def image_names(ref: ImageRef) -> tuple[str, ...]:
    """Every name ``ref`` may be written as: canonical first, then Docker Hub's short forms.

    A short form is offered only when it would be read back as the same image: the
    Docker Hub repository ``registry.k8s.io/evil`` (``docker.io/registry.k8s.io/evil``)
    is not written ``registry.k8s.io/evil``, which names another registry, so it never
    matches a pattern written for that registry.
    """
    name = ref.name
    names = [name]
    if (ref.source == "registry" and ref.registry in ("docker.io", "index.docker.io")
            and reads_as_hub_repository(ref.repository)):
        names.append(ref.repository)
        if ref.repository.startswith("library/"):
            names.append(ref.repository.removeprefix("library/"))
    return tuple(names)


def glob_matches(pattern: str, ref: ImageRef) -> bool:
    """Whether the glob ``pattern`` matches any name of ``ref``."""
    return any(fnmatchcase(n, pattern) for n in image_names(ref))


def specificity(pattern: str) -> tuple[int, int, int]:
    """Sort key: larger is more specific (exact, literal characters, fewer wildcards)."""
    wild = sum(1 for c in pattern if c in _WILDCARDS)
    literal = len(pattern) - wild
    return (1 if wild == 0 else 0, literal, -wild)


def best_match(patterns: list[str] | tuple[str, ...], ref: ImageRef) -> int | None:
    """Index of the most specific pattern matching ``ref``; declaration order breaks ties."""
    best: int | None = None
    best_key: tuple[int, int, int] | None = None
    for i, p in enumerate(patterns):
        if not glob_matches(p, ref):
            continue
        key = specificity(p)
        if best_key is None or key > best_key:
            best, best_key = i, key
    return best


def prefix_matches(prefix: str, ref: ImageRef) -> bool:
    """Whether ``ref`` lives under ``prefix`` (a registry, or registry/repository path).

    The match is on path segments: ``registry.example.com/team`` allows
    ``registry.example.com/team/app`` but not ``registry.example.com/teamx``.
    A prefix with a wildcard is matched as a glob instead.
    """
    prefix = prefix.rstrip("/")
    if any(c in _WILDCARDS for c in prefix):
        return glob_matches(prefix, ref) or glob_matches(prefix + "/*", ref)
    return any(n == prefix or n.startswith(prefix + "/") for n in image_names(ref))


def compile_regex(pattern: str) -> re.Pattern[str]:
    """Compile a user regex once, ``$`` as in Go; ``re.error`` propagates for the caller."""
    return compile_user_regex(pattern)


def tag_matches(pattern: str, tag: str) -> bool:
    """Whether the tag regex ``pattern`` matches the whole ``tag``."""
    return compile_regex(pattern).fullmatch(tag) is not None


def check_regex(pattern: str) -> str:
    """Validate a regex for pydantic: the pattern, or ``ValueError`` saying why it is invalid."""
    try:
        compile_regex(pattern)
    except re.error as e:
        raise ValueError(f"invalid regular expression {pattern!r}: {why_not_compiled(e)}"
                         ) from None
    return pattern
