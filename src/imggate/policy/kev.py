"""CISA's Known Exploited Vulnerabilities catalog (the JSON feed), as a set of CVE ids."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from msgspec import Struct

from imggate._files import read_config_file
from imggate.errors import ConfigError

_MAX_KEV_BYTES = 64 * 1024 * 1024


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class KevCatalog(Struct, frozen=True):
    """CVE ids known to be exploited; ``sources`` says which files (and versions) they came from."""

    ids: frozenset[str]
    sources: tuple[str, ...] = ()

    def __contains__(self, vulnerability: object) -> bool:
        return isinstance(vulnerability, str) and vulnerability.upper() in self.ids

    def __or__(self, other: KevCatalog) -> KevCatalog:
        return KevCatalog(self.ids | other.ids, self.sources + other.sources)


def parse_kev(data: bytes, source: str) -> KevCatalog:
    """Parse ``known_exploited_vulnerabilities.json``; malformed input is a :class:`ConfigError`."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{source}: not valid JSON ({e})") from None
    except RecursionError:
        raise ConfigError(f"{source}: JSON nested too deeply") from None
    vulns = doc.get("vulnerabilities") if isinstance(doc, dict) else None
    if not isinstance(vulns, list):
        raise ConfigError(f"{source}: not a CISA KEV catalog (no 'vulnerabilities' list)")
    ids = set()
    for i, v in enumerate(vulns):
        cve = v.get("cveID") if isinstance(v, dict) else None
        if not isinstance(cve, str) or not cve.strip():
            raise ConfigError(f"{source}: vulnerabilities[{i}].cveID is missing")
        ids.add(cve.strip().upper())
    version = doc.get("catalogVersion")
    label = f"{source} (catalog {version})" if isinstance(version, str) else source
    return KevCatalog(frozenset(ids), (label,))


def load_kev(paths: Path | Iterable[Path]) -> KevCatalog:
    """Read one or several KEV files into one catalog."""
    result = KevCatalog(frozenset())
    for path in [paths] if isinstance(paths, Path) else dict.fromkeys(paths):
        data = read_config_file(path, _MAX_KEV_BYTES, what="KEV catalog")
        result = result | parse_kev(data, str(path))
    return result
