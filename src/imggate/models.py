"""Frozen value types that cross stage boundaries.

reference -> resolve (:class:`ResolvedImage`) -> evidence (:class:`ScanReport`,
:class:`SignatureCheck`) -> evaluate (:class:`ImageVerdict`) -> outputs.
Nothing here does I/O.

They are frozen msgspec Structs, not frozen dataclasses: every command imports this
module, and a frozen dataclass writes and compiles its methods when it is defined
(importing the module cost 97M instructions beyond its own imports; as Structs, 6M).
A Struct is as immutable, compares, orders and hashes by value the same way, and is
built faster; copy one with :func:`imggate.values.replace`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

from msgspec import Struct, field

_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}
# Matched with fullmatch: "$" would also accept a final newline ("sha256:<hex>\n").
_DIGEST_RE = re.compile(r"([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-f0-9]{32,})")


class Digest(Struct, frozen=True, order=True):
    """A content digest such as ``sha256:<64 hex>``."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``algo:hex``; raise ``ValueError`` naming what is wrong."""
        m = _DIGEST_RE.fullmatch(text)
        if not m:
            raise ValueError(f"invalid digest {text[:100]!r}: expected sha256:<64 hex digits>")
        algo, hx = m.group(1), m.group(2)
        if algo not in _HEX:
            raise ValueError(f"unsupported digest algorithm {algo!r}")
        if len(hx) != _HEX[algo]:
            raise ValueError(f"invalid digest {text[:100]!r}: {algo} needs {_HEX[algo]} hex digits")
        return cls(algo, hx)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of ``data``."""
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def matches(self, data: bytes) -> bool:
        """Whether ``data`` hashes to this digest."""
        return hashlib.new(self.algorithm, data).hexdigest() == self.hex

    @property
    def tag_form(self) -> str:
        """``sha256-<hex>``: the form cosign uses in tag names."""
        return f"{self.algorithm}-{self.hex}"

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


class ImageRef(Struct, frozen=True):
    """A normalised image reference (docker's rules; see ``registry.reference``).

    ``registry`` is ``docker.io`` for Docker Hub, ``repository`` includes
    ``library/`` for official images. ``source`` is ``registry`` or
    ``oci-layout``; for a layout, ``layout_path`` is the directory.
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None
    source: str = "registry"
    layout_path: str | None = None

    @property
    def name(self) -> str:
        """``registry/repository`` (the layout path for an OCI layout)."""
        if self.source == "oci-layout":
            return f"oci:{self.layout_path}"
        return f"{self.registry}/{self.repository}"

    @property
    def pinned_by_digest(self) -> bool:
        """Whether the user gave a digest (not just a tag)."""
        return self.digest is not None

    def with_digest(self, digest: Digest) -> ImageRef:
        """The same image pinned to ``digest`` (the tag is kept for display)."""
        return ImageRef(self.registry, self.repository, self.tag, digest, self.source,
                        self.layout_path)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


class Platform(Struct, frozen=True):
    """``os/architecture[/variant]``."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]``; raise ``ValueError`` when malformed."""
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts) or not all(
            re.fullmatch(r"[a-z0-9._-]+", p) for p in parts
        ):
            raise ValueError(f"invalid platform {text!r}: expected os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def matches(self, other: Platform) -> bool:
        """Whether ``other`` satisfies this (a missing variant matches any)."""
        return (self.os == other.os and self.architecture == other.architecture
                and (self.variant is None or self.variant == other.variant))

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


class PlatformChild(Struct, frozen=True):
    """One child manifest of an index / manifest list."""

    digest: Digest
    media_type: str
    size: int
    platform: Platform | None


class ConfigSummary(Struct, frozen=True):
    """What the image config blob says about the image."""

    digest: Digest
    created: datetime | None
    os: str | None
    architecture: str | None
    variant: str | None
    user: str | None
    labels: Mapping[str, str]
    layer_count: int


class ResolvedImage(Struct, frozen=True):
    """An image pinned to a verified digest.

    ``digest`` is the top-level manifest (the index for multi-arch images);
    ``manifest_digest`` is the platform manifest whose config was read.
    """

    ref: ImageRef
    digest: Digest
    media_type: str
    platforms: tuple[PlatformChild, ...]
    manifest_digest: Digest
    config: ConfigSummary | None

    @property
    def pinned(self) -> str:
        """``<registry>/<repository>@<digest>``."""
        return f"{self.ref.name}@{self.digest}"


class Severity(str, Enum):
    """GitLab's severity scale."""

    CRITICAL = "Critical"
    HIGH = "High"
    MEDIUM = "Medium"
    LOW = "Low"
    INFO = "Info"
    UNKNOWN = "Unknown"

    @property
    def rank(self) -> int:
        """Ordering for thresholds: Critical 5 ... Info 1, Unknown 0."""
        # By value: an Enum member's hash is a Python call (asked per finding, 10,000s).
        return _SEVERITY_RANK[self._value_]

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Case-insensitive; Grype's ``Negligible`` is Info. ``ValueError`` otherwise."""
        key = text.strip().lower()
        if key in _SEVERITY_ALIASES:
            return _SEVERITY_ALIASES[key]
        raise ValueError(f"unknown severity {text[:50]!r}")


_SEVERITY_RANK = {
    Severity.CRITICAL.value: 5, Severity.HIGH.value: 4, Severity.MEDIUM.value: 3,
    Severity.LOW.value: 2, Severity.INFO.value: 1, Severity.UNKNOWN.value: 0,
}
_SEVERITY_ALIASES = {
    "critical": Severity.CRITICAL, "high": Severity.HIGH, "medium": Severity.MEDIUM,
    "moderate": Severity.MEDIUM, "low": Severity.LOW, "info": Severity.INFO,
    "informational": Severity.INFO, "negligible": Severity.INFO, "none": Severity.INFO,
    "unknown": Severity.UNKNOWN, "": Severity.UNKNOWN,
}


class FixState(str, Enum):
    """Whether a fix exists."""

    FIXED = "fixed"
    NOT_FIXED = "not-fixed"
    WONT_FIX = "wont-fix"
    END_OF_LIFE = "end-of-life"
    UNKNOWN = "unknown"


class Cvss(Struct, frozen=True):
    """One CVSS rating from one source (nvd, redhat, ghsa...)."""

    source: str
    version: str | None
    vector: str | None
    score: float | None


class Finding(Struct, frozen=True):
    """One vulnerability in one package version, as one or more scanners reported it.

    Reports hold tens of thousands of findings: a Struct is built ~3x faster than a
    frozen dataclass (which sets each of its 17 fields through ``object.__setattr__``),
    ~30 ms of reading a 10,000-finding report.
    """

    id: str
    package: str
    version: str
    severity: Severity
    aliases: tuple[str, ...] = ()
    package_type: str | None = None
    purl: str | None = None
    fixed_versions: tuple[str, ...] = ()
    fix_state: FixState = FixState.UNKNOWN
    cvss: tuple[Cvss, ...] = ()
    epss: float | None = None
    title: str | None = None
    description: str | None = None
    links: tuple[str, ...] = ()
    layer: str | None = None
    path: str | None = None
    sources: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str, str]:
        """(vulnerability id, package, version): what makes two reports the same finding."""
        return (self.id, self.package, self.version)

    @property
    def max_cvss(self) -> float | None:
        """The highest CVSS base score from any source."""
        # A plain loop (same result as max(), NaN included): the outputs ask
        # for this several times per finding, tens of thousands of times.
        best: float | None = None
        for c in self.cvss:
            score = c.score
            if score is not None and (best is None or score > best):
                best = score
        return best

    @property
    def all_ids(self) -> tuple[str, ...]:
        """The id and every alias."""
        return (self.id, *self.aliases)


class ScannerInfo(Struct, frozen=True):
    """Which scanner produced a report."""

    name: str
    version: str | None = None
    vendor: str | None = None


#: What every output calls an image without scanner evidence (never "0 findings").
NOT_SCANNED = "NOT SCANNED"


class EvidenceKind(str, Enum):
    """Where a piece of vulnerability evidence came from."""

    REPORT = "report"              # a scanner report file given to imggate
    SCAN = "scan"                  # a scanner imggate ran itself (--scan trivy)
    ATTESTATION = "attestation"    # a signed vulnerability attestation in the registry


def describe_finding(f: Finding) -> str:
    """One line for a finding in a rule's messages (and the outputs that list findings
    as lines)."""
    fix = f"fixed in {', '.join(f.fixed_versions)}" if f.fixed_versions else "no fix"
    cvss = f", CVSS {f.max_cvss:g}" if f.max_cvss is not None else ""
    return f"{f.id} ({f.severity.value}{cvss}) in {f.package} {f.version}: {fix}"


class FindingLocation(Struct, frozen=True):
    """Where a GitLab report said one vulnerability was: kept when GitLab is converted to GitLab."""

    image: str | None = None
    operating_system: str | None = None
    default_branch_image: str | None = None


class ScanReport(Struct, frozen=True):
    """One scanner report (or attestation), parsed and validated.

    ``image_name`` / ``image_digests`` are what the report says it scanned
    (``image_digests`` holds manifest/repo digests and the image id; empty
    when the report names none) so the gate can bind a report to an image.
    ``finished`` is when the scan ran by the report's own account (Trivy
    ``CreatedAt``, Grype ``descriptor.timestamp``, GitLab ``scan.end_time``,
    an attestation's ``scanFinishedOn``): the report's age is measured from it.
    ``locations`` (by :attr:`Finding.key`) and ``identifier_urls`` (by id)
    are what a GitLab report said per vulnerability, for ``convert``.
    """

    scanner: ScannerInfo
    findings: tuple[Finding, ...]
    source: str | None = None
    image_name: str | None = None
    image_digests: tuple[Digest, ...] = ()
    operating_system: str | None = None
    started: datetime | None = None
    finished: datetime | None = None
    kind: EvidenceKind = EvidenceKind.REPORT
    locations: Mapping[tuple[str, str, str], FindingLocation] = field(default_factory=dict)
    identifier_urls: Mapping[str, str] = field(default_factory=dict)

    @property
    def created(self) -> datetime | None:
        """When the report was made: the scan's end, else its start."""
        return self.finished or self.started


class Binding(str, Enum):
    """Whether a report is about the image it was given for."""

    BOUND = "bound"                          # it names a digest of this image
    UNBOUND = "unbound"                      # it names no digest: cannot tell
    OTHER_IMAGE = "other-image"              # it names digests, none of this image's
    OTHER_REPOSITORY = "other-repository"    # it names no digest and another repository


class ReportInfo(Struct, frozen=True):
    """One piece of scanner evidence as judged for one image (shown in every report).

    ``location`` is the file (or registry reference) it came from; ``age``
    is ``now - created``; ``bound_to`` is the digest of this image it names;
    ``used`` says whether its findings count for this image, and
    ``problems`` why not (or why it is suspect: stale, undated, unbound).
    """

    kind: EvidenceKind
    location: str
    scanner: str
    scanner_version: str | None
    created: datetime | None
    age: timedelta | None
    subject: str | None
    binding: Binding
    bound_to: Digest | None
    used: bool
    findings: int
    problems: tuple[str, ...] = ()


class SignatureKind(str, Enum):
    """What a signature check was about."""

    SIGNATURE = "signature"
    ATTESTATION = "attestation"


class SignatureCheck(Struct, frozen=True):
    """The outcome of checking one signature (or attestation) against one trust anchor set.

    ``signer`` names what verified it (a key's file name/fingerprint, or
    ``identity (issuer)`` for keyless) and is ``None`` when nothing did;
    ``reason`` says why it failed, or how it verified.
    """

    kind: SignatureKind
    location: str
    verified: bool
    reason: str
    signer: str | None = None
    predicate_type: str | None = None
    predicate: Mapping[str, Any] | None = None
    tlog: bool = False
    signed_digest: Digest | None = None
    #: What the signing certificate states about the build (Fulcio's source repository,
    #: ref, build signer and config URIs: :data:`imggate.signatures.keyless.FULCIO_CLAIMS`),
    #: set only when verified; empty for keys.
    claims: Mapping[str, str] = field(default_factory=dict)
    #: Proved by an RFC 3161 timestamp alone (a root with no transparency log: GitHub's).
    timestamped: bool = False


class EvidenceGroup(str, Enum):
    """A kind of evidence gathered from outside, whose gathering can fail (the rules that
    need it: :data:`imggate.policy.decision.RULE_EVIDENCE`)."""

    #: Signatures and attestations (the ``signatures`` and ``attestations`` rules).
    SIGNATURES = "signatures and attestations"
    #: Scanner reports, scans and signed vuln attestations (``severity`` and its kin).
    SCANNER = "scanner evidence"


class Unchecked(Struct, frozen=True):
    """An error met while gathering: why, and which evidence it left unread.

    ``groups`` empty means the error does not say which evidence it cost (the image
    could not be resolved, say): every group is then taken as unread.
    """

    reason: str
    groups: frozenset[EvidenceGroup] = frozenset()

    @property
    def covers(self) -> frozenset[EvidenceGroup]:
        """The groups of evidence this error leaves unread."""
        return self.groups or frozenset(EvidenceGroup)


class Evidence(Struct, frozen=True):
    """Everything gathered about one image before rules are applied.

    ``reference`` is the text the user gave; ``ref`` is it parsed. ``image``
    is ``None`` when resolution failed, and ``errors`` then says why. An
    error makes the image's decision ``error`` (exit 3), never an allow,
    unless a violation that no retry can undo denies it anyway
    (:func:`imggate.policy.decision.decide`).
    ``notes`` say how the evidence was gathered (e.g. which attestation
    was used); ``refused`` names evidence that was found but cannot count
    (a vuln attestation that does not verify, report files that
    ``severity.evidence`` excludes) and why: a NOT SCANNED result says it.
    """

    reference: str
    ref: ImageRef
    image: ResolvedImage | None
    reports: tuple[ScanReport, ...] = ()
    signatures: tuple[SignatureCheck, ...] = ()
    errors: tuple[Unchecked, ...] = ()
    notes: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    #: OpenVEX attestations found beside the image, verified (or not) with the signers the
    #: rules name under ``exceptions.vex_attestations``.
    vex: tuple[SignatureCheck, ...] = ()


class Mode(str, Enum):
    """Whether a rule fails the gate or only warns."""

    ENFORCE = "enforce"
    WARN = "warn"


class Decision(str, Enum):
    """The verdict for one image."""

    ALLOW = "allow"
    DENY = "deny"
    ERROR = "error"


#: The exit code each decision ends a run with (2 is a usage or configuration error).
EXIT_CODES = {Decision.ALLOW: 0, Decision.DENY: 1, Decision.ERROR: 3}


class RuleResult(Struct, frozen=True):
    """One rule's outcome for one image (a JUnit testcase).

    ``findings`` are the keys (:attr:`Finding.key`) of the findings that made
    the rule fail, so outputs can list the offenders themselves.
    """

    rule: str
    passed: bool
    mode: Mode
    messages: tuple[str, ...] = ()
    findings: tuple[tuple[str, str, str], ...] = ()


class ExceptionUse(Struct, frozen=True):
    """How an exception (allowlist / VEX entry) fared: used, expired or stale."""

    vulnerability: str
    status: str
    reason: str
    source: str
    expires: date | None = None
    package: str | None = None
    matched: tuple[str, ...] = ()


class ImageVerdict(Struct, frozen=True):
    """Everything decided about one image.

    ``exceptions`` lists every exception that matched a finding and the first
    hundred that matched nothing; ``exceptions_unlisted`` counts the other
    unused ones (see ``policy.exceptions.MAX_UNUSED_LISTED``).
    """

    reference: str
    env: str
    decision: Decision
    image: ResolvedImage | None = None
    rules: tuple[RuleResult, ...] = ()
    findings: tuple[Finding, ...] = ()
    suppressed: tuple[tuple[Finding, str], ...] = ()
    exceptions: tuple[ExceptionUse, ...] = ()
    signatures: tuple[SignatureCheck, ...] = ()
    reports: tuple[ScanReport, ...] = ()
    error: str | None = None
    notes: tuple[str, ...] = ()
    evidence: tuple[ReportInfo, ...] = ()
    exceptions_unlisted: int = 0

    @property
    def scanned(self) -> bool:
        """Whether any scanner evidence for this image was used: when not, the image is
        NOT SCANNED (its zero findings mean nothing), whatever the decision."""
        return any(e.used for e in self.evidence)

    @property
    def violations(self) -> tuple[RuleResult, ...]:
        """Failed rules in enforce mode."""
        return tuple(r for r in self.rules if not r.passed and r.mode is Mode.ENFORCE)

    @property
    def warnings(self) -> tuple[RuleResult, ...]:
        """Failed rules in warn mode."""
        return tuple(r for r in self.rules if not r.passed and r.mode is Mode.WARN)


class SignatureOptions(Struct, frozen=True):
    """Signature verification settings that are not policy: where and how to look.

    Here, not in :mod:`imggate.gate`, so that a command can name
    them without importing the policy layer (``audit`` lists tags while that loads)."""

    ignore_tlog: bool = False
    trusted_root: Path | None = None
    signature_repository: str | None = None
    accept_platform_signatures: bool = False


class RunInfo(Struct, frozen=True):
    """Which policy a run applied and why: recorded in every report.

    ``rules_found_by`` is ``--rules``, ``./rules/`` or ``built-in``;
    ``env_origin`` is ``--env``, a CI variable, ``default_env`` or
    ``fallback_env`` and ``env_reason`` says it in words.
    """

    rules_source: str
    rules_sha256: str | None
    rules_found_by: str
    env: str
    env_origin: str
    env_reason: str
    imggate_version: str
    notes: tuple[str, ...] = ()


class Verdict(Struct, frozen=True):
    """The verdicts for every image checked in one run (and, when known, its policy)."""

    env: str
    images: tuple[ImageVerdict, ...]
    generated: datetime
    run: RunInfo | None = None
    error: str | None = None

    @property
    def decision(self) -> Decision:
        """The run's decision (:func:`imggate.policy.decision.run_decision`): deny if any
        image was denied (a retry cannot fix that), else error if any image (or the run)
        could not be decided, or none was checked, else allow."""
        from imggate.policy.decision import run_decision

        return run_decision((i.decision for i in self.images), run_error=self.error is not None)

    @property
    def exit_code(self) -> int:
        """The exit code of :attr:`decision`: 1 denied, 3 undecided, 0 allowed."""
        return EXIT_CODES[self.decision]
