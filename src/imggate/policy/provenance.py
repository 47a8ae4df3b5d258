"""Where an image came from: the facts of one verified SLSA provenance, and the rule over them.

A provenance attestation states its builder and source in the signed predicate;
a Fulcio certificate states the source repository, ref and workflow of the CI
run that signed it (:data:`imggate.signatures.keyless.FULCIO_CLAIMS`). The
certificate is what the CI system vouched for; the predicate is what the build
wrote. Where both state a source repository or ref they must agree: a
predicate claiming another repository than its certificate is a forgery (or a
builder that lies), and never counts.

Read from the predicate:

* SLSA v1 (``https://slsa.dev/provenance/v1``): ``runDetails.builder.id``;
  ``buildDefinition.externalParameters.workflow.repository``/``ref``/``path``
  (GitHub's build types); the first ``git+`` URI of
  ``buildDefinition.resolvedDependencies`` (``git+https://host/o/r@ref``).
* SLSA v0.2 (slsa-github-generator): ``builder.id``;
  ``invocation.configSource.uri`` (``git+https://host/o/r@ref``) and
  ``invocation.configSource.entryPoint``.

Patterns are shell globs (``*`` crosses ``/``) matched case-sensitively against
values with their URI scheme (``https://``, ``git+https://``) removed on both
sides, so ``github.com/acme/*`` and ``https://github.com/acme/*`` mean the
same. A workflow pattern matches the workflow's whole URI, with or without its
``@ref``, or its path in the repository (``.github/workflows/release.yml``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from msgspec import Struct

#: The predicate types the provenance rule reads.
SLSA_V1 = "https://slsa.dev/provenance/v1"
SLSA_V02 = "https://slsa.dev/provenance/v0.2"
PROVENANCE_TYPES = (SLSA_V1, SLSA_V02)

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_MAX_VALUE = 2048


def strip_scheme(value: str) -> str:
    """``git+https://github.com/o/r`` -> ``github.com/o/r`` (and no trailing ``.git`` or ``/``)."""
    text = _SCHEME.sub("", value.strip())
    text = text.removesuffix("/")
    return text.removesuffix(".git")


def _git_uri(value: str) -> tuple[str, str | None]:
    """A ``git+https://host/o/r@ref`` URI as (repository, ref); the ref may be absent."""
    text = strip_scheme(value)
    # The ref follows the last "@" after the host: repository paths have no "@".
    host_end = text.find("/")
    at = text.rfind("@")
    if at > host_end >= 0:
        return strip_scheme(text[:at]), text[at + 1:] or None
    return text, None


def _get(doc: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value and len(value) <= _MAX_VALUE else None


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class Stated(Struct, frozen=True):
    """One value and where it was stated (``certificate Source Repository URI``, a path)."""

    value: str
    where: str


class ProvenanceFacts(Struct, frozen=True):
    """What one verified provenance attestation (and its certificate) say about a build."""

    predicate_type: str
    builder: Stated | None
    repositories: tuple[Stated, ...]
    refs: tuple[Stated, ...]
    workflows: tuple[Stated, ...]


def read_facts(predicate_type: str, predicate: Mapping[str, Any],
               claims: Mapping[str, str]) -> ProvenanceFacts:
    """The facts of a verified provenance: predicate values and certificate claims."""
    p = dict(predicate)
    repos: list[Stated] = []
    refs: list[Stated] = []
    workflows: list[Stated] = []
    if (v := _text(claims.get("source_repository_uri"))) is not None:
        repos.append(Stated(strip_scheme(v), "certificate Source Repository URI"))
    if (v := _text(claims.get("source_repository_ref"))) is not None:
        refs.append(Stated(v, "certificate Source Repository Ref"))
    for key, label in (("build_config_uri", "certificate Build Config URI"),
                       ("build_signer_uri", "certificate Build Signer URI")):
        if (v := _text(claims.get(key))) is not None:
            workflows.append(Stated(strip_scheme(v), label))
    builder_id: Any
    if predicate_type == SLSA_V1:
        builder_id = _get(p, "runDetails", "builder", "id")
        where_builder = "runDetails.builder.id"
        wf = _get(p, "buildDefinition", "externalParameters", "workflow")
        base = "buildDefinition.externalParameters.workflow"
        wf_repo = _text(_get(wf, "repository"))
        if wf_repo is not None:
            repos.append(Stated(strip_scheme(wf_repo), f"{base}.repository"))
        if (v := _text(_get(wf, "ref"))) is not None:
            refs.append(Stated(v, f"{base}.ref"))
        path = _text(_get(wf, "path"))
        if path is not None and not workflows and wf_repo is not None:
            # A key-signed provenance has no certificate: its own word is all there is.
            workflows.append(Stated(f"{strip_scheme(wf_repo)}/{path}", f"{base}.path"))
        deps = _get(p, "buildDefinition", "resolvedDependencies")
        for i, dep in enumerate(deps if isinstance(deps, list) else ()):
            uri = _text(_get(dep, "uri"))
            if uri is not None and uri.startswith("git+"):
                repo, ref = _git_uri(uri)
                where = f"buildDefinition.resolvedDependencies[{i}].uri"
                repos.append(Stated(repo, where))
                if ref is not None:
                    refs.append(Stated(ref, where))
                break
    else:
        builder_id = _get(p, "builder", "id")
        where_builder = "builder.id"
        uri = _text(_get(p, "invocation", "configSource", "uri"))
        if uri is not None:
            repo, ref = _git_uri(uri)
            repos.append(Stated(repo, "invocation.configSource.uri"))
            if ref is not None:
                refs.append(Stated(ref, "invocation.configSource.uri"))
            entry = _text(_get(p, "invocation", "configSource", "entryPoint"))
            if entry is not None and not workflows:
                workflows.append(Stated(f"{repo}/{entry}", "invocation.configSource.entryPoint"))
    bid = _text(builder_id)
    return ProvenanceFacts(predicate_type, Stated(bid, where_builder) if bid else None,
                           tuple(repos), tuple(refs), tuple(workflows))


def _workflow_forms(value: str) -> tuple[str, ...]:
    """A workflow URI as it may be written: whole, without ``@ref``, and its path alone."""
    base = value.split("@", 1)[0]
    parts = base.split("/", 3)  # host, owner, repo, path
    forms = [value, base]
    if len(parts) == 4:
        forms.append(parts[3])
    return tuple(forms)


def _matches(patterns: Sequence[str], forms: Sequence[str]) -> bool:
    return any(fnmatchcase(f, strip_scheme(p)) for p in patterns for f in forms)


def _shown(patterns: Sequence[str]) -> str:
    return "[" + ", ".join(patterns) + "]"


def _agreed(name: str, stated: Sequence[Stated], fold: bool) -> tuple[str | None, str | None]:
    """(the value every source states, or a forgery message naming who said what)."""
    if not stated:
        return None, None
    first = stated[0]
    for other in stated[1:]:
        a, b = (first.value.lower(), other.value.lower()) if fold else (first.value, other.value)
        if a != b:
            return None, (f"{name}: {other.where} says {other.value[:200]!r} but "
                          f"{first.where} says {first.value[:200]!r}: the provenance "
                          "contradicts its signing certificate (forged or mismatched)")
    return first.value, None


def violations(facts: ProvenanceFacts, *, builders: Sequence[str],
               source_repositories: Sequence[str], source_refs: Sequence[str],
               workflows: Sequence[str]) -> list[str]:
    """Every way ``facts`` break the rule; each names the field, the patterns and the value."""
    out: list[str] = []
    repo, why = _agreed("source_repositories", facts.repositories, fold=True)
    if why:
        out.append(why)
    ref, why_ref = _agreed("source_refs", facts.refs, fold=False)
    if why_ref:
        out.append(why_ref)
    if builders:
        if facts.builder is None:
            out.append(f"builders: expected one of {_shown(builders)}, but the provenance "
                       "states no builder id")
        elif not _matches(builders, (strip_scheme(facts.builder.value),)):
            out.append(f"builders: expected one of {_shown(builders)}, found "
                       f"{facts.builder.value[:200]!r} ({facts.builder.where})")
    if source_repositories and not why:
        if repo is None:
            out.append(f"source_repositories: expected one of {_shown(source_repositories)}, "
                       "but neither the certificate nor the predicate states a repository")
        elif not _matches([p.lower() for p in source_repositories], (repo.lower(),)):
            where = ", ".join(s.where for s in facts.repositories)
            out.append(f"source_repositories: expected one of {_shown(source_repositories)}, "
                       f"found {repo[:200]!r} ({where})")
    if source_refs and not why_ref:
        if ref is None:
            out.append(f"source_refs: expected one of {_shown(source_refs)}, but neither "
                       "the certificate nor the predicate states a ref")
        elif not any(fnmatchcase(ref, p) for p in source_refs):
            where = ", ".join(s.where for s in facts.refs)
            out.append(f"source_refs: expected one of {_shown(source_refs)}, found "
                       f"{ref[:200]!r} ({where})")
    if workflows:
        if not facts.workflows:
            out.append(f"workflows: expected one of {_shown(workflows)}, but no workflow is "
                       "stated (no Fulcio build claims)")
        elif not any(_matches(workflows, _workflow_forms(w.value)) for w in facts.workflows):
            found = "; ".join(f"{w.value[:200]!r} ({w.where})" for w in facts.workflows)
            out.append(f"workflows: expected one of {_shown(workflows)}, found {found}")
    return out


def summary(facts: ProvenanceFacts) -> str:
    """One line: builder, source and workflow, for a passing rule's message."""
    parts = []
    if facts.builder is not None:
        parts.append(f"builder {facts.builder.value[:200]}")
    if facts.repositories:
        src = facts.repositories[0].value
        if facts.refs:
            src += f"@{facts.refs[0].value}"
        parts.append(f"source {src[:300]}")
    if facts.workflows:
        parts.append(f"workflow {facts.workflows[0].value[:300]}")
    return ", ".join(parts) or "no builder or source stated"
