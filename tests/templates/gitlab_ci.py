"""A small model of how GitLab assembles a pipeline: ``include`` then ``extends``.

GitLab merges included files under the including one (the including file's
keys win, hashes deep-merged), then resolves ``extends`` the same way (the
job's own keys win; arrays are replaced, not concatenated). Enough of that
to check that our template and examples resolve to complete jobs; the
resolved jobs are validated against GitLab's own schema (``ci.json``).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from fixture_paths import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "templates" / "imggate.gitlab-ci.yml"
RESERVED = {"default", "include", "stages", "variables", "workflow", "image", "services",
            "cache", "before_script", "after_script", "spec", "pages"}


@cache
def schema() -> dict[str, Any]:
    """GitLab's JSON schema for ``.gitlab-ci.yml`` (copied into tests/fixtures)."""
    doc: dict[str, Any] = json.loads((FIXTURES / "gitlab-ci" / "ci.json").read_text())
    return doc


def deep_merge(base: Any, over: Any) -> Any:
    """GitLab's merge: hashes merged key by key, anything else replaced by ``over``."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base[k], v) if k in base else v
        return out
    return over


def _included(entry: dict[str, Any], here: Path) -> Path:
    if "local" in entry:
        return ROOT / entry["local"].lstrip("/")
    if "project" in entry:  # the project that hosts imggate: this repository
        assert entry["project"] and entry["ref"], entry
        return ROOT / entry["file"].lstrip("/")
    if "remote" in entry:
        assert entry["remote"].startswith("https://"), entry
        return ROOT / "templates" / Path(entry["remote"]).name
    raise AssertionError(f"{here}: include kind not modelled: {entry}")


def load(path: Path) -> dict[str, Any]:
    """The file with its includes merged in (includes first, this file over them)."""
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    merged: dict[str, Any] = {}
    includes = doc.pop("include", [])
    for entry in includes if isinstance(includes, list) else [includes]:
        target = _included(entry if isinstance(entry, dict) else {"local": entry}, path)
        assert target.is_file(), f"{path}: include {entry} does not resolve"
        merged = deep_merge(merged, load(target))
    return deep_merge(merged, doc)


def resolve_job(doc: dict[str, Any], name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """``doc[name]`` with its ``extends`` chain merged under it."""
    assert name in doc, f"extends: no job or template {name!r}"
    assert name not in seen, f"extends loop: {seen}"
    job = dict(doc[name])
    parents = job.pop("extends", [])
    base: dict[str, Any] = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        base = deep_merge(base, resolve_job(doc, parent, (*seen, name)))
    return deep_merge(base, job)


def jobs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every visible job of ``doc``, resolved."""
    return {k: resolve_job(doc, k) for k in doc
            if k not in RESERVED and not k.startswith(".")}
