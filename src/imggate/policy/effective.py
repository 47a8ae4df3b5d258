"""The rules that apply to one environment after inheritance, and to one image within it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from imggate.models import ImageRef, Mode
from imggate.policy.patterns import best_match
from imggate.policy.rules import (
    Identity,
    ImageOverride,
    RuleSet,
    SignatureRules,
    overlay,
    section_names,
)


@dataclass(frozen=True, slots=True)
class TrustMaterial:
    """What the signature verifier must be asked to check for an image (nothing more).

    ``attestation_types`` are predicate type URIs; ``keys`` are PEM files.
    With ``signatures_required`` and no keys or identities, any signature the
    verifier could verify counts; a verifier given no trust material verifies
    nothing, so the rule then fails (fail closed).
    """

    keys: tuple[Path, ...]
    identities: tuple[Identity, ...]
    threshold: int
    signatures_required: bool
    attestation_types: tuple[str, ...]
    require_tlog: bool

    @property
    def needed(self) -> bool:
        """Whether the verifier has to run at all for this image."""
        return self.signatures_required or bool(self.attestation_types)


@dataclass(frozen=True, slots=True)
class ImageRules:
    """The rules for one image: the environment's, overlaid with the most specific override."""

    rules: RuleSet
    pattern: str | None

    def mode(self, section: str) -> Mode:
        """The mode of ``section`` for this image."""
        return self.rules.mode_of(section)


@dataclass(frozen=True, slots=True)
class EffectiveRules:
    """One environment's rules after ``extends``; per-image overrides kept for :meth:`for_image`.

    ``chain`` lists the environments merged, base first. ``extra_keys`` and
    ``extra_identities`` are signers given on the command line: they make a
    verified signature required everywhere in the environment.
    """

    env: str
    rules: RuleSet
    images: tuple[ImageOverride, ...] = ()
    source: str = "<built-in defaults>"
    chain: tuple[str, ...] = ()
    extra_keys: tuple[Path, ...] = field(default=())
    extra_identities: tuple[Identity, ...] = field(default=())

    def _with_cli(self, rules: RuleSet) -> RuleSet:
        if not (self.extra_keys or self.extra_identities):
            return rules
        sig = rules.signatures
        keys = tuple(dict.fromkeys((*sig.keys, *self.extra_keys)))
        idents = tuple(dict.fromkeys((*sig.identities, *self.extra_identities)))
        new_sig = sig.model_copy(update={"keys": keys, "identities": idents, "required": True})
        return rules.model_copy(update={"signatures": new_sig})

    def for_image(self, ref: ImageRef) -> ImageRules:
        """The rules for ``ref``: the most specific matching ``images:`` entry wins."""
        i = best_match([o.match for o in self.images], ref)
        if i is None:
            return ImageRules(self._with_cli(self.rules), None)
        override = self.images[i]
        return ImageRules(self._with_cli(overlay(self.rules, override)), override.match)

    @property
    def signatures(self) -> SignatureRules:
        """The environment-level signature requirements (before image overrides)."""
        return self._with_cli(self.rules).signatures

    def trust(self, ref: ImageRef) -> TrustMaterial:
        """Exactly the trust material the rules for ``ref`` need verified."""
        r = self.for_image(ref).rules
        return TrustMaterial(
            keys=r.signatures.keys, identities=r.signatures.identities,
            threshold=r.signatures.threshold, signatures_required=r.signatures.is_required,
            attestation_types=tuple(dict.fromkeys(a.predicate_type
                                                  for a in r.attestations.required)),
            require_tlog=r.signatures.require_tlog)

    def with_signers(self, keys: tuple[Path, ...] = (),
                     identities: tuple[Identity, ...] = ()) -> EffectiveRules:
        """These rules plus signers from the command line (which makes signatures required)."""
        return EffectiveRules(self.env, self.rules, self.images, self.source, self.chain,
                              self.extra_keys + tuple(keys),
                              self.extra_identities + tuple(identities))

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
            "images": [{"match": o.match,
                        "rules": describe(self._with_cli(overlay(self.rules, o)))}
                       for o in self.images],
        }


def describe(rules: RuleSet) -> dict[str, object]:
    """Plain data for a rule set: every section with its resolved mode (for ``rules explain``)."""
    out: dict[str, object] = {}
    for name in section_names():
        section = getattr(rules, name).model_dump(mode="json", exclude={"mode"})
        if name == "signatures":
            section["required"] = rules.signatures.is_required
        out[name] = {"mode": rules.mode_of(name).value, **section}
    return out
