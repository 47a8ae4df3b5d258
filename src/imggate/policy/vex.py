"""OpenVEX documents as exceptions: ``not_affected`` and ``fixed`` statements suppress.

Both the v0.2 shape (``vulnerability: {name, aliases}``, products as objects
with ``subcomponents``) and the older v0.0.x shape (strings) are read. When
several statements speak about the same vulnerability and product, the latest
(by timestamp, then document order) wins, so a later ``affected`` withdraws an
earlier ``not_affected``. Products map to image scopes: ``pkg:oci/<name>@<digest>``
purls by digest (and ``repository_url``), other image references by name;
a product that is a package purl scopes the statement to that package.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from msgspec import structs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from imggate._files import FileRefused, read_file
from imggate.errors import ConfigError
from imggate.models import SignatureCheck
from imggate.policy.exceptions import AllowEntry, ExceptionSet

#: Predicate types of OpenVEX attestations (cosign's ``--type openvex``, vexctl's).
OPENVEX_PREDICATES = ("https://openvex.dev/ns", "https://openvex.dev/ns/v0.2.0")

SUPPRESSING = frozenset({"not_affected", "fixed"})
_STATUSES = frozenset({"not_affected", "affected", "fixed", "under_investigation"})
_MAX_VEX_BYTES = 64 * 1024 * 1024


class _Loose(BaseModel):
    # Third-party format: ignore fields we do not use, so newer documents still load.
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class _Vulnerability(_Loose):
    name: str = Field(min_length=1)
    aliases: tuple[str, ...] = ()


class _Component(_Loose):
    id: str | None = Field(default=None, alias="@id")
    identifiers: dict[str, str] = Field(default_factory=dict)

    @property
    def ref(self) -> str | None:
        return self.id or self.identifiers.get("purl")


class _Product(_Component):
    subcomponents: tuple[_Component, ...] = ()


class _Statement(_Loose):
    vulnerability: _Vulnerability
    products: tuple[_Product, ...] = ()
    subcomponents: tuple[_Component, ...] = ()
    status: str
    justification: str | None = None
    impact_statement: str | None = None
    action_statement: str | None = None
    status_notes: str | None = None
    timestamp: datetime | None = None

    @field_validator("vulnerability", mode="before")
    @classmethod
    def _v00(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @field_validator("products", "subcomponents", mode="before")
    @classmethod
    def _strings(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"@id": x} if isinstance(x, str) else x for x in v]
        return v

    @field_validator("status")
    @classmethod
    def _status(cls, v: str) -> str:
        if v not in _STATUSES:
            raise ValueError(f"unknown status {v!r} (expected one of {sorted(_STATUSES)})")
        return v


class _Document(_Loose):
    context: str = Field(alias="@context")
    timestamp: datetime | None = None
    statements: tuple[_Statement, ...] = Field(min_length=1)


def _oci_scope(purl: str) -> str:
    """``pkg:oci/app@sha256%3A..?repository_url=r.io/org/app`` -> ``r.io/org/app@sha256:..``."""
    rest = purl[len("pkg:oci/"):]
    rest, _, query = rest.partition("?")
    rest = rest.split("#", 1)[0]
    name, _, version = rest.partition("@")
    repo = parse_qs(query).get("repository_url", [""])[0]
    repo = repo.split("://", 1)[-1].rstrip("/")
    pattern = repo or f"*/{unquote(name)}"
    if version:
        pattern += "@" + unquote(version)
    return pattern


def _scope(product: _Product) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(image scope patterns, package purls) for a product."""
    ref = product.ref
    if not ref or ref == "*":
        return (), ()
    if ref.startswith("pkg:oci/"):
        return (_oci_scope(ref),), ()
    if ref.startswith("pkg:"):
        return (), (ref,)
    return (ref,), ()


def _reason(s: _Statement) -> str:
    text = s.status
    if s.justification:
        text += f" ({s.justification})"
    detail = s.impact_statement or s.status_notes or s.action_statement
    if detail:
        text += f": {detail}"
    return text


def _entries(doc: _Document, source: str) -> tuple[AllowEntry, ...]:
    # Latest statement per (vulnerability, product, subcomponents) wins.
    def when(item: tuple[int, _Statement]) -> tuple[float, int]:
        ts = item[1].timestamp or doc.timestamp
        return (ts.timestamp() if ts else float("-inf"), item[0])

    order = sorted(enumerate(doc.statements), key=when)
    final: dict[tuple[str, str, tuple[str, ...]], tuple[int, _Statement, _Product | None,
                                                         tuple[str, ...]]] = {}
    for index, st in order:
        products: tuple[_Product | None, ...] = st.products or (None,)
        for product in products:
            subs = tuple(c.ref or "" for c in (product.subcomponents if product else ()))
            subs += tuple(c.ref or "" for c in st.subcomponents)
            key = (st.vulnerability.name.upper(), (product.ref or "") if product else "", subs)
            final[key] = (index, st, product, subs)
    entries: list[AllowEntry] = []
    for index, st, product, subs in sorted(final.values(), key=lambda v: v[0]):
        if st.status not in SUPPRESSING:
            continue
        images, purls = _scope(product) if product else ((), ())
        ids = (st.vulnerability.name, *st.vulnerability.aliases)
        where = f"{source} statements[{index}]"
        purl_subs = tuple(s for s in subs if s.startswith("pkg:"))
        names = [s for s in subs if s and not s.startswith("pkg:")]
        base = AllowEntry(ids=ids, reason=_reason(st), source=where, kind="openvex",
                          purls=purls + purl_subs, images=images)
        if names and not purl_subs:
            entries.extend(AllowEntry(ids=ids, reason=base.reason, source=where,
                                      kind="openvex", package=n, purls=purls, images=images)
                           for n in names)
        else:
            entries.append(base)
    return tuple(entries)


def parse_openvex(data: bytes, source: str) -> ExceptionSet:
    """Parse an OpenVEX JSON document; anything malformed is a :class:`ConfigError`."""
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{source}: not valid JSON (line {e.lineno}, column {e.colno})") \
            from None
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"{source}: not valid JSON (not UTF-8 text)") from None
    except RecursionError:
        raise ConfigError(f"{source}: JSON nested too deeply") from None
    if not isinstance(raw, dict) or "openvex" not in str(raw.get("@context", "")):
        raise ConfigError(f"{source}: not an OpenVEX document (no openvex @context)")
    try:
        doc = _Document.model_validate(raw)
    except ValidationError as e:
        from imggate.policy._wording import describe  # imggate's words, not pydantic's

        err = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "(document)"
        raise ConfigError(f"{source}: {where}: {describe(err, _Document)}") from None
    return ExceptionSet(_entries(doc, source))


def load_openvex(path: Path) -> ExceptionSet:
    """Read an OpenVEX JSON file."""
    try:
        data = read_file(path, _MAX_VEX_BYTES, allow_pipes=True)
    except FileRefused as e:
        raise ConfigError(f"{path}: cannot read ({e})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    return parse_openvex(data, str(path))


#: The kind of exceptions from signed VEX attestations: unlike VEX files (facts about a
#: product, exempt), they are held to the exception policy like any exception.
ATTESTED_KIND = "openvex-attestation"


def attested_exceptions(checks: Sequence[SignatureCheck], *, max_days: int | None = None
                        ) -> tuple[ExceptionSet, list[str]]:
    """Exceptions from verified OpenVEX attestations, each for its attested digest only.

    Only checks that verified (against ``exceptions.vex_attestations``' signers) and
    carry an OpenVEX predicate count; a product scope the statement names is replaced
    by the attested digest, its package scope kept. Each entry's source names the
    attestation and its signer, its reason the document's author, timestamp and the
    statement's justification. With ``max_days`` (the environment's
    ``exception_policy.max_days``) a statement expires that many days after the
    document's timestamp; without it, it has no expiry (and ``require_expiry`` refuses
    it). Returns the exceptions and why any attestation that verified could not be read.
    """
    entries: list[AllowEntry] = []
    problems: list[str] = []
    for c in checks:
        if not c.verified or c.predicate is None or c.signed_digest is None \
                or c.predicate_type not in OPENVEX_PREDICATES:
            continue
        source = f"openvex attestation {c.location} signed by {c.signer}"
        try:
            found = parse_openvex(json.dumps(dict(c.predicate)).encode(), source)
        except ConfigError as err:
            problems.append(f"{err.message[:300]}: suppresses nothing")
            continue
        author = c.predicate.get("author")
        who = f"{author}" if isinstance(author, str) and author else "unnamed author"
        stamp = c.predicate.get("timestamp")
        when = f", {stamp}" if isinstance(stamp, str) and stamp else ""
        expires = None
        if max_days is not None and isinstance(stamp, str):
            try:
                made = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            except ValueError:
                made = None
            expires = made.date() + timedelta(days=max_days) if made else None
        for entry in found.entries:
            entries.append(structs.replace(entry, images=(f"@{c.signed_digest}",),
                                           kind=ATTESTED_KIND,
                                           reason=f"{who}{when}: {entry.reason}",
                                           expires=expires))
    return ExceptionSet(tuple(entries)), problems
