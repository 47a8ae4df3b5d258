"""Trivy SARIF 2.1.0 reports (``trivy image --format sarif``).

SARIF has no package fields: Trivy puts them in each result's message
(``Package: …``, ``Installed Version: …``, ``Severity: …``, ``Fixed Version: …``)
and the vulnerability text in the rule. imggate's own SARIF writer puts the
same data in ``result.properties``, which is read first, so imggate's SARIF
round-trips too.
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
    req_list,
    req_str,
    str_items,
    type_name,
    unique,
)
from imggate.scanners.interface import ReportParser, dedupe, parse_digests
from imggate.scanners.trivy import severity as trivy_severity


def _message_fields(result: dict[str, Any]) -> dict[str, str]:
    msg = opt_obj(result, "message")
    if msg is None:
        return {}
    try:
        text = opt_str(msg, "text", limit=MAX_TEXT_LEN) or ""
    except Invalid as e:
        raise e.at("message") from None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key in ("Package", "Installed Version", "Severity", "Fixed Version"):
            fields.setdefault(key, value.strip())
    return fields


def _score_severity(score: float | None) -> Severity:
    """GitHub's mapping of ``security-severity`` to a rating."""
    if score is None:
        return Severity.UNKNOWN
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    return Severity.LOW if score > 0 else Severity.INFO


def _text(d: dict[str, Any], key: str) -> str | None:
    sub = opt_obj(d, key)
    if sub is None:
        return None
    try:
        return opt_str(sub, "text", limit=MAX_TEXT_LEN)
    except Invalid as e:
        raise e.at(key) from None


def _rule(rule: Any) -> dict[str, Any]:
    r = obj(rule)
    props = opt_obj(r, "properties") or {}
    try:
        tags = str_items(opt_list(props, "tags"), "tags", limit=256)
        cvss = []
        for version, vkey, skey in (("2.0", "cvssv2_vector", "cvssv2_score"),
                                    ("3", "cvssv3_vector", "cvssv3_baseScore")):
            vector, score = opt_str(props, vkey), opt_num(props, skey)
            if vector or score is not None:
                if vector and vector.startswith("CVSS:3."):
                    version = vector[5:8]
                cvss.append(Cvss("nvd", version, vector, score))
        sec = props.get("security-severity")
        if sec is not None and type(sec) is not str:
            raise Invalid(f"expected a string, got {type_name(sec)}", ("security-severity",))
        try:
            sec_score = float(sec) if sec else None
        except ValueError:
            raise Invalid("not a number", ("security-severity",)) from None
    except Invalid as e:
        raise e.at("properties") from None
    sev = None
    for tag in tags:
        try:
            sev = Severity.parse(tag)
            break
        except ValueError:
            continue
    return {
        "id": req_str(r, "id"),
        "title": _text(r, "shortDescription"),
        "description": _text(r, "fullDescription"),
        "link": opt_str(r, "helpUri", limit=8192),
        "cvss": tuple(cvss),
        "severity": sev or _score_severity(sec_score),
    }


def _result(res: Any, rules: dict[str, dict[str, Any]], image: str | None,
            tool: str) -> Finding:
    r = obj(res)
    rule_id = req_str(r, "ruleId")
    rule = rules.get(rule_id)
    if rule is None:
        raise Invalid(f"names rule {rule_id[:100]!r}, which the run does not define",
                      ("ruleId",))
    props = opt_obj(r, "properties") or {}
    fields = _message_fields(r)
    try:
        package = opt_str(props, "package") or fields.get("Package")
        version = opt_str(props, "version") or fields.get("Installed Version")
        sev_text = opt_str(props, "severity") or fields.get("Severity")
        fixed_text = opt_str(props, "fixedVersion") or fields.get("Fixed Version")
        state_text = opt_str(props, "fixState")
        sources = tuple(str_items(opt_list(props, "sources"), "sources", limit=256))
    except Invalid as e:
        raise e.at("properties") from None
    if not package:
        raise Invalid("result names no package (no 'Package:' line in message.text)",
                      ("message",))
    sev = trivy_severity(sev_text, "message") if sev_text else rule["severity"]
    fixed = tuple(x.strip() for x in fixed_text.split(",") if x.strip()) if fixed_text else ()
    try:
        state = FixState(state_text) if state_text else (
            FixState.FIXED if fixed else FixState.UNKNOWN)
    except ValueError:
        state = FixState.UNKNOWN
    path = None
    locations = opt_list(r, "locations")
    if locations:
        try:
            phys = opt_obj(obj(locations[0]), "physicalLocation") or {}
            art = opt_obj(phys, "artifactLocation") or {}
            uri = opt_str(art, "uri", limit=4096)
        except Invalid as e:
            raise e.at("locations", 0) from None
        path = uri if uri and uri != image else None
    return Finding(
        id=rule["id"],
        package=package,
        version=version or "",
        severity=sev,
        fixed_versions=fixed,
        fix_state=state,
        cvss=rule["cvss"],
        title=rule["title"],
        description=rule["description"],
        links=unique([rule["link"]] if rule["link"] else []),
        path=path,
        sources=sources or (tool,),
    )


class TrivySarifParser(ReportParser):
    """SARIF 2.1.0 as written by Trivy (and by imggate)."""

    kind = "trivy-sarif"
    title = "SARIF"

    def detect(self, doc: Any) -> bool:
        """An object with ``runs`` and a SARIF ``version`` or ``$schema``."""
        return isinstance(doc, dict) and "runs" in doc and (
            doc.get("version") == "2.1.0" or "sarif" in str(doc.get("$schema", "")).lower())

    def _parse(self, doc: Any, source: str) -> ScanReport:
        d = obj(doc)
        findings: list[Finding] = []
        name = version = image = None
        digest_texts: list[str] = []
        runs = req_list(d, "runs")
        if not runs:
            raise Invalid("log has no runs: it says nothing about any image", ("runs",))
        for ri, run in enumerate(runs):
            try:
                run = obj(run)
                tool = opt_obj(run, "tool") or {}
                driver = opt_obj(tool, "driver") or {}
                name = name or opt_str(driver, "name")
                version = version or opt_str(driver, "version")
                props = opt_obj(run, "properties") or {}
                try:
                    image = image or opt_str(props, "imageName", limit=4096)
                    digest_texts += str_items(opt_list(props, "repoDigests"), "repoDigests")
                    digest_texts.append(opt_str(props, "imageID") or "")
                except Invalid as e:
                    raise e.at("properties") from None
                rules: dict[str, dict[str, Any]] = {}
                for i, rule in enumerate(opt_list(driver, "rules")):
                    try:
                        parsed = _rule(rule)
                    except Invalid as e:
                        raise e.at("tool", "driver", "rules", i) from None
                    rules[parsed["id"]] = parsed
                if "results" not in run:
                    # SARIF: a run without results is a tool that did not finish.
                    raise Invalid("run has no results array: the scan did not complete",
                                  ("results",))
                for i, res in enumerate(req_list(run, "results")):
                    try:
                        findings.append(_result(res, rules, image, (name or "sarif").lower()))
                    except Invalid as e:
                        raise e.at("results", i) from None
            except Invalid as e:
                raise e.at("runs", ri) from None
        return ScanReport(
            scanner=ScannerInfo((name or "sarif").lower(), version),
            findings=dedupe(findings),
            source=source,
            image_name=image,
            image_digests=parse_digests(t for t in digest_texts if "sha256:" in t),
        )


PARSER = TrivySarifParser()
