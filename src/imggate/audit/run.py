"""``imggate audit``: every tag of a repository through the gate, each digest checked once.

The steps: list the tags (the registry's ``tags/list``, paginated); resolve
each tag to its verified digest and creation date, concurrently, as soon as its
page of the list arrives; apply the
cleanup policy to those dates; gather each *distinct* digest's evidence once
per environment (tags that share a digest share it, and the environments
share the lookups: an image's signatures are fetched once for the whole
audit, then verified against each environment's keys); then judge every tag
with that evidence, named as ``repo:tag@digest`` — what a pinned deployment of
the tag would be — so the rules about tags (``latest`` in production) see the
tag while digest pinning holds. cosign's own tags (``sha256-<hex>.sig``/``.att``/``.sbom``) are
signature artifacts, not images: listed, never checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Future
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from msgspec import Struct, field

from imggate import values
from imggate.audit.cleanup import CleanupOutcome, CleanupPolicy, TagDate, compile_regex, plan
from imggate.errors import Error, UsageError
from imggate.models import (
    EXIT_CODES,
    Decision,
    Digest,
    Evidence,
    ImageRef,
    ImageVerdict,
    ResolvedImage,
    SignatureOptions,
    Unchecked,
    Verdict,
)
from imggate.registry.client import RegistryClient
from imggate.registry.deadline import Deadline
from imggate.registry.interface import Manifest
from imggate.registry.options import RegistryOptions
from imggate.registry.resolve import describe_image, open_repository

if TYPE_CHECKING:
    # The policy layer (pydantic) is imported while the tags are listed: see _audit.
    from imggate.policy.loader import Policy

#: cosign's tag schema for signatures, attestations and SBOMs attached to a digest.
COSIGN_TAG = re.compile(r"sha256-[0-9a-f]{64}(\.[a-z]+)?")
#: Docker's tag grammar: anything else listed by a registry is not a tag we can pull.
VALID_TAG = re.compile(r"[\w][\w.-]{0,127}")

T = TypeVar("T")
L = TypeVar("L")

#: ``progress(phase, done, total)``: called as work completes.
Progress = Callable[[str, int, int], None]


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class AuditRequest(Struct, frozen=True):
    """One audit: the repository, which tags, the cleanup view and the environments."""

    repository: ImageRef
    #: Each environment's policy, or their loading under way on another thread (read
    #: while the tags are listed and resolved; its failure is the audit's).
    policies: Mapping[str, Policy] | Future[Mapping[str, Policy]]
    now: datetime
    registry: RegistryOptions
    cleanup: CleanupPolicy = field(default_factory=CleanupPolicy)
    only_kept: bool = False
    concurrency: int = 16
    deadline: Deadline | None = None
    signatures: SignatureOptions = field(default_factory=SignatureOptions)


class TagRow(Struct, frozen=True):
    """One tag's line of the audit summary."""

    tag: str
    digest: Digest | None
    created: datetime | None
    cleanup: CleanupOutcome
    decisions: Mapping[str, Decision]
    same_digest: tuple[str, ...] = ()
    signed: bool | None = None
    error: str | None = None
    checked: bool = True
    #: Per environment where the tag is denied (or undecided): why, each as
    #: ``rule: message`` for every message of every violated rule, in rule order.
    reasons: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


class AuditResult(Struct, frozen=True):
    """The summary rows, and each environment's verdict (one image per checked tag)."""

    repository: str
    rows: tuple[TagRow, ...]
    verdicts: Mapping[str, Verdict]
    skipped: tuple[str, ...] = ()

    @property
    def distinct_digests(self) -> int:
        """How many different images the checked tags name."""
        return len({r.digest for r in self.rows if r.digest is not None and r.checked})

    @property
    def exit_code(self) -> int:
        """1 if any tag is denied anywhere, else 3 if any is undecided, else 0."""
        from imggate.policy.decision import run_decision

        decisions = [d for r in self.rows if r.checked
                     for d in (r.decisions.values() or [Decision.ERROR])]
        if not decisions:
            return 0  # an empty repository: nothing to judge, unlike a check of nothing
        return EXIT_CODES[run_decision(decisions, run_error=any(
            v.error is not None for v in self.verdicts.values()))]


def _nothing(phase: str, done: int, total: int) -> None:
    """The default progress callback."""


async def _listed(req: AuditRequest, client: RegistryClient,
                  progress: Progress) -> tuple[dict[str, ResolvedImage | Error], tuple[str, ...]]:
    """List the tags and resolve each one as its page of the list arrives.

    Each tag's manifest is read once, then each distinct digest's config once: tags that
    share an image share its description (the first tag to reach a digest reads its
    config, and for an index its platform manifest; the others wait for that). A
    registry that paginates (Docker Hub, GHCR: ~100 tags a page) has the first page's
    tags resolving while the next pages come. A page that fails fails the audit, as
    before: what was started is cancelled and nothing is reported from a partial list.
    """
    import asyncio
    import contextlib

    sem = asyncio.Semaphore(req.concurrency)
    repo = open_repository(req.repository, client)
    out: dict[str, ResolvedImage | Error] = {}
    described: dict[Digest, asyncio.Task[ResolvedImage | Error]] = {}
    seen: set[str] = set()
    wanted: list[str] = []
    skipped: list[str] = []
    resolving: list[asyncio.Task[None]] = []
    listed = False
    done = 0

    async def describe(ref: ImageRef, top: Manifest) -> ResolvedImage | Error:
        async with sem:
            try:
                return await describe_image(repo, ref, top)
            except Error as e:
                return e

    async def one(tag: str) -> None:
        nonlocal done
        ref = values.replace(req.repository, tag=tag)
        try:
            async with sem:
                top = await repo.resolve(tag)
        except Error as e:
            out[tag] = e
        else:
            # Not awaited while holding the semaphore: the description takes a slot itself.
            task = described.get(top.digest)
            if task is None:
                task = described[top.digest] = asyncio.ensure_future(describe(ref, top))
            image = await task
            out[tag] = image if isinstance(image, Error) else values.replace(
                image, ref=ref.with_digest(image.digest))
        done += 1
        if listed:  # (until then the total is not known)
            progress("resolve", done, len(wanted))

    try:
        async with contextlib.aclosing(repo.tag_pages()) as pages:
            async for page in pages:
                for tag in page:
                    if tag in seen:
                        continue
                    seen.add(tag)
                    if COSIGN_TAG.fullmatch(tag):  # a signature artifact: listed, not checked
                        continue
                    if not VALID_TAG.fullmatch(tag):
                        skipped.append(tag)
                        continue
                    wanted.append(tag)
                    resolving.append(asyncio.ensure_future(one(tag)))
    except BaseException:
        started = [*resolving, *described.values()]
        for task in started:
            task.cancel()
        await asyncio.gather(*started, return_exceptions=True)
        raise
    listed = True
    progress("list", len(wanted), len(wanted))
    if done:
        progress("resolve", done, len(wanted))
    await asyncio.gather(*resolving)
    # In the listed order, not the order the answers came in: the reports (the images'
    # order, each row's other tags of the same image) are the same run after run.
    return {t: out[t] for t in wanted}, tuple(skipped)


def run_audit(req: AuditRequest, progress: Progress = _nothing) -> AuditResult:
    """List, resolve, plan the cleanup, check each distinct digest once per environment."""
    from imggate._aio import run

    compile_regex(req.cleanup.name_regex, "--tags")  # a bad pattern fails before any traffic
    compile_regex(req.cleanup.name_regex_keep, "--keep-regex")
    if (req.repository.tag is not None and req.repository.tag != "latest") \
            or req.repository.digest is not None:
        raise UsageError(f"{req.repository}: audit takes a repository, without a tag or digest")
    return run(_audit(req, progress))


async def _audit(req: AuditRequest, progress: Progress) -> AuditResult:
    """The audit on one event loop and one registry client: the checks (signatures,
    attestations) reuse the connections, scheme probe and tokens of the listing and
    resolving (a client of their own opened as many connections again, and probed and
    authenticated again: ``audit --key`` made 32 connections instead of 16)."""
    async with RegistryClient(req.registry, deadline=req.deadline) as client:
        if isinstance(req.policies, Future):
            policies, (resolved, skipped) = await _alongside(req.policies,
                                                             _listed(req, client, progress))
        else:
            policies = req.policies
            resolved, skipped = await _listed(req, client, progress)
        return await _judged(req, policies, client, resolved, skipped, progress)


async def _alongside(loading: Future[L], listing: Coroutine[Any, Any, T]) -> tuple[L, T]:
    """The policies being loaded and the listing, both: the listing is stopped as soon as
    the loading fails (a broken rules file stops the audit's traffic), and a listing that
    fails waits for the loading, whose error comes first (as when the rules were read
    before any request)."""
    import asyncio

    loaded = asyncio.wrap_future(loading)
    listed = asyncio.ensure_future(listing)
    try:
        await asyncio.wait((loaded, listed), return_when=asyncio.FIRST_EXCEPTION)
        await asyncio.wait((loaded,))
    finally:
        if not listed.done():  # the loading failed (or this was cancelled): no more traffic
            listed.cancel()
            await asyncio.gather(listed, return_exceptions=True)
    return loaded.result(), listed.result()


async def _judged(req: AuditRequest, policies: Mapping[str, Policy], client: RegistryClient,
                  resolved: dict[str, ResolvedImage | Error], skipped: tuple[str, ...],
                  progress: Progress) -> AuditResult:
    """Plan the cleanup, gather each distinct digest's evidence once per environment, and
    judge every tag."""
    from imggate.gate import CheckRequest, decide, gather
    from imggate.registry.memo import SharedAnswers

    def unresolved_ref(tag: str) -> ImageRef:
        return values.replace(req.repository, tag=tag)

    dates = [TagDate(t, r.config.created if isinstance(r, ResolvedImage) and r.config else None,
                     has_manifest=isinstance(r, ResolvedImage)) for t, r in resolved.items()]
    cleanup = plan(dates, req.cleanup, req.now)
    # A dict: asked of every tag (a list made the rows quadratic in the tags).
    chosen = dict.fromkeys(t for t in resolved if cleanup[t].kept or not req.only_kept)
    by_digest: dict[Digest, list[str]] = {}
    for t in chosen:
        r = resolved[t]
        if isinstance(r, ResolvedImage):
            by_digest.setdefault(r.digest, []).append(t)
    digests = list(by_digest)
    refs = tuple(req.repository.with_digest(d) for d in digests)
    # Each digest's image as its first tag resolved it, named by digest like its ref: the
    # gate judges these without fetching them again.
    images = []
    for ref, digest in zip(refs, digests, strict=True):
        first = resolved[by_digest[digest][0]]
        assert isinstance(first, ResolvedImage)
        images.append(values.replace(first, ref=ref))
    tag_refs = {d: tuple(values.replace(req.repository, tag=t, digest=d) for t in tags)
                for d, tags in by_digest.items()}
    verdicts: dict[str, Verdict] = {}
    signed: dict[Digest, bool] = {}
    # Every environment looks up the same signatures and attestations: asked once.
    shared = SharedAnswers()
    for env, policy in policies.items():
        check = CheckRequest(references=tuple(str(r) for r in refs), refs=refs, policy=policy,
                             now=req.now, registry=req.registry, concurrency=req.concurrency,
                             deadline=req.deadline, signatures=req.signatures)
        phase, total = f"check {env}", len(refs)

        def advance(n: int, phase: str = phase, total: int = total) -> None:
            progress(phase, n, total)

        evidence = await gather(check, progress=advance, resolved=images, shared=shared,
                                client=client)
        # A tag that could not be resolved is still judged by what its reference says
        # (``latest`` where it is denied is a denial, registry or not), else undecided.
        judged = [Evidence(str(unresolved_ref(t)), unresolved_ref(t), None,
                           errors=(Unchecked(r.message),))
                  for t, r in resolved.items() if isinstance(r, Error) and t in chosen]
        named: list[tuple[ImageRef, ...]] = [(ev.ref,) for ev in judged]
        for ev, digest in zip(evidence, digests, strict=True):
            # Signed: a trusted signature verified, in an environment that asked for one.
            if ev.signatures or policy.rules.trust(ev.ref).needed:
                signed[digest] = signed.get(digest, False) or any(s.verified
                                                                  for s in ev.signatures)
            # Judged under each of its tags, as ``repo:tag@digest``.
            judged.append(ev)
            named.append(tag_refs[digest])
        verdicts[env] = decide(check, judged, named=named)
    decisions: dict[str, dict[str, Decision]] = {}
    reasons: dict[str, dict[str, tuple[str, ...]]] = {}
    for env, verdict in verdicts.items():
        for iv in verdict.images:
            decisions.setdefault(iv.reference, {})[env] = iv.decision
            why = _reasons(iv)
            if why:
                reasons.setdefault(iv.reference, {})[env] = why
    rows = []
    for t, r in resolved.items():
        if isinstance(r, Error):
            rows.append(TagRow(t, None, None, cleanup[t],
                               decisions.get(str(unresolved_ref(t)), {}), error=r.message,
                               checked=t in chosen,
                               reasons=reasons.get(str(unresolved_ref(t)), {})))
            continue
        shown = f"{values.replace(req.repository, tag=t, digest=r.digest)}"
        rows.append(TagRow(
            t, r.digest, r.config.created if r.config else None, cleanup[t],
            decisions.get(shown, {}),
            same_digest=tuple(o for o in by_digest.get(r.digest, ()) if o != t),
            signed=signed.get(r.digest), checked=t in chosen, reasons=reasons.get(shown, {})))
    return AuditResult(str(req.repository.name), tuple(rows), verdicts, skipped)


def _reasons(iv: ImageVerdict) -> tuple[str, ...]:
    """Why an image is not allowed: its error, or every message of every violated rule."""
    if iv.decision is Decision.ALLOW:
        return ()
    if iv.error:
        return (f"could not decide: {iv.error}",)
    return tuple(f"{r.rule}: {m}" for r in iv.violations for m in (r.messages or ("failed",)))
