"""CycloneDX documents with vulnerabilities (``trivy image --format cyclonedx --scanners vuln``).

Each ``vulnerabilities[]`` entry ``affects`` one or more components by
``bom-ref``; the package comes from ``components[]`` when present, else from
the purl inside the ref (Trivy writes ``urn:cdx:<serial>/1#pkg:…``).
CycloneDX carries no single severity, only per-source ``ratings``: imggate
takes the most severe rating, the same rule :func:`~imggate.scanners.merge.merge`
applies across scanners (fail closed).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from msgspec.structs import replace

from imggate.models import Cvss, Finding, FixState, ScannerInfo, ScanReport, Severity
from imggate.scanners._doc import (
    MAX_TEXT_LEN,
    Invalid,
    obj,
    opt_list,
    opt_num,
    opt_obj,
    opt_str,
    opt_time,
    req_list,
    req_str,
    unique,
)
from imggate.scanners.interface import ReportParser, dedupe, parse_digests

_UPGRADE = re.compile(r"^Upgrade (?P<pkg>\S+) to (?:version )?(?P<fix>.+?)\.?$")
_METHOD_VERSION = {"CVSSv2": "2.0", "CVSSv3": "3.0", "CVSSv31": "3.1", "CVSSv4": "4.0"}
_STATE = {"affected": FixState.NOT_FIXED, "unaffected": FixState.FIXED}


def parse_purl(purl: str) -> tuple[str, str | None, str | None]:
    """(name, version, type) from ``pkg:type/ns/name@version?qualifiers#subpath``.

    An rpm ``epoch`` qualifier is put in front of the version (``1:1.0.2k``),
    as Trivy and Grype write rpm versions.
    """
    if not purl.startswith("pkg:"):
        raise Invalid(f"not a package URL: {purl[:80]!r}")
    body = purl[4:].split("#", 1)[0]
    body, _, query = body.partition("?")
    path, _, version = body.partition("@")
    ptype, _, rest = path.partition("/")
    name = unquote(rest.rsplit("/", 1)[-1]) if rest else ""
    if not name:
        raise Invalid(f"package URL names no package: {purl[:80]!r}")
    ver = unquote(version) if version else None
    if ver:
        for q in query.split("&"):
            k, _, v = q.partition("=")
            if k == "epoch" and v and v != "0":
                ver = f"{unquote(v)}:{ver}"
    return name, ver, ptype or None


def _components(d: dict[str, Any]) -> dict[str, tuple[str, str | None, str | None, str | None]]:
    """bom-ref -> (name, version, purl, package type), walking nested components."""
    out: dict[str, tuple[str, str | None, str | None, str | None]] = {}
    stack: list[tuple[list[Any], tuple[str | int, ...]]] = [(opt_list(d, "components"),
                                                             ("components",))]
    while stack:
        items, where = stack.pop()
        for i, c in enumerate(items):
            try:
                comp = obj(c)
                ref = opt_str(comp, "bom-ref", limit=8192)
                purl = opt_str(comp, "purl", limit=8192)
                if ref:
                    ptype = parse_purl(purl)[2] if purl else None
                    out[ref] = (req_str(comp, "name"), opt_str(comp, "version"), purl, ptype)
                children = opt_list(comp, "components")
            except Invalid as e:
                raise e.at(*where, i) from None
            if children:
                stack.append((children, (*where, i, "components")))
    return out


def _ratings(v: dict[str, Any]) -> tuple[Severity, list[Cvss]]:
    worst = Severity.UNKNOWN
    cvss = []
    for i, rating in enumerate(opt_list(v, "ratings")):
        try:
            r = obj(rating)
            text = opt_str(r, "severity")
            if text:
                try:
                    sev = Severity.parse(text)
                except ValueError as e:
                    raise Invalid(str(e), ("severity",)) from None
                if sev.rank > worst.rank:
                    worst = sev
            src = opt_obj(r, "source") or {}
            try:
                src_name = opt_str(src, "name") or "unknown"
            except Invalid as e:
                raise e.at("source") from None
            method = opt_str(r, "method")
            vector, score = opt_str(r, "vector"), opt_num(r, "score")
            if method in _METHOD_VERSION and (vector or score is not None):
                cvss.append(Cvss(src_name, _METHOD_VERSION[method], vector, score))
        except Invalid as e:
            raise e.at("ratings", i) from None
    return worst, cvss


def _vulnerability(v: Any, comps: dict[str, Any]) -> list[Finding]:
    v = obj(v)
    vid = req_str(v, "id")
    sev, cvss = _ratings(v)
    recommendation = opt_str(v, "recommendation", limit=MAX_TEXT_LEN)
    m = _UPGRADE.match(recommendation or "")
    fixed = tuple(x.strip() for x in m.group("fix").split(",")) if m else ()
    links = []
    for i, adv in enumerate(opt_list(v, "advisories")):
        try:
            url = opt_str(obj(adv), "url", limit=8192)
        except Invalid as e:
            raise e.at("advisories", i) from None
        if url:
            links.append(url)
    src = opt_obj(v, "source") or {}
    try:
        src_url = opt_str(src, "url", limit=8192)
    except Invalid as e:
        raise e.at("source") from None
    if src_url:
        links.insert(0, src_url)
    description = opt_str(v, "description", limit=MAX_TEXT_LEN)
    aliases = []
    for i, ref in enumerate(opt_list(v, "references")):
        try:
            alias = opt_str(obj(ref), "id")
        except Invalid as e:
            raise e.at("references", i) from None
        if alias and alias != vid:
            aliases.append(alias)
    out = []
    affects = req_list(v, "affects")
    if not affects:
        raise Invalid("vulnerability affects no component", ("affects",))
    for i, aff in enumerate(affects):
        try:
            a = obj(aff)
            ref = req_str(a, "ref")
            if ref in comps:
                name, version, purl, ptype = comps[ref]
            elif "#pkg:" in ref or ref.startswith("pkg:"):
                purl = ref[ref.index("pkg:"):]
                name, version, ptype = parse_purl(purl)
            else:
                raise Invalid("names no component in this document", ("ref",))
            state = FixState.FIXED if fixed else FixState.UNKNOWN
            for j, ver in enumerate(opt_list(a, "versions")):
                try:
                    vo = obj(ver)
                    version = opt_str(vo, "version") or version
                    status = opt_str(vo, "status")
                except Invalid as e:
                    raise e.at("versions", j) from None
                if not fixed and status in _STATE:
                    state = _STATE[status]
        except Invalid as e:
            raise e.at("affects", i) from None
        out.append(Finding(
            id=vid, package=name, version=version or "", severity=sev,
            aliases=unique(aliases), package_type=ptype, purl=purl, fixed_versions=fixed,
            fix_state=state, cvss=tuple(cvss), description=description,
            links=unique(links), sources=("trivy",),
        ))
    return out


def _metadata(d: dict[str, Any]) -> tuple[ScannerInfo, str | None, list[str], Any]:
    md = opt_obj(d, "metadata") or {}
    try:
        tools: Any = md.get("tools")
        if isinstance(tools, dict):  # CycloneDX 1.5: {"components": [...]}
            tools = opt_list(tools, "components")
        elif tools is not None and type(tools) is not list:
            raise Invalid("expected an array or object", ("tools",))
        scanner = ScannerInfo("cyclonedx")
        for i, t in enumerate(tools or []):
            try:
                tool = obj(t)
                tname = opt_str(tool, "name")
                if tname:
                    scanner = ScannerInfo(tname.lower(), opt_str(tool, "version"),
                                          opt_str(tool, "vendor"))
                    break
            except Invalid as e:
                raise e.at("tools", i) from None
        comp = opt_obj(md, "component") or {}
        try:
            name = opt_str(comp, "name", limit=4096)
            texts = []
            for i, p in enumerate(opt_list(comp, "properties")):
                try:
                    prop = obj(p)
                    pname = opt_str(prop, "name") or ""
                    if pname.endswith(("RepoDigest", "ImageID")):
                        texts.append(opt_str(prop, "value", limit=4096) or "")
                except Invalid as e:
                    raise e.at("properties", i) from None
        except Invalid as e:
            raise e.at("component") from None
        when = opt_time(md, "timestamp")
    except Invalid as e:
        raise e.at("metadata") from None
    return scanner, name, texts, when


class TrivyCycloneDxParser(ReportParser):
    """CycloneDX JSON with a ``vulnerabilities`` array (Trivy's, or any VDR)."""

    kind = "cyclonedx"
    title = "CycloneDX"

    def detect(self, doc: Any) -> bool:
        """An object with ``bomFormat: CycloneDX``."""
        return isinstance(doc, dict) and doc.get("bomFormat") == "CycloneDX"

    def _parse(self, doc: Any, source: str) -> ScanReport:
        d = obj(doc)
        if "vulnerabilities" not in d:
            # An SBOM without vulnerabilities says nothing about them: never "clean".
            raise Invalid("no vulnerabilities array: this is an SBOM, not a scan report "
                          "(run trivy with --scanners vuln)", ("vulnerabilities",))
        comps = _components(d)
        findings: list[Finding] = []
        for i, v in enumerate(req_list(d, "vulnerabilities")):
            try:
                findings.extend(_vulnerability(v, comps))
            except Invalid as e:
                raise e.at("vulnerabilities", i) from None
        scanner, name, texts, when = _metadata(d)
        sources = (scanner.name,)
        return ScanReport(
            scanner=scanner,
            findings=dedupe(f if f.sources == sources else _with_sources(f, sources)
                            for f in findings),
            source=source,
            image_name=name,
            image_digests=parse_digests(t for t in texts if "sha256:" in t),
            finished=when,
        )


def _with_sources(f: Finding, sources: tuple[str, ...]) -> Finding:
    return replace(f, sources=sources)


PARSER = TrivyCycloneDxParser()
