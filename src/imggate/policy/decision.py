"""The one decision function: what is known about an image -> allow, deny or error.

Every door (``check``, ``check -f``, ``audit``, ``serve``) decides with
:func:`decide`, from whatever it knows about an image: the reference alone
(nothing fetched yet, or the registry could not be reached), plus the
resolved image, plus its evidence, plus the errors met while gathering it.

The rules, in order:

1. A **certain** violation of an enforced rule is a denial, whatever else
   failed: a retry cannot fix it. Violations of the rules about the reference
   (denied tags, digest pinning, registries) and the image itself (age,
   labels) are always certain; so is a violation found in evidence that was
   read (a Critical finding in a report, a signature that did not verify).
2. Otherwise an error while gathering is ``error`` (exit 3): a retry may fix it.
3. Otherwise any enforced violation denies; else the image is allowed.

A violation is **not** certain when it rests on the absence of evidence whose
gathering failed: "unsigned" when the signatures could not be fetched, NOT
SCANNED when the scanner could not run. Those say "could not decide", never
"denied", since the evidence may be there.

The errors met while gathering are recorded as
:class:`~imggate.models.Unchecked`: why, and which group of evidence could not
be read (:class:`~imggate.models.EvidenceGroup`). An error that names no group
leaves every group unread (fail closed: only violations of the reference and
image rules are then certain).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from imggate.models import Decision, EvidenceGroup, Mode, RuleResult, Unchecked

__all__ = ["REFERENCE_RULES", "RULE_EVIDENCE", "certain", "decide", "run_decision"]

#: Rules decided by the image reference alone; everything else needs the image.
REFERENCE_RULES = frozenset({"tags.denied", "tags.allowed", "tags.digest-pinning", "registries"})

#: The evidence each evidence-based rule needs; rules not named need the reference or the
#: image only, and their violations are always certain.
RULE_EVIDENCE: dict[str, EvidenceGroup] = {
    "signatures": EvidenceGroup.SIGNATURES,
    "attestations": EvidenceGroup.SIGNATURES,
    "provenance": EvidenceGroup.SIGNATURES,
    "severity": EvidenceGroup.SCANNER,
    "severity.kev": EvidenceGroup.SCANNER,
    "exceptions": EvidenceGroup.SCANNER,
}


def certain(result: RuleResult, unchecked: Iterable[Unchecked] = ()) -> bool:
    """Whether ``result`` is an enforced violation that no retry can undo.

    A rule whose evidence could not all be gathered still fails certainly when it
    names what it found (findings over the limits), never when it fails for want of
    evidence (NOT SCANNED, unsigned).
    """
    if result.passed or result.mode is not Mode.ENFORCE:
        return False
    needs = RULE_EVIDENCE.get(result.rule)
    if needs is None:
        return True
    if not any(needs in u.covers for u in unchecked):
        return True
    return bool(result.findings)


def decide(results: Iterable[RuleResult], unchecked: Sequence[Unchecked] = ()) -> Decision:
    """The decision about one image, from the rules that ran and what could not be checked.

    ``results`` are every rule that ran (the reference rules alone, when that is all
    that is known); ``unchecked`` the errors met while gathering.
    """
    results = tuple(results)
    if any(certain(r, unchecked) for r in results):
        return Decision.DENY
    if unchecked:
        return Decision.ERROR
    if any(not r.passed and r.mode is Mode.ENFORCE for r in results):
        return Decision.DENY  # unreachable today: with nothing unchecked, every one is certain
    return Decision.ALLOW


def run_decision(decisions: Iterable[Decision], *, run_error: bool = False) -> Decision:
    """A run's decision from its images': any denial denies (a retry cannot fix it), else
    any undecided image, a run-level error or no image at all is ``error``, else allow."""
    seen = set(decisions)
    if Decision.DENY in seen:
        return Decision.DENY
    if run_error or not seen or Decision.ERROR in seen:
        return Decision.ERROR
    return Decision.ALLOW
