"""Scanner evidence from the registry: the newest valid signed ``vuln`` attestation of an image.

:func:`attested_evidence` is a plain async function, shared by ``imggate
check`` (through the gate) and the admission webhook: give it the image's
repository and digest and the trust material the rules name, and it returns
the findings of the newest attestation that

1. verifies against that trust material (the same verifier as signatures:
   keys, keyless identities; Rekor entry required unless ``ignore_tlog``),
2. is a DSSE in-toto statement whose subject is this digest,
3. has a ``vuln`` predicate whose ``scanner.result`` is a Trivy report or
   imggate's own findings, scanned no later than now.

Every other vuln attestation found becomes a failed
:class:`~imggate.models.SignatureCheck` saying why (tampered, another key,
another digest, not a Trivy report, dated in the future), so a report shows
what was refused. None of them is ever clean evidence: with no valid one the
image is simply not scanned, which ``severity.require_report`` denies.
"""

from __future__ import annotations

from datetime import UTC, datetime

from msgspec import Struct, structs

from imggate import values
from imggate.evidence.vuln import VULN_PREDICATES, PredicateError, read_predicate
from imggate.models import Digest, ScanReport, SignatureCheck, SignatureKind
from imggate.registry.interface import Repository
from imggate.signatures.interface import TrustConfig

#: Discovery reasons for layers that were never candidates (other predicate
#: types, other media types): not refusals, so not reported.
_NOT_CANDIDATES = ("was not requested: not fetched", "): ignored")


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class AttestedEvidence(Struct, frozen=True):
    """What the registry holds for one image: the report to use (if any) and every check.

    ``report`` is the newest valid attestation's findings; ``checks`` lists
    every vuln attestation found (the one used first), verified or why not.
    """

    report: ScanReport | None
    checks: tuple[SignatureCheck, ...] = ()

    @property
    def refused(self) -> tuple[SignatureCheck, ...]:
        """The vuln attestations that were found but not usable."""
        return tuple(c for c in self.checks if not c.verified)

    @property
    def notes(self) -> tuple[str, ...]:
        """Which attestation is the evidence (for a verdict's notes)."""
        if self.report is None:
            return ()
        return (f"scanner evidence from {self.report.source}",)

    @property
    def refusals(self) -> tuple[str, ...]:
        """Why each refused attestation does not count (said with NOT SCANNED)."""
        return tuple(f"vuln attestation {c.location} refused: {c.reason[:300]}"
                     for c in self.refused)


def attestation_trust(trust: TrustConfig) -> TrustConfig:
    """``trust`` narrowed to vuln attestations (no ``.sig`` lookups, same anchors and options)."""
    return structs.replace(trust, check_signatures=False, check_attestations=True,
                               attestation_types=VULN_PREDICATES, annotations={},
                               docker_reference=None)


def _refuse(check: SignatureCheck, reason: str) -> SignatureCheck:
    return values.replace(check, verified=False, reason=reason, predicate=None)


def _candidate(check: SignatureCheck) -> bool:
    if check.kind is not SignatureKind.ATTESTATION:
        return False
    if check.predicate_type is not None:
        return check.predicate_type in VULN_PREDICATES
    return not any(marker in check.reason for marker in _NOT_CANDIDATES)


def judge(checks: tuple[SignatureCheck, ...], *, subject: Digest,
          now: datetime) -> AttestedEvidence:
    """Pick the newest usable vuln attestation among verified ``checks``; refuse the rest.

    Pure: the verifier already checked signature, subject and predicate type.
    "Newest" is by ``scanFinishedOn``; an undated scan counts as oldest.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    usable: list[tuple[datetime, int, ScanReport]] = []
    out: list[SignatureCheck] = []
    for check in checks:
        if not _candidate(check):
            continue
        if not check.verified or check.predicate is None:
            out.append(check)
            continue
        source = f"vuln attestation {check.location} (signed by {check.signer})"
        try:
            report = read_predicate(check.predicate, subject=check.signed_digest or subject,
                                    source=source, now=now)
        except PredicateError as e:
            out.append(_refuse(check, f"vuln predicate not usable as evidence: {e}"))
            continue
        out.append(check)
        when = report.finished or datetime.min.replace(tzinfo=UTC)
        usable.append((when, len(out) - 1, report))
    if not usable:
        return AttestedEvidence(None, tuple(out))
    when, index, report = max(usable, key=lambda u: (u[0], u[1]))
    chosen = out[index]
    # Older valid attestations stay listed as verified, but only the newest is evidence.
    others = []
    for i, c in enumerate(out):
        if i == index:
            continue
        if c.verified:
            c = values.replace(c, reason=c.reason + "; superseded by a newer scan")
        others.append(c)
    return AttestedEvidence(report, (chosen, *others))


def as_evidence(checks: tuple[SignatureCheck, ...], *, now: datetime
                ) -> tuple[SignatureCheck, ...]:
    """``checks`` with each verified vuln attestation judged as evidence (``imggate verify``).

    A usable one says what it holds (scanner, findings, scan time); one whose
    predicate is not usable evidence becomes a failed check saying why.
    Other checks are returned unchanged.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    out = []
    for c in checks:
        if c.verified and c.predicate is not None and c.predicate_type in VULN_PREDICATES:
            try:
                report = read_predicate(c.predicate, subject=c.signed_digest or Digest.of(b""),
                                        source=c.location, now=now)
            except PredicateError as e:
                c = _refuse(c, f"vuln predicate not usable as evidence: {e}")
            else:
                when = report.finished.isoformat() if report.finished else "undated"
                who = " ".join(x for x in (report.scanner.name, report.scanner.version) if x)
                c = values.replace(c, reason=f"{c.reason}; evidence: {who}, "
                                                  f"{len(report.findings)} findings, "
                                                  f"scan finished {when}")
        out.append(c)
    return tuple(out)


async def attested_evidence(repo: Repository, digest: Digest, trust: TrustConfig, *,
                            now: datetime, signature_repo: Repository | None = None,
                            platform_digest: Digest | None = None) -> AttestedEvidence:
    """The newest valid vuln attestation of ``digest`` in ``repo`` (see the module docstring).

    ``trust`` is the rules' trust material (it is narrowed to vuln
    attestations here). Raises :class:`~imggate.errors.SignatureError` only
    when the registry cannot be asked (exit 3); anything found but bad is a
    failed check.
    """
    from imggate.signatures.check import check_signatures

    checks = await check_signatures(repo, digest, attestation_trust(trust),
                                    signature_repo=signature_repo,
                                    platform_digest=platform_digest)
    return judge(checks, subject=digest, now=now)
