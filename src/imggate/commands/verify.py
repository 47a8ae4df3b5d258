"""``imggate verify REF…``: cosign-compatible signature and attestation verification.

Exit 0 when every image meets the requirement, 1 when one does not (each
signature found is listed with who verified it or why not), 3 when
signatures could not be fetched. Flags follow ``cosign verify`` /
``cosign verify-attestation``; ``--type`` (or ``--attestations``, any type)
switches to attestation checking.
"""


import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from imggate._app import app
from imggate.commands._registry_opts import (
    DEFAULT_DEADLINE,
    CaFileOpt,
    DeadlineOpt,
    InsecureOpt,
    PasswordStdinOpt,
    PlatformOpt,
    TimeoutOpt,
    UsernameOpt,
    parse_deadline,
    parse_platform,
    parse_refs,
    registry_options,
)
from imggate.commands._signature_opts import (
    AttestationsOpt,
    CertificateChainOpt,
    CertificateOpt,
    IdentityOpt,
    IdentityRegexpOpt,
    IgnoreTlogOpt,
    IssuerOpt,
    IssuerRegexpOpt,
    SignatureRepositoryOpt,
    ThresholdOpt,
    TypeOpt,
)
from imggate.errors import Error, UsageError
from imggate.keyrefs import key_path
from imggate.text import printable

if TYPE_CHECKING:
    from imggate.models import ImageRef, Platform, SignatureCheck
    from imggate.registry.deadline import Deadline
    from imggate.registry.interface import Repository
    from imggate.registry.options import RegistryOptions
    from imggate.signatures.interface import Requirement, TrustConfig


@dataclass(frozen=True, slots=True)
class ImageResult:
    """What ``verify`` found for one reference."""

    reference: str
    pinned: str | None
    checks: "tuple[SignatureCheck, ...]"
    verified: bool
    explanation: str
    error: Error | None = None

    @property
    def exit_code(self) -> int:
        """0 verified, 1 not verified, the error's code (3) when it could not be checked."""
        if self.error is not None:
            return self.error.exit_code
        return 0 if self.verified else 1


def _annotations(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise UsageError(f"-a/--annotations {p[:80]!r}: expected key=value")
        out[k] = v
    return out


def build_trust(*, keys: Sequence[str], certificates: Sequence[str],
                certificate_chains: Sequence[str], identity: str | None,
                identity_regexp: str | None, issuer: str | None, issuer_regexp: str | None,
                types: Sequence[str], ignore_tlog: bool, trusted_root: Sequence[str] | str | None,
                annotations: Sequence[str], accept_platform: bool,
                attestations: bool = False) -> "TrustConfig":
    """Turn cosign-style flags into a :class:`TrustConfig` (ConfigError/UsageError on misuse)."""
    from imggate.signatures.attestations import predicate_type_uri
    from imggate.signatures.interface import Identity, TrustConfig, load_certificate_authority
    from imggate.signatures.keys import load_public_key
    from imggate.signatures.trustroot import load_trusted_roots

    idents: tuple[Identity, ...] = ()
    if any(x is not None for x in (identity, identity_regexp, issuer, issuer_regexp)):
        idents = (Identity(identity, identity_regexp, issuer, issuer_regexp),)
    cas = [load_certificate_authority(path, path) for path in certificate_chains]
    paths = [trusted_root] if isinstance(trusted_root, str) else list(trusted_root or [])
    roots = load_trusted_roots(*paths)
    if not keys and not certificates and not idents and not cas:
        raise UsageError("nothing to verify against: give --key, --certificate, "
                         "--certificate-chain, or --certificate-identity[-regexp] with "
                         "--certificate-oidc-issuer[-regexp]")
    return TrustConfig(
        keys=tuple(load_public_key(key_path(p, flag), p) for flag, paths
                   in (("--key", keys), ("--certificate", certificates)) for p in paths),
        identities=idents,
        authorities=tuple(cas),
        check_signatures=not (types or attestations),
        check_attestations=bool(types) or attestations,
        attestation_types=tuple(predicate_type_uri(t) for t in types),
        ignore_tlog=ignore_tlog,
        trusted_root=roots[0] if roots else None,
        trusted_roots=roots,
        annotations=_annotations(annotations),
        accept_platform_signatures=accept_platform,
    )


async def verify_refs(refs: "Sequence[ImageRef]", texts: Sequence[str], trust: "TrustConfig",
                      requirement: "Requirement", options: "RegistryOptions",
                      platform: "Platform | None", signature_repository: "ImageRef | None",
                      concurrency: int = 16, deadline: "Deadline | None" = None
                      ) -> list[ImageResult]:
    """Resolve each reference once, then check and evaluate its signatures (concurrently)."""
    import asyncio

    from imggate.registry.client import RegistryClient
    from imggate.registry.resolve import open_repository

    sem = asyncio.Semaphore(concurrency)
    async with RegistryClient(options, deadline=deadline) as client:
        sig_repo = open_repository(signature_repository, client) \
            if signature_repository else None

        async def one(ref: "ImageRef", text: str) -> ImageResult:
            async with sem:
                try:
                    return await _one(open_repository(ref, client), ref, text, trust,
                                      requirement, platform, sig_repo)
                except Error as e:
                    return ImageResult(text, None, (), False, e.message, e)

        return list(await asyncio.gather(*(one(r, t) for r, t in
                                           zip(refs, texts, strict=True))))


async def _one(repo: "Repository", ref: "ImageRef", text: str, trust: "TrustConfig",
               requirement: "Requirement", platform: "Platform | None",
               sig_repo: "Repository | None") -> ImageResult:
    from imggate.registry.resolve import describe_image
    from imggate.signatures.check import check_signatures
    from imggate.signatures.interface import evaluate

    default_tag = "" if ref.source == "oci-layout" else "latest"
    top = await repo.resolve(ref.digest if ref.digest is not None else (ref.tag or default_tag))
    child = None
    if platform is not None and top.is_index:
        child = next((d.digest for d in top.manifests
                      if d.platform is not None and platform.matches(d.platform)), None)
        if child is None:
            raise UsageError(f"{text}: no manifest for platform {platform}")
    # The image itself is read as `check` reads it (its platform manifest and config,
    # each hashed against its digest): a signature over a digest whose content does not
    # match it verifies nothing usable, and that is exit 3, not a verified image.
    await describe_image(repo, ref, top, platform)
    checks = await check_signatures(repo, top.digest, trust, signature_repo=sig_repo,
                                    platform_digest=child)
    if trust.check_attestations:
        from datetime import UTC, datetime

        from imggate.evidence.attested import as_evidence

        # A vuln attestation is scanner evidence: one imggate could not read is not verified.
        checks = as_evidence(checks, now=datetime.now(UTC))
    met, why = evaluate(requirement, checks)
    return ImageResult(text, f"{ref.name}@{top.digest}", checks, met, why)


def _check_json(c: "SignatureCheck") -> dict[str, Any]:
    return {"kind": c.kind.value, "location": c.location, "verified": c.verified,
            "signer": c.signer, "reason": c.reason, "tlog": c.tlog,
            "timestamped": c.timestamped,
            "signedDigest": str(c.signed_digest) if c.signed_digest else None,
            "predicateType": c.predicate_type,
            "predicate": dict(c.predicate) if c.predicate is not None else None}


def _render_text(r: ImageResult) -> str:
    """One image's result; every text that came from a registry or a signature is escaped."""
    return "\n".join(printable(line) for line in _text_lines(r))


def _text_lines(r: ImageResult) -> list[str]:
    lines = []
    if r.error is not None:
        return [f"{r.reference}: could not verify: {r.error.message}"]
    status = "VERIFIED" if r.verified else "NOT VERIFIED"
    lines.append(f"{r.pinned or r.reference}: {status} ({r.explanation})")
    if not r.checks:
        lines.append("  no signatures found")
    for c in r.checks:
        mark = "ok  " if c.verified else "FAIL"
        who = f" by {c.signer}" if c.signer else ""
        ptype = f" [{c.predicate_type}]" if c.predicate_type else ""
        # Say when a verified signature was never checked against a transparency log.
        log = "" if not c.verified else (" (tlog)" if c.tlog else " (timestamped)"
                                         if c.timestamped else " (no tlog: UNSAFE)")
        lines.append(f"  {mark} {c.kind.value}{ptype}{who}{log} at {c.location}: {c.reason}")
    return lines


def verify_bundle_files(bundle: str, digest: str, trust: "TrustConfig",
                        requirement: "Requirement") -> ImageResult:
    """``verify --bundle FILE --digest sha256:…``: the bundle(s) of a file, offline."""
    from pathlib import Path

    from imggate._files import read_config_file
    from imggate.models import Digest
    from imggate.signatures.check import check_bundle_file
    from imggate.signatures.interface import evaluate

    try:
        subject = Digest.parse(digest.strip())
    except ValueError:
        raise UsageError(f"--digest {digest[:80]!r}: expected sha256:<64 hex>") from None
    data = read_config_file(Path(bundle), 16 * 1024 * 1024, what="Sigstore bundle")
    checks = check_bundle_file(data, bundle, subject, trust)
    met, why = evaluate(requirement, checks)
    return ImageResult(bundle, f"{bundle} for {subject}", checks, met, why)


def _bundle_requirement(trust: "TrustConfig", threshold: int | None,
                        typed: bool) -> "Requirement":
    """What a bundle file must show: with --type, that attestation; else a verified bundle
    of either kind (a cosign signature bundle or any attestation), as verify-blob does."""
    from imggate.models import SignatureKind
    from imggate.signatures.interface import AnyOf, SignedBy, Threshold, default_requirement

    if typed:
        return default_requirement(trust, threshold)
    per = tuple(AnyOf((SignedBy(a, SignatureKind.SIGNATURE),
                       SignedBy(a, SignatureKind.ATTESTATION))) for a in trust.anchors)
    return Threshold(threshold, per) if threshold else AnyOf(per)


@app.command()
def verify(
    refs: Annotated[list[str] | None, typer.Argument(
        help="Image references (or oci:PATH[:TAG|@DIGEST]).")] = None,
    key: Annotated[list[str] | None, typer.Option(
        "--key", help="PEM public key (repeatable).")] = None,
    certificate: CertificateOpt = None,
    certificate_chain: CertificateChainOpt = None,
    certificate_identity: IdentityOpt = None,
    certificate_identity_regexp: IdentityRegexpOpt = None,
    certificate_oidc_issuer: IssuerOpt = None,
    certificate_oidc_issuer_regexp: IssuerRegexpOpt = None,
    type_: TypeOpt = None,
    attestations: AttestationsOpt = False,
    threshold: ThresholdOpt = None,
    annotations: Annotated[list[str] | None, typer.Option(
        "-a", "--annotations", help="Require key=value in the signed payload.")] = None,
    insecure_ignore_tlog: IgnoreTlogOpt = False,
    trusted_root: Annotated[list[str] | None, typer.Option(
        "--trusted-root", help="Sigstore trusted_root.json, or several as JSON lines (gh "
                               "attestation trusted-root); repeatable; default: production. "
                               "No TUF request is made either way.")] = None,
    bundle: Annotated[str | None, typer.Option(
        "--bundle", help="Verify this Sigstore bundle file (or JSON lines of bundles) for "
                         "--digest, offline, instead of images (cosign verify-blob-"
                         "attestation --bundle).")] = None,
    digest: Annotated[str | None, typer.Option(
        "--digest", help="With --bundle: the sha256:<hex> the bundle must be about.")] = None,
    signature_repository: SignatureRepositoryOpt = None,
    accept_platform_signatures: Annotated[bool, typer.Option(
        "--accept-platform-signatures",
        help="With --platform, a signature on the platform manifest also counts.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
    platform: PlatformOpt = None,
    insecure_registry: InsecureOpt = None,
    ca_file: CaFileOpt = None,
    username: UsernameOpt = None,
    password_stdin: PasswordStdinOpt = False,
    timeout: TimeoutOpt = 30.0,
    deadline: DeadlineOpt = DEFAULT_DEADLINE,
) -> int:
    """Verify cosign signatures (or attestations with --type) of each image."""
    from imggate._aio import run
    from imggate.registry.options import RegistryOptions
    from imggate.signatures.interface import default_requirement

    limit = parse_deadline(deadline)
    if threshold is not None and threshold < 1:
        raise UsageError("--threshold must be at least 1")
    if (bundle is None) != (digest is None):
        raise UsageError("--bundle and --digest go together")
    if bundle is not None and refs:
        raise UsageError("give image references or --bundle FILE --digest DIGEST, not both")
    if bundle is None and not refs:
        raise UsageError("give image references, or --bundle FILE --digest DIGEST")
    parsed = parse_refs(refs or [])
    sig_text = signature_repository or os.environ.get("COSIGN_REPOSITORY") or None
    sig_ref = parse_refs([sig_text])[0] if sig_text else None
    trust = build_trust(
        keys=key or [], certificates=certificate or [],
        certificate_chains=certificate_chain or [], identity=certificate_identity,
        identity_regexp=certificate_identity_regexp, issuer=certificate_oidc_issuer,
        issuer_regexp=certificate_oidc_issuer_regexp, types=type_ or [],
        ignore_tlog=insecure_ignore_tlog, trusted_root=trusted_root,
        annotations=annotations or [], accept_platform=accept_platform_signatures,
        attestations=attestations or (bundle is not None and not type_))
    if bundle is not None and digest is not None:
        results = [verify_bundle_files(bundle, digest, trust, _bundle_requirement(
            trust, threshold, bool(type_)))]
        return _emit(results, as_json)
    requirement = default_requirement(trust, threshold)
    plat = parse_platform(platform)
    options = registry_options([*parsed, *([sig_ref] if sig_ref else [])],
                               insecure=insecure_registry, ca_file=ca_file, username=username,
                               password_stdin=password_stdin, timeout=timeout)
    assert isinstance(options, RegistryOptions)
    results = run(verify_refs(parsed, refs or [], trust, requirement, options, plat, sig_ref,
                                  deadline=limit))
    return _emit(results, as_json)


def _emit(results: Sequence[ImageResult], as_json: bool) -> int:
    if as_json:
        doc = [{"reference": r.reference, "pinned": r.pinned, "verified": r.verified,
                "explanation": r.explanation,
                "error": r.error.message if r.error else None,
                "signatures": [_check_json(c) for c in r.checks]} for r in results]
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        for r in results:
            stream = sys.stderr if r.error is not None else sys.stdout
            stream.write(_render_text(r) + "\n")
    return max((r.exit_code for r in results), default=3)
