"""Real scanner reports from ``tests/fixtures`` and independent ways to count them.

The expected counts are computed here straight from the raw JSON, without
imggate's adapters, so the tests compare two independent readings.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from fixture_paths import FIXTURES as _FIXTURES

FIXTURES = _FIXTURES
SCHEMA = FIXTURES / "schema" / "container-scanning-report-format.json"

TRIVY_JSON = sorted((FIXTURES / "trivy").glob("*.json"))
TRIVY_LEGACY = sorted((FIXTURES / "trivy" / "legacy").glob("*.json"))
TRIVY_SARIF = sorted((FIXTURES / "trivy" / "other-formats").glob("*.sarif.json"))
TRIVY_CDX = sorted((FIXTURES / "trivy" / "other-formats").glob("*.cyclonedx.json"))
GRYPE = sorted((FIXTURES / "grype").glob("*.json"))
GITLAB = sorted((FIXTURES / "gitlab-cs").glob("*.json"))

#: (path, kind the detector must choose)
ALL_REPORTS: list[tuple[Path, str]] = (
    [(p, "trivy") for p in TRIVY_JSON + TRIVY_LEGACY]
    + [(p, "trivy-sarif") for p in TRIVY_SARIF]
    + [(p, "cyclonedx") for p in TRIVY_CDX]
    + [(p, "grype") for p in GRYPE]
    + [(p, "gitlab") for p in GITLAB]
)


def load(path: Path) -> Any:
    """The decoded JSON of ``path``."""
    return json.loads(path.read_text(encoding="utf-8"))


def fixture_id(path: Path) -> str:
    """A short test id: the path under ``fixtures/``."""
    return str(path.resolve().relative_to(FIXTURES.resolve()))


def raw_keys(path: Path, kind: str) -> set[tuple[str, str, str]]:
    """Unique (vulnerability, package, version) entries of the raw report."""
    doc = load(path)
    if kind == "trivy":
        results = doc if isinstance(doc, list) else doc.get("Results") or []
        return {(v["VulnerabilityID"], v["PkgName"], v.get("InstalledVersion", ""))
                for r in results for v in r.get("Vulnerabilities") or []}
    if kind == "grype":
        return {(m["vulnerability"]["id"], m["artifact"]["name"], m["artifact"]["version"])
                for m in doc["matches"]}
    if kind == "gitlab":
        out = set()
        for v in doc["vulnerabilities"]:
            ids = [i["value"] for i in v["identifiers"]]
            primary = v.get("cve") or next(
                (i["value"] for i in v["identifiers"] if i["type"] == "cve"), ids[0])
            dep = v["location"]["dependency"]
            out.add((primary, dep["package"]["name"], dep["version"]))
        return out
    if kind == "trivy-sarif":
        out = set()
        for run in doc["runs"]:
            for res in run["results"]:
                lines = dict(line.split(": ", 1) for line in res["message"]["text"].splitlines()
                             if ": " in line)
                out.add((res["ruleId"], lines["Package"], lines["Installed Version"]))
        return out
    if kind == "cyclonedx":
        out = set()
        for v in doc["vulnerabilities"]:
            for a in v["affects"]:
                purl = a["ref"].split("#", 1)[1]
                name = unquote(purl.split("?")[0].split("@")[0].rsplit("/", 1)[1])
                out.add((v["id"], name, a["versions"][0]["version"]))
        return out
    raise AssertionError(kind)


@cache
def schema() -> dict[str, Any]:
    """GitLab's container-scanning report schema 15.2.1."""
    result: dict[str, Any] = load(SCHEMA)
    return result


def schema_errors(doc: dict[str, Any]) -> list[str]:
    """Every way ``doc`` breaks the 15.2.1 schema (empty when valid)."""
    import jsonschema

    validator = jsonschema.Draft7Validator(schema())
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]
