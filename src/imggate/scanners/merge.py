"""Merge what several scanners said into one finding per vulnerability, package and version.

Two findings are the same when they name the same package and version and
the same vulnerability. The vulnerability is compared by its *canonical*
id: the CVE when the finding's id and aliases name exactly one CVE (Grype
reports ``GHSA-…`` with the CVE as a related vulnerability where Trivy
reports the CVE), else the id itself.

The merged finding lists every source, keeps every alias, CVSS rating, fixed
version and link, and takes the most severe rating (fail closed) unless
``prefer`` names the scanners whose rating wins, in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from imggate.models import Finding, FixState, ScanReport, Severity
from imggate.values import same_objects

# By value: an Enum member's hash is a Python call, a str's is cached (50,000 sorted).
_RANK = {s._value_: s.rank for s in Severity}
# One character per severity, in the order of the output (most severe first): the head of
# a finding's sort key (see _sort).
_HEAD = {s._value_: str(9 - s.rank) for s in Severity}
# When sources disagree on the fix state, the one that says most about a fix wins.
_FIX_ORDER = {
    FixState.FIXED: 4, FixState.WONT_FIX: 3, FixState.END_OF_LIFE: 2,
    FixState.NOT_FIXED: 1, FixState.UNKNOWN: 0,
}


def canonical_id(f: Finding) -> str:
    """The CVE among ``f``'s ids when there is exactly one, else ``f.id``."""
    if f.id.startswith("CVE-"):
        return f.id
    cves = {a for a in f.aliases if a.startswith("CVE-")}
    return cves.pop() if len(cves) == 1 else f.id


def _combine(group: list[Finding], key_id: str, prefer: Sequence[str]) -> Finding:
    if len(group) == 1 and group[0].id == key_id:
        return group[0]
    first = group[0]
    ids: dict[str, None] = {}
    for f in group:
        ids.update(dict.fromkeys(f.all_ids))
    ids.pop(key_id, None)
    severity = max((f.severity for f in group), key=lambda s: s.rank)
    for name in prefer:
        chosen = next((f for f in group if name in f.sources), None)
        if chosen is not None:
            severity = chosen.severity
            break
    epss = [f.epss for f in group if f.epss is not None]

    def first_of(attr: str) -> str | None:
        return next((getattr(f, attr) for f in group if getattr(f, attr)), None)

    def union(attr: str) -> tuple[object, ...]:
        out: dict[object, None] = {}
        for f in group:
            out.update(dict.fromkeys(getattr(f, attr)))
        return tuple(out)

    return Finding(
        id=key_id,
        package=first.package,
        version=first.version,
        severity=severity,
        aliases=tuple(ids),
        package_type=first_of("package_type"),
        purl=first_of("purl"),
        fixed_versions=union("fixed_versions"),  # type: ignore[arg-type]
        fix_state=max((f.fix_state for f in group), key=_FIX_ORDER.__getitem__),
        cvss=union("cvss"),  # type: ignore[arg-type]
        epss=max(epss) if epss else None,
        title=first_of("title"),
        description=first_of("description"),
        links=union("links"),  # type: ignore[arg-type]
        layer=first_of("layer"),
        path=first_of("path"),
        sources=union("sources"),  # type: ignore[arg-type]
    )


def merge_findings(
    findings: Iterable[Finding], *, prefer: Sequence[str] = ()
) -> tuple[Finding, ...]:
    """Merge ``findings`` (from any number of reports); see the module docstring.

    The result is sorted most severe first, then by id, package and version,
    so the same input always gives the same output.
    """
    first: dict[tuple[str, str, str], Finding] = {}
    repeats: dict[tuple[str, str, str], list[Finding]] = {}  # only keys seen more than once
    renamed = False  # whether a finding's canonical id is not its id
    for f in findings:
        vid = f.id
        if vid.startswith("CVE-"):  # its own canonical id (most are: the call skipped)
            key = (vid, f.package, f.version)
        else:
            key = (canonical_id(f), f.package, f.version)
            renamed = renamed or key[0] != vid
        seen = first.setdefault(key, f)
        if seen is not f:
            repeats.setdefault(key, [seen]).append(f)
    if not repeats and not renamed:  # (one report, as most are: nothing to combine)
        return _sort(list(first.values()))
    return _sort([
        f if key not in repeats and f.id == key[0] else
        _combine(repeats.get(key, [f]), key[0], prefer)
        for key, f in first.items()
    ])


def _sort(findings: list[Finding]) -> tuple[Finding, ...]:
    """``findings`` most severe first, then by id, package and version."""
    # One str per finding (severity, then id, package and version with "\0" between)
    # rather than a tuple of the four: a comparison is one memcmp of two keys made side by
    # side, not four objects spread over the hundreds of megabytes a large report takes
    # (50,000 findings: 73 -> 23-28 ms; the tuples' sort grew 11.4x from 5,000, cache
    # misses). "\0" sorts below every other character, so the order is the tuple's
    # while no part holds one; when one does, the tuples are sorted.
    keys = [f"{_HEAD[f.severity._value_]}{f.id}\0{f.package}\0{f.version}" for f in findings]
    if "".join(keys).count("\0") != 2 * len(keys):
        return tuple(sorted(findings, key=lambda f: (-_RANK[f.severity._value_], f.id,
                                                     f.package, f.version)))
    return tuple([findings[i] for i in sorted(range(len(keys)), key=keys.__getitem__)])


def merge(reports: Iterable[ScanReport], *, prefer: Sequence[str] = ()) -> tuple[Finding, ...]:
    """One finding per (vulnerability, package, version) across ``reports``, every source listed.

    ``prefer`` (scanner names such as ``("trivy", "grype")``) makes the first
    listed scanner that reported a finding decide its severity; by default
    the most severe rating wins. The same reports as :func:`remember` was given
    (the very objects) give what it was given.
    """
    reports = tuple(reports)
    merged = remembered(reports) if not prefer else None
    if merged is not None:
        return merged
    return merge_findings((f for r in reports for f in r.findings), prefer=prefer)


#: The last :func:`remember`: reports, and their merge (both immutable).
_remembered: tuple[tuple[ScanReport, ...], tuple[Finding, ...]] | None = None


def remembered(reports: Sequence[ScanReport]) -> tuple[Finding, ...] | None:
    """What :func:`remember` was given for exactly these ``reports``, or ``None``."""
    if _remembered is None:
        return None
    known, merged = _remembered
    if same_objects(known, reports):
        return merged
    return None


def remember(reports: tuple[ScanReport, ...], merged: tuple[Finding, ...]) -> None:
    """Take ``merged`` as :func:`merge` of exactly these ``reports`` (default ``prefer``).

    ``check`` merges its reports in the child that reads them (see
    :mod:`imggate.scanners.read_ahead`), on the second CPU: ~70M instructions at
    10,000 findings that the decision would otherwise spend on the critical path.
    """
    global _remembered
    _remembered = (reports, merged)
