"""``imggate check -f``: from the images of manifests to one verdict, namespace by namespace.

Each image gets the environment of its namespace (the same mapping as the
webhook, :func:`~imggate.policy.namespaces.namespace_env`; ``--env``
overrides it). Images are then gated once per environment and distinct
reference, with the same :func:`~imggate.gate.run_check` as ``imggate check``:

* an exempt namespace or a ``namespaces.exempt_images`` image is allowed
  without a check, and says so;
* an unmapped namespace is denied, saying so (no silent fallback);
* everything else is the gate's verdict under its environment's rules.

The combined verdict records its policy as ``check`` does (:func:`provenance`):
the rules file, and which environment each namespace got and why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from msgspec import structs

from imggate import values
from imggate.admission.manifests import ManifestImage, ManifestScan
from imggate.errors import Error, InvalidReference, UsageError
from imggate.models import (
    Decision,
    ImageRef,
    ImageVerdict,
    Mode,
    RuleResult,
    RunInfo,
    Verdict,
)
from imggate.policy.namespaces import NamespaceEnv, exempt_image, namespace_env
from imggate.text import printable

if TYPE_CHECKING:
    from imggate.gate import CheckRequest
    from imggate.policy.environments import EnvChoice
    from imggate.policy.loader import Policy, RulesFile

#: ``env_origin`` of a combined verdict whose environments come from the namespaces.
NAMESPACES_ORIGIN = "namespaces"
#: The rule name of the namespace decision in reports (a JUnit testcase).
NAMESPACE_RULE = "namespace"
EXEMPT_ENV = "(exempt)"
UNMAPPED_ENV = "(unmapped)"


@dataclass(frozen=True, slots=True)
class PlannedImage:
    """One image of a manifest, parsed, with its namespace's environment."""

    entry: ManifestImage
    ref: ImageRef
    mapping: NamespaceEnv
    exempt_image: str | None = None

    @property
    def env(self) -> str:
        """The environment it is gated under, or the reason it is not gated."""
        if self.mapping.exempt or self.exempt_image is not None:
            return EXEMPT_ENV
        return self.mapping.env or UNMAPPED_ENV


@dataclass(frozen=True, slots=True)
class ManifestPlan:
    """Every image of every input, with its environment: nothing fetched yet."""

    images: tuple[PlannedImage, ...]
    scans: tuple[ManifestScan, ...]

    def groups(self) -> dict[str, tuple[tuple[str, ImageRef], ...]]:
        """Distinct references to gate, per environment, in the order first written."""
        out: dict[str, dict[str, ImageRef]] = {}
        for p in self.images:
            if p.env in (EXEMPT_ENV, UNMAPPED_ENV):
                continue
            out.setdefault(p.env, {}).setdefault(p.entry.image.image, p.ref)
        return {env: tuple(refs.items()) for env, refs in out.items()}


def plan(scans: Sequence[ManifestScan], rules: RulesFile, *,
         explicit: EnvChoice | None = None, default: EnvChoice | None = None,
         namespace: str | None = None) -> ManifestPlan:
    """Parse each image reference and map its namespace.

    ``namespace`` is used for objects that name none (``kubectl apply -n``).
    An image reference that does not parse is an
    :class:`~imggate.errors.InvalidReference` naming its ``file:line``.
    """
    from imggate.registry.reference import parse_reference

    planned = []
    for scan in scans:
        for entry in scan.images:
            try:
                ref = parse_reference(entry.image.image)
            except InvalidReference as e:
                raise InvalidReference(f"{entry.location}: {e.message}", hint=e.hint) from None
            ns = entry.image.namespace
            if ns is None and namespace is not None:
                # Say where it will run: the object takes -n's namespace when applied.
                ns = namespace
                entry = values.replace(
                    entry, image=entry.image._replace(namespace=ns))
            mapping = namespace_env(rules, ns, explicit=explicit, default=default)
            exempt = None if mapping.exempt else exempt_image(rules, ref)
            planned.append(PlannedImage(entry, ref, mapping, exempt))
    return ManifestPlan(tuple(planned), tuple(scans))


@dataclass(frozen=True, slots=True)
class ManifestVerdict:
    """The combined verdict and, for each image written, the verdict that applies to it."""

    verdict: Verdict
    rows: tuple[tuple[PlannedImage, ImageVerdict], ...]
    scans: tuple[ManifestScan, ...] = ()


def _exempt_verdict(p: PlannedImage) -> ImageVerdict:
    why = (p.mapping.describe() if p.mapping.exempt
           else f"{p.entry.image.image} matches namespaces.exempt_images {p.exempt_image!r}")
    return ImageVerdict(reference=p.entry.image.image, env=EXEMPT_ENV, decision=Decision.ALLOW,
                        rules=(RuleResult(NAMESPACE_RULE, True, Mode.ENFORCE, (why,)),),
                        notes=(f"not checked: {why}",))


def _unmapped_verdict(p: PlannedImage) -> ImageVerdict:
    why = (f"{p.mapping.describe()}: add it to namespaces.map in the rules, "
           "or pass --env")
    return ImageVerdict(reference=p.entry.image.image, env=UNMAPPED_ENV,
                        decision=Decision.DENY,
                        rules=(RuleResult(NAMESPACE_RULE, False, Mode.ENFORCE, (why,)),))


def run_plan(manifest_plan: ManifestPlan, request: CheckRequest,
             policy_for: Callable[[str], Policy],
             run: Callable[[CheckRequest], Verdict] | None = None) -> ManifestVerdict:
    """Gate each environment's references with ``request``'s settings and that
    environment's policy (``policy_for(env)``); join the verdicts."""
    if run is None:
        from imggate.gate import run_check

        run = run_check
    decided: dict[tuple[str, str], ImageVerdict] = {}
    gated: list[Verdict] = []
    for env, refs in manifest_plan.groups().items():
        sub = structs.replace(request, references=tuple(t for t, _ in refs),
                              refs=tuple(r for _, r in refs), policy=policy_for(env))
        verdict = run(sub)
        gated.append(verdict)
        for (text, _), iv in zip(refs, verdict.images, strict=True):
            decided[(env, text)] = iv
    rows = []
    for p in manifest_plan.images:
        key = (p.env, p.entry.image.image)
        if key not in decided:
            if p.env == EXEMPT_ENV:
                decided[key] = _exempt_verdict(p)
            elif p.env == UNMAPPED_ENV:
                decided[key] = _unmapped_verdict(p)
            else:  # every gated group answered above: this would be a bug, never an allow
                raise Error(f"{p.entry.location}: no verdict for {p.entry.image.image!r}")
        rows.append((p, decided[key]))
    envs = ", ".join(dict.fromkeys(p.env for p in manifest_plan.images)) or "(none)"
    combined = Verdict(env=envs, images=tuple(decided.values()), generated=request.now,
                       run=provenance(manifest_plan, request.policy, gated, envs))
    return ManifestVerdict(combined, tuple(rows), manifest_plan.scans)


def provenance(manifest_plan: ManifestPlan, policy: Policy, gated: Sequence[Verdict],
               env: str) -> RunInfo:
    """The combined verdict's policy record, like ``check``'s (:func:`~imggate.gate.run_info`).

    Every environment comes from the one rules file ``policy`` was loaded from.
    ``env_origin`` is ``--env`` when that flag chose every gated image's environment,
    else ``namespaces``; ``env_reason`` says, once per namespace, which environment it
    got and why (and which images were exempt); the notes are those of every
    environment's policy.
    """
    from imggate.gate import run_info
    from imggate.policy.namespaces import NamespaceMatch

    base = run_info(policy)
    mapped = [p for p in manifest_plan.images if p.env not in (EXEMPT_ENV, UNMAPPED_ENV)]
    explicit = bool(mapped) and all(p.mapping.how is NamespaceMatch.EXPLICIT for p in mapped)
    reasons = dict.fromkeys(
        p.mapping.describe() if p.exempt_image is None
        else f"{p.entry.image.image} is exempt (namespaces.exempt_images {p.exempt_image!r})"
        for p in manifest_plan.images)
    notes = dict.fromkeys(n for r in (base, *(v.run for v in gated)) if r is not None
                          for n in r.notes)
    return values.replace(
        base, env=env, env_origin=base.env_origin if explicit else NAMESPACES_ORIGIN,
        env_reason="; ".join(reasons), notes=tuple(notes))


def describe_rows(result: ManifestVerdict) -> list[str]:
    """One line per image written: where, what, which environment and why, the decision."""
    lines = []
    for p, iv in result.rows:
        how = p.mapping.by if p.exempt_image is None else "namespaces.exempt_images"
        lines.append(printable(f"{p.entry.describe()}: {p.entry.image.image} -> {p.env} "
                               f"({how}): {iv.decision.value}"))
    # Say what was not gated, so that images in a kind imggate does not read (a custom
    # resource's pod template) are not silently taken as checked.
    for scan in result.scans:
        if scan.others:
            kinds = Counter(o.kind for o in scan.others)
            listed = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
            lines.append(printable(f"{scan.source}: not gated (no pod spec imggate reads): "
                                   f"{listed}"))
    return lines


def prepare(paths: Sequence[str], rules: RulesFile, choice: EnvChoice, *, env_given: bool,
            namespace: str | None = None) -> ManifestPlan:
    """Read every ``-f`` input and plan the check.

    ``choice`` is the run's environment choice: with ``--env`` it overrides
    every namespace; chosen from a CI variable (or the rules' fallback for
    one) it is the default for namespaces nothing maps; the rules'
    ``default_env`` is never used for a namespace. No image at all is a
    :class:`~imggate.errors.UsageError`: a gate that checked nothing allows nothing.
    """
    from imggate.admission.manifests import read_manifests
    from imggate.policy.environments import MatchKind

    scans = [read_manifests(p) for p in paths]
    explicit = choice if env_given else None
    default = None if env_given or choice.kind is MatchKind.DEFAULT else choice
    result = plan(scans, rules, explicit=explicit, default=default, namespace=namespace)
    if not result.images:
        kinds = sorted({o.kind for s in scans for o in s.others})
        seen = f" (only {', '.join(kinds)})" if kinds else ""
        raise UsageError(f"no container images in {', '.join(s.source for s in scans)}{seen}",
                         hint="-f reads Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, "
                              "Job, CronJob, ReplicationController and PodTemplate objects")
    return result
