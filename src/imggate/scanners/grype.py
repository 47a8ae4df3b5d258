"""Grype JSON reports (``grype -o json``), from 0.7 to current.

Differences handled: 0.7 has no ``fix`` object (``fixedInVersion`` at most),
``cvssV2``/``cvssV3`` objects instead of ``cvss[]``, ``links`` instead of
``urls``, ``matchDetails`` as an object and CPEs as objects; 0.2x+ has
``fix{versions,state}`` (state ``""`` seen in 0.94), ``relatedVulnerabilities``;
0.9x adds ``epss[]`` and ``risk``. Grype's ``Negligible`` is GitLab's Info.
"""

from __future__ import annotations

from typing import Any

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
    str_items,
    type_name,
    unique,
)
from imggate.scanners.interface import ReportParser, dedupe, parse_digests

_STATE = {
    "fixed": FixState.FIXED,
    "not-fixed": FixState.NOT_FIXED,
    "wont-fix": FixState.WONT_FIX,
    "unknown": FixState.UNKNOWN,
    "": FixState.UNKNOWN,
}
_SEVERITY = {s.value: s for s in Severity} | {"Negligible": Severity.INFO}


def _severity(v: dict[str, Any]) -> Severity:
    value = v.get("severity")
    if value is None:
        return Severity.UNKNOWN
    if type(value) is not str:
        raise Invalid(f"expected a string, got {type_name(value)}", ("severity",))
    sev = _SEVERITY.get(value)
    if sev is not None:
        return sev
    try:
        return Severity.parse(value)
    except ValueError as e:
        raise Invalid(str(e), ("severity",)) from None


def _cvss(v: dict[str, Any]) -> list[Cvss]:
    out: list[Cvss] = []
    for i, entry in enumerate(opt_list(v, "cvss")):
        try:
            e = obj(entry)
            metrics = opt_obj(e, "metrics") or {}
            try:
                score = opt_num(metrics, "baseScore")
            except Invalid as err:
                raise err.at("metrics") from None
            out.append(Cvss(opt_str(e, "source") or "unknown", opt_str(e, "version"),
                            opt_str(e, "vector"), score))
        except Invalid as err:
            raise err.at("cvss", i) from None
    for key, version in (("cvssV2", "2.0"), ("cvssV3", "3")):  # grype 0.7
        old = opt_obj(v, key)
        if old is None:
            continue
        try:
            vector = opt_str(old, "vector")
            if vector and vector.startswith("CVSS:3."):
                version = vector[5:8]
            out.append(Cvss("nvd", version, vector, opt_num(old, "baseScore")))
        except Invalid as err:
            raise err.at(key) from None
    return out


def _fix(v: dict[str, Any]) -> tuple[tuple[str, ...], FixState]:
    fix = opt_obj(v, "fix")
    if fix is None:  # grype 0.7: no fix object
        old = opt_str(v, "fixedInVersion")
        return ((old,), FixState.FIXED) if old else ((), FixState.UNKNOWN)
    try:
        versions = tuple(str_items(opt_list(fix, "versions"), "versions", limit=1024))
        state_text = fix.get("state", "")
        if type(state_text) is not str:
            raise Invalid(f"expected a string, got {type_name(state_text)}", ("state",))
    except Invalid as e:
        raise e.at("fix") from None
    state = _STATE.get(state_text, FixState.UNKNOWN)
    if state is FixState.UNKNOWN and versions:
        state = FixState.FIXED
    return versions, state


def _epss(v: dict[str, Any]) -> float | None:
    best = None
    for i, entry in enumerate(opt_list(v, "epss")):
        try:
            score = opt_num(obj(entry), "epss", high=1.0)
        except Invalid as e:
            raise e.at("epss", i) from None
        if score is not None and (best is None or score > best):
            best = score
    return best


def _vulnerability(v: dict[str, Any]) -> tuple[str, Severity, dict[str, Any]]:
    fixed, state = _fix(v)
    links = [*str_items(opt_list(v, "urls"), "urls"), *str_items(opt_list(v, "links"), "links")]
    data_source = opt_str(v, "dataSource", limit=8192)
    if data_source and data_source.startswith(("http://", "https://")):
        links.insert(0, data_source)
    extra = {
        "fixed_versions": fixed,
        "fix_state": state,
        "cvss": _cvss(v),
        "epss": _epss(v),
        "description": opt_str(v, "description", limit=MAX_TEXT_LEN),
        "links": links,
    }
    return req_str(v, "id"), _severity(v), extra


def _match(m: Any) -> Finding:
    m = obj(m)
    try:
        vuln = obj(m.get("vulnerability"))
        vid, sev, extra = _vulnerability(vuln)
    except Invalid as e:
        raise e.at("vulnerability") from None
    aliases: list[str] = []
    cvss: list[Cvss] = extra["cvss"]
    for i, rel in enumerate(opt_list(m, "relatedVulnerabilities")):
        try:
            rel_id, _, rel_extra = _vulnerability(obj(rel))
        except Invalid as e:
            raise e.at("relatedVulnerabilities", i) from None
        if rel_id != vid:
            aliases.append(rel_id)
        cvss.extend(rel_extra["cvss"])
        if extra["description"] is None:
            extra["description"] = rel_extra["description"]
        if extra["epss"] is None:
            extra["epss"] = rel_extra["epss"]
        extra["links"].extend(rel_extra["links"])
    match_details = m.get("matchDetails")
    if match_details is not None and type(match_details) not in (list, dict):
        raise Invalid(f"expected an array or object, got {type_name(match_details)}",
                      ("matchDetails",))
    try:
        art = obj(m.get("artifact"))
        name = req_str(art, "name")
        version = req_str(art, "version", allow_empty=True)
        ptype = opt_str(art, "type")
        purl = opt_str(art, "purl", limit=4096)
        layer = path = None
        locations = opt_list(art, "locations")
        if locations:
            try:
                loc = obj(locations[0])
                path = opt_str(loc, "path", limit=4096)
                layer = opt_str(loc, "layerID")
            except Invalid as e:
                raise e.at("locations", 0) from None
    except Invalid as e:
        raise e.at("artifact") from None
    return Finding(
        id=vid,
        package=name,
        version=version,
        severity=sev,
        aliases=unique(aliases),
        package_type=ptype,
        purl=purl,
        fixed_versions=extra["fixed_versions"],
        fix_state=extra["fix_state"],
        cvss=tuple(dict.fromkeys(cvss)),
        epss=extra["epss"],
        description=extra["description"],
        links=unique(extra["links"]),
        layer=layer,
        path=path,
        sources=("grype",),
    )


def _source(d: dict[str, Any]) -> tuple[str | None, list[str]]:
    """The image name and every digest text ``source`` names."""
    src = opt_obj(d, "source")
    if src is None:
        return None, []
    try:
        target = src.get("target")
        if type(target) is str:  # directory / file scans
            return target[:4096] or None, []
        t = opt_obj(src, "target")
        if t is None:
            return None, []
        try:
            name = opt_str(t, "userInput", limit=4096)
            texts = [*str_items(opt_list(t, "repoDigests"), "repoDigests"),
                     opt_str(t, "manifestDigest") or "", opt_str(t, "imageID") or "",
                     name or ""]
        except Invalid as e:
            raise e.at("target") from None
    except Invalid as e:
        raise e.at("source") from None
    return name, [x for x in texts if "sha256:" in x]


class GrypeJsonParser(ReportParser):
    """Grype's JSON report."""

    kind = "grype"
    title = "Grype JSON"

    def detect(self, doc: Any) -> bool:
        """An object with ``matches`` and a ``descriptor`` or ``source``."""
        return isinstance(doc, dict) and "matches" in doc and (
            "descriptor" in doc or "source" in doc)

    def _parse(self, doc: Any, source: str) -> ScanReport:
        d = obj(doc)
        findings: list[Finding] = []
        for i, m in enumerate(req_list(d, "matches")):
            try:
                findings.append(_match(m))
            except Invalid as e:
                raise e.at("matches", i) from None
        name, digest_texts = _source(d)
        desc = opt_obj(d, "descriptor") or {}
        distro = opt_obj(d, "distro") or {}
        try:
            version = opt_str(desc, "version")
            when = opt_time(desc, "timestamp")
        except Invalid as e:
            raise e.at("descriptor") from None
        try:
            os_name = " ".join(p for p in (opt_str(distro, "name"), opt_str(distro, "version"))
                               if p) or None
        except Invalid as e:
            raise e.at("distro") from None
        return ScanReport(
            scanner=ScannerInfo("grype", version, "Anchore"),
            findings=dedupe(findings),
            source=source,
            image_name=name,
            image_digests=parse_digests(digest_texts),
            operating_system=os_name,
            finished=when,
        )


PARSER = GrypeJsonParser()
