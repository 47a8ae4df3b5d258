"""Parse and normalise image references the way docker does.

``nginx`` -> ``docker.io/library/nginx``; ``localhost:5000/app:1.0``;
``ghcr.io/org/app@sha256:…``; ``app:1.0@sha256:…`` (tag kept for display,
digest wins). ``oci:PATH[:TAG|@DIGEST]`` names an OCI image layout directory.
Anything docker would reject is an :class:`InvalidReference` naming the bad part.
"""

from __future__ import annotations

import re

from imggate.errors import InvalidReference
from imggate.models import Digest, ImageRef

DEFAULT_REGISTRY = "docker.io"
_LEGACY_HUB = {"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
MAX_NAME_LENGTH = 255
MAX_REFERENCE_LENGTH = 4096

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]")
_PORT = re.compile(r"[0-9]{1,5}")


def parse_reference(text: str) -> ImageRef:
    """Parse ``text`` into a normalised :class:`ImageRef` or raise :class:`InvalidReference`."""
    if not isinstance(text, str) or not text:
        raise InvalidReference("empty image reference")
    if len(text) > MAX_REFERENCE_LENGTH:
        raise InvalidReference(f"image reference is {len(text)} characters long (limit "
                               f"{MAX_REFERENCE_LENGTH})")
    if text != text.strip() or any(map(str.isspace, text)):
        raise InvalidReference(f"image reference {text[:200]!r} contains whitespace")
    if text.startswith("oci:"):
        return _parse_layout(text)
    return _parse_registry(text)


def _parse_digest(text: str, whole: str) -> Digest:
    try:
        return Digest.parse(text)
    except ValueError as e:
        raise InvalidReference(f"{whole[:200]!r}: {e}") from None


def _parse_registry(text: str) -> ImageRef:
    rest, digest = text, None
    if "@" in rest:
        rest, _, dg = rest.partition("@")
        digest = _parse_digest(dg, text)
    # A tag follows the last ':' only when no '/' comes after it (else it is a port).
    tag = None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise InvalidReference(
                f"{text[:200]!r}: invalid tag {tag[:130]!r}: tags are 1-128 characters of "
                "letters, digits, '_', '.' and '-', not starting with '.' or '-'"
            )
    if not rest:
        raise InvalidReference(f"{text[:200]!r}: missing repository name")
    registry, path = _split_domain(rest, text)
    if len(path) + (len(registry) + 1 if registry != DEFAULT_REGISTRY else 0) > MAX_NAME_LENGTH:
        raise InvalidReference(f"{text[:200]!r}: repository name longer than "
                               f"{MAX_NAME_LENGTH} characters")
    for comp in path.split("/"):
        if not comp:
            raise InvalidReference(f"{text[:200]!r}: empty path component in {path!r}")
        if comp.lower() != comp and _COMPONENT.fullmatch(comp.lower()):
            raise InvalidReference(
                f"{text[:200]!r}: repository name {path!r} must be lowercase")
        if not _COMPONENT.fullmatch(comp):
            raise InvalidReference(
                f"{text[:200]!r}: invalid repository path component {comp[:100]!r}: "
                "lowercase letters, digits and single separators ('.', '_', '__', '-') only"
            )
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    return ImageRef(registry=registry, repository=path, tag=tag, digest=digest)


def _split_domain(name: str, whole: str) -> tuple[str, str]:
    first, sep, remainder = name.partition("/")
    is_domain = bool(sep) and (_looks_like_domain(first) or first.lower() != first)
    if not is_domain:
        return DEFAULT_REGISTRY, name
    _check_domain(first, whole)
    registry = first
    lowered = first.lower()
    if not _IPV6.match(first) and _looks_like_domain(lowered):
        registry = lowered
    # else: like docker, keep ``VM`` as written: only its capitals make it a host,
    # and a printed ``vm/app`` would name docker.io/vm/app instead.
    if registry in _LEGACY_HUB:
        registry = DEFAULT_REGISTRY
    return registry, remainder


def reads_as_hub_repository(repository: str) -> bool:
    """Whether ``repository``, written without a registry, would be read back as a Docker
    Hub repository (its first segment does not name a host: ``team/app``, not
    ``registry.k8s.io/app``). Only then is it a name the Docker Hub image goes by."""
    first, sep, _ = repository.partition("/")
    return not sep or not (_looks_like_domain(first) or first.lower() != first)


def _looks_like_domain(first: str) -> bool:
    """Whether ``first/…`` names a registry host even when written in lowercase."""
    return "." in first or ":" in first or first == "localhost"


def _check_domain(domain: str, whole: str) -> None:
    host, port = domain, None
    if domain.startswith("["):
        end = domain.find("]")
        host = domain[: end + 1] if end != -1 else domain
        if end != -1 and domain[end + 1:].startswith(":"):
            port = domain[end + 2:]
        if not _IPV6.fullmatch(host) or (end != -1 and domain[end + 1:] and port is None):
            raise InvalidReference(f"{whole[:200]!r}: invalid registry host {domain!r}")
    else:
        if ":" in domain:
            host, _, port = domain.partition(":")
        labels = host.split(".")
        if not host or not all(_DOMAIN_LABEL.fullmatch(lbl) for lbl in labels):
            raise InvalidReference(f"{whole[:200]!r}: invalid registry host {host[:100]!r}")
    if port is not None and (not _PORT.fullmatch(port) or not 0 < int(port) < 65536):
        raise InvalidReference(f"{whole[:200]!r}: invalid registry port {port[:20]!r}")


def _parse_layout(text: str) -> ImageRef:
    rest = text[len("oci:"):]
    digest = None
    tag = None
    if "@" in rest:
        rest, _, dg = rest.rpartition("@")
        digest = _parse_digest(dg, text)
    else:
        # ``oci:PATH:TAG``; a colon inside PATH is allowed only with an explicit tag.
        head, sep, maybe = rest.rpartition(":")
        if sep and head and "/" not in maybe:
            if not _TAG.fullmatch(maybe):
                raise InvalidReference(f"{text[:200]!r}: invalid tag {maybe[:130]!r}")
            rest, tag = head, maybe
    if not rest:
        raise InvalidReference(f"{text[:200]!r}: missing OCI layout path")
    return ImageRef(registry="", repository="", tag=tag, digest=digest, source="oci-layout",
                    layout_path=rest)
