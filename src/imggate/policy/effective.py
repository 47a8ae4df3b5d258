"""The rules that apply to one environment after inheritance, and to one image within it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path

from msgspec import Struct, field
from msgspec.structs import replace

from imggate.errors import UsageError
from imggate.models import ImageRef, Mode, Severity
from imggate.policy.patterns import best_match
from imggate.policy.rules import (
    ANY_PREDICATE,
    AttestationRequirement,
    ExceptionPolicy,
    Identity,
    ImageOverride,
    RuleSet,
    SignatureRules,
    overlay,
    section_names,
)


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class TrustMaterial(Struct, frozen=True):
    """What the signature verifier must be asked to check for an image (nothing more).

    ``attestation_types`` are predicate type URIs; ``keys`` are PEM files.
    ``ignore_tlog``: the rules say ``require_tlog: false`` (cosign's
    ``--insecure-ignore-tlog``, set by policy). With ``signatures_required``
    and no keys or identities, any signature the verifier could verify counts;
    a verifier given no trust material verifies nothing, so the rule then
    fails (fail closed).
    """

    keys: tuple[Path, ...]
    identities: tuple[Identity, ...]
    threshold: int
    signatures_required: bool
    attestation_types: tuple[str, ...]
    require_tlog: bool
    ignore_tlog: bool = False
    certificate_chains: tuple[Path, ...] = ()
    trusted_roots: tuple[Path, ...] = ()

    @property
    def any_attestation(self) -> bool:
        """Whether an attestation of any predicate type is asked for (``*``)."""
        return ANY_PREDICATE in self.attestation_types

    @property
    def needed(self) -> bool:
        """Whether the verifier has to run at all for this image."""
        return self.signatures_required or bool(self.attestation_types)


class CommandLine(Struct, frozen=True):
    """What ``check``'s flags add to or override in the rules, for every image.

    Signers (``--key``, ``--certificate``, ``--certificate-chain``, keyless
    identity flags) make a verified signature required; ``threshold``
    replaces the rules' k; ``attestation_types`` (``--type``; ``*`` for
    ``--attestations``, any type) add required attestations; ``fail_on`` and
    ``ignore_unfixed`` are Trivy's ``--severity`` / ``--ignore-unfixed``.
    """

    keys: tuple[Path, ...] = ()
    identities: tuple[Identity, ...] = ()
    certificate_chains: tuple[Path, ...] = ()
    threshold: int | None = None
    attestation_types: tuple[str, ...] = ()
    fail_on: Severity | None = None
    ignore_unfixed: bool = False
    #: How each override was asked for (the flag as typed), for the console.
    flags: Mapping[str, str] = field(default_factory=dict)

    def apply(self, rules: RuleSet) -> RuleSet:
        """``rules`` with these additions and overrides."""
        updates: dict[str, object] = {}
        sig = rules.signatures
        sig_update: dict[str, object] = {}
        if self.keys or self.identities or self.certificate_chains:
            sig_update = {
                "keys": tuple(dict.fromkeys((*sig.keys, *self.keys))),
                "identities": tuple(dict.fromkeys((*sig.identities, *self.identities))),
                "certificate_chains": tuple(dict.fromkeys((*sig.certificate_chains,
                                                           *self.certificate_chains))),
                "required": True}
        if self.threshold is not None:
            sig_update["threshold"] = self.threshold
        if sig_update:
            updates["signatures"] = sig.model_copy(update=sig_update)
        if self.attestation_types:
            have = {a.predicate_type for a in rules.attestations.required}
            extra = tuple(AttestationRequirement(predicate_type=t)
                          for t in self.attestation_types if t not in have)
            updates["attestations"] = rules.attestations.model_copy(
                update={"required": (*rules.attestations.required, *extra)})
        sev_update: dict[str, object] = {}
        if self.fail_on is not None:
            sev_update["fail_on"] = self.fail_on
        if self.ignore_unfixed:
            sev_update["ignore_unfixed"] = True
        if sev_update:
            updates["severity"] = rules.severity.model_copy(update=sev_update)
        return rules.model_copy(update=updates) if updates else rules

    def overrides(self) -> tuple[str, ...]:
        """The rule values the command line replaced, as ``key: value (flag)`` lines."""
        out = []
        if self.fail_on is not None:
            out.append(f"severity.fail_on: {self.fail_on.value} "
                       f"({self.flags.get('fail_on', '--severity')})")
        if self.ignore_unfixed:
            out.append("severity.ignore_unfixed: true (--ignore-unfixed)")
        if self.threshold is not None:
            out.append(f"signatures.threshold: {self.threshold} (--threshold)")
        return tuple(out)


def fail_on_from_severities(values: Sequence[str]) -> Severity:
    """Trivy's ``--severity CRITICAL,HIGH`` as imggate's threshold (``fail_on: High``).

    imggate's rule is a threshold, so the list must be every severity from
    Critical down to its lowest one (Unknown only when all are listed).
    """
    names = [v.strip() for text in values for v in text.split(",") if v.strip()]
    try:
        given = {Severity.parse(n) for n in names}
    except ValueError as e:
        raise UsageError(f"--severity: {e}",
                         hint=f"severities: {', '.join(s.value.upper() for s in Severity)}"
                         ) from None
    if not given:
        raise UsageError("--severity: no severity given")
    lowest = min(given, key=lambda s: s.rank)
    expected = {s for s in Severity if s.rank >= lowest.rank}
    if given != expected:
        want = ",".join(s.value.upper() for s in sorted(expected, key=lambda s: -s.rank))
        raise UsageError(f"--severity {','.join(names)}: imggate fails at or above a "
                         f"severity, so list every severity down to the lowest one "
                         f"(here: {want})")
    return lowest


def command_line(*, keys: Sequence[Path] = (), identities: Sequence[Identity] = (),
                 certificate_chains: Sequence[Path] = (), threshold: int | None = None,
                 attestation_types: Sequence[str] = (), any_attestation: bool = False,
                 severities: Sequence[str] = (), ignore_unfixed: bool = False) -> CommandLine:
    """``check``'s signature and Trivy-style flags as a :class:`CommandLine`.

    Raises :class:`UsageError` on misuse.
    """
    from imggate.predicates import PREDICATE_SHORT_NAMES

    if threshold is not None and threshold < 1:
        raise UsageError("--threshold must be at least 1")
    types = [PREDICATE_SHORT_NAMES.get(t.lower(), t) for t in attestation_types]
    if any_attestation:
        types.append(ANY_PREDICATE)
    flags = {"fail_on": "--severity " + ",".join(severities)} if severities else {}
    return CommandLine(
        keys=tuple(keys), identities=tuple(identities),
        certificate_chains=tuple(certificate_chains), threshold=threshold,
        attestation_types=tuple(dict.fromkeys(types)),
        fail_on=fail_on_from_severities(severities) if severities else None,
        ignore_unfixed=ignore_unfixed, flags=flags)


class ImageRules(Struct, frozen=True):
    """The rules for one image: the environment's, overlaid with the most specific override."""

    rules: RuleSet
    pattern: str | None

    def mode(self, section: str) -> Mode:
        """The mode of ``section`` for this image."""
        return self.rules.mode_of(section)


#: How many image names one :class:`EffectiveRules` remembers its answers for (the
#: webhook's rules live as long as the process, and pods may name any image).
MEMO_LIMIT = 1024


# ``dict=True``: a place for the memos (cached_property) outside the fields: they take no
# part in equality, hashing or encoding, and a copy (``replace``, ``with_cli``) starts empty.
class EffectiveRules(Struct, frozen=True, dict=True):
    """One environment's rules after ``extends``; per-image overrides kept for :meth:`for_image`.

    ``chain`` lists the environments merged, base first. ``cli`` holds what the
    command line adds or overrides; it applies to every image of the
    environment, after ``images:`` overrides.
    """

    env: str
    rules: RuleSet
    images: tuple[ImageOverride, ...] = ()
    source: str = "<built-in defaults>"
    chain: tuple[str, ...] = ()
    cli: CommandLine = field(default_factory=lambda: CommandLine())
    exception_policy: ExceptionPolicy = field(default_factory=ExceptionPolicy)

    def _with_cli(self, rules: RuleSet) -> RuleSet:
        return self.cli.apply(rules)

    # for_image and trust are functions of the fields (frozen values: pydantic models with
    # frozen=True, frozen Structs, tuples) and of the image's name alone (the names the
    # patterns are matched against, patterns.image_names, come from these fields of the
    # reference, never its tag or digest): remembered by name, they hold for every tag and
    # digest of it. An audit of 1,002 tags asked ~2,400 times about one repository.
    @cached_property
    def _rules_by_name(self) -> dict[tuple[str | None, ...], ImageRules]:
        return {}

    @cached_property
    def _trust_by_name(self) -> dict[tuple[str | None, ...], TrustMaterial]:
        return {}

    def for_image(self, ref: ImageRef) -> ImageRules:
        """The rules for ``ref``: the most specific matching ``images:`` entry wins."""
        memo, key = self._rules_by_name, _name(ref)
        found = memo.get(key)
        if found is not None:
            return found
        i = best_match([o.match for o in self.images], ref)
        if i is None:
            found = ImageRules(self._with_cli(self.rules), None)
        else:
            override = self.images[i]
            found = ImageRules(self._with_cli(overlay(self.rules, override)), override.match)
        if len(memo) < MEMO_LIMIT:
            memo[key] = found
        return found

    @property
    def signatures(self) -> SignatureRules:
        """The environment-level signature requirements (before image overrides)."""
        return self._with_cli(self.rules).signatures

    def trust(self, ref: ImageRef) -> TrustMaterial:
        """Exactly the trust material the rules for ``ref`` need verified."""
        memo, key = self._trust_by_name, _name(ref)
        found = memo.get(key)
        if found is not None:
            return found
        r = self.for_image(ref).rules
        types = [a.predicate_type for a in r.attestations.required]
        if r.provenance.active and ANY_PREDICATE not in types:
            # Imported only for rules that have a provenance rule (~3M instructions).
            from imggate.policy.provenance import PROVENANCE_TYPES

            types += PROVENANCE_TYPES
        material = TrustMaterial(
            keys=r.signatures.keys, identities=r.signatures.identities,
            threshold=r.signatures.threshold, signatures_required=r.signatures.is_required,
            attestation_types=tuple(dict.fromkeys(types)),
            require_tlog=bool(r.signatures.require_tlog),
            # Only an explicit `require_tlog: false` relaxes the verifier (it warns each time).
            ignore_tlog=r.signatures.require_tlog is False,
            certificate_chains=r.signatures.certificate_chains,
            trusted_roots=r.signatures.trusted_roots)
        if len(memo) < MEMO_LIMIT:
            memo[key] = material
        return material

    def with_signers(self, keys: tuple[Path, ...] = (),
                     identities: tuple[Identity, ...] = ()) -> EffectiveRules:
        """These rules plus signers from the command line (which makes signatures required)."""
        return self.with_cli(replace(self.cli, keys=self.cli.keys + tuple(keys),
                                     identities=self.cli.identities + tuple(identities)))

    def with_cli(self, cli: CommandLine) -> EffectiveRules:
        """These rules with ``cli`` (what the command line adds) in place of the current one."""
        return replace(self, cli=cli)

    def kev_paths(self) -> tuple[Path, ...]:
        """Every KEV catalog the environment or its overrides name (load them for evaluate)."""
        paths = [self.rules.severity.kev, *(o.severity.kev for o in self.images)]
        return tuple(dict.fromkeys(p for p in paths if p is not None))

    def explain(self) -> dict[str, object]:
        """A plain-data view of the effective rules, with each rule's resolved mode."""
        return {
            "environment": self.env,
            "source": self.source,
            "inherits": list(self.chain[:-1]),
            "rules": describe(self._with_cli(self.rules)),
            "exception_policy": self.exception_policy.model_dump(mode="json"),
            "images": [{"match": o.match,
                        "rules": describe(self._with_cli(overlay(self.rules, o)))}
                       for o in self.images],
        }


def _name(ref: ImageRef) -> tuple[str | None, ...]:
    """What :meth:`EffectiveRules.for_image` reads of a reference: all but tag and digest."""
    return (ref.registry, ref.repository, ref.source, ref.layout_path)


def describe(rules: RuleSet) -> dict[str, object]:
    """Plain data for a rule set: every section with its resolved mode (for ``rules explain``)."""
    out: dict[str, object] = {}
    for name in section_names():
        section = getattr(rules, name).model_dump(mode="json", exclude={"mode"})
        if name == "signatures":
            section["required"] = rules.signatures.is_required
        if name == "provenance":
            section["required"] = rules.provenance.is_required
        out[name] = {"mode": rules.mode_of(name).value, **section}
    # Not a section, but what a registry outage does at admission: always said.
    out["on_undecided"] = rules.undecided.value
    return out
