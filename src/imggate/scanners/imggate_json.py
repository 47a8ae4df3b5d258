"""imggate's own normalised findings JSON (``imggate convert --to json``) read back.

Lets a pipeline convert and merge reports once and gate on the result
later. The document is validated like any other report: it travels
between jobs and is as untrusted as a scanner's.
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
    opt_str,
    req_list,
    req_str,
    str_items,
    unique,
)
from imggate.scanners.interface import ReportParser, dedupe, parse_digests

#: The ``format`` value :mod:`imggate.formats.findings_json` writes (kept equal by a test;
#: evidence does not import the output layer).
FORMAT = "imggate-findings/1"


def _enum(d: dict[str, Any], key: str, kind: type[Severity] | type[FixState]) -> Any:
    text = req_str(d, key)
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise Invalid(f"{text[:40]!r} is not one of: {allowed}", (key,)) from None


def _finding(v: Any) -> Finding:
    d = obj(v)
    cvss = []
    for i, c in enumerate(opt_list(d, "cvss")):
        try:
            co = obj(c)
            cvss.append(Cvss(req_str(co, "source", allow_empty=True), opt_str(co, "version"),
                             opt_str(co, "vector"), opt_num(co, "score")))
        except Invalid as e:
            raise e.at("cvss", i) from None
    return Finding(
        id=req_str(d, "id"),
        package=req_str(d, "package"),
        version=req_str(d, "version", allow_empty=True),
        severity=_enum(d, "severity", Severity),
        aliases=unique(str_items(opt_list(d, "aliases"), "aliases", limit=1024)),
        package_type=opt_str(d, "package_type"),
        purl=opt_str(d, "purl", limit=4096),
        fixed_versions=tuple(str_items(opt_list(d, "fixed_versions"), "fixed_versions",
                                       limit=1024)),
        fix_state=_enum(d, "fix_state", FixState),
        cvss=tuple(cvss),
        epss=opt_num(d, "epss", high=1.0),
        title=opt_str(d, "title", limit=MAX_TEXT_LEN),
        description=opt_str(d, "description", limit=MAX_TEXT_LEN),
        links=unique(str_items(opt_list(d, "links"), "links")),
        layer=opt_str(d, "layer"),
        path=opt_str(d, "path", limit=4096),
        sources=unique(str_items(opt_list(d, "sources"), "sources", limit=256)),
    )


class ImggateJsonParser(ReportParser):
    """``imggate-findings/1`` documents."""

    kind = "imggate"
    title = "imggate findings JSON"

    def detect(self, doc: Any) -> bool:
        """An object whose ``format`` is ``imggate-findings/1``."""
        return isinstance(doc, dict) and doc.get("format") == FORMAT

    def _parse(self, doc: Any, source: str) -> ScanReport:
        d = obj(doc)
        if d.get("format") != FORMAT:
            raise Invalid(f"expected {FORMAT!r}", ("format",))
        findings = []
        for i, v in enumerate(req_list(d, "findings")):
            try:
                findings.append(_finding(v))
            except Invalid as e:
                raise e.at("findings", i) from None
        names = []
        for i, s in enumerate(opt_list(d, "scanners")):
            try:
                so = obj(s)
                names.append(ScannerInfo(req_str(so, "name"), opt_str(so, "version"),
                                         opt_str(so, "vendor")))
            except Invalid as e:
                raise e.at("scanners", i) from None
        scanner = names[0] if len(names) == 1 else ScannerInfo(
            "+".join(n.name for n in names) or "imggate")
        image = opt_str(d, "image", limit=4096)
        return ScanReport(
            scanner=scanner,
            findings=dedupe(findings),
            source=source,
            image_name=image,
            image_digests=parse_digests([image] if image and "@sha256:" in image else []),
            operating_system=opt_str(d, "operating_system", limit=4096),
        )


PARSER = ImggateJsonParser()
