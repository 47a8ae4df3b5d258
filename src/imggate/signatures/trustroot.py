"""Sigstore trust material: Fulcio CAs, Rekor keys and CT log keys.

Read from a ``trusted_root.json`` (``application/vnd.dev.sigstore.trustedroot+json``):
the production one that ships inside the ``sigstore`` package (found on disk
without importing sigstore, which is slow), or ``--trusted-root FILE`` for a
private Sigstore. A file may also hold several roots, one JSON document per
line, as ``gh attestation trusted-root`` prints them (public-good and GitHub's
instance), or a client trust config (``…clienttrustconfig+json``) wrapping one.
Nothing here touches the network: with roots given as files, no TUF request
is ever made.

A root needs a Fulcio CA and at least one kind of time evidence: Rekor keys
(signatures proved by a transparency-log entry) or timestamp authorities
(RFC 3161 timestamps; GitHub's instance has no log at all).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cryptography.hazmat.primitives import serialization
from msgspec import Struct

from imggate._files import read_config_file
from imggate.errors import ConfigError
from imggate.signatures.keys import VerifyingKey, as_verifying_key

if TYPE_CHECKING:
    from cryptography import x509

A = TypeVar("A")

_PRODUCTION_DIR = "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
_MAX_FILE = 4 * 1024 * 1024


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class Validity(Struct, frozen=True):
    """A ``validFor`` window; ``end`` is ``None`` while still in use."""

    start: datetime | None
    end: datetime | None

    def contains(self, when: datetime) -> bool:
        """Whether ``when`` lies inside the window."""
        return (self.start is None or self.start <= when) and (self.end is None or when <= self.end)


@dataclass(frozen=True, slots=True)
class LogKey:
    """A transparency log (Rekor) or CT log key, named by its log id."""

    log_id: bytes
    key: VerifyingKey = field(compare=False, repr=False)
    validity: Validity
    url: str


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A Fulcio CA: its chain (intermediates first, root last) and when it issued."""

    chain: tuple[x509.Certificate, ...] = field(compare=False, repr=False)
    validity: Validity
    uri: str


@dataclass(frozen=True, slots=True)
class TimestampAuthority:
    """An RFC 3161 timestamp authority: its chain (signing certificate first, root last)."""

    chain: tuple[x509.Certificate, ...] = field(compare=False, repr=False)
    validity: Validity
    uri: str


@dataclass(frozen=True, slots=True)
class SigstoreTrustRoot:
    """The trust material of one Sigstore instance."""

    source: str
    certificate_authorities: tuple[CertificateAuthority, ...]
    tlogs: tuple[LogKey, ...]
    ctlogs: tuple[LogKey, ...]
    #: The document as read, for sigstore-python (bundles) to load the same trust.
    raw: bytes = field(default=b"", compare=False, repr=False)
    timestamp_authorities: tuple[TimestampAuthority, ...] = ()

    @property
    def label(self) -> str:
        """A short name for messages: the Fulcio URI(s) and where the root was read."""
        uris = ", ".join(dict.fromkeys(c.uri for c in self.certificate_authorities if c.uri))
        return f"{uris or 'trusted root'} ({self.source})"

    def tlog(self, log_id: bytes) -> LogKey | None:
        """The Rekor key with this log id (sha256 of its DER SPKI)."""
        return next((k for k in self.tlogs if k.log_id == log_id), None)

    def ctlog(self, log_id: bytes) -> LogKey | None:
        """The CT log key with this log id."""
        return next((k for k in self.ctlogs if k.log_id == log_id), None)


def _time(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where}: timestamp must be a string")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{where}: invalid timestamp {value[:40]!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _validity(obj: object, where: str) -> Validity:
    if obj is None:
        return Validity(None, None)
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: validFor must be an object")
    return Validity(_time(obj.get("start"), f"{where}.start"),
                    _time(obj.get("end"), f"{where}.end"))


def _b64(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}: invalid base64") from None


def _log_keys(items: object, where: str) -> tuple[LogKey, ...]:
    if not isinstance(items, list):
        raise ValueError(f"{where}: must be a list")
    out = []
    for i, item in enumerate(items):
        w = f"{where}[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("publicKey"), dict):
            raise ValueError(f"{w}: needs a publicKey object")
        pk = item["publicKey"]
        der = _b64(pk.get("rawBytes"), f"{w}.publicKey.rawBytes")
        try:
            loaded = serialization.load_der_public_key(der)
        except Exception:  # cryptography's assorted errors and words: not ours to show
            raise ValueError(f"{w}.publicKey.rawBytes: not a DER public key") from None
        try:
            key = as_verifying_key(loaded, w)
        except ValueError as e:  # imggate's words: the key kind it cannot verify with
            raise ValueError(f"{w}: unusable public key: {str(e).removeprefix(w + ': ')}") \
                from None
        log_id_obj = item.get("logId")
        log_id = (_b64(log_id_obj.get("keyId"), f"{w}.logId.keyId")
                  if isinstance(log_id_obj, dict) else hashlib.sha256(der).digest())
        url = item.get("baseUrl")
        out.append(LogKey(log_id, key, _validity(pk.get("validFor"), f"{w}.publicKey.validFor"),
                          url if isinstance(url, str) else ""))
    return tuple(out)


def _chain(item: object, w: str) -> tuple[x509.Certificate, ...]:
    from cryptography import x509

    chain = item.get("certChain") if isinstance(item, dict) else None
    certs = chain.get("certificates") if isinstance(chain, dict) else None
    if not isinstance(certs, list) or not certs:
        raise ValueError(f"{w}: needs certChain.certificates")
    parsed = []
    for j, c in enumerate(certs):
        raw = _b64(c.get("rawBytes") if isinstance(c, dict) else None,
                   f"{w}.certChain.certificates[{j}].rawBytes")
        try:
            parsed.append(x509.load_der_x509_certificate(raw))
        except ValueError:
            raise ValueError(f"{w}.certChain.certificates[{j}].rawBytes: not a DER X.509 "
                             "certificate") from None
    return tuple(parsed)


def _chained(items: object, where: str, make: Callable[[tuple[x509.Certificate, ...],
                                                         Validity, str], A]) -> tuple[A, ...]:
    """Certificate or timestamp authorities: each a certificate chain, validity and URI."""
    if not isinstance(items, list):
        raise ValueError(f"{where}: must be a list")
    out = []
    for i, item in enumerate(items):
        w = f"{where}[{i}]"
        chain = _chain(item, w)
        assert isinstance(item, dict)
        uri = item.get("uri")
        out.append(make(chain, _validity(item.get("validFor"), f"{w}.validFor"),
                        uri if isinstance(uri, str) else ""))
    return tuple(out)


def _timestamp_authorities(items: object, where: str) -> tuple[TimestampAuthority, ...]:
    return _chained(items, where, TimestampAuthority)


def _authorities(items: object, where: str) -> tuple[CertificateAuthority, ...]:
    return _chained(items, where, CertificateAuthority)


def parse_trusted_root(data: bytes, source: str) -> SigstoreTrustRoot:
    """Validate a ``trusted_root.json`` document; :class:`ConfigError` names ``source``."""
    try:
        doc: Any = json.loads(data)
    except (ValueError, RecursionError):
        # The json module's words (line, column) are not imggate's.
        raise ConfigError(f"{source}: invalid Sigstore trusted root: not JSON") from None
    try:
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        mt = doc.get("mediaType")
        if isinstance(mt, str) and mt.startswith("application/vnd.dev.sigstore.clienttrustconfig"):
            # A client trust config wraps the root; sigstore-python reads the root alone.
            doc = doc.get("trustedRoot")
            if not isinstance(doc, dict):
                raise ValueError("client trust config has no trustedRoot object")
            mt = doc.get("mediaType")
            data = json.dumps(doc).encode()
        if not isinstance(mt, str) or not mt.startswith("application/vnd.dev.sigstore.trustedroot"):
            raise ValueError(f"mediaType {str(mt)[:80]!r} is not a Sigstore trusted root")
        root = SigstoreTrustRoot(
            source,
            _authorities(doc.get("certificateAuthorities", []), "certificateAuthorities"),
            _log_keys(doc.get("tlogs") or [], "tlogs"),
            _log_keys(doc.get("ctlogs") or [], "ctlogs"),
            data,
            _timestamp_authorities(doc.get("timestampAuthorities") or [],
                                   "timestampAuthorities"),
        )
    except (ValueError, RecursionError) as e:
        raise ConfigError(f"{source}: invalid Sigstore trusted root: {e}") from None
    if not root.certificate_authorities:
        raise ConfigError(f"{source}: trusted root has no Fulcio certificate authority")
    if not root.tlogs and not root.timestamp_authorities:
        raise ConfigError(f"{source}: trusted root has neither a Rekor key nor a timestamp "
                          "authority: nothing could prove when a certificate was used")
    return root


#: Most roots one file may hold (``gh attestation trusted-root`` prints two today).
MAX_ROOTS = 32


def parse_trusted_roots(data: bytes, source: str) -> tuple[SigstoreTrustRoot, ...]:
    """One trusted root document, or several as JSON lines; :class:`ConfigError` names
    ``source`` and the line."""
    lines = [ln for ln in data.splitlines() if ln.strip()]
    try:
        single = len(lines) > 1 and isinstance(json.loads(data), dict)
    except (ValueError, RecursionError):
        single = False
    if len(lines) <= 1 or single:
        return (parse_trusted_root(data, source),)
    if len(lines) > MAX_ROOTS:
        raise ConfigError(f"{source}: {len(lines)} trusted roots, at most {MAX_ROOTS}")
    return tuple(parse_trusted_root(line, f"{source} line {i}")
                 for i, line in enumerate(lines, 1))


def load_trusted_roots(*paths: str | Path) -> tuple[SigstoreTrustRoot, ...]:
    """Read every ``--trusted-root FILE`` (each a root, or JSON lines of roots)."""
    out: list[SigstoreTrustRoot] = []
    for path in paths:
        p = Path(path)
        out += parse_trusted_roots(read_config_file(p, _MAX_FILE, what="trusted root"), str(p))
    return tuple(out)


def load_trusted_root(path: str | Path) -> SigstoreTrustRoot:
    """Read ``--trusted-root FILE`` holding one root (the first, when it holds several)."""
    return load_trusted_roots(path)[0]


def production_trusted_root_path() -> Path:
    """Where the installed sigstore package keeps the production ``trusted_root.json``."""
    spec = importlib.util.find_spec("sigstore")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        candidate = Path(loc) / "_store" / _PRODUCTION_DIR / "trusted_root.json"
        if candidate.is_file():
            return candidate
    raise ConfigError("the sigstore package's production trusted_root.json was not found",
                      hint="reinstall imggate's dependencies or pass --trusted-root FILE")


_production_cache: list[SigstoreTrustRoot] = []


def production_trusted_root() -> SigstoreTrustRoot:
    """Sigstore's public-good production trust root (parsed once per process)."""
    if not _production_cache:
        _production_cache.append(load_trusted_root(production_trusted_root_path()))
    return _production_cache[0]
