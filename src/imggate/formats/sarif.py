"""SARIF 2.1.0 for code-scanning dashboards (``imggate convert --to sarif``).

One rule per vulnerability id, one result per finding. Results carry the
package data twice: in the message text, in the ``Package: …`` lines Trivy
uses (so tools that read Trivy's SARIF read ours), and in
``result.properties`` (which :mod:`imggate.scanners.trivy_sarif` reads
first, so imggate's SARIF converts back losslessly for gating purposes).
``security-severity`` follows GitHub's convention: the highest CVSS score,
else a score typical of the rating.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from imggate import __version__
from imggate.models import Finding, ScannerInfo, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

_LEVEL = {
    Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning",
    Severity.LOW: "note", Severity.INFO: "note", Severity.UNKNOWN: "warning",
}
_TYPICAL_SCORE = {
    Severity.CRITICAL: 9.5, Severity.HIGH: 8.0, Severity.MEDIUM: 5.5,
    Severity.LOW: 2.0, Severity.INFO: 0.0, Severity.UNKNOWN: 0.0,
}


def _security_severity(f: Finding) -> str:
    score = f.max_cvss
    return f"{score if score is not None else _TYPICAL_SCORE[f.severity]:.1f}"


def _rule(f: Finding) -> dict[str, Any]:
    title = f.title or f"{f.id} in {f.package}"
    rule: dict[str, Any] = {
        "id": f.id,
        "name": "ContainerImageVulnerability",
        "shortDescription": {"text": title},
        "fullDescription": {"text": f.description or title},
        "defaultConfiguration": {"level": _LEVEL[f.severity]},
        "properties": {
            "security-severity": _security_severity(f),
            "tags": ["vulnerability", "security", f.severity.value.upper()],
        },
    }
    if f.links:
        rule["helpUri"] = f.links[0]
    return rule


def _message(f: Finding) -> str:
    lines = [f"Package: {f.package}", f"Installed Version: {f.version}",
             f"Vulnerability {f.id}", f"Severity: {f.severity.value.upper()}"]
    if f.fixed_versions:
        lines.append(f"Fixed Version: {', '.join(f.fixed_versions)}")
    return "\n".join(lines)


def render(
    findings: Sequence[Finding],
    *,
    image: str,
    scanners: Sequence[ScannerInfo] = (),
) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run for ``findings`` (already merged) in ``image``."""
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results = []
    for f in findings:
        if f.id not in index:
            index[f.id] = len(rules)
            rules.append(_rule(f))
        uri = f.path or image
        results.append({
            "ruleId": f.id,
            "ruleIndex": index[f.id],
            "level": _LEVEL[f.severity],
            "message": {"text": _message(f)},
            "locations": [{
                "physicalLocation": {"artifactLocation": {"uri": uri}},
                "message": {"text": f"{uri}: {f.package}@{f.version}"},
            }],
            "properties": {
                "package": f.package,
                "version": f.version,
                "severity": f.severity.value,
                "fixedVersion": ", ".join(f.fixed_versions) or None,
                "fixState": f.fix_state.value,
                "sources": list(f.sources),
            },
        })
    return {
        "version": "2.1.0",
        "$schema": SARIF_SCHEMA,
        "runs": [{
            "tool": {"driver": {
                "name": "imggate",
                "version": __version__,
                "informationUri": "https://github.com/imggate/imggate",
                "rules": rules,
            }},
            "results": results,
            "properties": {
                "imageName": image,
                "scanners": [f"{s.name} {s.version}" if s.version else s.name
                             for s in dict.fromkeys(scanners)],
            },
        }],
    }
