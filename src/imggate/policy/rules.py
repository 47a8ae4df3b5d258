"""The schema of ``rules/*.yaml`` (pydantic v2, frozen, unknown keys rejected).

A rules file names environments; each is a :class:`RuleSet` (one section per
rule kind) that may ``extends`` another and may carry per-image overrides
(``images:``, most specific pattern wins). Every field left out inherits;
:func:`overlay` implements that by copying only the fields a layer *set*.

Sections and the rule names they produce (stable: they are JUnit testcases)::

    severity      -> "severity", "severity.kev"
    tags          -> "tags.denied", "tags.allowed", "tags.digest-pinning"
    signatures    -> "signatures"
    attestations  -> "attestations"
    provenance    -> "provenance"
    registries    -> "registries"
    age           -> "age"
    labels        -> "labels"
    report_binding-> "report-binding"

Unlike the rest of imggate, annotations here are not postponed (no ``from __future__
import annotations``): pydantic evaluates every field's annotation when it makes a model
class, and from a string it compiles it first (~7M instructions of every ``check``).
A method returning its own class names it in quotes.
"""

import re
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

from imggate.keyrefs import unsupported_key_ref
from imggate.models import Mode, Severity
from imggate.policy.exceptions import ExceptionEntry
from imggate.policy.patterns import check_regex, compile_regex
from imggate.predicates import PREDICATE_SHORT_NAMES

M = TypeVar("M", bound=BaseModel)


def _severity(value: Any) -> Any:
    # GitLab spells severities Capitalised; accept any case (and Grype's Negligible).
    if isinstance(value, str):
        try:
            return Severity.parse(value)
        except ValueError as e:
            raise ValueError(f"{e}: one of {', '.join(s.value for s in Severity)}") from None
    return value


SeverityName = Annotated[Severity, BeforeValidator(_severity)]
Regex = Annotated[str, AfterValidator(check_regex)]
NonEmpty = Annotated[str, Field(min_length=1)]


def _relative_path(value: Any, info: ValidationInfo) -> Any:
    # Paths in a rules file are relative to the file, not to wherever imggate runs.
    if isinstance(value, str) and value:
        base = (info.context or {}).get("base_dir")
        p = Path(value).expanduser()
        if base is not None and not p.is_absolute():
            p = Path(base) / p
        return p
    return value


FilePath = Annotated[Path, BeforeValidator(_relative_path)]

_DURATION_RE = re.compile(r"^\s*(\d+)\s*([wdhm])\s*$")
_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1),
          "m": timedelta(minutes=1)}


def _duration(value: Any) -> Any:
    # "7d", "12h", "2w", "30m"; a bare number is days.
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 7d, 12h or 2w")
    if isinstance(value, int):
        value = f"{value}d"
    if isinstance(value, str) and (m := _DURATION_RE.match(value)):
        amount = int(m.group(1))
        if amount <= 0:
            raise ValueError("a duration must be more than zero")
        return amount * _UNITS[m.group(2)]
    raise ValueError("expected a duration such as 7d, 12h, 2w or 30m")


def format_duration(value: timedelta) -> str:
    """A duration as written in rules: ``7d``, ``12h``, ``30m`` (weeks as days)."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[timedelta, BeforeValidator(_duration),
                     PlainSerializer(format_duration, return_type=str)]


def _key_file(value: Any) -> Any:
    # cosign's KMS / k8s:// references are not files: say so before Path mangles them.
    if isinstance(value, str) and (why := unsupported_key_ref(value)) is not None:
        raise ValueError(why)
    return value


KeyFile = Annotated[FilePath, BeforeValidator(_key_file)]



class _OwnValidator:
    """``Annotated[Model, OWN]``: a model held by another is validated by its own validator
    (and serialized by its own serializer), not by one pydantic inlines into the holder.

    Every model here is built when first used (``defer_build``), so a section or item a
    rules file does not write (``signatures``, ``attestations``, ``images``...) is never
    built: a check with rules/default.yaml builds 7 of the 22 models, where all of them
    were built at import (the check's process: ~42M instructions less, issue 22). The
    errors are the same: pydantic puts a nested model's errors under the holder's
    location. Inlined instead (defer_build alone), every model is built into the
    holder's validator when the rules are validated: no saving.
    """

    def __get_pydantic_core_schema__(self, source: type[BaseModel],
                                     handler: GetCoreSchemaHandler) -> CoreSchema:
        def validate(value: Any, info: ValidationInfo) -> Any:
            return source.model_validate(value, context=info.context)

        def serialize(value: Any, nested: SerializerFunctionWrapHandler) -> Any:
            # A default (made with model_construct) of a model never validated has no
            # serializer yet; pydantic's own serialization of a nested model needs one.
            if isinstance(value, BaseModel) and not type(value).__pydantic_complete__:
                type(value).model_rebuild()
            return nested(value)

        return core_schema.with_info_plain_validator_function(
            validate, serialization=core_schema.wrap_serializer_function_ser_schema(
                serialize, schema=core_schema.any_schema()))


#: See :class:`_OwnValidator`.
OWN = _OwnValidator()


class _Model(BaseModel):
    # Built when first used: see _OwnValidator.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_defaults(cls, data: Any) -> Any:
        # `dev:` with nothing under it is YAML null: read it as "no overrides".
        return {} if data is None else data


class _Section(_Model):
    mode: Mode | None = Field(
        default=None, description="enforce or warn; default: the environment's")


class OnUndecided(str, Enum):
    """What ``imggate serve`` answers for an image it could not decide."""

    DENY = "deny"
    WARN = "warn"


class EvidenceSource(str, Enum):
    """Where scanner evidence may come from (``severity.evidence``)."""

    REPORTS = "reports"            # report files and --scan: this run's scanners
    ATTESTATIONS = "attestations"  # signed vuln attestations of the image, in its registry


class SeverityRules(_Section):
    """Vulnerability thresholds."""

    fail_on: SeverityName | None = Field(default=None, description="fail at or above this severity")
    max: dict[SeverityName, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, description="most findings allowed of exactly that severity")
    ignore_unfixed: bool = Field(
        default=False, description="findings without a fixed version don't count")
    cvss: float | None = Field(
        default=None, ge=0, le=10, description="fail at or above this CVSS score")
    kev: FilePath | None = Field(default=None, description="CISA KEV JSON: listed CVEs always fail")
    require_report: bool = Field(
        default=False, description="fail when there is no scanner evidence (NOT SCANNED)")
    max_report_age: Duration | None = Field(
        default=None, description="a report older than this (7d, 12h) is a violation, "
                                  "measured from the report's own creation time")
    allow_undated: bool = Field(
        default=False, description="with max_report_age: accept a report without a time")
    evidence: tuple[EvidenceSource, ...] = Field(
        default=(EvidenceSource.REPORTS, EvidenceSource.ATTESTATIONS), min_length=1,
        description="which sources count: reports (files, --scan) and/or attestations "
                    "(signed vuln attestations verified with the signature keys/identities)")

    @property
    def active(self) -> bool:
        """Whether any vulnerability check is configured."""
        return bool(self.fail_on or self.max or self.cvss is not None or self.kev
                    or self.require_report)


class TagRules(_Section):
    """Which tags may be deployed, and whether a digest is required."""

    deny: tuple[Regex, ...] = Field(default=(), description="regexes (whole tag) that are refused")
    allow: tuple[Regex, ...] = Field(
        default=(), description="if set, a tag must match one of these")
    require_digest: bool = Field(
        default=False, description="a reference by tag alone is a violation")


class Identity(_Model):
    """A keyless signer, as cosign's ``--certificate-identity[-regexp]`` and issuer flags.

    Regexps are searched, not anchored (as cosign's Go regexps are): anchor them.
    """

    identity: NonEmpty | None = Field(
        default=None, description="the certificate's exact identity (SAN: email or URI)")
    identity_regexp: Regex | None = Field(
        default=None, description="regex searched in the identity (anchor it); or identity")
    issuer: NonEmpty | None = Field(default=None, description="the exact OIDC issuer URL")
    issuer_regexp: Regex | None = Field(
        default=None, description="regex searched in the issuer (anchor it); or issuer")

    @model_validator(mode="after")
    def _one_of_each(self) -> "Identity":
        if (self.identity is None) == (self.identity_regexp is None):
            raise ValueError("give exactly one of identity or identity_regexp")
        if (self.issuer is None) == (self.issuer_regexp is None):
            raise ValueError("give exactly one of issuer or issuer_regexp")
        return self

    def matches(self, identity: str, issuer: str | None) -> bool:
        """Whether a certificate's identity and issuer satisfy this entry."""
        if self.identity is not None:
            ok = identity == self.identity
        else:
            ok = compile_regex(self.identity_regexp or "").search(identity) is not None
        if not ok or issuer is None:
            return False
        if self.issuer is not None:
            return issuer == self.issuer
        return compile_regex(self.issuer_regexp or "").search(issuer) is not None

    def __str__(self) -> str:
        who = self.identity if self.identity is not None else f"~/{self.identity_regexp}/"
        iss = self.issuer if self.issuer is not None else f"~/{self.issuer_regexp}/"
        return f"{who} ({iss})"


class SignatureRules(_Section):
    """Required signatures: any ``threshold`` distinct signers among keys and identities."""

    required: bool | None = Field(
        default=None, description="default: true when keys/identities given")
    keys: tuple[KeyFile, ...] = Field(default=(), description="PEM public keys (paths)")
    identities: tuple[Annotated[Identity, OWN], ...] = Field(
        default=(), description="keyless signers")
    certificate_chains: tuple[FilePath, ...] = Field(
        default=(), description="PEM roots of your own PKI (cosign --certificate-chain)")
    threshold: int = Field(default=1, ge=1, description="k of n: distinct signers needed")
    trusted_roots: tuple[FilePath, ...] = Field(
        default=(), description="Sigstore trusted roots: trusted_root.json files or JSON lines "
                                "(gh attestation trusted-root), each bundle verified against "
                                "the one it chains to; added to --trusted-root; default: "
                                "Sigstore's public-good root. Never fetched (no TUF)")
    require_tlog: bool | None = Field(
        default=None,
        description="true: a transparency-log entry is needed even with --insecure-ignore-tlog; "
                    "false: UNSAFE, key signatures without one are accepted (with a warning); "
                    "default: needed unless --insecure-ignore-tlog, as cosign")

    @property
    def is_required(self) -> bool:
        """Whether a verified signature is required."""
        return self.required if self.required is not None else bool(self.anchors)

    @property
    def anchors(self) -> int:
        """n: how many keys, identities and certificate chains are trusted."""
        return len(self.keys) + len(self.identities) + len(self.certificate_chains)


class Condition(_Model):
    """A condition on a predicate field (dotted ``path``, list items by index)."""

    path: NonEmpty = Field(
        description="dotted path into the predicate, e.g. buildDefinition.buildType")
    equals: Any = Field(default=None, description="the value must equal this (any YAML value)")
    matches: Regex | None = Field(default=None, description="regex searched in a string value")
    one_of: tuple[Any, ...] | None = Field(
        default=None, description="the value must be one of these; give one of the three")

    @model_validator(mode="after")
    def _exactly_one(self) -> "Condition":
        given = [n for n in ("equals", "matches", "one_of") if n in self.model_fields_set]
        if len(given) != 1:
            raise ValueError("give exactly one of equals, matches or one_of")
        return self

    def holds(self, predicate: Any) -> tuple[bool, str]:
        """Whether the condition holds on ``predicate``, and what was found there."""
        value: Any = predicate
        for part in self.path.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return False, f"{self.path} is missing"
        shown = repr(value)[:200]
        if "equals" in self.model_fields_set:
            return value == self.equals, f"{self.path} is {shown}"
        if self.matches is not None:
            ok = isinstance(value, str) and compile_regex(self.matches).search(value) is not None
            return ok, f"{self.path} is {shown}"
        return value in (self.one_of or ()), f"{self.path} is {shown}"

    def __str__(self) -> str:
        if "equals" in self.model_fields_set:
            return f"{self.path} == {self.equals!r}"
        if self.matches is not None:
            return f"{self.path} ~ /{self.matches}/"
        return f"{self.path} in {list(self.one_of or ())!r}"


#: ``predicate_type: "*"``: an attestation of any type (``--attestations``).
ANY_PREDICATE = "*"


class AttestationRequirement(_Model):
    """One attestation that must be present, verified, and satisfy ``conditions``.

    ``predicate_type`` is a URI or cosign short name; ``*`` accepts any type.
    """

    predicate_type: NonEmpty = Field(
        description="predicate type URI, or cosign's short name (slsaprovenance, vuln, spdx...)")
    conditions: tuple[Annotated[Condition, OWN], ...] = Field(
        default=(), description="all must hold on the verified predicate")

    @field_validator("predicate_type")
    @classmethod
    def _expand(cls, v: str) -> str:
        return PREDICATE_SHORT_NAMES.get(v.lower(), v)


class AttestationRules(_Section):
    """Required attestations."""

    required: tuple[Annotated[AttestationRequirement, OWN], ...] = Field(
        default=(), description="attestations that must all be present and verified")


class ProvenanceRules(_Section):
    """Where the image was built: a verified SLSA provenance (v1 or v0.2) from these builders,
    source repositories, refs and workflows.

    The attestation is verified with the ``signatures`` section's keys and identities.
    Patterns are globs (``*`` crosses ``/``), URI schemes ignored. ``source_*`` are matched
    against the Fulcio certificate's Source Repository URI / Ref and the predicate's
    ``buildDefinition`` (or v0.2 ``invocation.configSource``), which must agree;
    ``workflows`` against the certificate's Build Config / Build Signer URI (whole URI,
    without ``@ref``, or the path ``.github/workflows/x.yml``); ``builders`` against
    ``runDetails.builder.id`` (v0.2: ``builder.id``).
    """

    required: bool | None = Field(
        default=None, description="a verified provenance must exist (default: true when any "
                                  "pattern is given); false: only a provenance found is judged")
    builders: tuple[NonEmpty, ...] = Field(
        default=(), description="globs over the builder id, e.g. "
                                "https://github.com/actions/runner/github-hosted")
    source_repositories: tuple[NonEmpty, ...] = Field(
        default=(), description="globs over the source repository, e.g. github.com/acme/*")
    source_refs: tuple[NonEmpty, ...] = Field(
        default=(), description="globs over the git ref, e.g. refs/heads/main, refs/tags/v*")
    workflows: tuple[NonEmpty, ...] = Field(
        default=(), description="globs over the workflow that built it, e.g. "
                                ".github/workflows/release.yml")

    @property
    def patterns(self) -> bool:
        """Whether any pattern is given."""
        return bool(self.builders or self.source_repositories or self.source_refs
                    or self.workflows)

    @property
    def is_required(self) -> bool:
        """Whether a verified provenance must be present."""
        return self.required if self.required is not None else self.patterns

    @property
    def active(self) -> bool:
        """Whether the rule runs at all."""
        return self.is_required or self.patterns


class RegistryRules(_Section):
    """Where images may come from."""

    allowed: tuple[NonEmpty, ...] = Field(
        default=(), description="registry or registry/path prefixes")


class AgeRules(_Section):
    """How old an image may be."""

    max_days: int | None = Field(default=None, ge=1, description="days since the config's created")


class LabelRules(_Section):
    """OCI labels an image must carry."""

    required: tuple[NonEmpty, ...] = Field(default=(), description="labels that must be set")
    values: dict[str, Regex] = Field(default_factory=dict,
                                     description="label -> regex its value must match")


class BindingRules(_Section):
    """Whether scanner reports must name the image they are about."""

    allow_unbound: bool = Field(
        default=True, description="use a report naming no digest (with a warning); "
                                  "false in the shipped prod")


class ExceptionPolicy(_Model):
    """What an environment accepts as an exception, and where it looks for them."""

    discover: bool = Field(
        default=False, description="also read .trivyignore, .trivyignore.yaml and "
                                   "vulnerability-allowlist.yml from the working directory")
    require_expiry: bool = Field(
        default=False, description="an entry without an expiry date is refused (not applied)")
    max_days: int | None = Field(
        default=None, ge=1, description="an entry expiring more than this many days from "
                                        "today is refused")


_SECTIONS = ("severity", "tags", "signatures", "attestations", "provenance", "registries",
             "age", "labels", "report_binding")


class RuleSet(_Model):
    """Every rule section; what an environment or an image override says."""

    mode: Mode | None = Field(default=None, description="default mode of every section "
                                                        "(enforce when never set)")
    mutate: bool | None = Field(
        default=None, description="imggate serve /mutate pins tags to the checked digest "
                                  "(default true; false where a GitOps tool owns the manifests)")
    on_undecided: OnUndecided | None = Field(
        default=None, description="imggate serve, for an image it could not decide (registry "
                                  "down, deadline passed): deny (the default), or warn: admit "
                                  "it with a warning naming what failed. The CLI exits 3 "
                                  "either way. A certain violation is denied in both")
    severity: Annotated[SeverityRules, OWN] = SeverityRules.model_construct()
    tags: Annotated[TagRules, OWN] = TagRules.model_construct()
    signatures: Annotated[SignatureRules, OWN] = SignatureRules.model_construct()
    attestations: Annotated[AttestationRules, OWN] = AttestationRules.model_construct()
    provenance: Annotated[ProvenanceRules, OWN] = ProvenanceRules.model_construct()
    registries: Annotated[RegistryRules, OWN] = RegistryRules.model_construct()
    age: Annotated[AgeRules, OWN] = AgeRules.model_construct()
    labels: Annotated[LabelRules, OWN] = LabelRules.model_construct()
    report_binding: Annotated[BindingRules, OWN] = BindingRules.model_construct()

    @property
    def undecided(self) -> OnUndecided:
        """What an undecided image gets at admission (deny unless the rules say warn)."""
        return self.on_undecided or OnUndecided.DENY

    def mode_of(self, section: str) -> Mode:
        """The mode a section's rules run in: its own, else the set's, else enforce."""
        own = getattr(self, section).mode
        return own or self.mode or Mode.ENFORCE

    def rules_only(self) -> "RuleSet":
        """Just the :class:`RuleSet` fields (drops ``extends``/``match``...)."""
        if type(self) is RuleSet:
            return self
        return overlay(NO_RULES, self)


#: A rule set that sets nothing: every section's defaults. Shared (the models are frozen):
#: made anew, model_construct deep-copies every section's default each time.
NO_RULES = RuleSet.model_construct()


class ImageOverride(RuleSet):
    """Rules for images whose name matches ``match`` (a glob over registry/repository)."""

    match: NonEmpty = Field(description="glob over registry/repository of the image")


#: An exception policy that sets nothing.
NO_EXCEPTION_POLICY = ExceptionPolicy.model_construct()


class EnvironmentSpec(RuleSet):
    """One environment: rules, what it inherits, and other names it answers to."""

    extends: NonEmpty | None = Field(
        default=None, description="environment to inherit from (keys written here override)")
    description: str | None = Field(default=None, description="free text, shown by rules explain")
    aliases: tuple[NonEmpty, ...] = Field(
        (), description="other names (globs, any case) that select this environment: "
                        "--env, CI_ENVIRONMENT_TIER / CI_ENVIRONMENT_NAME, namespaces")
    images: tuple[Annotated[ImageOverride, OWN], ...] = Field(
        default=(), description="per-image overrides; the most specific match wins")
    exception_policy: Annotated[ExceptionPolicy, OWN] = Field(
        default=NO_EXCEPTION_POLICY,
        description="which exceptions this environment accepts and where it looks for them")


class NamespaceEntry(_Model):
    """Namespaces whose name matches the glob ``match`` deploy to environment ``env``."""

    match: NonEmpty = Field(description="glob over the namespace name, e.g. 'shop-*'")
    env: NonEmpty = Field(description="an environment of this file")


class NamespaceRules(_Model):
    """Which environment's rules the webhook and ``check -f`` apply in a namespace.

    ``map`` is tried in order (first match wins), then the environments' names
    and aliases; ``exempt`` namespaces and ``exempt_images`` are not gated.
    """

    map: tuple[Annotated[NamespaceEntry, OWN], ...] = Field(
        default=(), description="ordered namespace glob -> environment entries")
    exempt: tuple[NonEmpty, ...] = Field(
        default=(), description="namespace globs that are never gated (e.g. kube-system)")
    exempt_images: tuple[NonEmpty, ...] = Field(
        default=(), description="image globs over registry/repository that are never gated")


class VexAttestationRules(_Model):
    """Signed OpenVEX attestations beside the image that may suppress its findings.

    Written ``exceptions: {entries: [...], vex_attestations: {...}}``. An OpenVEX
    attestation (predicate ``https://openvex.dev/ns``) of the image, verified with these
    keys or identities (and nothing else), suppresses the findings its ``not_affected`` /
    ``fixed`` statements name, for that image digest only; each suppression is listed
    with the attestation's signer, author, timestamp and justification, and the
    environment's ``exception_policy`` (``require_expiry``, ``max_days``) applies to it.
    """

    keys: tuple[KeyFile, ...] = Field(default=(), description="PEM public keys (paths)")
    identities: tuple[Annotated[Identity, OWN], ...] = Field(
        default=(), description="keyless signers")
    require_tlog: bool = Field(
        default=True, description="a transparency-log entry is needed for key signatures; "
                                  "false is UNSAFE (accepted with a warning)")

    @model_validator(mode="after")
    def _some_anchor(self) -> "VexAttestationRules":
        if not self.keys and not self.identities:
            raise ValueError("name keys or identities to verify VEX attestations with")
        return self


class RulesDocument(_Model):
    """A whole rules file."""

    version: Literal[1] = Field(default=1, description="the file format; only 1 exists")
    default_env: NonEmpty | None = Field(
        default=None, description="environment when neither --env nor CI_ENVIRONMENT_* is set "
                                  '(default: "dev" if present, else the first)')
    fallback_env: NonEmpty | None = Field(
        None, description="environment used when a CI variable matches none (else exit 2)")
    environments: dict[NonEmpty, EnvironmentSpec] = Field(
        min_length=1, description="environment name -> its rules")
    exceptions: tuple[Annotated[ExceptionEntry, OWN], ...] = Field(
        default=(), description="accepted vulnerabilities, each with an expiry and a reason "
                                "(a list; or a mapping {entries: [...], vex_attestations: "
                                "{...}})")
    vex_attestations: Annotated[VexAttestationRules, OWN] | None = Field(
        default=None, description="written exceptions.vex_attestations: who may sign OpenVEX "
                                  "attestations that suppress an image's findings")
    allowlists: tuple[FilePath, ...] = Field(
        (), description=".trivyignore, vulnerability-allowlist.yml, OpenVEX... (relative paths)")
    namespaces: Annotated[NamespaceRules, OWN] = NamespaceRules.model_construct()

    @model_validator(mode="before")
    @classmethod
    def _exceptions_mapping(cls, data: Any) -> Any:
        # `exceptions:` is a list of entries, or a mapping that also names VEX signers.
        if isinstance(data, dict) and isinstance(data.get("exceptions"), dict):
            ex = dict(data["exceptions"])
            data = dict(data)
            data["exceptions"] = ex.pop("entries", None) or ()
            if "vex_attestations" in ex:
                data["vex_attestations"] = ex.pop("vex_attestations")
            if ex:
                raise ValueError(f"exceptions: unknown keys {', '.join(map(str, ex))[:200]} "
                                 "(a mapping holds entries and vex_attestations)")
        return data

    @model_validator(mode="before")
    @classmethod
    def _extensions(cls, data: Any) -> Any:
        # Like docker compose: top-level `x-...` keys hold YAML anchors to reuse, nothing else.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not str(k).startswith("x-")}
        return data

    @field_validator("environments")
    @classmethod
    def _names(cls, v: dict[str, EnvironmentSpec]) -> dict[str, EnvironmentSpec]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", name):
                raise ValueError(f"invalid environment name {name!r}")
        return v


def overlay(base: M, over: BaseModel) -> M:
    """``base`` with every field that ``over`` explicitly set (sections merge field by field)."""
    fields = type(base).model_fields
    updates: dict[str, Any] = {}
    for name in over.model_fields_set:
        if name not in fields:
            continue
        value = getattr(over, name)
        current = getattr(base, name)
        if isinstance(value, _Section) and type(value) is type(current):
            value = overlay(current, value)
        updates[name] = value
    return base.model_copy(update=updates)


def section_names() -> tuple[str, ...]:
    """The rule sections of a :class:`RuleSet`, in display order."""
    return _SECTIONS
