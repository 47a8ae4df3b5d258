"""``gl-container-scanning-report.json``: GitLab's container-scanning report, schema 15.2.1.

:func:`render` builds the document from merged findings; :func:`write`
saves it atomically. The output validates against
``security-report-schemas`` 15.2.1 ``container-scanning-report-format.json``:
values the schema would reject (over-long names, CVSS vectors it does not
know, URLs that are not http(s)/ftp) are trimmed or left out, never written.

Vulnerability ids are UUIDv5 over the image reference as given (the gate
passes ``registry/repo@sha256:…``), the vulnerability id, the package and its
version: a re-run on the same image gives the same ids, and ids stay unique
when one document holds several images of the same repository.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
import re
import struct
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import msgspec

from imggate import __version__
from imggate.models import Cvss, Finding, FindingLocation, FixState, ScannerInfo
from imggate.redact import SECRETS
from imggate.values import same_objects

_orjson: Any
try:  # several times faster for 100 MB reports; the stdlib is the fallback
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency
    _orjson = None

SCHEMA_VERSION = "15.2.1"
#: Namespace for vulnerability ids (uuid5 of the URL of this module's purpose).
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://imggate.invalid/gl-container-scanning")

_NAME_MAX = 255
_DESCRIPTION_MAX = 1_048_576
_SOLUTION_MAX = 7000
_URL = re.compile(r"^(https?|ftp)://.")  # the schema's ^(https?|ftp)://.+
# Matched with fullmatch (JSON Schema's "$" is end of text; Python's also allows "\n").
_CVSS2 = re.compile(
    r"^((AV:[NAL]|AC:[LMH]|Au:[MSN]|[CIA]:[NPC]|E:(U|POC|F|H|ND)|RL:(OF|TF|W|U|ND)|RC:(UC|UR|C|ND)"
    r"|CDP:(N|L|LM|MH|H|ND)|TD:(N|L|M|H|ND)|[CIA]R:(L|M|H|ND))/)*(AV:[NAL]|AC:[LMH]|Au:[MSN]"
    r"|[CIA]:[NPC]|E:(U|POC|F|H|ND)|RL:(OF|TF|W|U|ND)|RC:(UC|UR|C|ND)|CDP:(N|L|LM|MH|H|ND)"
    r"|TD:(N|L|M|H|ND)|[CIA]R:(L|M|H|ND))$")
_CVSS3 = re.compile(
    r"^CVSS:3[.][01]/((AV:[NALP]|AC:[LH]|PR:[NLH]|UI:[NR]|S:[UC]|[CIA]:[NLH]|E:[XUPFH]"
    r"|RL:[XOTWU]|RC:[XURC]|[CIA]R:[XLMH]|MAV:[XNALP]|MAC:[XLH]|MPR:[XNLH]|MUI:[XNR]|MS:[XUC]"
    r"|M[CIA]:[XNLH])/)*(AV:[NALP]|AC:[LH]|PR:[NLH]|UI:[NR]|S:[UC]|[CIA]:[NLH]|E:[XUPFH]"
    r"|RL:[XOTWU]|RC:[XURC]|[CIA]R:[XLMH]|MAV:[XNALP]|MAC:[XLH]|MPR:[XNLH]|MUI:[XNR]|MS:[XUC]"
    r"|M[CIA]:[XNLH])$")

# Identifier type and URL for the id prefixes users meet in container scans.
_ID_KINDS: tuple[tuple[str, str, str | None], ...] = (
    ("CVE-", "cve", "https://nvd.nist.gov/vuln/detail/{}"),
    ("GHSA-", "ghsa", "https://github.com/advisories/{}"),
    ("RHSA-", "rhsa", "https://access.redhat.com/errata/{}"),
    ("RHBA-", "rhba", "https://access.redhat.com/errata/{}"),
    ("DSA-", "dsa", "https://security-tracker.debian.org/tracker/{}"),
    ("DLA-", "dla", "https://security-tracker.debian.org/tracker/{}"),
    ("USN-", "usn", "https://ubuntu.com/security/notices/{}"),
    ("ALAS", "alas", None),
    ("ELSA-", "elsa", "https://linux.oracle.com/errata/{}.html"),
    ("GO-", "go", "https://pkg.go.dev/vuln/{}"),
    ("PYSEC-", "pysec", "https://osv.dev/vulnerability/{}"),
    ("RUSTSEC-", "rustsec", "https://rustsec.org/advisories/{}"),
    ("OSV-", "osv", "https://osv.dev/vulnerability/{}"),
)


def identifier(value: str) -> dict[str, str]:
    """A GitLab identifier object for vulnerability id ``value``."""
    for prefix, kind, url in _ID_KINDS:
        if value.startswith(prefix):
            ident = {"type": kind, "name": value, "value": value}
            if url:
                ident["url"] = url.format(value)
            return ident
    head = value.split("-", 1)[0].lower()
    kind = head if head.isalnum() and head != value.lower() else "vendor"
    return {"type": kind, "name": value, "value": value}


def vulnerability_id(image: str, finding: Finding) -> str:
    """The stable id of ``finding`` in a report for ``image``.

    ``uuid5(ID_NAMESPACE, image NUL id NUL package NUL version)``.
    """
    return _IdMaker(image)(finding)


class _IdMaker:
    """:func:`vulnerability_id` for many findings: the namespace+image hash state is reused."""

    def __init__(self, image: str) -> None:
        #: The hash of the namespace and the image, copied for each finding.
        self.prefix = hashlib.sha1(ID_NAMESPACE.bytes, usedforsecurity=False)
        self.prefix.update(image.encode("utf-8", "surrogatepass"))

    def __call__(self, f: Finding) -> str:
        return self.many([_id_key(f)])[0].decode("ascii")

    def many(self, keys: Iterable[bytes]) -> list[bytes]:
        """The ids of the findings whose :func:`_id_key` are ``keys``, as ASCII text."""
        copy = self.prefix.copy
        digests = []
        for key in keys:
            h = copy()
            h.update(key)
            digests.append(h.digest())
        return _uuid5_texts(digests)


def _id_key(f: Finding) -> bytes:
    """What a vulnerability id hashes of ``f``, after the image."""
    return f"\x00{f.id}\x00{f.package}\x00{f.version}".encode("utf-8", "surrogatepass")


#: Each byte with the UUID version nibble set to 5, and with the variant bits set to 10
#: (RFC 4122), as uuid.uuid5 sets them in bytes 6 and 8.
_VERSION_5 = bytes(b & 0x0F | 0x50 for b in range(256))
_VARIANT_RFC_4122 = bytes(b & 0x3F | 0x80 for b in range(256))
#: The groups of a UUID's text in the hex of a SHA-1 digest (the last 4 bytes unused).
_UUID_GROUPS = struct.Struct("8s4s4s4s12s8x")


def _uuid5_texts(digests: list[bytes]) -> list[bytes]:
    """The UUIDs (as uuid.uuid5 makes them: the first 16 bytes, version and variant set)
    of SHA-1 ``digests``, as ASCII text.

    All at once, each step one C call over all of them: made one by one (a hex digest
    cut in five and put together), the text was ~6,300 instructions an id, 63M of the
    ids of 10,000 findings; so ~2,500.
    """
    raw = bytearray(b"".join(digests))
    raw[6::20] = raw[6::20].translate(_VERSION_5)
    raw[8::20] = raw[8::20].translate(_VARIANT_RFC_4122)
    return [b"-".join(groups) for groups in _UUID_GROUPS.iter_unpack(binascii.hexlify(raw))]


#: What to do without a fixed version, by fix state: looked up by value (asked per
#: finding; ``FixState.X`` is a lookup through the Enum class's attribute hook, ~0.2 us).
_ADVICE = {
    FixState.WONT_FIX.value: "The vendor will not fix this in {}; consider removing the package",
    FixState.END_OF_LIFE.value: "{} is end-of-life; move to a supported release",
    FixState.NOT_FIXED.value: "No fix is available for {} yet",
}


def solution(f: Finding) -> str | None:
    """What to do, in GitLab's words ("Upgrade openssl to 1.1.1k-r0")."""
    if f.fixed_versions:
        text = f"Upgrade {f.package} to {', '.join(f.fixed_versions)}"
    else:
        advice = _ADVICE.get(f.fix_state._value_)
        if advice is None:
            return None
        text = advice.format(f.package)
    return text[:_SOLUTION_MAX]


@lru_cache(maxsize=65536)
def _vector_ok(v: str) -> bool:
    """Whether the schema accepts CVSS vector ``v`` (vectors repeat: cached)."""
    if len(v) > 128:
        return False
    return bool((len(v) >= 32 and _CVSS3.fullmatch(v)) or (len(v) >= 16 and _CVSS2.fullmatch(v)))


def _cvss_vectors(f: Finding) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for c in f.cvss:
        v = c.vector
        if not v or v in seen:
            continue
        if _vector_ok(v):
            seen.add(v)
            out.append({"vendor": c.source or "unknown", "vector": v})
            if len(out) == 10:
                break
    return out


class _Renderer:
    """Builds vulnerability objects for one document.

    Identifier, link, CVSS vector, package and detail objects are built once per
    distinct value and shared between the vulnerabilities of the document (the same CVE
    is usually reported for several packages, a package for several CVEs): the document
    is read-only data.
    """

    def __init__(self, image: str, os_name: str, default_branch_image: str | None,
                 locations: Mapping[tuple[str, str, str], FindingLocation] | None = None,
                 identifier_urls: Mapping[str, str] | None = None) -> None:
        self.image = image
        self.os_name = os_name
        self.dbi = default_branch_image
        self.make_id = _IdMaker(image)
        self.locations = locations or {}
        self.urls = identifier_urls or {}
        self.id_makers: dict[str, _IdMaker] = {image: self.make_id}
        self.idents: dict[tuple[str, tuple[str, ...]], list[dict[str, str]]] = {}
        self.links: dict[tuple[str, ...], list[dict[str, str]]] = {}
        self.vectors: dict[tuple[Cvss, ...], list[dict[str, str]]] = {}
        self.details: dict[tuple[tuple[str, ...], float | None], dict[str, Any]] = {}
        self.packages: dict[str, dict[str, str]] = {}
        self._image_json: bytes | None = None

    def _identifier(self, value: str) -> dict[str, str]:
        # The source report's URL for an id (GitLab input) wins over the usual one.
        return _with_url(identifier(value), self.urls.get(value))

    def _own(self, f: Finding) -> FindingLocation | None:
        """Where the source report put ``f`` (a GitLab input), if it said."""
        if not self.locations:
            return None
        for vid in f.all_ids:
            where = self.locations.get((vid, f.package, f.version))
            if where is not None:
                return where
        return None

    def __call__(self, f: Finding) -> Any:
        """The vulnerability object of ``f``: a dict, or the same already encoded when
        :func:`warm` made its parts."""
        image, os_name, dbi = self.image, self.os_name, self.dbi
        make_id = self.make_id
        own = self._own(f)
        if own is not None:
            # GitLab in, GitLab out: each vulnerability keeps the image it was found in.
            image = own.image or image
            os_name = own.operating_system or os_name
            dbi = own.default_branch_image if own.default_branch_image and \
                len(own.default_branch_image) <= 255 else dbi
            make_id = self.id_makers.get(image) or self.id_makers.setdefault(image,
                                                                             _IdMaker(image))
        if not self.urls and own is None:  # (what warm() made knew no identifier URLs)
            hit = _WARM.get(id(f))
            end = self.image_json
            if hit is not None and hit[0] is f and end is not None:
                return self._fragment(make_id.many([hit[4]])[0], hit[1:], end)
        package, name, description, severity, sol, idents, links, vectors, details = \
            self.facts(f)
        location: dict[str, Any] = {
            "dependency": {"package": package, "version": f.version},
            "operating_system": os_name,
            "image": image,
        }
        if dbi:
            location["default_branch_image"] = dbi
        v: dict[str, Any] = {
            "id": make_id(f),
            "name": name,
            "description": description,
            "severity": severity,
        }
        if sol:
            v["solution"] = sol
        v["location"] = location
        v["identifiers"] = idents
        v["links"] = links
        if vectors:
            v["cvss_vectors"] = vectors
        if details is not None:
            v["details"] = details
        return v

    @staticmethod
    def _fragment(vid: bytes, encoded: _Encoded, end: bytes) -> Any:
        """The vulnerability as :meth:`__call__` builds it, already encoded by orjson (the
        same bytes: each part is orjson's, joined as it joins a dict's members)."""
        head, dependency, tail, _ = encoded
        return _Written((
            b'{"id":"', vid, b'",', head, b',"location":{"dependency":', dependency, end, tail))

    def many(self, findings: Iterable[Finding]) -> list[Any]:
        """``[self(f) for f in findings]``; those encoded ahead (:func:`warm`) in one loop,
        without two calls each (~40% of a document of 10,000 of them), and those made
        whole for this image (:func:`warm_image`) as they are."""
        end = self.image_json if not self.urls and not self.locations else None
        if end is None or not _WARM:
            return [self(f) for f in findings]
        ahead = _WHOLE
        if ahead is not None and ahead.end == end and isinstance(findings, Sequence) \
                and same_objects(ahead.findings, findings):
            return _Vulnerabilities(ahead.items, ahead.parts)
        findings = list(findings)
        get = _WARM.get
        hits = [hit for f in findings if (hit := get(id(f))) is not None and hit[0] is f]
        if len(hits) != len(findings):  # (some not encoded ahead: each as it comes)
            return [self(f) for f in findings]
        ids = self.make_id.many([hit[4] for hit in hits])
        return [_Written((b'{"id":"', vid, b'",', head, b',"location":{"dependency":',
                          dependency, end, tail))
                for vid, (_, head, dependency, tail, _) in zip(ids, hits, strict=True)]

    @property
    def image_json(self) -> bytes | None:
        """The end of every location of this document, encoded, between the dependency
        and the members after ``location`` (``None``: without orjson)."""
        if _orjson is None:
            return None
        if self._image_json is None:
            end = [b',"operating_system":', _orjson.dumps(self.os_name),
                   b',"image":', _orjson.dumps(self.image)]
            if self.dbi:
                end += [b',"default_branch_image":', _orjson.dumps(self.dbi)]
            self._image_json = b"".join([*end, b"},"])
        return self._image_json

    def facts(self, f: Finding) -> _Facts:
        """What a vulnerability says that depends on ``f`` alone (not on the image)."""
        package = self.packages.get(f.package)
        if package is None:
            package = self.packages[f.package] = {"name": f.package}
        name = f.title or f"{f.id} in {f.package}"
        return (package, name[:_NAME_MAX], (f.description or f.title or name)[:_DESCRIPTION_MAX],
                f.severity._value_,  # not .value: a descriptor, slow per finding
                solution(f), *self.shared_facts(f))

    def shared_facts(self, f: Finding) -> tuple[list[dict[str, str]], list[dict[str, str]],
                                                list[dict[str, str]] | None,
                                                dict[str, Any] | None]:
        """The identifiers, links, CVSS vectors and details of :meth:`facts`."""
        key = (f.id, f.aliases)
        idents = self.idents.get(key)
        if idents is None:
            idents = self.idents[key] = [self._identifier(i) for i in f.all_ids] \
                if self.urls else [identifier(f.id), *map(identifier, f.aliases)]
        links = self.links.get(f.links)
        if links is None:
            links = self.links[f.links] = [{"url": u} for u in filter(_URL.match, f.links)]
        vectors = None
        if f.cvss:
            # The same ratings recur (one CVE, several packages): their vector
            # lists are built once and shared, like identifiers and links.
            # (Keyed by the ratings themselves, scores too: hashed and compared in C.)
            vectors = self.vectors.get(f.cvss)
            if vectors is None:
                vectors = self.vectors[f.cvss] = _cvss_vectors(f)
        details = None
        if len(f.sources) > 1 or f.epss is not None:
            dkey = (f.sources, f.epss)
            details = self.details.get(dkey)
            if details is None:
                details = self.details[dkey] = _details(f)
        return idents, links, vectors, details


#: What :meth:`_Renderer.facts` says of a finding: package, name, description, severity,
#: solution, identifiers, links, CVSS vectors, details.
_Facts = tuple[dict[str, str], str, str, str, str | None, list[dict[str, str]],
               list[dict[str, str]], list[dict[str, str]] | None, dict[str, Any] | None]
class _Written(msgspec.Struct, frozen=True, gc=False):
    """A vulnerability already encoded (see :func:`warm`): the JSON text orjson makes of
    the object :meth:`_Renderer.__call__` would build. :func:`encode` and :func:`write`
    write it as they would the object. (A Struct: made in C, one per vulnerability; a
    class's ``__init__`` was a Python call each, ~10M instructions of 10,000.)"""

    #: The text in parts: joined only where it is written (by :func:`write`, a
    #: thousand vulnerabilities at a time), not once more for each (18 MB at 10,000).
    parts: tuple[bytes, ...]

    @property
    def json(self) -> bytes:
        """The JSON text."""
        return b"".join(self.parts)


def _as_fragment(value: object) -> Any:
    """orjson's ``default``: a vulnerability encoded ahead goes in as it is."""
    if type(value) is _Written:
        return _orjson.Fragment(value.json)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


#: A vulnerability's members before ``location``, its ``location.dependency``, and its
#: members after ``location``, each encoded by orjson (without the braces), and what its
#: id hashes after the image.
_Encoded = tuple[bytes, bytes, bytes, bytes]
#: Made ahead (:func:`warm`): id of the finding -> the finding, and its vulnerability's
#: members encoded (:data:`_Encoded`).
_WARM: dict[int, tuple[Finding, bytes, bytes, bytes, bytes]] = {}


def warm(findings: Sequence[Finding]) -> None:
    """Encode now what the vulnerabilities of ``findings`` say of each finding alone (all
    but the id and the location's image), for the documents rendered later: most of a
    document's cost, made by a child of ``check`` while the registry is read (see
    :mod:`imggate.formats.written_ahead`). Held with each finding: kept while it is.

    A document with such vulnerabilities holds them encoded (:class:`_Written`):
    :func:`write` and :func:`encode` write the same bytes as for the plain objects.
    Without orjson nothing is made ahead.
    """
    if _orjson is None:
        return
    renderer = _Renderer("", "", None)
    facts = renderer.facts
    dumps = _orjson.dumps
    # The solution's member by package and fix: a package's fix recurs for every CVE it
    # fixes.
    solutions: dict[tuple[str, tuple[str, ...], str], bytes] = {}
    # What the findings of one vulnerability share (its members but the solution and the
    # location), encoded once per id and the values they are made of: a CVE recurs for
    # every package it hits, and its findings hold the very same values (the readers
    # share them), so telling them alike is one tuple's identity checks (10,000 findings:
    # ~210M -> ~60M instructions, against building every finding's facts).
    shared: dict[str, tuple[tuple[object, ...], bytes | None, bytes]] = {}
    packages: dict[str, bytes] = {}
    for f in findings:
        vid, package, version = f.id, f.package, f.version
        said = (f.title, f.description, f.severity, f.aliases, f.links, f.cvss, f.sources,
                f.epss)
        try:  # (a lone surrogate: not made ahead; the stdlib writes the plain objects)
            known = shared.get(vid)
            if known is None or known[0] != said:
                known = shared[vid] = (said, *_members(renderer, f))
            head = known[1]
            if head is None:  # (no title: it is named after its package, see facts())
                head = _head(facts(f))
            fixed, state = f.fixed_versions, f.fix_state._value_
            if fixed or state in _ADVICE:  # (else no solution)
                how = (package, fixed, state)
                made = solutions.get(how)
                if made is None:
                    made = solutions[how] = b',"solution":' + dumps(solution(f))
                head += made
            named = packages.get(package)
            if named is None:
                named = packages[package] = \
                    b'{"package":' + dumps({"name": package}) + b',"version":'
            _WARM[id(f)] = (f, head, named + dumps(version) + b"}", known[2],
                             f"\x00{vid}\x00{package}\x00{version}".encode(
                                 "utf-8", "surrogatepass"))  # _id_key(f)
        except TypeError:
            continue


def _head(said: _Facts) -> bytes:
    """A vulnerability's members before the solution, encoded (without the braces)."""
    _, name, description, severity = said[:4]
    encoded: bytes = _orjson.dumps(
        {"name": name, "description": description, "severity": severity})
    return encoded[1:-1]


def _members(renderer: _Renderer, f: Finding) -> tuple[bytes | None, bytes]:
    """What the findings of ``f``'s vulnerability share, encoded: the members before the
    solution (``None`` when it has no title: those name the package), and the members
    after the location (with the closing brace).

    Made from the shared facts alone (not all of :meth:`_Renderer.facts`, which makes
    the package's and the solution's too), and the identifiers without looking for URLs
    a GitLab input gave (there are none here): 10,000 vulnerabilities of their own,
    494M -> 427M instructions (with the solutions shared in :func:`warm`).
    """
    idents, links, vectors, details = renderer.shared_facts(f)
    title = f.title
    head = _orjson.dumps({"name": title[:_NAME_MAX],
                          "description": (f.description or title)[:_DESCRIPTION_MAX],
                          "severity": f.severity._value_})[1:-1] if title else None
    members: dict[str, Any] = {"identifiers": idents, "links": links}
    if vectors:
        members["cvss_vectors"] = vectors
    if details is not None:
        members["details"] = details
    tail: bytes = _orjson.dumps(members)
    return head, tail[1:]


class _Vulnerabilities(list[Any]):
    """A document's vulnerabilities made ahead (:func:`warm_image`), and their JSON text
    in the parts :func:`write` writes (``_PART_ITEMS`` at a time, without the commas
    between parts): written as it is, unless the list is no longer as long."""

    __slots__ = ("made", "parts")

    def __init__(self, items: Sequence[_Written], parts: Sequence[bytes]) -> None:
        super().__init__(items)
        self.made = len(items)
        self.parts = parts


class _Ahead:
    """What :func:`warm_image` made: for ``findings`` in a document whose locations end
    with ``end``, their vulnerabilities (``items``) and their text (``parts``)."""

    def __init__(self, end: bytes, findings: tuple[Finding, ...], items: list[_Written],
                 parts: list[bytes]) -> None:
        self.end, self.findings, self.items, self.parts = end, findings, items, parts


#: The vulnerabilities made ahead for one image (:func:`warm_image`).
_WHOLE: _Ahead | None = None


def warm_image(findings: Sequence[Finding], *, image: str, operating_system: str | None,
               default_branch_image: str | None = None) -> None:
    """Make the vulnerabilities of ``findings`` (encoded ahead by :func:`warm`), ids
    included, and their text, for a document of ``image`` that lists exactly these
    findings in this order (arguments as :func:`render`'s): a child of ``check`` makes
    them before the verdict when the command line pins the image (see
    :mod:`imggate.formats.written_ahead`), ~170M instructions less after it at 10,000
    findings. Any other document does not use them."""
    global _WHOLE
    dbi = default_branch_image if default_branch_image and len(default_branch_image) <= 255 \
        else None
    renderer = _Renderer(image, operating_system or "Unknown", dbi)
    end = renderer.image_json
    if end is None or not image:
        return
    items = renderer.many(findings)
    if not all(type(v) is _Written for v in items):
        return  # (some not encoded ahead: the document is made after the verdict)
    parts = [_joined(items[i:i + _PART_ITEMS]) for i in range(0, len(items), _PART_ITEMS)]
    _WHOLE = _Ahead(end, tuple(findings), items, parts)


def _joined(items: Sequence[_Written]) -> bytes:
    """``items`` as the text of a JSON array's members (without its brackets)."""
    flat: list[bytes] = []
    for v in items:
        flat += v.parts
        flat.append(b",")
    flat.pop()
    return b"".join(flat)


def _with_url(ident: dict[str, str], url: str | None) -> dict[str, str]:
    return {**ident, "url": url} if url else ident


def _details(f: Finding) -> dict[str, Any]:
    """GitLab ``details`` (the vulnerability page): which scanners agreed, and EPSS.

    Written only when there is something to say beyond a single scanner's
    report, which keeps large single-scanner reports small.
    """
    out: dict[str, Any] = {}
    if len(f.sources) > 1:
        out["reported_by"] = {"name": "Reported by", "type": "text",
                              "value": ", ".join(f.sources)}
    if f.epss is not None:
        out["epss"] = {"name": "EPSS (probability of exploitation in 30 days)",
                       "type": "value", "value": f.epss}
    return out


def _scanner(scanners: Sequence[ScannerInfo]) -> dict[str, Any]:
    if not scanners:
        return {"id": "imggate", "name": "imggate", "version": __version__,
                "vendor": {"name": "imggate"}}
    uniq = list(dict.fromkeys(scanners))
    ids = list(dict.fromkeys(s.name.lower() for s in uniq))
    version = "; ".join(f"{s.name} {s.version}" if len(uniq) > 1 else s.version
                        for s in uniq if s.version)
    vendors = list(dict.fromkeys(s.vendor for s in uniq if s.vendor))
    return {
        "id": "+".join(ids)[:255],
        "name": " + ".join(s.capitalize() for s in ids)[:255],
        "version": version or "unknown",
        "vendor": {"name": " + ".join(vendors) or "unknown"},
    }


def _time(t: datetime) -> str:
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S")


def render(
    findings: Sequence[Finding],
    *,
    image: str,
    operating_system: str | None,
    scanners: Sequence[ScannerInfo],
    start: datetime,
    end: datetime,
    default_branch_image: str | None = None,
    status: str = "success",
    locations: Mapping[tuple[str, str, str], FindingLocation] | None = None,
    identifier_urls: Mapping[str, str] | None = None,
    messages: Sequence[str] = (),
) -> dict[str, Any]:
    """The report for ``findings`` (already merged) found in ``image``.

    ``operating_system`` falls back to ``"Unknown"`` (the schema requires a
    value); a ``default_branch_image`` longer than the schema's 255
    characters is left out. ``status`` is ``success`` or ``failure``.
    ``locations`` / ``identifier_urls`` are what GitLab input reports said per
    vulnerability (:class:`~imggate.models.ScanReport`): where given, they win
    over ``image``, ``operating_system`` and ``default_branch_image``. An empty
    ``image`` is allowed only when there are no findings (nothing to locate).
    Identifier and link lists may be shared between vulnerabilities: treat
    the document as read-only data to be written. ``messages`` become the scan's
    ``info`` messages (the schema's communication to whoever ran the scan): the
    gate lists suppressed findings there, which are not vulnerabilities.
    """
    if not image and any(True for _ in findings):
        raise ValueError("image must not be empty")
    if status not in ("success", "failure"):
        raise ValueError(f"status must be success or failure, not {status!r}")
    os_name = operating_system or "Unknown"
    dbi = default_branch_image if default_branch_image and len(default_branch_image) <= 255 \
        else None
    vulnerability = _Renderer(image, os_name, dbi, locations, identifier_urls)
    scan: dict[str, Any] = {
        "analyzer": {"id": "imggate", "name": "imggate", "version": __version__,
                     "vendor": {"name": "imggate"}},
        "scanner": _scanner(scanners),
        "type": "container_scanning",
        "start_time": _time(start),
        "end_time": _time(end),
        "status": status,
    }
    said = [{"level": "info", "value": m} for m in messages if m]  # the schema: minLength 1
    if said:
        scan["messages"] = said
    return {
        "version": SCHEMA_VERSION,
        "scan": scan,
        "vulnerabilities": vulnerability.many(findings),
        "remediations": [],
    }


def encode(doc: dict[str, Any], *, newline: bool = False) -> bytes:
    """``doc`` as compact, deterministic UTF-8 JSON (ending with a newline if asked: for
    a report of 80 MB, appending one afterwards is a copy of it).

    Text from a report may hold lone surrogates (``"\\ud800"`` is valid JSON
    but not valid Unicode); those documents are written ASCII-escaped
    rather than failing.
    """
    end = "\n" if newline else ""
    if _orjson is not None:
        try:
            result: bytes = _orjson.dumps(doc, default=_as_fragment,
                                          option=_orjson.OPT_APPEND_NEWLINE if newline
                                          else None)
            return result
        except TypeError:
            pass
    try:
        return (json.dumps(doc, ensure_ascii=False, separators=(",", ":"),
                           default=_unfragment) + end).encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(doc, separators=(",", ":"), default=_unfragment) + end
                ).encode("ascii")


def _unfragment(value: object) -> Any:
    """A vulnerability encoded ahead (see :func:`warm`), decoded for the stdlib's encoder:
    the objects it was encoded from, which that encoder writes as it would have."""
    if type(value) is _Written:
        return json.loads(value.json)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(doc: dict[str, Any]) -> str:
    """``doc`` as compact JSON text."""
    return encode(doc).decode("utf-8")


#: The items of a long top-level list (the vulnerabilities) :func:`write` encodes at a
#: time: 1,000 GitLab vulnerabilities are ~1.7 MB of JSON.
_PART_ITEMS = 1000


def _encoded_parts(doc: dict[str, Any]) -> Iterator[bytes | memoryview]:
    """What :func:`encode` makes of ``doc`` with orjson (newline included), in pieces:
    each long top-level list ``_PART_ITEMS`` items at a time. orjson's ``TypeError``
    (what sends :func:`encode` to the stdlib) is left to the caller."""
    dumps = _orjson.dumps
    sep = b"{"
    for key, value in doc.items():
        if type(value) is _Vulnerabilities and len(value) == value.made and value.parts:
            yield sep + dumps(key) + b":["
            for i, part in enumerate(value.parts):
                if i:
                    yield b","
                yield part
            yield b"]"
        elif type(key) is str and type(value) is list and len(value) > _PART_ITEMS:
            yield sep + dumps(key) + b":["
            for i in range(0, len(value), _PART_ITEMS):
                if i:
                    yield b","
                items = value[i:i + _PART_ITEMS]
                if all(type(v) is _Written for v in items):  # joined as orjson would
                    yield _joined(items)
                    continue
                part = dumps(items, default=_as_fragment)
                yield memoryview(part)[1:-1]  # without [ ]
            yield b"]"
        else:
            yield sep + dumps({key: value}, default=_as_fragment)[1:-1]  # without { }
        sep = b","
    yield b"}\n" if doc else b"{}\n"


def write(path: str | os.PathLike[str], doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path`` atomically (a reader never sees half a report)."""
    from imggate.formats.destination import write_parts
    from imggate.formats.files import write_atomic

    if _orjson is not None and not SECRETS:
        # Encoded and written in parts, not as one buffer of the whole report: 21,000
        # fewer page faults for 50,000 findings (87 MB), and each part is written while
        # it is in the cache: encoding and writing them 335 -> 243 ms (5,000: 25 -> 24).
        try:
            write_parts(path, _encoded_parts(doc))
            return
        except TypeError:  # (nothing written) encode's fallback: the stdlib
            pass
    data = encode(doc, newline=True)
    if SECRETS:  # the run's secrets never reach a report (see imggate.redact)
        data = SECRETS.redact(data.decode("utf-8")).encode("utf-8")
    write_atomic(Path(path), data)
