"""The pipeline: resolve -> gather evidence -> evaluate. No I/O of its own beyond calls.

Every image is resolved once to a verified digest; scanner reports are bound
to images by the digests they name; signatures are checked against exactly
the trust material the rules ask for; then the policy engine decides. Any
error while gathering evidence is recorded on that image and makes its
decision ``error`` (exit 3), never an allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from msgspec import Struct, field

from imggate import values
from imggate._aio import settle, settled
from imggate.errors import Error
from imggate.models import (
    Digest,
    Evidence,
    EvidenceGroup,
    EvidenceKind,
    ImageRef,
    Platform,
    ResolvedImage,
    RunInfo,
    ScanReport,
    SignatureCheck,
    SignatureOptions,
    Unchecked,
    Verdict,
)
from imggate.policy.loader import Policy
from imggate.policy.rules import EvidenceSource
from imggate.registry.deadline import Deadline
from imggate.registry.options import RegistryOptions
from imggate.registry.resolve import (
    open_repository,
    pin_platform,
    read_config,
    top_manifest,
)

if TYPE_CHECKING:
    # Signature verification pulls in cryptography's x509 stack: only when rules need it.
    from imggate.evidence.attested import AttestedEvidence
    from imggate.policy.effective import TrustMaterial
    from imggate.policy.exceptions import ExceptionSet
    from imggate.policy.rules import VexAttestationRules
    from imggate.registry.client import RegistryClient
    from imggate.registry.interface import Repository
    from imggate.registry.memo import SharedAnswers
    from imggate.scanners.trivy_runner import TrivyOptions, TrivyScans
    from imggate.signatures.interface import CertificateAuthority, TrustConfig
    from imggate.signatures.keys import TrustedKey
    from imggate.signatures.trustroot import SigstoreTrustRoot

log = logging.getLogger(__name__)

SCANNER = frozenset({EvidenceGroup.SCANNER})
SIGNATURES = frozenset({EvidenceGroup.SIGNATURES})
#: Why an image denied by its reference alone has no digest: the registry was not asked.
NOT_FETCHED = "the image was not read: a rule about its reference already denies it"
#: Said when the rules give nothing to verify vuln attestations with. Here rather than in
#: imggate.evidence.attested: saying it must not import the signature stack (an audit
#: without keys paid ~14% of its samples for that import, py-spy).
NOT_READ = ("vuln attestations not read: the rules name no signature keys or identities "
            "to verify them with")


# Value types here are msgspec Structs, not frozen dataclasses: see imggate.values.
class CheckRequest(Struct, frozen=True):
    """Everything one ``imggate check`` run needs, validated before any network traffic."""

    references: tuple[str, ...]
    refs: tuple[ImageRef, ...]
    policy: Policy
    now: datetime
    reports: tuple[ScanReport, ...] = ()
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    platform: Platform | None = None
    trivy: TrivyOptions | None = None
    signatures: SignatureOptions = field(default_factory=SignatureOptions)
    concurrency: int = 16
    #: Bounds every registry request of the run (``--deadline``); ``None``: no deadline.
    deadline: Deadline | None = None
    #: Read signed vuln attestations as evidence (``severity.evidence``); off for a run that
    #: writes them (``check --attest``): it attests what its own scanners found.
    read_attestations: bool = True


def identities_of(image: ResolvedImage) -> frozenset[Digest]:
    """Every digest that names this image: index, platform manifest and config (Trivy's ImageID)."""
    found = {image.digest, image.manifest_digest}
    if image.config is not None:
        found.add(image.config.digest)
    return frozenset(found)


def bind_reports(reports: Sequence[ScanReport],
                 images: Sequence[ResolvedImage | None]) -> list[tuple[ScanReport, ...]]:
    """Which reports go with which image.

    A report naming one of this run's images goes to that image only. A report
    naming no digest goes to every image (the engine warns). A report naming
    digests of none of these images goes to every image, where the engine
    reports it as "for another image": a report is never silently dropped.
    """
    ids = [identities_of(i) if i is not None else frozenset() for i in images]
    out: list[list[ScanReport]] = [[] for _ in images]
    for report in reports:
        named = set(report.image_digests)
        owners = [n for n, mine in enumerate(ids) if named & mine]
        for n in owners or range(len(images)):
            out[n].append(report)
    return [tuple(r) for r in out]


class KeyCache:
    """Load each key and certificate-chain file once per run (or per rules load, for the
    webhook)."""

    def __init__(self) -> None:
        self._keys: dict[Path, TrustedKey] = {}
        self._chains: dict[Path, CertificateAuthority] = {}
        self._roots: dict[Path, tuple[SigstoreTrustRoot, ...]] = {}

    def preload(self, req: CheckRequest) -> None:
        """Load every key the rules name for these images now, so that an unusable key
        file is a configuration error (exit 2) before any network traffic."""
        for ref in req.refs:
            material = req.policy.rules.trust(ref)
            for path in material.keys:
                self.get(Path(path))
            for path in material.certificate_chains:
                self.authority(Path(path))
            for path in material.trusted_roots:
                self.roots(Path(path))
        vex = req.policy.rules_file.document.vex_attestations
        for path in vex.keys if vex is not None else ():
            self.get(Path(path))

    def get(self, path: Path) -> TrustedKey:
        from imggate.signatures.keys import load_public_key

        if path not in self._keys:
            self._keys[path] = load_public_key(path)
        return self._keys[path]

    def roots(self, path: Path) -> tuple[SigstoreTrustRoot, ...]:
        """The trusted root(s) of a ``signatures.trusted_roots`` file, read once."""
        from imggate.signatures.trustroot import load_trusted_roots

        if path not in self._roots:
            self._roots[path] = load_trusted_roots(path)
        return self._roots[path]

    def authority(self, path: Path) -> CertificateAuthority:
        from imggate.signatures.interface import load_certificate_authority

        if path not in self._chains:
            self._chains[path] = load_certificate_authority(path)
        return self._chains[path]


def trust_config(material: TrustMaterial, options: SignatureOptions, keys: KeyCache,
                 root: object | None) -> TrustConfig:
    """The verifier's :class:`TrustConfig` for exactly what the rules require."""
    from imggate.signatures.interface import Identity, TrustConfig

    identities = tuple(
        Identity(identity=i.identity, identity_regexp=i.identity_regexp, issuer=i.issuer,
                 issuer_regexp=i.issuer_regexp)
        for i in material.identities)
    given = given_roots(root)
    # The command line's roots, then the rules' (signatures.trusted_roots), each read once.
    roots = (*given, *(r for p in material.trusted_roots for r in keys.roots(Path(p))))
    return TrustConfig(
        keys=tuple(keys.get(Path(p)) for p in material.keys),
        identities=identities,
        check_signatures=material.signatures_required,
        authorities=tuple(keys.authority(Path(p)) for p in material.certificate_chains),
        check_attestations=bool(material.attestation_types),
        # `*` (check --attestations) asks for any type: the verifier's empty filter.
        attestation_types=() if material.any_attestation else material.attestation_types,
        ignore_tlog=options.ignore_tlog or material.ignore_tlog,
        ignore_tlog_by="--insecure-ignore-tlog" if options.ignore_tlog
        else "signatures.require_tlog: false",
        trusted_root=roots[0] if roots else None,
        trusted_roots=roots,
        accept_platform_signatures=options.accept_platform_signatures,
    )


def denied_by_reference(req: CheckRequest, ref: ImageRef) -> bool:
    """Whether a rule about the reference alone (denied tag, digest pinning, registry)
    denies ``ref``: then nothing a registry could say changes the decision, and it is not
    asked (an unreachable registry must not turn a certain denial into a wait)."""
    from imggate.policy.checks import reference_results
    from imggate.policy.decision import certain

    rules = req.policy.rules.for_image(ref).rules
    return any(certain(r) for r in reference_results(ref, rules))


def _credentials_for_trivy(req: CheckRequest, ref: ImageRef) -> tuple[str | None, str | None]:
    if ref.source != "registry":
        return None, None
    creds = req.registry.credentials.get(ref.registry)
    return (creds.username, creds.secret) if creds and not creds.identity_token else (None, None)


async def gather(req: CheckRequest, *,
                 progress: Callable[[int], None] | None = None,
                 resolved: Sequence[ResolvedImage] | None = None,
                 shared: SharedAnswers | None = None,
                 client: RegistryClient | None = None) -> list[Evidence]:
    """Resolve every image concurrently, then gather each one's evidence concurrently.

    ``progress(n)`` is called with the number of images whose evidence is complete, as
    each completes (``imggate audit`` shows it). ``resolved``, one per ``req.refs`` in
    order, are images the caller has already pinned (``imggate audit``, which resolves
    every tag first): they are used as they are, with no registry request. ``shared``
    keeps the signature and attestation lookups for the caller's next gather (``imggate
    audit``'s next environment). ``client`` is the caller's open registry client, read
    with instead of a client of the run's own (``imggate audit``: its connections and
    tokens are the listing's); the caller closes it.
    """
    if resolved is not None and len(resolved) != len(req.refs):
        raise ValueError(f"gather: {len(resolved)} resolved images for {len(req.refs)} refs")
    keys = KeyCache()
    keys.preload(req)
    root = None
    if req.signatures.trusted_root is not None:
        from imggate.signatures.trustroot import load_trusted_roots

        # One file may hold several roots (JSON lines): each bundle uses the one it chains to.
        root = load_trusted_roots(req.signatures.trusted_root)
    opened = _registry_client(req) if client is None else contextlib.nullcontext(client)
    async with opened as client:
        scans = None
        if req.trivy is not None:
            from imggate.scanners.trivy_runner import TrivyScans

            scans = TrivyScans(req.trivy)
        if resolved is None:
            return await _pin_and_gather(req, client, keys, root, scans, shared, progress)

        bound = bind_reports(req.reports, resolved)
        sem = asyncio.Semaphore(req.concurrency)
        finished = 0

        async def evidence(n: int) -> Evidence:
            nonlocal finished
            async with sem:
                found = await image_evidence(req, client, req.references[n], req.refs[n],
                                             resolved[n], bound[n], keys, root, scans, shared)
            finished += 1
            if progress is not None:
                progress(finished)
            return found

        return list(await asyncio.gather(*(evidence(n) for n in range(len(req.refs)))))


async def _pin_and_gather(req: CheckRequest, client: RegistryClient | None, keys: KeyCache,
                          root: object | None, scans: TrivyScans | None,
                          shared: SharedAnswers | None,
                          progress: Callable[[int], None] | None) -> list[Evidence]:
    """:func:`gather` of images not resolved yet: each one pinned, then its config read
    while its signatures and attestations are looked up (they need only its digests), the
    webhook's order: a run waits for one round trip to the registry fewer.

    The reports are bound once every image is described (a report names an image by its
    config digest too, and one naming none of the run's images goes to all of them), and
    then counted: each image holds the semaphore only for its own round trips, never while
    waiting on another image's, so no image waits on a slot another image keeps.
    """
    sem = asyncio.Semaphore(req.concurrency)
    finished = 0

    async def look(ref: ImageRef) -> tuple[ResolvedImage, Lookups] | Error | None:
        nonlocal finished
        found: tuple[ResolvedImage, Lookups] | Error | None = None
        if not denied_by_reference(req, ref):  # (else decided already: no registry waited for)
            async with sem:
                try:
                    found = await _described_and_looked_up(req, client, ref, keys, root,
                                                           scans, shared)
                except Error as e:
                    found = e
        finished += 1
        if progress is not None:
            progress(finished)
        return found

    results = await asyncio.gather(*(look(r) for r in req.refs))
    images = [r[0] if isinstance(r, tuple) else None for r in results]
    bound = bind_reports(req.reports, images)
    out: list[Evidence] = []
    for n, result in enumerate(results):
        text, ref = req.references[n], req.refs[n]
        if isinstance(result, Error):
            out.append(Evidence(text, ref, None, errors=(Unchecked(result.message),)))
        elif result is None:
            out.append(Evidence(text, ref, None, errors=(Unchecked(NOT_FETCHED),)))
        else:
            out.append(counted(req, text, ref, result[0], bound[n], result[1]))
    return out


async def _described_and_looked_up(req: CheckRequest, client: RegistryClient | None,
                                   ref: ImageRef, keys: KeyCache, root: object | None,
                                   scans: TrivyScans | None, shared: SharedAnswers | None
                                   ) -> tuple[ResolvedImage, Lookups]:
    """``ref`` pinned and described, and what its lookups found: the config is read beside
    the lookups. A config that cannot be read (or names another platform) fails the image
    as soon as it is known, the lookups stopped, exactly as when it was read first."""
    repo = open_repository(ref, client)
    pinned, manifest = await pin_platform(repo, ref, await top_manifest(repo, ref),
                                          req.platform)
    described = asyncio.ensure_future(read_config(repo, pinned, manifest, req.platform))
    looking = asyncio.ensure_future(
        image_lookups(req, client, ref, pinned, keys, root, scans, shared))
    try:
        await asyncio.wait((described, looking), return_when=asyncio.FIRST_COMPLETED)
        image = await described  # an Error here is the image's, the lookups stopped
        return image, await looking
    finally:
        settle(described)
        settle(looking)


def _registry_client(req: CheckRequest
                     ) -> contextlib.AbstractAsyncContextManager[RegistryClient | None]:
    """The registry client the run reads with; none when every image, and the signature
    repository, is an OCI layout: nothing goes over the network, and the HTTP stack
    (httpx, httpcore: ~60-80 ms of start-up) is not imported."""
    if not _over_network(req):
        return contextlib.nullcontext(None)
    from imggate.registry.client import RegistryClient

    return RegistryClient(req.registry, deadline=req.deadline)


def _over_network(req: CheckRequest) -> bool:
    """Whether any image, or the signature repository, is read from a registry."""
    sig = req.signatures.signature_repository
    return not (all(r.source == "oci-layout" for r in req.refs)
                and (sig is None or sig.startswith("oci:")))


class Lookups(Struct, frozen=True):
    """What the scanner and the registry gave about one image, before its reports are
    counted: :func:`image_lookups`' answer, for :func:`counted`."""

    #: The Trivy scan's report (``--scan trivy``), if one was run and read.
    scanned: ScanReport | None
    #: What could not be read: the scan's error first, then the lookups'.
    errors: tuple[Unchecked, ...]
    checks: tuple[SignatureCheck, ...]
    #: The signed vuln attestations (``None``: not read, or could not be).
    attested: AttestedEvidence | None
    vex: tuple[SignatureCheck, ...]


async def image_evidence(req: CheckRequest, client: RegistryClient | None, text: str,
                         ref: ImageRef,
                         image: ResolvedImage, reports: tuple[ScanReport, ...], keys: KeyCache,
                         root: object | None, scans: TrivyScans | None = None,
                         shared: SharedAnswers | None = None) -> Evidence:
    """Everything about one resolved image: ``reports`` (already bound to it), a Trivy run
    when asked, signatures and attestations (each fetched once, verified locally against
    every key and identity) and signed vuln attestations as evidence. Errors are recorded
    in the :class:`Evidence`, never raised. ``check`` and the webhook both call this.
    ``scans`` runs Trivy for the whole run (one DB update, one scan at a time); without it,
    ``req.trivy`` gets a runner of its own. ``shared`` keeps the signature and attestation
    lookups beyond this image (see :mod:`imggate.registry.memo`)."""
    looked = await image_lookups(req, client, ref, image, keys, root, scans, shared)
    return counted(req, text, ref, image, reports, looked)


async def image_lookups(req: CheckRequest, client: RegistryClient | None, ref: ImageRef,
                        image: ResolvedImage, keys: KeyCache, root: object | None,
                        scans: TrivyScans | None = None,
                        shared: SharedAnswers | None = None) -> Lookups:
    """The network half of :func:`image_evidence`: a Trivy run when asked, then the
    signatures, attestations and signed VEX. They need only ``image``'s digests, not its
    config. Errors are recorded in the answer, never raised."""
    if scans is None and req.trivy is not None:
        from imggate.scanners.trivy_runner import TrivyScans

        scans = TrivyScans(req.trivy)
    errors: list[Unchecked] = []
    scanned: ScanReport | None = None
    if scans is not None:
        user, secret = _credentials_for_trivy(req, ref)
        try:
            scanned = values.replace(
                await asyncio.to_thread(scans.scan, image, username=user, password=secret),
                kind=EvidenceKind.SCAN)
        except Error as e:
            errors.append(Unchecked(e.message, SCANNER))
    sources = req.policy.rules.for_image(ref).rules.severity.evidence
    material = req.policy.rules.trust(ref)
    # Signatures and signed vuln attestations look in the same places (the .sig/.att tags,
    # the referrers): each place is asked once for this image.
    from imggate.registry.memo import AskedOnce

    repo: Repository = AskedOnce(open_repository(ref, client), shared)
    sig_repo: Repository | None = None
    if req.signatures.signature_repository:
        from imggate.registry.reference import parse_reference

        sig_repo = AskedOnce(open_repository(
            parse_reference(req.signatures.signature_repository), client), shared)
    sig_errors: list[Unchecked] = []
    att_errors: list[Unchecked] = []
    vex_errors: list[Unchecked] = []

    async def signatures() -> tuple[SignatureCheck, ...]:
        if not material.needed:
            return ()
        from imggate.signatures.check import check_signatures

        try:
            trust = trust_config(material, req.signatures, keys, root)
            return await check_signatures(repo, image.digest, trust, signature_repo=sig_repo,
                                          platform_digest=image.manifest_digest)
        except Error as e:
            sig_errors.append(Unchecked(e.message, SIGNATURES))
            return ()

    reads_attestations = EvidenceSource.ATTESTATIONS in sources and req.read_attestations
    # Vuln attestations are verified with the rules' keys and identities: without any,
    # none is read (see _attested).
    attesters = reads_attestations and bool(material.keys or material.identities)
    vex_rules = req.policy.rules_file.document.vex_attestations

    async def attestations() -> AttestedEvidence | None:
        if not attesters:
            return None
        return await _attested(req, repo, sig_repo, image, material, keys, root, att_errors)

    async def signed_vex() -> tuple[SignatureCheck, ...]:
        if vex_rules is None:
            return ()
        return await _vex(repo, sig_repo, image, vex_rules, keys, root, vex_errors)

    checks: tuple[SignatureCheck, ...] = ()
    attested: AttestedEvidence | None = None
    vex: tuple[SignatureCheck, ...] = ()
    # Nothing to look up (an audit's images without keys): no lookup is started (their
    # three tasks an image were half of an audit's gathering: 300 images, 61M -> 30M
    # instructions).
    if material.needed or attesters or vex_rules is not None:
        # The three look in the same places (through ``repo``, which asks each question
        # once, in flight too): asked together, a cold image costs the round trips of the
        # longest, not of all three in turn. What they found is put together in a fixed
        # order.
        answers = await asyncio.gather(signatures(), attestations(), signed_vex(),
                                       return_exceptions=True)
        checks, attested, vex = (settled(answers[0]), settled(answers[1]),
                                 settled(answers[2]))
    return Lookups(scanned, (*errors, *sig_errors, *att_errors, *vex_errors), checks,
                   attested, vex)


def counted(req: CheckRequest, text: str, ref: ImageRef, image: ResolvedImage,
            reports: tuple[ScanReport, ...], looked: Lookups) -> Evidence:
    """The :class:`Evidence` of ``image``: ``reports`` (bound to it), then what its lookups
    found, each counted as the rules' ``severity.evidence`` says (what is not counted is
    said, never dropped silently)."""
    sources = req.policy.rules.for_image(ref).rules.severity.evidence
    found = [*reports, looked.scanned] if looked.scanned is not None else list(reports)
    refused: list[str] = []
    notes: list[str] = []
    if EvidenceSource.REPORTS not in sources and found:
        refused.append(f"{len(found)} scanner report(s) not counted: severity.evidence does "
                       "not list reports")
        found = []
    checks = looked.checks
    if EvidenceSource.ATTESTATIONS in sources and req.read_attestations:
        attested = looked.attested
        if attested is None:
            material = req.policy.rules.trust(ref)
            if not (material.keys or material.identities):
                refused.append(NOT_READ)
        else:
            checks += attested.checks
            refused += attested.refusals
            notes += attested.notes
            if attested.report is not None:
                found.append(attested.report)
    return Evidence(text, ref, image, tuple(found), tuple(checks), looked.errors,
                    tuple(notes), tuple(refused), vex=looked.vex)


async def _vex(repo: Repository, sig_repo: Repository | None, image: ResolvedImage,
               rules: VexAttestationRules, keys: KeyCache, root: object | None,
               errors: list[Unchecked]) -> tuple[SignatureCheck, ...]:
    """The image's OpenVEX attestations, verified with ``exceptions.vex_attestations`` only."""
    from imggate.policy.vex import OPENVEX_PREDICATES
    from imggate.signatures.check import check_signatures
    from imggate.signatures.interface import Identity, TrustConfig

    roots = given_roots(root)
    trust = TrustConfig(
        keys=tuple(keys.get(Path(p)) for p in rules.keys),
        identities=tuple(Identity(identity=i.identity, identity_regexp=i.identity_regexp,
                                  issuer=i.issuer, issuer_regexp=i.issuer_regexp)
                         for i in rules.identities),
        check_signatures=False, check_attestations=True,
        attestation_types=OPENVEX_PREDICATES, ignore_tlog=not rules.require_tlog,
        ignore_tlog_by="exceptions.vex_attestations.require_tlog: false",
        trusted_root=roots[0] if roots else None, trusted_roots=roots)
    try:
        found = await check_signatures(repo, image.digest, trust, signature_repo=sig_repo,
                                       platform_digest=image.manifest_digest)
    except Error as e:
        # Unread VEX leaves findings counting: a denial on them is then not certain.
        errors.append(Unchecked(e.message, SCANNER))
        return ()
    return tuple(c for c in found if c.predicate_type in OPENVEX_PREDICATES)


def given_roots(root: object | None) -> tuple[SigstoreTrustRoot, ...]:
    """The trusted roots a door was given (``--trusted-root``): one root, or a tuple."""
    if root is None:  # (without importing the trust-root module: a key-only run never needs it)
        return ()
    from imggate.signatures.trustroot import SigstoreTrustRoot

    if isinstance(root, SigstoreTrustRoot):
        return (root,)
    if isinstance(root, tuple):
        return tuple(r for r in root if isinstance(r, SigstoreTrustRoot))
    return ()


async def _attested(req: CheckRequest, repo: Repository, sig_repo: Repository | None,
                    image: ResolvedImage, material: TrustMaterial, keys: KeyCache,
                    root: object | None, errors: list[Unchecked]) -> AttestedEvidence | None:
    """The vuln attestations, verified with the rules' keys and identities (``None``: not read)."""
    if not (material.keys or material.identities):
        return None
    from imggate.evidence.attested import attested_evidence

    try:
        trust = trust_config(material, req.signatures, keys, root)
        found = await attested_evidence(
            repo, image.digest, trust, now=req.now, signature_repo=sig_repo,
            platform_digest=image.manifest_digest)
    except Error as e:
        errors.append(Unchecked(e.message, SCANNER))
        return None
    return found


def decide(req: CheckRequest, evidence: Sequence[Evidence], *,
           named: Sequence[Sequence[ImageRef]] | None = None) -> Verdict:
    """Apply the policy to each image's evidence.

    ``named``, one per evidence: the references it is judged under, one image verdict
    each, in order, instead of its own (``imggate audit``: a digest's evidence, gathered
    once, judged under each of its tags; see :func:`~imggate.policy.engine.evaluate_each`).
    """
    from imggate.policy.engine import evaluate, evaluate_each, reconcile_exceptions

    p = req.policy
    judged = [with_attested_vex(p, ev, req.now) for ev in evidence]
    if named is None:
        verdicts = [evaluate(ev, p.rules, exceptions=exceptions, now=req.now, kev=p.kev)
                    for ev, exceptions in judged]
    else:
        verdicts = [v for (ev, exceptions), refs in zip(judged, named, strict=True)
                    for v in evaluate_each(ev, refs, p.rules, exceptions=exceptions,
                                           now=req.now, kev=p.kev)]
    return Verdict(env=p.rules.env, images=reconcile_exceptions(verdicts), generated=req.now,
                   run=run_info(p))


def with_attested_vex(p: Policy, ev: Evidence, now: datetime
                      ) -> tuple[Evidence, ExceptionSet]:
    """The run's exceptions plus this image's signed OpenVEX statements (for its digest
    only, held to the environment's exception policy); what could not count is noted.

    Every door that evaluates evidence (check, audit, the webhook) applies it, so a
    signed VEX suppresses the same findings wherever the image is judged."""
    if not ev.vex:
        return ev, p.exceptions
    from imggate.policy.vex import attested_exceptions

    ep = p.rules.exception_policy
    found, problems = attested_exceptions(ev.vex, max_days=ep.max_days)
    found = found.vetted(require_expiry=ep.require_expiry, max_days=ep.max_days,
                         today=now.date())
    problems += [f"openvex attestation {c.location} not verified ({c.reason[:300]}): "
                 "suppresses nothing" for c in ev.vex if not c.verified]
    problems += [f"openvex attestation {e.source}: {e.vulnerability} refused by the exception "
                 f"policy: {why}" for e, why in found.refused[:10]]
    return values.replace(ev, notes=ev.notes + tuple(problems)), p.exceptions + found


def run_info(policy: Policy) -> RunInfo:
    """What every report records about the policy applied: rules source, sha256, environment
    and how each was chosen, and imggate's version."""
    from imggate import __version__

    rf = policy.rules_file
    return RunInfo(rules_source=rf.source, rules_sha256=rf.sha256, rules_found_by=rf.found_by,
                   env=policy.env.name, env_origin=policy.env.origin,
                   env_reason=policy.env.source, imggate_version=__version__,
                   notes=policy.notes)


def import_ahead(req: CheckRequest) -> None:
    """Import now the modules :func:`run_check` would import on first use for ``req``.

    They are imported lazily so that a run that never needs them does not pay for them
    (images in OCI layouts need no HTTP stack, rules that name no signer no signature
    stack). A caller with nothing else to do meanwhile (``check`` while its child still
    reads a large report) imports them then: ~0.1 s of a check's own path otherwise.
    """
    names = ["imggate._aio"]
    if _over_network(req):
        names += ["imggate.registry.client", "imggate.registry.memo"]
    materials = [req.policy.rules.trust(ref) for ref in req.refs]
    if any(m.needed or m.keys or m.identities for m in materials):
        names += ["imggate.signatures.keys", "imggate.signatures.check",
                  "imggate.evidence.attested"]
    for name in names:
        importlib.import_module(name)
    import_deciding()


#: What :func:`decide` imports on first use (the engine and what it judges with).
_DECIDING = ("imggate.policy.checks", "imggate.policy.decision", "imggate.policy.engine",
             "imggate.policy.provenance", "imggate.scanners.merge")


def import_deciding() -> None:
    """Import now what :func:`decide` would import on first use: for a caller with
    nothing else to do meanwhile (``check`` while its child reads; ``audit``'s rules
    thread while the registry answers, before its judging phase with the registry idle)."""
    for name in _DECIDING:
        importlib.import_module(name)


def run_check(req: CheckRequest) -> Verdict:
    """Resolve, gather and decide: the whole gate for one run."""
    from imggate._aio import run

    return decide(req, run(gather(req)))
