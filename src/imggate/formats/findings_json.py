"""imggate's own normalised findings JSON (``imggate convert --to json``).

One object: ``format`` (``imggate-findings/1``), ``image``, ``operating_system``,
``scanners`` and ``findings``, each finding every field of
:class:`~imggate.models.Finding` with enums as their string values. Keys are
always present (``null`` when unknown) so consumers need no defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from imggate.models import Finding, ScannerInfo

FORMAT = "imggate-findings/1"


def finding_dict(f: Finding) -> dict[str, Any]:
    """``f`` as plain JSON values."""
    return {
        "id": f.id,
        "aliases": list(f.aliases),
        "package": f.package,
        "version": f.version,
        "package_type": f.package_type,
        "purl": f.purl,
        "severity": f.severity.value,
        "fix_state": f.fix_state.value,
        "fixed_versions": list(f.fixed_versions),
        "cvss": [{"source": c.source, "version": c.version, "vector": c.vector,
                  "score": c.score} for c in f.cvss],
        "epss": f.epss,
        "title": f.title,
        "description": f.description,
        "links": list(f.links),
        "layer": f.layer,
        "path": f.path,
        "sources": list(f.sources),
    }


def render(
    findings: Sequence[Finding],
    *,
    image: str | None,
    operating_system: str | None,
    scanners: Sequence[ScannerInfo],
) -> dict[str, Any]:
    """The normalised document for ``findings`` (already merged) in ``image``."""
    return {
        "format": FORMAT,
        "image": image,
        "operating_system": operating_system,
        "scanners": [{"name": s.name, "version": s.version, "vendor": s.vendor}
                     for s in dict.fromkeys(scanners)],
        "findings": [finding_dict(f) for f in findings],
    }
