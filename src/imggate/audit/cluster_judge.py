"""Judging what a cluster runs: each distinct image once, each spec's reference rules.

:func:`judge` takes the distinct (environment, spec, what runs) of a cluster
audit (:mod:`imggate.audit.cluster`) and returns the verdict of each:

1. a spec that the reference rules deny by themselves is not fetched (as the
   webhook and ``check -f``);
2. with ``--cache``, the running digest is looked up in the verdict cache shared
   with the webhook (:mod:`imggate.audit.shared_cache`);
3. every other image is resolved once (``repo@digest``, per pull credentials),
   concurrently and bounded, then its evidence gathered with the gate's own
   step (signatures looked up once across environments) and decided with the
   one decision function, with today's date and rules; definitive verdicts are
   written to the shared cache;
4. the rules about the reference are applied to each spec as written, the
   evidence being the running digest's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from msgspec import structs

from imggate import values
from imggate.audit.shared_cache import VerdictCache, hit_verdict
from imggate.errors import Error
from imggate.models import Evidence, ImageRef, ImageVerdict, ResolvedImage, Unchecked
from imggate.registry.pod_secrets import PodPullSecrets

if TYPE_CHECKING:
    from imggate.admission.cache import CachedVerdict
    from imggate.audit.cluster import ClusterRequest, Progress
    from imggate.gate import CheckRequest

#: ``(environment, spec, judged)``: the texts of one distinct container reference.
Combo = tuple[str, str, str]


def _resolution_key(ref: ImageRef) -> ImageRef:
    """What one registry resolution answers for: ``repo@digest`` (every tag and environment
    of that image), else the reference itself."""
    if ref.digest is not None:
        return ImageRef(ref.registry, ref.repository, None, ref.digest)
    return ref


def _with_spec_rules(iv: ImageVerdict, spec: ImageRef, check: CheckRequest,
                     unchecked: tuple[Unchecked, ...]) -> ImageVerdict:
    """``iv`` (the evidence of what runs) with the rules about the reference applied to
    the spec as written, as the webhook applied them: a tag-only spec is not pinned
    however precisely the kubelet reports what it pulled."""
    from imggate.policy.checks import reference_results
    from imggate.policy.decision import REFERENCE_RULES, decide

    by_ref = reference_results(spec, check.policy.rules.for_image(spec).rules)
    rules = (*by_ref, *(r for r in iv.rules if r.rule not in REFERENCE_RULES))
    return values.replace(iv, rules=rules, decision=decide(rules, unchecked))


def _unchecked(ev: Evidence) -> tuple[Unchecked, ...]:
    """What could not be checked, as :func:`imggate.policy.engine.evaluate` counts it."""
    if ev.image is None and not ev.errors:
        return (Unchecked("the image was not resolved to a digest"),)
    return ev.errors


async def judge(req: ClusterRequest, combos: Mapping[Combo, tuple[ImageRef, ImageRef, str]],
                credentials: Mapping[str, PodPullSecrets], progress: Progress,
                cache: VerdictCache | None = None) -> tuple[dict[Combo, ImageVerdict], int]:
    """Each distinct (environment, spec, what runs) judged; the resolutions made.

    ``combos`` maps each to ``(spec, judged, credentials)``: the spec as written, the
    reference of what runs, and the fingerprint of the first pod's pull credentials.

    The evidence of what runs is gathered once per (environment, reference judged),
    or read from the shared verdict cache; the rules about the reference are applied to
    each spec. An image is read with the pull credentials of the first pod found running
    it (the docker config's where that pod has none for its registry), as the webhook's
    verdict cache shares a verdict between pods: it is about the image, whoever asked.
    """
    from imggate.gate import NOT_FETCHED, CheckRequest, denied_by_reference, gather
    from imggate.gate import decide as decide_all
    from imggate.registry.client import RegistryClient
    from imggate.registry.memo import SharedAnswers
    from imggate.registry.pull_secrets import PullSecretCredentials
    from imggate.registry.resolve import open_repository, resolve_image

    options = {"": req.registry}
    for fp, secrets in credentials.items():
        if fp and fp not in options:
            options[fp] = values.replace(req.registry, credentials=PullSecretCredentials(
                secrets.found, req.registry.credentials))
    envs = dict.fromkeys(env for env, _, _ in combos)
    checks = {env: CheckRequest(references=(), refs=(),
                                policy=req.policies.environments[env].policy, now=req.now,
                                registry=req.registry, concurrency=req.concurrency,
                                deadline=req.deadline, signatures=req.signatures)
              for env in envs}
    # A spec that its environment's rules deny by themselves is not fetched (as check -f
    # and the webhook do): the registry cannot change that decision.
    denied = {c for c, (spec, _, _) in combos.items() if denied_by_reference(checks[c[0]], spec)}
    # The evidence wanted: (env, judged text) -> (judged, credentials).
    units: dict[tuple[str, str], tuple[ImageRef, str]] = {}
    for c, (_, running, fp) in combos.items():
        if c not in denied:
            units.setdefault((c[0], c[2]), (running, fp))
    hits: dict[tuple[str, str], CachedVerdict] = {}
    if cache is not None:
        pinned_units = [(u, ref) for u, (ref, _) in units.items() if ref.digest is not None]
        answers = await cache.get_many([(u[0], ref.name, str(ref.digest))
                                        for u, ref in pinned_units], req.concurrency)
        hits.update((u, found) for (u, _), found in zip(pinned_units, answers, strict=True)
                    if found is not None)
    wanted: dict[tuple[str, ImageRef], None] = {}
    for unit, (ref, fp) in units.items():
        if unit not in hits:
            wanted.setdefault((fp, _resolution_key(ref)))
    resolved: dict[tuple[str, ImageRef], ResolvedImage | Error] = {}
    sem = asyncio.Semaphore(req.concurrency)
    async with RegistryClient(req.registry, deadline=req.deadline) as base:
        # One connection pool; each credential set its own client (and token cache), as
        # the webhook's access pool does.
        clients = {fp: base if fp == "" else base.with_credentials(options[fp].credentials)
                   for fp in options}

        async def resolve(key: tuple[str, ImageRef]) -> None:
            async with sem:
                try:
                    resolved[key] = await resolve_image(
                        open_repository(key[1], clients[key[0]]), key[1])
                except Error as e:
                    resolved[key] = e
            progress("resolve", len(resolved), len(wanted))

        await asyncio.gather(*(resolve(k) for k in wanted))
    pinned: dict[tuple[str, str], ResolvedImage] = {}
    if cache is not None:
        # A tag (a container not started) is looked up once the registry has named its digest.
        tagged = [(unit, ref, image) for unit, (ref, fp) in units.items()
                  if unit not in hits and ref.digest is None
                  and isinstance(image := resolved.get((fp, _resolution_key(ref))),
                                 ResolvedImage)]
        answers = await cache.get_many([(u[0], ref.name, str(image.digest))
                                        for u, ref, image in tagged], req.concurrency)
        for (unit, _, image), found in zip(tagged, answers, strict=True):
            if found is not None:
                hits[unit] = found
                pinned[unit] = image
    shared = SharedAnswers()
    out: dict[tuple[str, str, str], ImageVerdict] = {}
    # (env, judged text) -> the verdict of the evidence, and what could not be checked.
    judged: dict[tuple[str, str], tuple[ImageVerdict, tuple[Unchecked, ...]]] = {}
    for unit, found in hits.items():
        judged[unit] = (hit_verdict(found, unit[1], unit[0], pinned.get(unit)), ())
    for env in envs:
        check = checks[env]
        ready: dict[str, list[tuple[str, ImageRef, ResolvedImage]]] = {}
        evidence: dict[str, Evidence] = {}
        for (u_env, text), (ref, fp) in units.items():
            if u_env != env or (env, text) in hits:
                continue
            image = resolved[(fp, _resolution_key(ref))]
            if isinstance(image, Error):
                evidence[text] = Evidence(text, ref, None, errors=(Unchecked(image.message),))
            else:
                ready.setdefault(fp, []).append((text, ref, values.replace(
                    image, ref=ref.with_digest(image.digest))))
        done = 0
        for fp, items in ready.items():
            sub = structs.replace(check, references=tuple(t for t, _, _ in items),
                                  refs=tuple(r for _, r, _ in items), registry=options[fp])

            def advance(n: int, env: str = env, base: int = done,
                        total: int = sum(map(len, ready.values()))) -> None:
                progress(f"check {env}", base + n, total)

            gathered = await gather(sub, progress=advance, resolved=[i for _, _, i in items],
                                    shared=shared)
            done += len(items)
            for (text, _, _), ev in zip(items, gathered, strict=True):
                evidence[text] = ev
        # The specs denied by the reference alone: nothing fetched, as check -f says it.
        refused = {c: Evidence(c[2], spec, None, errors=(Unchecked(NOT_FETCHED),))
                   for c, (spec, _, _) in combos.items() if c[0] == env and c in denied}
        found_all = [*evidence.values(), *refused.values()]
        verdict = decide_all(structs.replace(
            check, references=tuple(e.reference for e in found_all),
            refs=tuple(e.ref for e in found_all)), found_all)
        for (text, ev), iv in zip(evidence.items(), verdict.images[:len(evidence)],
                                  strict=True):
            judged[(env, text)] = (iv, _unchecked(ev))
        if cache is not None:
            await cache.put_many([(env, units[(env, text)][0].name, *judged[(env, text)])
                                  for text in evidence], req.concurrency)
        out.update(zip(refused, verdict.images[len(evidence):], strict=True))
    for c, (spec, ref, _) in combos.items():
        if c in denied:
            continue
        env, _, text = c
        iv, unchecked = judged[(env, text)]
        out[c] = iv if spec is ref and (env, text) not in hits else _with_spec_rules(
            iv, spec, checks[env], unchecked)
    return out, len(wanted)
