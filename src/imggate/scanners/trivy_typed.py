"""Large Trivy JSON reports decoded straight into typed values: the fast way in.

:mod:`.trivy` reads any Trivy JSON from decoded dicts, checking every value in
Python. For a large report most of that time is the checks and the building of
values nobody reads: here the types, length limits and score ranges of
:mod:`.trivy` are stated on msgspec Structs, so msgspec checks them in C while
it decodes, and skips the fields imggate does not read (data sources, CWE ids,
dates) without building them. What is left per finding is putting it together
(check of a 10,000-finding report: read in ~45% less time; see
``bench/check_bench.py``).

This path only ever accepts what :mod:`.trivy` accepts, to the same result.
Anything it does not take exactly as :mod:`.trivy` would (a value of the wrong
type or too long, a description to be cut, a severity spelled differently, a
blank identifier, the legacy bare array, another format) makes :func:`parse`
return ``None``: the caller then reads the document the checked way, which
accepts it or words the refusal (file and JSON path) as it always has.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from imggate.models import Cvss, Finding, ScannerInfo, ScanReport, Severity
from imggate.scanners._doc import MAX_ID_LEN, MAX_TEXT_LEN, unique
from imggate.scanners.interface import parse_digests
from imggate.scanners.trivy import SEVERITIES, fix_of, rating
from imggate.scanners.trivy import target_os as target_os_of

# The limits of :mod:`.trivy` (its ``_fast_finding`` and the ``_doc`` accessors).
_Id = Annotated[str, Meta(max_length=MAX_ID_LEN)]
_Text = Annotated[str, Meta(max_length=MAX_TEXT_LEN)]
_Url = Annotated[str, Meta(max_length=8192)]
_Path = Annotated[str, Meta(max_length=4096)]
_Vector = Annotated[str, Meta(max_length=256)]
_Score = Annotated[float, Meta(ge=0, le=10)]
T = TypeVar("T")


# gc=False on the Structs made per finding: they hold only strings, Raw texts, lists of
# strings and each other (never a cycle), and untracked they are made and freed without
# the collector's bookkeeping (reading 10,000 findings: -5M instructions).
class _Rating(Struct, frozen=True, gc=False):
    V2Vector: _Vector | None = None
    V2Score: _Score | None = None
    V3Vector: _Vector | None = None
    V3Score: _Score | None = None
    V40Vector: _Vector | None = None
    V40Score: _Score | None = None


class _Identifier(Struct, gc=False):
    PURL: _Path | None = None


class _Layer(Struct, gc=False):
    Digest: _Id | None = None
    DiffID: _Id | None = None


class _Vulnerability(Struct, kw_only=True, gc=False):
    # In the order Trivy writes them (pkg/types/vulnerability.go): msgspec looks each key
    # of an object up from where the last one was found, so a key in this order is found
    # at the first field it tries (kw_only: the required ones need not come first).
    VulnerabilityID: _Id
    VendorIDs: list[_Id] | None = None
    PkgName: _Id
    PkgPath: _Path | None = None
    PkgIdentifier: _Identifier | None = None
    InstalledVersion: _Id = ""
    FixedVersion: _Id | None = None
    Status: _Id | None = None
    Layer: _Layer | None = None
    PrimaryURL: _Url | None = None
    # Kept as their JSON text (Raw: not decoded while the document is): a CVE's
    # title, description, references and ratings recur for every package it hits, so
    # each distinct text is decoded, and checked, once (_vulnerability): ~30 ms
    # of reading 10,000 findings for the references, and one string per text shared by
    # those findings instead of a copy each.
    Title: msgspec.Raw = msgspec.Raw()
    Description: msgspec.Raw = msgspec.Raw()
    Severity: _Id | None = None
    CVSS: msgspec.Raw = msgspec.Raw()
    References: msgspec.Raw = msgspec.Raw()


class _Result(Struct):
    Target: _Url | None = None
    Class: _Id | None = None
    Type: _Id | None = None
    Vulnerabilities: list[_Vulnerability] | None = None


class _OS(Struct):
    Family: _Id | None = None
    Name: _Id | None = None


class _Metadata(Struct):
    OS: _OS | None = None
    RepoDigests: list[_Url] | None = None
    ImageID: _Id | None = None
    Reference: _Path | None = None


class _Tool(Struct):
    Version: _Id | None = None


class _Report(Struct):
    SchemaVersion: int
    # UNSET: absent (what detection looks at), as opposed to null.
    Results: list[_Result] | UnsetType | None = UNSET
    ArtifactName: _Path | UnsetType | None = UNSET
    Metadata: _Metadata | None = None
    Trivy: _Tool | None = None
    CreatedAt: Annotated[str, Meta(max_length=100)] | None = None


_DECODER = msgspec.json.Decoder(_Report)
_REFERENCES = msgspec.json.Decoder(tuple[_Url, ...] | None)
_TEXT = msgspec.json.Decoder(_Text | None)
_RATINGS = msgspec.json.Decoder(dict[str, _Rating] | None)


class _NotMine(Exception):
    """The document is not one this path reads exactly as :mod:`.trivy` does."""


def parse(data: bytes | memoryview, source: str) -> ScanReport | None:
    """The report in ``data`` (read from ``source``), or ``None``: read it the checked way.

    ``None`` says nothing about whether the document is valid, only that this path
    does not decide it.
    """
    try:
        doc = _DECODER.decode(data)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None
    # What detection asks of a Trivy report (an explicit --kind trivy reads the same).
    if doc.SchemaVersion != 2 or (doc.Results is UNSET and doc.ArtifactName is UNSET):
        return None
    try:
        return _report(doc, source)
    except _NotMine:
        return None


def _report(doc: _Report, source: str) -> ScanReport:
    # One finding per (id, package, version), the first kept: interface.dedupe, made as
    # the findings are (a later repeat is still checked, never built).
    findings: dict[tuple[str, str, str], Finding] = {}
    seen: _Seen = {}
    # One string per package name (and per id: _vulnerability's), shared by its findings:
    # the pickle the reading child hands over says each once, and the names' hashes
    # are computed once.
    packages: dict[str, str] = {}
    # The ratings made of each JSON text (the same text: the very same ratings, which the
    # outputs tell alike by identity; see _vulnerability).
    rated: dict[bytes, tuple[Cvss, ...]] = {}
    target_os = target_image = None
    for r in doc.Results or ():
        ptype = r.Type or None
        if target_os is None and r.Class == "os-pkgs":
            target_os, target_image = target_os_of(r.Target or "")
        for v in r.Vulnerabilities or ():
            said = (v.Severity, v.Title, v.Description, v.References, v.CVSS, v.PrimaryURL,
                    v.VendorIDs)
            known = seen.get(v.VulnerabilityID)
            if known is None or known[0] != said:
                known = seen[v.VulnerabilityID] = (said, _vulnerability(
                    v.VulnerabilityID, *said, rated=rated))
            vid, sev, aliases, cvss, title, description, links = known[1]
            pkg = packages.get(v.PkgName)
            if pkg is None:
                pkg = v.PkgName
                if not pkg or pkg.isspace():
                    raise _NotMine
                packages[pkg] = pkg
            version = v.InstalledVersion
            key = (vid, pkg, version)
            if key in findings:
                continue
            ident, layer = v.PkgIdentifier, v.Layer
            fixed, state = _fix_of(v.FixedVersion, v.Status)
            # Positional: msgspec builds a Struct from keywords ~6x slower (1.9 against
            # 0.3 us a finding). The order is Finding's fields'.
            findings[key] = Finding(
                vid, pkg, version, sev, aliases, ptype,
                (ident.PURL or None) if ident is not None else None,  # purl
                fixed, state, cvss, None, title, description, links,  # epss None
                (layer.Digest or layer.DiffID or None) if layer is not None else None,
                v.PkgPath or None, _SOURCES)
    md = doc.Metadata or _Metadata()
    os_name = None
    if md.OS is not None:
        os_name = " ".join(p for p in (md.OS.Family, md.OS.Name) if p) or None
    # An empty ArtifactName (trivy convert, some CI wrappers): the OS target names it.
    name = (doc.ArtifactName if isinstance(doc.ArtifactName, str) else None) or target_image
    texts = [*(md.RepoDigests or ()), md.ImageID or "", md.Reference or "", name or ""]
    return ScanReport(
        scanner=ScannerInfo("trivy", doc.Trivy.Version or None if doc.Trivy else None,
                            "Aqua Security"),
        findings=tuple(findings.values()),
        source=source,
        image_name=name,
        image_digests=parse_digests(t for t in texts if "sha256:" in t),
        operating_system=os_name or target_os,
        finished=_time(doc.CreatedAt),
    )


_SOURCES = ("trivy",)
#: What one vulnerability's findings say alike, as read (severity, title, description,
#: references, ratings, primary URL, vendor ids: the Raw ones as their JSON text).
_Said = tuple[str | None, msgspec.Raw, msgspec.Raw, msgspec.Raw, msgspec.Raw, str | None,
              list[str] | None]
#: What is made of it: the id, severity, aliases, ratings, title, description, links.
_Made = tuple[str, Severity, tuple[str, ...], tuple[Cvss, ...], str | None, str | None,
              tuple[str, ...]]
#: A report's vulnerabilities as read (:func:`_vulnerability`), by id, with what they
#: were read from: a CVE's text recurs for every package it hits (10,000 findings of
#: 85 CVEs in the benchmark), so its findings share one of each value, made and checked
#: once. The JSON text is compared (a memcmp), not hashed. Lives as long as the report's
#: reading: the Raw texts point into the document.
_Seen = dict[str, tuple[_Said, _Made]]


def _vulnerability(vid: str, raw_sev: str | None, title: msgspec.Raw,
                   description: msgspec.Raw, references: msgspec.Raw, ratings: msgspec.Raw,
                   primary: str | None, vendor_ids: list[str] | None, *,
                   rated: dict[bytes, tuple[Cvss, ...]]) -> _Made:
    """What the findings of vulnerability ``vid`` share, from what they said alike;
    ``rated``: the report's ratings by their JSON text, made here."""
    sev = Severity.UNKNOWN if raw_sev is None else SEVERITIES.get(raw_sev)
    if sev is None or not vid or vid.isspace():
        raise _NotMine
    refs = (_decoded(_REFERENCES, references) if references else None) or ()
    cvss: tuple[Cvss, ...] = ()
    if ratings:  # (empty Raw: no CVSS key)
        text = bytes(ratings)
        known = rated.get(text)
        if known is None:
            decoded = _decoded(_RATINGS, ratings)
            known = rated[text] = tuple(_rated(decoded)) if decoded else ()
        cvss = known
    return (
        vid,
        sev,
        unique([a for a in vendor_ids or () if a != vid]),
        cvss,
        (_decoded(_TEXT, title) if title else None) or None,
        (_decoded(_TEXT, description) if description else None) or None,
        unique([primary, *refs] if primary else list(refs)),
    )


#: :func:`.trivy.fix_of`, shared: a report's findings say few distinct things of fixes.
_fix_of = functools.lru_cache(maxsize=4096)(fix_of)


def _decoded(decoder: msgspec.json.Decoder[T], raw: msgspec.Raw) -> T:
    """``raw`` (a field's JSON text) decoded and checked as the document's other fields."""
    try:
        return decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        raise _NotMine from None


def _rated(ratings: dict[str, _Rating]) -> Iterator[Cvss]:
    for src, r in ratings.items():
        for version, vector, score in (("2.0", r.V2Vector, r.V2Score),
                                       ("3", r.V3Vector, r.V3Score),
                                       ("4.0", r.V40Vector, r.V40Score)):
            if vector is None and score is None:
                continue
            if version == "3" and vector and vector.startswith("CVSS:3."):
                version = vector[5:8]
            yield rating(src, version, vector or None, score)


def _time(text: str | None) -> datetime | None:
    """:func:`.._doc.opt_time` of an already length-checked string."""
    if not text or text.startswith("0001-01-01"):
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise _NotMine from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)
