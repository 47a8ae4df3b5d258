"""Trivy JSON reports (``trivy image --format json``).

Reads every generation seen in the wild:

* ``SchemaVersion: 2`` objects, from the oldest (no ``Class``, ``Status``,
  ``PkgIdentifier``, ``ImageID``) to the newest (``Fingerprint``,
  ``Trivy.Version``, ``Metadata.Layers``, ``ReportID``);
* the legacy pre-0.20 format: a bare array of results;
* reports with no ``Results`` (nothing detected), results with no
  ``Vulnerabilities`` and non-vulnerability classes (config, secret, license,
  custom), which carry no findings.
"""

from __future__ import annotations

import re
from typing import Any

from imggate.models import Cvss, Finding, FixState, ScannerInfo, ScanReport, Severity
from imggate.scanners._doc import (
    MAX_ID_LEN,
    MAX_TEXT_LEN,
    Invalid,
    obj,
    opt_list,
    opt_obj,
    opt_str,
    opt_time,
    req_str,
    str_items,
    type_name,
    unique,
)
from imggate.scanners.interface import ReportParser, dedupe, parse_digests

# Trivy's Status values (pkg/types/vulnerability.go); anything newer is "unknown".
_STATUS = {
    "fixed": FixState.FIXED,
    "affected": FixState.NOT_FIXED,
    "fix_deferred": FixState.NOT_FIXED,
    "will_not_fix": FixState.WONT_FIX,
    "end_of_life": FixState.END_OF_LIFE,
    "under_investigation": FixState.UNKNOWN,
    "not_affected": FixState.UNKNOWN,
    "unknown": FixState.UNKNOWN,
}
#: Trivy's severity names (``CRITICAL``...); any other spelling takes :func:`severity`.
SEVERITIES = {s.value.upper(): s for s in Severity}
# "debian (debian 10.8)" -> "debian 10.8": the legacy format's only OS record.
_TARGET_OS = re.compile(r"\(([a-z][\w.-]*) ([^()]+)\)$")


def target_os(target: str) -> tuple[str | None, str | None]:
    """The OS and the image an OS packages' target names (``"repo:tag (alpine 3.10.2)"``)."""
    m = _TARGET_OS.search(target)
    if m is None:
        return None, None
    # What Trivy's GitLab template does: the image is the target's first word.
    return f"{m.group(1)} {m.group(2)}", target[:m.start()].strip() or None
# The same ratings recur for every package a CVE hits; frozen values can be shared.
_CVSS_CACHE: dict[tuple[str, str, str | None, float | None], Cvss] = {}
_CVSS_FIELDS = (("2.0", "V2Vector", "V2Score"), ("3", "V3Vector", "V3Score"),
                ("4.0", "V40Vector", "V40Score"))


def severity(value: Any, key: str = "Severity") -> Severity:
    """A Trivy severity (``CRITICAL``...); missing is Unknown, anything else unknown is an error."""
    if value is None:
        return Severity.UNKNOWN
    if type(value) is not str:
        raise Invalid(f"expected a string, got {type_name(value)}", (key,))
    sev = SEVERITIES.get(value)
    if sev is not None:
        return sev
    try:
        return Severity.parse(value)
    except ValueError as e:
        raise Invalid(str(e), (key,)) from None


def _cvss(d: dict[str, Any]) -> tuple[Cvss, ...]:
    # Hot path (every finding has several sources): checks are inlined.
    out: list[Cvss] = []
    for src, entry in d.items():
        if type(entry) is not dict:
            raise Invalid(f"expected an object, got {type_name(entry)}", (src,))
        for version, vkey, skey in _CVSS_FIELDS:
            vector = entry.get(vkey)
            score = entry.get(skey)
            if vector is None and score is None:
                continue
            if vector is not None and (type(vector) is not str or len(vector) > 256):
                raise Invalid(f"expected a CVSS vector string, got {type_name(vector)}",
                              (src, vkey))
            if score is not None and (type(score) not in (int, float) or not 0 <= score <= 10):
                raise Invalid(f"expected a score 0..10, got {type_name(score)}", (src, skey))
            if version == "3" and vector and vector.startswith("CVSS:3."):
                version = vector[5:8]
            out.append(rating(src, version, vector or None,
                              float(score) if score is not None else None))
    return tuple(out)


def rating(source: str, version: str, vector: str | None, score: float | None) -> Cvss:
    """The :class:`Cvss` of these values, shared: the same ratings recur for every
    package a CVE hits."""
    key = (source, version, vector, score)
    found = _CVSS_CACHE.get(key)
    if found is None:
        if len(_CVSS_CACHE) > 100_000:
            _CVSS_CACHE.clear()
        found = _CVSS_CACHE[key] = Cvss(*key)
    return found


def fix_of(fixed_text: str | None, status: str | None) -> tuple[tuple[str, ...], FixState]:
    """The versions ``FixedVersion`` lists and the fix state: ``Status``, or for reports
    older than Status (2023-07), whether a fix exists."""
    if not fixed_text:
        fixed: tuple[str, ...] = ()
    elif "," not in fixed_text:
        one = fixed_text.strip()
        fixed = (one,) if one else ()
    else:
        fixed = tuple(x.strip() for x in fixed_text.split(",") if x.strip())
    if status:
        return fixed, _STATUS.get(status, FixState.UNKNOWN)
    return fixed, FixState.FIXED if fixed else FixState.UNKNOWN


def _strings_within(items: list[Any], limit: int) -> bool:
    """Whether every item of ``items`` is a string of at most ``limit`` characters.

    Hot path (twice per finding): ``str.join`` checks every item's type in C, and
    when the joined length is within ``limit`` so is every item's; only a long list
    is measured item by item (~1.2 -> 0.2 us for a finding's references).
    """
    try:
        if len("".join(items)) <= limit:
            return True
    except TypeError:
        return False
    return max(map(len, items)) <= limit


def _fast_finding(v: dict[str, Any], package_type: str | None) -> Finding | None:
    """The finding for a well-formed entry, or ``None`` to take :func:`_checked_finding`.

    Hot path (one call per finding): one combined check instead of a call
    per field. Anything unusual returns ``None``; the checked path then
    builds the same Finding or raises the precise error.
    """
    get = v.get
    vid, pkg, version = get("VulnerabilityID"), get("PkgName"), get("InstalledVersion", "")
    fixed_text, status, primary = get("FixedVersion"), get("Status"), get("PrimaryURL")
    title, desc, path, raw_sev = get("Title"), get("Description"), get("PkgPath"), get("Severity")
    if not (type(vid) is str and type(pkg) is str and type(version) is str
            and 0 < len(vid) <= MAX_ID_LEN and 0 < len(pkg) <= MAX_ID_LEN
            and len(version) <= MAX_ID_LEN
            and (fixed_text is None or (type(fixed_text) is str and len(fixed_text) <= MAX_ID_LEN))
            and (status is None or (type(status) is str and len(status) <= MAX_ID_LEN))
            and (primary is None or (type(primary) is str and len(primary) <= 8192))
            and (title is None or (type(title) is str and len(title) <= MAX_TEXT_LEN))
            and (desc is None or (type(desc) is str and len(desc) <= MAX_TEXT_LEN))
            and (path is None or (type(path) is str and len(path) <= 4096))):
        return None
    if raw_sev is None:
        sev: Severity | None = Severity.UNKNOWN
    else:
        sev = SEVERITIES.get(raw_sev) if type(raw_sev) is str else None
    if sev is None or vid.isspace() or pkg.isspace():
        return None
    refs, vendor_ids = get("References"), get("VendorIDs")
    refs = [] if refs is None else refs
    vendor_ids = [] if vendor_ids is None else vendor_ids
    ident, layer_obj, cvss_obj = get("PkgIdentifier"), get("Layer"), get("CVSS")
    if (type(refs) is not list or type(vendor_ids) is not list
            or not _strings_within(refs, 8192) or not _strings_within(vendor_ids, 1024)):
        return None
    purl = layer = None
    if ident is not None:
        if type(ident) is not dict:
            return None
        purl = ident.get("PURL")
        if purl is not None and (type(purl) is not str or len(purl) > 4096):
            return None
    if layer_obj is not None:
        if type(layer_obj) is not dict:
            return None
        digest, diff_id = layer_obj.get("Digest"), layer_obj.get("DiffID")
        if ((digest is not None and (type(digest) is not str or len(digest) > MAX_ID_LEN))
                or (diff_id is not None and (type(diff_id) is not str
                                             or len(diff_id) > MAX_ID_LEN))):
            return None
        layer = digest or diff_id or None
    cvss: tuple[Cvss, ...] = ()
    if cvss_obj is not None:
        if type(cvss_obj) is not dict:
            return None
        try:
            cvss = _cvss(cvss_obj)
        except Invalid:
            return None
    fixed, state = fix_of(fixed_text, status)
    return Finding(
        id=vid,
        package=pkg,
        version=version,
        severity=sev,
        aliases=unique([a for a in vendor_ids if a != vid]),
        package_type=package_type,
        purl=purl or None,
        fixed_versions=fixed,
        fix_state=state,
        cvss=cvss,
        title=title or None,
        description=desc or None,
        links=unique([primary, *refs] if primary else refs),
        layer=layer,
        path=path or None,
        sources=("trivy",),
    )


def _finding(v: Any, package_type: str | None) -> Finding:
    if type(v) is dict:
        fast = _fast_finding(v, package_type)
        if fast is not None:
            return fast
    return _checked_finding(v, package_type)


def _checked_finding(v: Any, package_type: str | None) -> Finding:
    v = obj(v)
    vid = req_str(v, "VulnerabilityID")
    pkg = req_str(v, "PkgName")
    version = req_str(v, "InstalledVersion", allow_empty=True) if "InstalledVersion" in v else ""
    fixed_text = opt_str(v, "FixedVersion")
    fixed = tuple(x.strip() for x in fixed_text.split(",") if x.strip()) if fixed_text else ()
    status = opt_str(v, "Status")
    if status is not None:
        state = _STATUS.get(status, FixState.UNKNOWN)
    else:  # reports older than Status (2023-07) only say whether a fix exists
        state = FixState.FIXED if fixed else FixState.UNKNOWN
    purl = None
    ident = opt_obj(v, "PkgIdentifier")
    if ident is not None:
        try:
            purl = opt_str(ident, "PURL", limit=4096)
        except Invalid as e:
            raise e.at("PkgIdentifier") from None
    layer = None
    layer_obj = opt_obj(v, "Layer")
    if layer_obj is not None:
        try:
            layer = opt_str(layer_obj, "Digest") or opt_str(layer_obj, "DiffID")
        except Invalid as e:
            raise e.at("Layer") from None
    links = str_items(opt_list(v, "References"), "References")
    primary = opt_str(v, "PrimaryURL", limit=8192)
    if primary:
        links = [primary, *links]
    cvss_obj = opt_obj(v, "CVSS")
    cvss: tuple[Cvss, ...] = ()
    if cvss_obj:
        try:
            cvss = _cvss(cvss_obj)
        except Invalid as e:
            raise e.at("CVSS") from None
    aliases = [a for a in str_items(opt_list(v, "VendorIDs"), "VendorIDs", limit=1024) if a != vid]
    return Finding(
        id=vid,
        package=pkg,
        version=version,
        severity=severity(v.get("Severity")),
        aliases=unique(aliases),
        package_type=package_type,
        purl=purl,
        fixed_versions=fixed,
        fix_state=state,
        cvss=cvss,
        title=opt_str(v, "Title", limit=MAX_TEXT_LEN),
        description=opt_str(v, "Description", limit=MAX_TEXT_LEN),
        links=unique(links),
        layer=layer,
        path=opt_str(v, "PkgPath", limit=4096),
        sources=("trivy",),
    )


def _results(results: list[Any], out: list[Finding], legacy: bool
             ) -> tuple[str | None, str | None]:
    """Append every result's findings to ``out``; return the OS and the image named by
    the OS packages' target (``"repo:tag (alpine 3.10.2)"``), if any."""
    os_name = image = None
    for i, r in enumerate(results):
        try:
            r = obj(r)
            ptype = opt_str(r, "Type")
            if os_name is None and (legacy or r.get("Class") == "os-pkgs"):
                os_name, image = target_os(opt_str(r, "Target", limit=8192) or "")
            for j, v in enumerate(opt_list(r, "Vulnerabilities")):
                try:
                    out.append(_finding(v, ptype))
                except Invalid as e:
                    raise e.at("Vulnerabilities", j) from None
        except Invalid as e:
            raise (e.at(i) if legacy else e.at("Results", i)) from None
    return os_name, image


class TrivyJsonParser(ReportParser):
    """Trivy's JSON report, SchemaVersion 2 or the legacy bare array."""

    kind = "trivy"
    title = "Trivy JSON"

    def detect(self, doc: Any) -> bool:
        """An object with ``SchemaVersion``, or a non-empty array of objects with ``Target``."""
        if isinstance(doc, dict):
            return "SchemaVersion" in doc and ("Results" in doc or "ArtifactName" in doc)
        return (isinstance(doc, list) and bool(doc)
                and all(isinstance(r, dict) and "Target" in r for r in doc[:10]))

    def _parse(self, doc: Any, source: str) -> ScanReport:
        findings: list[Finding] = []
        if isinstance(doc, list):
            os_name, target_image = _results(doc, findings, legacy=True)
            return ScanReport(ScannerInfo("trivy", None, "Aqua Security"), dedupe(findings),
                              source=source, operating_system=os_name,
                              image_name=target_image)
        d = obj(doc)
        sv = d.get("SchemaVersion")
        if type(sv) is not int or sv != 2:
            shown = sv if type(sv) is int else type_name(sv)
            raise Invalid(f"unsupported SchemaVersion {shown}: imggate reads 2",
                          ("SchemaVersion",))
        target_os, target_image = _results(opt_list(d, "Results"), findings, legacy=False)
        md = opt_obj(d, "Metadata") or {}
        try:
            os_name = _os(md) or target_os
            digest_texts = str_items(opt_list(md, "RepoDigests"), "RepoDigests")
            image_id = opt_str(md, "ImageID")
            reference = opt_str(md, "Reference", limit=4096)
        except Invalid as e:
            raise e.at("Metadata") from None
        # An empty ArtifactName (trivy convert, some CI wrappers): the OS target names it.
        name = opt_str(d, "ArtifactName", limit=4096) or target_image
        texts = [*digest_texts, image_id or "", reference or "", name or ""]
        version = None
        tool = opt_obj(d, "Trivy")
        if tool is not None:
            try:
                version = opt_str(tool, "Version")
            except Invalid as e:
                raise e.at("Trivy") from None
        return ScanReport(
            scanner=ScannerInfo("trivy", version, "Aqua Security"),
            findings=dedupe(findings),
            source=source,
            image_name=name,
            image_digests=parse_digests(t for t in texts if "sha256:" in t),
            operating_system=os_name,
            finished=opt_time(d, "CreatedAt"),
        )


def _os(md: dict[str, Any]) -> str | None:
    os_obj = opt_obj(md, "OS")
    if os_obj is None:
        return None
    try:
        family, name = opt_str(os_obj, "Family"), opt_str(os_obj, "Name")
    except Invalid as e:
        raise e.at("OS") from None
    return " ".join(p for p in (family, name) if p) or None


PARSER = TrivyJsonParser()
