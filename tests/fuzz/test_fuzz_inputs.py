"""Fuzz targets over every input imggate parses, seeded from real files and mutated.

The rule: nothing but :class:`imggate.errors.Error` escapes a parser or loader,
and the verifiers documented as never raising return a failed check instead.
Examples per target: ``IMGGATE_FUZZ_EXAMPLES`` (see ``mutate.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
from functools import cache
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from fixture_paths import FIXTURES
from fuzz.mutate import FUZZ, mutated_bytes, mutated_json
from imggate.errors import Error
from imggate.models import Digest
from imggate.policy import _yaml
from imggate.policy.allowlists import (
    parse_gitlab_allowlist,
    parse_imggate_exceptions,
    parse_trivyignore,
    parse_trivyignore_yaml,
)
from imggate.policy.loader import parse_rules
from imggate.policy.vex import parse_openvex
from imggate.registry.layout import OciLayout
from imggate.registry.reference import parse_reference
from imggate.registry.resolve import resolve_image
from imggate.scanners.detect import KINDS, parse_report

REPO = Path(__file__).resolve().parents[2]
REPORTS = sorted(p for d in ("trivy", "grype", "gitlab-cs") for p in (FIXTURES / d).rglob("*.json")
                 if p.stat().st_size < 300_000)


@cache
def _report_bytes() -> tuple[bytes, ...]:
    return tuple(p.read_bytes() for p in REPORTS)


@cache
def _report_docs() -> tuple[object, ...]:
    return tuple(json.loads(b) for b in _report_bytes())


# ----------------------------------------------------------------- references

REFERENCES = [
    "nginx", "nginx:1.25", "library/nginx@sha256:" + "a" * 64, "docker.io/library/nginx:latest",
    "registry.example.com:5000/team/app:v1.2.3", "ghcr.io/o/r:tag@sha256:" + "b" * 64,
    "[::1]:5000/app:1", "localhost/app", "oci:/tmp/layout:tag", "oci:./dir@sha256:" + "c" * 64,
    "UPPER/app:v1", "a/b/c/d/e:f",
]


@FUZZ
@given(text=mutated_bytes([r.encode() for r in REFERENCES]).map(
    lambda b: b.decode("utf-8", "surrogateescape")) | st.text(max_size=80))
def test_reference_parser(text: str) -> None:
    try:
        ref = parse_reference(text)
    except Error:
        return
    assert ref.repository or ref.source == "oci-layout"


# ----------------------------------------------------------------- scanner reports

@FUZZ
@pytest.mark.parametrize("kind", [None, *KINDS])
@given(data=st.data())
def test_scanner_readers(kind: str | None, data: st.DataObject) -> None:
    raw = data.draw(mutated_bytes(_report_bytes()) | mutated_json(_report_docs()))
    try:
        report = parse_report(raw, source="fuzz.json", kind=kind)
    except Error:
        return
    assert all(f.id for f in report.findings)


# ----------------------------------------------------------------- rules and allowlists

RULES = [REPO / "rules" / "default.yaml", *sorted((REPO / "rules" / "examples").glob("*.yaml"))]
ALLOWLISTS = {
    ".trivyignore.yaml": (parse_trivyignore_yaml,
                          "vulnerabilities:\n  - id: CVE-2024-0001\n    statement: Accept\n"
                          "    purls: ['pkg:deb/debian/openssl']\n  - id: CVE-2024-0002\n"
                          "    expired_at: 2026-01-01\n    paths: [usr/lib/x]\n"),
    "vulnerability-allowlist.yml": (parse_gitlab_allowlist,
                                    "generalallowlist:\n  CVE-2024-0001:\n  CVE-2024-0002: cups\n"
                                    "images:\n  registry.example.com/team/app:\n"
                                    "    CVE-2024-0003: openssl\n"),
    "exceptions.yaml": (parse_imggate_exceptions,
                        (REPO / "rules" / "examples" / "exceptions.yaml").read_text()),
}


def _yaml_seeds(texts: list[str]) -> st.SearchStrategy[str]:
    docs = [yaml.safe_load(t) for t in texts]
    as_yaml = mutated_json(docs, dump=lambda v: yaml.safe_dump(v).encode())
    return (mutated_bytes([t.encode() for t in texts]) | as_yaml).map(
        lambda b: b.decode("utf-8", "replace"))


@FUZZ
@given(text=_yaml_seeds([p.read_text() for p in RULES]))
def test_rules_loader(text: str) -> None:
    try:
        rules = parse_rules(text, "fuzz.yaml", REPO / "rules")
    except Error:
        return
    for name in rules.names:
        with contextlib.suppress(Error):
            rules.effective(name)


@FUZZ
@pytest.mark.parametrize("name", sorted(ALLOWLISTS))
@given(data=st.data())
def test_yaml_allowlist_loaders(name: str, data: st.DataObject) -> None:
    parse, seed = ALLOWLISTS[name]
    text = data.draw(_yaml_seeds([seed]))
    with contextlib.suppress(Error):
        parse(_yaml.parse_yaml(text, name))


TRIVYIGNORE = ("# openssl is not reachable\nCVE-2024-0001\n\nCVE-2024-0002 exp:2026-01-01\n"
               "CVE-2024-0003 # inline\nGHSA-xxxx-yyyy-zzzz exp:2025-12-31 # reason\n")
VEX = {
    "@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://example.com/vex/1",
    "author": "sec", "timestamp": "2026-10-01T00:00:00Z", "version": 1,
    "statements": [
        {"vulnerability": {"name": "CVE-2024-0001"}, "products": [
            {"@id": "pkg:oci/app?repository_url=registry.example.com/team/app",
             "subcomponents": [{"@id": "pkg:deb/debian/openssl"}]}],
         "status": "not_affected", "justification": "component_not_present"},
        {"vulnerability": "CVE-2024-0005", "products": ["pkg:oci/app"],
         "status": "under_investigation"},
    ],
}


@FUZZ
@given(text=mutated_bytes([TRIVYIGNORE.encode()]).map(lambda b: b.decode("utf-8", "replace")))
def test_trivyignore_loader(text: str) -> None:
    with contextlib.suppress(Error):
        parse_trivyignore(text, ".trivyignore")


@FUZZ
@given(raw=mutated_bytes([json.dumps(VEX).encode()]) | mutated_json([VEX]))
def test_openvex_loader(raw: bytes) -> None:
    with contextlib.suppress(Error):
        parse_openvex(raw, "fuzz.vex.json")


# ----------------------------------------------------------------- OCI layout

LAYOUT = FIXTURES / "cosign" / "att-slsa-generator-v1.9.0-intoto" / "oci-layout"
INDEX_BLOB = "5b146084201148bf151871fa779767f013c47706d031106af0d727fb5b88f5ac"


@FUZZ
@given(target=st.sampled_from(["index.json", "oci-layout", "manifest"]), data=st.data())
def test_oci_layout_reader(target: str, data: st.DataObject) -> None:
    """Mutated index.json / oci-layout, or a mutated manifest stored under its own digest
    (so it passes the digest check and reaches the parser)."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "lay"
        shutil.copytree(LAYOUT, copy)
        if target == "manifest":
            blob = copy / "blobs" / "sha256" / INDEX_BLOB
            raw = data.draw(mutated_bytes([blob.read_bytes()])
                            | mutated_json([json.loads(blob.read_bytes())]))
            digest = Digest.of(raw)
            (copy / "blobs" / "sha256" / digest.hex).write_bytes(raw)
            index = json.loads((copy / "index.json").read_text())
            index["manifests"][0]["digest"] = str(digest)
            index["manifests"][0]["size"] = len(raw)
            (copy / "index.json").write_text(json.dumps(index))
        else:
            path = copy / target
            path.write_bytes(data.draw(mutated_bytes([path.read_bytes()])
                                       | mutated_json([json.loads(path.read_bytes())])))
        ref = parse_reference(f"oci:{copy}")
        with contextlib.suppress(Error):
            asyncio.run(resolve_image(OciLayout(copy).repository(), ref, None))
