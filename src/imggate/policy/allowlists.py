"""Allowlists in the formats users already have, read (never rewritten) as exceptions.

=============================  ==============================================
file                           format
=============================  ==============================================
``.trivyignore``               one id per line, ``exp:YYYY-MM-DD``, ``#`` comments
``.trivyignore.yaml``          Trivy's YAML (``vulnerabilities: [{id, paths,
                               purls, statement, expired_at}]``)
``vulnerability-allowlist.yml`` GitLab's (``generalallowlist``, ``images``)
``*.json``                     OpenVEX
any other ``*.yaml``/``*.yml`` imggate's ``exceptions: [...]``
=============================  ==============================================
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from imggate.errors import ConfigError
from imggate.policy import _yaml
from imggate.policy.exceptions import AllowEntry, ExceptionsDocument, ExceptionSet, from_models

#: Files read from the working directory when present, as Trivy and GitLab do.
DISCOVERED = (".trivyignore", ".trivyignore.yaml", ".trivyignore.yml",
              "vulnerability-allowlist.yml", "vulnerability-allowlist.yaml")
#: ``.trivyignore`` files are read up to this size (a million ids is ~20 MB).
MAX_TRIVYIGNORE_BYTES = 64 * 1024 * 1024
_GITLAB_GENERAL = ("generalallowlist", "generalwhitelist")


def parse_trivyignore(text: str, source: str) -> ExceptionSet:
    """``.trivyignore``: an id per line, optional ``exp:YYYY-MM-DD``; comments give the reason.

    Trivy treats the line's id as ignored until the expiry date; so do we.
    """
    entries = []
    comment: list[str] = []
    default_reason = "listed in .trivyignore"
    # One pass, no work beyond what a line needs: a million-line file is read in seconds.
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            comment = []
            continue
        if line[0] == "#":
            comment.append(line.lstrip("#").strip())
            continue
        fields = (line.split("#", 1)[0] if "#" in line else line).split()
        expires: date | None = None
        for token in fields[1:]:
            if token.startswith("exp:"):
                try:
                    expires = date.fromisoformat(token[4:])
                except ValueError:
                    raise ConfigError(f"invalid expiry {token!r} (expected exp:YYYY-MM-DD)",
                                      location=f"{source}:{n}") from None
        reason = (" ".join(c for c in comment if c) or default_reason) if comment \
            else default_reason
        entries.append(AllowEntry(ids=(fields[0],), reason=reason, source=f"{source}:{n}",
                                  kind="trivyignore", expires=expires))
        if comment:
            comment = []
    return ExceptionSet(tuple(entries))


class _TrivyVuln(BaseModel):
    # Trivy's own format: tolerate keys we do not use. Built when first used (defer_build):
    # a run that reads no .trivyignore.yaml never pays for it.
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    id: str = Field(min_length=1)
    paths: tuple[str, ...] = ()
    purls: tuple[str, ...] = ()
    statement: str | None = None
    expired_at: date | None = None


class _TrivyIgnore(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    vulnerabilities: tuple[_TrivyVuln, ...] = ()


def parse_trivyignore_yaml(doc: _yaml.YamlDoc) -> ExceptionSet:
    """``.trivyignore.yaml``: the ``vulnerabilities`` section (others are not about CVEs)."""
    model = _yaml.validate(_TrivyIgnore, doc, {} if doc.data is None else doc.data)
    return ExceptionSet(tuple(
        AllowEntry(ids=(v.id,), reason=v.statement or "listed in .trivyignore.yaml",
                   source=doc.where(("vulnerabilities", i)), kind="trivyignore",
                   expires=v.expired_at, purls=v.purls, paths=v.paths)
        for i, v in enumerate(model.vulnerabilities)))


def _gitlab_section(doc: _yaml.YamlDoc, value: Any, loc: tuple[str, ...],
                    images: tuple[str, ...]) -> list[AllowEntry]:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise doc.error(loc, "expected a mapping of vulnerability id to comment")
    out = []
    for vid, note in value.items():
        if not isinstance(vid, str) or not vid.strip():
            raise doc.error((*loc, str(vid)), "expected a vulnerability id")
        reason = str(note).strip() if note not in (None, "") else \
            "listed in vulnerability-allowlist.yml"
        out.append(AllowEntry(ids=(vid.strip(),), reason=reason,
                              source=doc.where((*loc, vid)), kind="gitlab-allowlist",
                              images=images))
    return out


def parse_gitlab_allowlist(doc: _yaml.YamlDoc) -> ExceptionSet:
    """GitLab's ``vulnerability-allowlist.yml``.

    ``generalallowlist`` applies to every image; ``images`` maps an image
    name (every tag) or ``name:tag`` to ids. The value after an id is a comment.
    """
    data = doc.data or {}
    if not isinstance(data, dict):
        raise doc.error((), "expected a mapping with generalallowlist and/or images")
    entries: list[AllowEntry] = []
    for key, value in data.items():
        if key in _GITLAB_GENERAL:
            entries += _gitlab_section(doc, value, (key,), ())
        elif key == "images":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise doc.error((key,), "expected a mapping of image name to ids")
            for image, ids in value.items():
                entries += _gitlab_section(doc, ids, (key, str(image)), (str(image),))
        else:
            raise doc.error((str(key),), "unknown key (expected generalallowlist or images)")
    return ExceptionSet(tuple(entries))


def parse_imggate_exceptions(doc: _yaml.YamlDoc) -> ExceptionSet:
    """imggate's own exceptions file (``exceptions: [...]``)."""
    model = _yaml.validate(ExceptionsDocument, doc, {} if doc.data is None else doc.data)
    where = [doc.where(("exceptions", i)) for i in range(len(model.exceptions))]
    return from_models(model.exceptions, where)


def load_allowlist(path: Path) -> ExceptionSet:
    """Read one allowlist file, choosing the format by its name (see the module table)."""
    name = path.name.lower()
    if not path.exists():
        raise ConfigError(f"{path}: allowlist file not found")
    if name.endswith(".json"):
        # OpenVEX's models are built only when a VEX document is given (~6 ms).
        from imggate.policy.vex import load_openvex

        return load_openvex(path)
    if name == ".trivyignore" or name.endswith(".trivyignore"):
        return parse_trivyignore(_yaml.read_text(path, MAX_TRIVYIGNORE_BYTES), str(path))
    if name.endswith((".yaml", ".yml")):
        doc = _yaml.read_yaml(path)
        if name.endswith((".trivyignore.yaml", ".trivyignore.yml")):
            return parse_trivyignore_yaml(doc)
        if name.startswith("vulnerability-allowlist"):
            return parse_gitlab_allowlist(doc)
        return parse_imggate_exceptions(doc)
    raise ConfigError(f"{path}: unknown allowlist format",
                      hint="use .trivyignore, .trivyignore.yaml, vulnerability-allowlist.yml, "
                           "an OpenVEX .json or an imggate exceptions .yaml")


def load_allowlists(paths: Iterable[Path]) -> ExceptionSet:
    """Read several allowlist files (each once, in order)."""
    result = ExceptionSet()
    for p in dict.fromkeys(paths):
        result = result + load_allowlist(p)
    return result


def discover_allowlists(directory: Path) -> tuple[Path, ...]:
    """The allowlists Trivy and GitLab would pick up from ``directory``."""
    return tuple(directory / n for n in DISCOVERED if (directory / n).is_file())
