"""GitLab container-scanning reports (``gl-container-scanning-report.json``) as input.

This is what GitLab's own analyzer (and Trivy's ``contrib/gitlab.tpl``)
produces. Schema 14.x entries carry ``cve``/``message``/``category``/
``scanner``; 15.x entries carry ``name``; very old reports (version
``3.0.0``) have no ``scan.analyzer``. ``scan`` itself may be missing.
"""

from __future__ import annotations

import re
from typing import Any

from imggate.models import (
    Cvss,
    Finding,
    FindingLocation,
    FixState,
    ScannerInfo,
    ScanReport,
    Severity,
)
from imggate.scanners._doc import (
    MAX_TEXT_LEN,
    Invalid,
    obj,
    opt_list,
    opt_obj,
    opt_str,
    opt_time,
    req_list,
    req_str,
    type_name,
    unique,
)
from imggate.scanners.interface import ReportParser, dedupe, parse_digests

# "Upgrade openssl to 1.1.1k-r0" (GitLab analyzer, Trivy template, imggate's writer)
_UPGRADE = re.compile(r"^Upgrade (?P<pkg>\S+) to (?:version )?(?P<fix>.+?)\.?$")
# Primary identifier preference: what other scanners key on.
_ID_ORDER = {"cve": 0, "ghsa": 1}


def _severity(v: dict[str, Any]) -> Severity:
    value = v.get("severity")
    if value is None:
        return Severity.UNKNOWN
    if type(value) is not str:
        raise Invalid(f"expected a string, got {type_name(value)}", ("severity",))
    try:
        return Severity.parse(value)
    except ValueError as e:
        raise Invalid(str(e), ("severity",)) from None


def _identifiers(v: dict[str, Any], by_id: dict[str, str] | None = None
                 ) -> tuple[str, list[str], list[str]]:
    """(primary id, other ids, identifier URLs); ``by_id`` collects each id's URL."""
    ranked: list[tuple[int, int, str]] = []
    urls: list[str] = []
    for i, ident in enumerate(opt_list(v, "identifiers")):
        try:
            d = obj(ident)
            value = req_str(d, "value")
            kind = (opt_str(d, "type") or "").lower()
            url = opt_str(d, "url", limit=8192)
        except Invalid as e:
            raise e.at("identifiers", i) from None
        ranked.append((_ID_ORDER.get(kind, 2), i, value))
        if url:
            urls.append(url)
            if by_id is not None:
                by_id.setdefault(value, url)
    ids = [value for _, _, value in sorted(ranked)]
    cve = opt_str(v, "cve")  # 14.x; may be a composite key in very old reports
    if cve and ":" not in cve:
        ids.insert(0, cve)
    ids = list(unique(ids))
    if not ids:
        raise Invalid("vulnerability has no identifiers", ("identifiers",))
    return ids[0], ids[1:], urls


def _cvss(v: dict[str, Any]) -> list[Cvss]:
    out = []
    for i, entry in enumerate(opt_list(v, "cvss_vectors")):
        try:
            e = obj(entry)
            vector = req_str(e, "vector")
            vendor = opt_str(e, "vendor") or "unknown"
        except Invalid as err:
            raise err.at("cvss_vectors", i) from None
        version = vector[5:8] if vector.startswith("CVSS:") else "2.0"
        out.append(Cvss(vendor, version, vector, None))
    return out


def _finding(v: Any, default_source: str, urls: dict[str, str] | None = None
             ) -> tuple[Finding, FindingLocation]:
    """The finding, and the image, operating system and default-branch image it names."""
    v = obj(v)
    vid, aliases, id_urls = _identifiers(v, urls)
    loc = opt_obj(v, "location")
    if loc is None:
        raise Invalid("required object is missing", ("location",))
    try:
        dep = opt_obj(loc, "dependency")
        if dep is None:
            raise Invalid("required object is missing", ("dependency",))
        try:
            pkg_obj = opt_obj(dep, "package")
            if pkg_obj is None:
                raise Invalid("required object is missing", ("package",))
            try:
                package = req_str(pkg_obj, "name")
            except Invalid as e:
                raise e.at("package") from None
            version = req_str(dep, "version", allow_empty=True)
        except Invalid as e:
            raise e.at("dependency") from None
        image = opt_str(loc, "image", limit=4096)
        os_name = opt_str(loc, "operating_system", limit=4096)
        dbi = opt_str(loc, "default_branch_image", limit=4096)
    except Invalid as e:
        raise e.at("location") from None
    solution = opt_str(v, "solution", limit=MAX_TEXT_LEN)
    fixed: tuple[str, ...] = ()
    state = FixState.UNKNOWN
    m = _UPGRADE.match(solution or "")
    if m:
        fixed = tuple(x.strip() for x in m.group("fix").split(",") if x.strip())
        state = FixState.FIXED
    links = []
    for i, link in enumerate(opt_list(v, "links")):
        try:
            url = opt_str(obj(link), "url", limit=8192)
        except Invalid as e:
            raise e.at("links", i) from None
        if url:
            links.append(url)
    source = default_source
    scanner = opt_obj(v, "scanner")  # 14.x per-vulnerability scanner
    if scanner is not None:
        try:
            sid = opt_str(scanner, "id")
        except Invalid as e:
            raise e.at("scanner") from None
        if sid:
            source = f"gitlab:{sid.lower()}"
    title = opt_str(v, "name", limit=MAX_TEXT_LEN) or opt_str(v, "message", limit=MAX_TEXT_LEN)
    finding = Finding(
        id=vid,
        package=package,
        version=version,
        severity=_severity(v),
        aliases=tuple(aliases),
        fixed_versions=fixed,
        fix_state=state,
        cvss=tuple(_cvss(v)),
        title=title,
        description=opt_str(v, "description", limit=MAX_TEXT_LEN),
        links=unique([*id_urls, *links]),
        sources=(source,),
    )
    return finding, FindingLocation(image, os_name, dbi)


def _scanner(d: dict[str, Any]) -> ScannerInfo:
    scan = opt_obj(d, "scan")
    if scan is None:
        return ScannerInfo("gitlab")
    try:
        sc = opt_obj(scan, "scanner")
        if sc is None:
            return ScannerInfo("gitlab")
        try:
            vendor = opt_obj(sc, "vendor")
            vendor_name = opt_str(vendor, "name") if vendor else None
            return ScannerInfo(opt_str(sc, "id") or opt_str(sc, "name") or "gitlab",
                               opt_str(sc, "version"), vendor_name)
        except Invalid as e:
            raise e.at("scanner") from None
    except Invalid as e:
        raise e.at("scan") from None


class GitLabContainerScanningParser(ReportParser):
    """GitLab's container-scanning report, schema 14.x/15.x (and older)."""

    kind = "gitlab"
    title = "GitLab container-scanning"

    def detect(self, doc: Any) -> bool:
        """An object with ``vulnerabilities`` and either a string ``version`` or ``scan``."""
        return isinstance(doc, dict) and "vulnerabilities" in doc and (
            isinstance(doc.get("version"), str) or "scan" in doc)

    def _parse(self, doc: Any, source: str) -> ScanReport:
        d = obj(doc)
        scanner = _scanner(d)
        default_source = f"gitlab:{scanner.name.lower()}"
        findings: list[Finding] = []
        images: list[str] = []
        os_name = None
        locations: dict[tuple[str, str, str], FindingLocation] = {}
        urls: dict[str, str] = {}
        for i, v in enumerate(req_list(d, "vulnerabilities")):
            try:
                f, where = _finding(v, default_source, urls)
            except Invalid as e:
                raise e.at("vulnerabilities", i) from None
            findings.append(f)
            locations.setdefault(f.key, where)
            image = where.image
            if image and image not in images:
                images.append(image)
            os_name = os_name or where.operating_system
        scan = opt_obj(d, "scan") or {}
        try:
            started, finished = opt_time(scan, "start_time"), opt_time(scan, "end_time")
        except Invalid as e:
            raise e.at("scan") from None
        return ScanReport(
            scanner=scanner,
            findings=dedupe(findings),
            source=source,
            image_name=images[0] if images else None,
            image_digests=parse_digests(i for i in images if "@sha256:" in i),
            operating_system=os_name,
            started=started,
            finished=finished,
            locations=locations,
            identifier_urls=urls,
        )


PARSER = GitLabContainerScanningParser()
